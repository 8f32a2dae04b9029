--- app_registration.lua - a client registered on each server, at connect time, through
-- the provider's own app API (Mastodon's POST /api/v1/apps: every instance is its own
-- authorization server and no client exists before connrt registers one; this is not
-- RFC 7591). The connector declares the request (`app_registration = { url, form }`);
-- its form sees the fields, {{redirect_uri}} (what the authorize request sends) and
-- {{scope}} (the scopes asked for, joined). The answer's client_id and client_secret are
-- kept sealed in the store at once, under the registration URL, the redirect URI and the
-- scopes, so the next connect to that server reuses them (and a sign-in that fails later
-- does not register another app next time). A client id the user gives (--client-id,
-- CONNRT_CLIENT_ID) wins: nothing is registered then. Nothing secret is sent: the
-- request carries the app's name, redirect URI and scopes only.
local cjson = require("cjson.safe")
local connector = require("connrt.connector")
local crypto = require("connrt.crypto")
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local log = require("connrt.log")
local request = require("connrt.request")
local template = require("connrt.template")
local url = require("connrt.url")

local M = {}

--- The store key of the client registered with `reg_url` for `redirect_uri` and `scope`
-- (LMDB keys are short: a long one is hashed).
function M.key(reg_url, redirect_uri, scope)
  local k = ("app %s %s %s"):format(reg_url, redirect_uri, scope)
  if #k > 400 then k = "app sha256:" .. crypto.hex(crypto.sha256(k)) end
  return k
end

--- The registration URL of connector `c`, rendered with `fields` (https, or http to a
-- loopback host).
function M.url(c, fields)
  local where = c.path .. ": app_registration.url"
  local out = connector.render_url_text(c.app_registration.url, template.scope({ fields = fields }), where)
  local ok, why = url.check_secure(out, "app_registration.url")
  if not ok then errors.raise("connector", "%s: %s", c.path, why) end
  return out
end

-- A string of the registration's answer (registration.answer_string).
local function answer_string(doc, k, required, where)
  return require("connrt.registration").answer_string(doc, k, required, where, "no app was registered")
end

local function register(c, fields, reg_url, redirect_uri, scope)
  local where = "app registration at " .. reg_url
  local tscope = template.scope({ client = { redirect_uri = redirect_uri, scope = scope }, fields = fields })
  local params = template.render_pairs(c.app_registration.form, tscope, c.path .. ": app_registration.form")
  local resp = request.send({ method = "POST", url = reg_url, max_body = limits.TOKEN_BODY,
    headers = { { "Accept", "application/json" }, { "Content-Type", "application/x-www-form-urlencoded" } },
    body = url.form_encode(params) }, where)
  local answer = cjson.decode(resp.body)
  if resp.status < 200 or resp.status > 299 then
    local detail = type(answer) == "table" and request.error_detail(resp.body)
    errors.raise("provider", "%s answered %d%s; nothing was stored (register an app there yourself, with the redirect "
      .. "URL %s, and pass --client-id)", where, resp.status, detail and (": " .. detail) or "", redirect_uri)
  end
  if type(answer) ~= "table" then
    errors.raise("provider", "%s answered %d with a body that is not a JSON object; nothing was stored", where, resp.status)
  end
  local id = answer_string(answer, "client_id", true, where)
  local secret = log.secret(answer_string(answer, "client_secret", false, where))
  require("connrt.registration").check_client_id(id, where)
  log.err("Registered connrt as client %s at %s", id, reg_url)
  return { client_id = id, client_secret = secret }
end

--- The client of connector `c` on the server its registration URL names: the one
-- registered before for the same redirect URI and scopes (when the endpoints its secret
-- would go to, `origins`, are the ones it was registered for), else a new one,
-- remembered at once. `origins` is the connector's reach as known before the sign-in
-- (origins.reach). Returns the client id, its secret and the origins it was registered
-- for.
function M.client(st, c, fields, redirect_uri, scope, origins)
  local reg_url = M.url(c, fields)
  -- the registration's form goes to the server the connection uses, nowhere else
  local within, o = require("connrt.origins").within(reg_url, origins)
  if not within then
    errors.raise("connector", "%s: app_registration.url sends to %s, which is not within the connection's reach (%s)",
      c.path, o, table.concat(origins, ", "))
  end
  local key = M.key(reg_url, redirect_uri, scope)
  local saved = st:client(key, origins)
  if saved then return saved.client_id, log.secret(saved.client_secret), saved.origins or origins end
  local client = register(c, fields, reg_url, redirect_uri, scope)
  client.origins = origins
  st:save_client(key, client)
  return client.client_id, client.client_secret, origins
end

return M
