--- flow/values.lua - the values a connection keeps in clear (declared in the connector's
-- `values`) as hooks return them: hooks.callback, hooks.lookup and a pasted authorize
-- result's extras are checked here, and no kept value may carry a secret of the
-- connection.
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local log = require("connrt.log")
local oauth = require("connrt.oauth")

local M = {}

local SCALAR = { string = true, number = true, boolean = true }

--- True for what a kept value may be: a string, number or boolean.
function M.scalar(x)
  return SCALAR[type(x)] == true
end

--- Checks what a hook returned as values to keep: a table of names declared in `values`
-- (none that looks secret: oauth.check_value_name) to strings, numbers or booleans, each
-- within limits.VALUE_BYTES. Returns the table.
function M.check(c, hook, v)
  if type(v) ~= "table" then
    errors.raise("connector", "%s: hooks.%s must return a table of values, returned %s", c.path, hook, type(v))
  end
  for k, x in pairs(v) do
    if type(k) ~= "string" then
      errors.raise("connector", "%s: hooks.%s must return values by name, got a %s key", c.path, hook, type(k))
    end
    if not SCALAR[type(x)] then
      errors.raise("connector", "%s: hooks.%s: value %s is a %s, not a string, number or boolean", c.path, hook, k, type(x))
    end
    if x ~= x or x == math.huge or x == -math.huge then
      errors.raise("connector", "%s: hooks.%s: value %s is %s, not a number the store can keep", c.path, hook, k,
        tostring(x))
    end
    v[k] = oauth.keep_value(x)
    oauth.check_value_name(c, hook, k)
    if type(x) == "string" and #x > limits.VALUE_BYTES then
      errors.fail("provider", "too_big", "%s: hooks.%s: value %s is %d bytes, more than the %d bytes connrt keeps; nothing was "
        .. "stored", c.path, hook, k, #x, limits.VALUE_BYTES)
    end
  end
  return v
end

--- Values are kept in clear: none a hook gave (`from[k]` names the hook) may carry a
-- secret of this connection (a hook could copy one; the token response's own values
-- were checked by oauth.finish_token).
function M.check_no_secret(ctx, token, values, from)
  local hidden = {}
  for _, s in pairs({ token and token.access_token or false, token and token.refresh_token or false,
      token and token.id_token or false, ctx.client_secret or false }) do
    if s then hidden[#hidden + 1] = s end
  end
  for k in pairs(ctx.secret_fields) do hidden[#hidden + 1] = ctx.fields[k] end
  for k, v in pairs(values) do
    for _, s in ipairs(hidden) do
      if from[k] and type(v) == "string" and type(s) == "string" and #s >= 8 and v:find(s, 1, true) then
        errors.raise("connector", "%s: %s returned the value %s, which carries a secret of the connection; values are "
          .. "kept in clear, so nothing was saved", ctx.c.path, from[k], k)
      end
    end
    -- and in any spelling the redactor knows of any secret this connect handled
    if log.value_shows_secret(v, true) then
      errors.raise(from[k] and "connector" or "provider", "%s: %s value %s carries a secret of the connection (in "
        .. "some spelling); values are kept in clear, so nothing was saved", ctx.c.path, from[k] or "the token's", k)
    end
  end
end

return M
