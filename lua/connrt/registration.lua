--- registration.lua - a client registered at an authorization server (RFC 7591
-- dynamic client registration), once, and reused.
--
-- A connector with `registration = "dynamic"` (and `discovery`) needs no client id from
-- the user: on its first connect connrt registers one at the server's
-- registration_endpoint (redirect URI = `connrt redirect-url`, the grant types the
-- connector uses, a token endpoint authentication method the server supports) and keeps
-- the registered id and secret sealed in the store, under the issuer, the way of
-- connecting and the redirect URI. Every later connect to that server reuses it, as long
-- as the endpoints the secret would go to are the ones it was registered for. A client
-- id the user gives (--client-id, CONNRT_CLIENT_ID) wins: nothing is registered then.
local cjson = require("cjson.safe")
local crypto = require("connrt.crypto")
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local log = require("connrt.log")
local request = require("connrt.request")
local text = require("connrt.text")

local M = {}

-- The grant types each way of connecting uses, as RFC 7591 names them.
local GRANTS = {
  authorization_code = { "authorization_code", "refresh_token" },
  device_code = { "urn:ietf:params:oauth:grant-type:device_code", "refresh_token" },
  client_credentials = { "client_credentials" },
}

-- connrt's client_auth for a token endpoint authentication method, and back.
local METHOD_AUTH = { client_secret_basic = "basic", client_secret_post = "body", none = "body" }
local AUTH_METHOD = { basic = "client_secret_basic", body = "client_secret_post" }

--- The store key of the client registered at `issuer` for connector `c` and
-- `redirect_uri` (LMDB keys are short: a long one is hashed).
function M.key(issuer, c, redirect_uri)
  local k = ("registered %s %s %s"):format(issuer, c.auth, redirect_uri or "-")
  if #k > 400 then k = "registered sha256:" .. crypto.hex(crypto.sha256(k)) end
  return k
end

-- The token endpoint authentication method to ask for: the connector's (client_auth),
-- else client_secret_basic, client_secret_post, or none (a public client, which PKCE
-- protects: not for the client credentials grant), the first the server supports (RFC
-- 8414: client_secret_basic when it does not say).
local function pick_method(c, md)
  local supported = {}
  for _, m in ipairs(md.token_endpoint_auth_methods_supported or { "client_secret_basic" }) do supported[m] = true end
  local order = { AUTH_METHOD[c.client_auth], "client_secret_basic", "client_secret_post" }
  if c.auth ~= "client_credentials" then order[#order + 1] = "none" end
  for _, m in ipairs(order) do if supported[m] then return m end end
  errors.raise("provider", "authorization server metadata %s: token_endpoint_auth_methods_supported (%s) has none of "
    .. "the methods connrt can use (client_secret_basic, client_secret_post%s); nothing was stored", md.url,
    table.concat(md.token_endpoint_auth_methods_supported, ", "), c.auth ~= "client_credentials" and ", none" or "")
end

--- Raises a provider error when a registered client's id carries its secret (or another
-- secret connrt handled) in any spelling: the id is kept and shown in clear.
function M.check_client_id(id, where)
  if log.value_shows_secret(id, true) then
    errors.raise("provider", "%s registered a client whose client_id carries its client_secret (or another secret); "
      .. "the id is kept and shown in clear, so nothing was stored", where)
  end
end

--- A string of a registration's answer (RFC 7591 here, Mastodon's apps API in
-- app_registration.lua): present (when `required`; `missing` says what its absence
-- means), a non-empty string, within what connrt keeps, one line. Returns it or nil.
function M.answer_string(doc, k, required, where, missing)
  local v = doc[k]
  if v == nil or v == cjson.null then
    if required then
      errors.raise("provider", "%s answered without a %s: %s; nothing was stored", where, k,
        missing or "not a registered client")
    end
    return nil
  end
  if type(v) ~= "string" or v == "" then
    errors.raise("provider", "%s: %s is %s, not a non-empty string; nothing was stored", where, k,
      type(v) == "string" and "empty" or ("a " .. type(v)))
  end
  if #v > limits.VALUE_BYTES then
    errors.raise("provider", "%s: %s is %d bytes, more than the %d bytes connrt keeps; nothing was stored", where, k, #v,
      limits.VALUE_BYTES)
  end
  local bad = text.control_char(v)
  if bad then errors.raise("provider", "%s: %s contains a control character (%s); nothing was stored", where, k, bad) end
  return v
end

-- Registers a client at md.registration_endpoint. Returns {client_id, client_secret,
-- client_auth}.
local function register(c, md, endpoint, redirect_uri)
  local method = pick_method(c, md)
  local doc = {
    client_name = "connrt: " .. c.title,
    grant_types = GRANTS[c.auth],
    token_endpoint_auth_method = method,
  }
  if c.auth == "authorization_code" then
    doc.redirect_uris, doc.response_types = { redirect_uri }, { "code" }
    -- a loopback redirect URI is a native application's (RFC 8252)
    if redirect_uri:match("^http://") then doc.application_type = "native" end
  else
    doc.response_types = setmetatable({}, cjson.empty_array_mt)
  end
  local where = "client registration at " .. endpoint
  local resp = request.send({ method = "POST", url = endpoint, max_body = limits.TOKEN_BODY,
    headers = { { "Content-Type", "application/json" }, { "Accept", "application/json" } }, body = cjson.encode(doc) },
    where)
  local answer = cjson.decode(resp.body)
  if resp.status < 200 or resp.status > 299 then
    local detail = type(answer) == "table" and request.error_detail(resp.body)
    local desc = type(answer) == "table" and type(answer.error_description) == "string"
      and log.clip(answer.error_description, 300)
    errors.raise("provider", "%s answered %d%s%s; nothing was stored (register connrt there yourself, with the redirect "
      .. "URL of `connrt redirect-url`, and pass --client-id)", where, resp.status, detail and (": " .. detail) or "",
      desc and desc ~= detail and (": " .. desc) or "")
  end
  if type(answer) ~= "table" then
    errors.raise("provider", "%s answered %d with a body that is not a JSON object; nothing was stored", where, resp.status)
  end
  local id = M.answer_string(answer, "client_id", true, where)
  local secret = log.secret(M.answer_string(answer, "client_secret", false, where))
  M.check_client_id(id, where)
  local granted = M.answer_string(answer, "token_endpoint_auth_method", false, where) or method
  if not METHOD_AUTH[granted] then
    errors.raise("provider", "%s registered the client with token_endpoint_auth_method %s, which connrt cannot use; "
      .. "nothing was stored", where, granted)
  end
  if granted ~= "none" and not secret then
    errors.raise("provider", "%s registered a client that authenticates with %s but gave no client_secret; nothing was "
      .. "stored", where, granted)
  end
  log.err("Registered connrt as client %s at %s", id, endpoint)
  return { client_id = id, client_secret = secret, client_auth = METHOD_AUTH[granted] }
end

--- The client of connector `c` at the server of metadata `md`: the one registered before
-- (when the endpoints its secret would go to, `origins`, are the ones it was registered
-- for), else a new one, remembered at once. `endpoint` is the checked registration
-- endpoint (nil when the metadata has none). Returns {client_id, client_secret,
-- client_auth}.
function M.client(st, c, md, endpoint, redirect_uri, origins)
  local key = M.key(md.issuer, c, redirect_uri)
  local saved = st:client(key, origins)
  if saved then return saved end
  if not endpoint then
    errors.raise("usage", "%s does not offer dynamic client registration (its metadata %s has no registration_endpoint): "
      .. "register connrt there yourself (redirect URL: %s) and pass --client-id", md.issuer, md.url,
      redirect_uri or "none")
  end
  local client = register(c, md, endpoint, redirect_uri)
  client.origins = origins
  st:save_client(key, client)
  return client
end

return M
