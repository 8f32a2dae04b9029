--- flow/lookup.lua - hooks.lookup: after the token exchange and before the test API, a
-- connector's hook may send requests through the new credentials (only to the allowed
-- URLs known so far) and return values kept with the connection (a cloud id, a tenant,
-- a data center). The client the hook is handed is built here.
local cjson = require("cjson.safe")
local connector = require("connrt.connector")
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local request = require("connrt.request")
local url = require("connrt.url")
local values = require("connrt.flow.values")

local M = {}

--- Runs hooks.lookup. `scope` is the template scope so far; `allowed` the allowed URLs
-- known so far. Returns the values table (string keys, scalar values).
function M.run(c, scope, allowed)
  local declared = {}
  for _, m in ipairs(c.lookup_methods or {}) do declared[m] = true end
  local function send(req, what_kind)
    if type(req) ~= "table" or type(req.url) ~= "string" then
      errors.raise("connector", "%s: hooks.lookup: %s needs a url", c.path, what_kind)
    end
    if #allowed == 0 then
      errors.raise("connector", "%s: hooks.lookup: no allowed URL is known before the lookup", c.path)
    end
    local target = request.allowed_target(allowed, req.url,
      c.path:gsub("%%", "%%%%") .. ": hooks.lookup: %s is refused: %s (allowed: %s)")
    local headers = {}
    for k, v in pairs(req.headers or {}) do
      request.check_header(k, tostring(v), "connector", c.path .. ": hooks.lookup: " .. what_kind)
      headers[#headers + 1] = { k, tostring(v) }
    end
    local query = {}
    for k, v in pairs(req.query or {}) do query[#query + 1] = { tostring(k), tostring(v) } end
    table.sort(query, function(a, b) return a[1] < b[1] end)
    local method = req.method and tostring(req.method):upper() or "GET"
    -- a lookup reads: it sends with the fresh token, before the user has seen the
    -- connection, so a write (an SSH key, a webhook) only where the connector declares it
    if method ~= "GET" and method ~= "HEAD" and not declared[method] then
      errors.raise("connector", "%s: hooks.lookup: %s %s is refused: a lookup only reads (GET, HEAD); a connector that "
        .. "must send %s declares it in lookup_methods", c.path, what_kind, method:sub(1, 20), method:sub(1, 20))
    end
    local full = request.with_parameters(c.request, scope,
      { method = method, url = url.add_query(target, query), headers = headers, body = req.body, json = req.json },
      c.path .. ": request", { skip_unknown = true, from_connector = true, secret_var = function(v) return connector.secret_var(c, v) end })
    full.follow, full.allowed, full.max_body = 5, allowed, limits.API_BODY
    local resp = request.send(full, "hooks.lookup " .. method .. " " .. url.without_query(target))
    local ctype = (resp.header["content-type"] or ""):lower()
    local doc
    if ctype:find("json", 1, true) then doc = cjson.decode(resp.body) end
    return { status = resp.status, headers = resp.header, body = resp.body, json = doc }
  end
  local api = {
    request = function(req) return send(req, "api.request") end,
    get = function(u, opts)
      local req = { url = u }
      for k, v in pairs(opts or {}) do req[k] = v end
      req.method = "GET"
      return send(req, "api.get")
    end,
    values = {},
  }
  for i = #scope, 1, -1 do for k, v in pairs(scope[i]) do if values.scalar(v) then api.values[k] = v end end end
  -- never a secret: no token, no client secret, no field declared secret
  for k in pairs(api.values) do
    if connector.secret_var(c, k) or connector.SECRET_NAMES[k] then api.values[k] = nil end
  end
  local v, err = connector.call_hook(c, "lookup", api)
  if v == nil then
    errors.raise("provider", "%s: hooks.lookup failed: %s; nothing was saved", c.path, tostring(err or "it returned nothing"))
  end
  return values.check(c, "lookup", v)
end

return M
