--- flow/finish.lua - the last steps of every way of connecting, once a token (or, for
-- field connections, nothing) is in hand: the exchange_request, hooks.lookup, the
-- allowed URLs, the test API, the name and unique id, and one write transaction.
-- Nothing is saved unless every step succeeded.
local connector = require("connrt.connector")
local context = require("connrt.flow.context")
local errors = require("connrt.errors")
local exchange = require("connrt.flow.exchange")
local lookup = require("connrt.flow.lookup")
local naming = require("connrt.flow.naming")
local origins = require("connrt.origins")
local record = require("connrt.flow.record")
local request = require("connrt.request")
local template = require("connrt.template")
local test_api = require("connrt.flow.test_api")
local values_check = require("connrt.flow.values")

local M = {}

--- Finishes the connect `ctx` (flow/context.lua, with its store open) with `token` (nil
-- for field connections) and the values hooks.callback kept (`extras`). Returns the
-- saved record and whether an existing connection was updated.
function M.run(ctx, token, extras)
  local c = ctx.c
  if token and c.exchange_request then token = exchange.run(ctx, token) end
  -- only declared values are here (oauth.finish_token, flow/values.lua); `from` says who gave each
  local values, from = {}, {}
  for k, v in pairs(token and token.values or {}) do values[k], from[k] = v, nil end
  for k, v in pairs(extras or {}) do values[k], from[k] = v, "hooks.callback" end
  local token_scope, client_layer = {}, { client_id = ctx.client_id }
  if token then
    token_scope.access_token, token_scope.token_type = token.access_token, token.token_type
    token_scope.scope, token_scope.expires_in = token.scope, token.expires_in
  end
  local function scope(me)
    return template.scope({ token = token_scope, client = client_layer, fields = ctx.fields, values = values, test = me })
  end
  if c.hooks.lookup then
    local found = lookup.run(c, scope(), context.known_allowed(ctx))
    for k, v in pairs(found) do values[k], from[k] = v, "hooks.lookup" end
  end
  values_check.check_no_secret(ctx, token, values, from)
  -- every allowed URL, now that the token's and the lookup's values exist
  ctx.allowed = {}
  for i = 1, #c.allowed_urls do
    ctx.allowed[i] = ctx.allowed_static[i] or connector.render_allowed(c, i,
      template.scope({ fields = ctx.fields, values = values }))
  end
  -- a remembered client goes nowhere it was not given for (flow/context.lua checked what
  -- was known before the sign-in); the connection's token was issued to it
  local outside = ctx.client_given and origins.outside(origins.reach(ctx.urls, ctx.allowed), ctx.client_given) or {}
  if #outside > 0 then
    errors.raise("usage", "the client remembered for %s was given for %s, and this connector would send its secret and "
      .. "tokens to %s (allowed_urls rendered from the sign-in's values); nothing was sent there or saved: pass "
      .. "--client-id and the client secret to use them there", c.id, table.concat(ctx.client_given, ", "),
      table.concat(outside, ", "))
  end
  if c.revoke_request then
    -- its URL, now that every value exists: within the connection's reach, or nothing is saved
    local where = c.path .. ": revoke_request"
    request.check_reach(connector.render_url_text(c.revoke_request.url, scope(), where .. ".url"), where,
      origins.reach(ctx.urls, ctx.allowed))
  end
  local me = test_api.call(c, scope(), ctx.allowed, ctx.client_secret)
  local name, unique_id = naming.render(c, scope(me))
  local rec, secrets, client = record.build(ctx, token, values, name, unique_id)
  record.check_clear(rec, c.path)
  local id, updated = ctx.st:save(rec, secrets, c.source, client,
    token and ("token endpoint " .. tostring(ctx.urls.token_url)) or c.path, { replace = ctx.opts.replace })
  rec.id = id
  return rec, updated
end

return M
