--- flow/record.lua - what a connect stores: the plain record (connector, name, unique
-- id, plain fields, kept values, URLs, the token's metadata), the secrets sealed beside
-- it (tokens, client secret, secret fields) and the client to remember. The one place
-- that says which part of a connect goes where.
local errors = require("connrt.errors")
local log = require("connrt.log")
local origins = require("connrt.origins")
local sys = require("connrt.sys")

local M = {}

-- The sorted union of two lists of origins.
local function union(a, b)
  local set, out = {}, {}
  for _, l in ipairs({ a or {}, b or {} }) do
    for _, o in ipairs(l) do if not set[o] then set[o] = true; out[#out + 1] = o end end
  end
  table.sort(out)
  return out
end

-- What a record keeps in clear that a provider or a hook may have chosen.
local CLEAR = { "name", "unique_id", "client_id", "urls", "allowed_urls", "fields", "values", "scope", "token_type",
  "discovery", "resource" }

--- Raises a provider error when text record `rec` keeps in clear shows a secret this
-- process knows (log.value_shows_secret): commands that know no secret (`connrt list`)
-- print it. A provider may choose a token equal to such text (an access token that is
-- the client id, a refreshed token that is the account's name), or a secret that a URL
-- it gave holds. `where` names the connect or the refresh.
function M.check_clear(rec, where)
  local function walk(v, path, depth)
    if type(v) == "table" and depth < 8 then
      for k, x in pairs(v) do walk(x, path .. "." .. tostring(k), depth + 1) end
    elseif (type(v) == "string" or type(v) == "number") and log.value_shows_secret(v, true) then
      errors.raise("provider", "%s: the connection's %s would show a secret of it in clear; nothing was saved", where,
        path)
    end
  end
  for _, k in ipairs(CLEAR) do walk(rec[k], k, 0) end
end

--- The record, its secrets and the client to remember (nil for field connections) of
-- the connect `ctx`; `token` is nil for field connections.
function M.build(ctx, token, values, name, unique_id)
  local c = ctx.c
  local plain_fields, secrets = {}, { client_secret = ctx.client_secret, fields = {} }
  if token then
    secrets.access_token, secrets.refresh_token, secrets.id_token = token.access_token, token.refresh_token, token.id_token
  end
  for k, v in pairs(ctx.fields) do
    if ctx.secret_fields[k] then secrets.fields[k] = v else plain_fields[k] = v end
  end
  if next(secrets.fields) == nil then secrets.fields = nil end
  local rec = {
    -- the file's absolute real path: `connrt update ID` opens it from any directory
    v = 1, connector = c.id, title = c.title, connector_path = sys.realpath(c.path) or c.path, auth = c.auth,
    name = name, unique_id = unique_id, fields = plain_fields, values = values,
    client_id = ctx.client_id, client_auth = c.client_auth, urls = ctx.urls, allowed_urls = ctx.allowed,
    token_type = token and token.token_type, scope = token and token.scope,
    expires_at = token and token.expires_at, issued_at = token and token.issued_at,
    has_refresh_token = token and token.refresh_token ~= nil or false,
    discovery = ctx.discovery, resource = ctx.resource,
  }
  -- a registered app is remembered per server already (app_registration.lua)
  local client = ctx.client_id and not ctx.registered and { client_id = ctx.client_id, client_secret = ctx.client_secret,
    origins = ctx.client_given or union(ctx.reach_before, origins.reach(ctx.urls, ctx.allowed, { ctx.authorize_url }))
  } or nil
  return rec, secrets, client
end

return M
