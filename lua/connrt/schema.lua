--- schema.lua - the connector format, declared as data, and the validator that checks it.
--
-- Like a Kong plugin's schema: the connector table is checked against the declaration
-- below, key by key, and every error names the key path (`fields[2].choices`) and what
-- was expected. Checks a table cannot say (templates that name fields, secrets kept out
-- of names) live in connector.lua.
local limits = require("connrt.limits")
local log = require("connrt.log")

local M = {}

-- Type checkers: each returns nil when fine, or a message.
local function is(t) return function(v) if type(v) ~= t then return "expected a " .. t .. ", got " .. type(v) end end end
local string_t, boolean_t, function_t = is("string"), is("boolean"), is("function")

local function pattern_t(pat, what)
  return function(v)
    if type(v) ~= "string" then return "expected a string, got " .. type(v) end
    if not v:match(pat) then return "expected " .. what .. ", got " .. string.format("%q", v) end
  end
end

local function enum_t(...)
  local allowed = { ... }
  return function(v)
    for _, a in ipairs(allowed) do if v == a then return nil end end
    return "expected one of " .. table.concat(allowed, ", ") .. ", got " .. tostring(v)
  end
end

local function lua_pattern_t(v)
  if type(v) ~= "string" then return "expected a string, got " .. type(v) end
  local max = require("connrt.limits").PATTERN_BYTES
  if #v > max then return ("a pattern of %d bytes; at most %d"):format(#v, max) end
  local ok, err = pcall(require("connrt.sandbox").find, "", v)
  if not ok then return "not a valid Lua pattern: " .. tostring(err):gsub("^.-:%d+: ", "") end
end

-- A declaration is { check = fn } for a leaf, { record = {...} } for a table with known
-- keys, { array = decl, max_items = n } for a list, { map = decl } for string keys to values, or
-- { one_of = { decl, ... } }. `required = true` marks a key that must be present.
local function leaf(check, extra)
  local d = { check = check }
  for k, v in pairs(extra or {}) do d[k] = v end
  return d
end

local string_map = { map = leaf(function(v)
  if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
    return "expected a string, got " .. type(v)
  end
end) }

-- The name of a value kept with a connection. Values are stored and shown in clear
-- (`connrt show`, `list --json`), so a name that says it holds a secret (log.secret_name:
-- a token, key, password, session, ...) is refused rather than kept: connrt keeps no
-- secret among values. A provider's harmless key that only looks so can be renamed by
-- hooks.token_response.
local name_t = pattern_t("^[%a_][%w_]*$", "a name of letters, digits and '_'")
local function value_name_t(v)
  local msg = name_t(v)
  if msg then return msg end
  if log.secret_name(v) then
    return ("%q looks like the name of a secret: values are stored and shown in clear, so connrt keeps none that "
      .. "holds one (the credential an API needs is the token; a harmless value can be renamed by "
      .. "hooks.token_response)"):format(v)
  end
end

-- Headers that decide where a request goes or how it is framed are libcurl's to set: a
-- connector's Host header would send its credentials to another virtual host behind an
-- allowed address (the HTTP client refuses them on every request that carries them, too).
local ROUTING = require("connrt.text").hop_by_hop_and({ "host", "content-length", "proxy-authorization" })
local header_map = { map = string_map.map, key_check = function(k)
  if ROUTING[k:lower()] then return ("%s is set by connrt's HTTP client, not by connectors"):format(k) end
  if not require("connrt.text").is_token(k) then return ("%q is not a header name"):format(k) end
end }

local field_decl = { record = {
  key = leaf(pattern_t("^[%a_][%w_]*$", "a name of letters, digits and '_'"), { required = true }),
  label = leaf(string_t),
  description = leaf(string_t),
  required = leaf(boolean_t),
  default = leaf(string_t),
  choices = { array = leaf(string_t) },
  pattern = leaf(lua_pattern_t),
  secret = leaf(boolean_t),
} }

-- A value sent as a JSON body: tables, strings, booleans and finite numbers only.
local function json_t(v)
  if type(v) ~= "table" then return "expected a table, got " .. type(v) end
  local function walk(x, depth)
    local t = type(x)
    if t == "table" then
      if depth > 32 then return "nested more than 32 deep" end
      for k, y in pairs(x) do
        if type(k) ~= "string" and math.type(k) ~= "integer" then return "a key of type " .. type(k) end
        local bad = walk(y, depth + 1)
        if bad then return bad end
      end
    elseif t == "number" then
      if x ~= x or x == math.huge or x == -math.huge then return "a number JSON cannot hold: " .. tostring(x) end
    elseif t ~= "string" and t ~= "boolean" then
      return "a " .. t .. ", which is not JSON"
    end
  end
  local bad = walk(v, 1)
  if bad then return "expected JSON data, found " .. bad end
end

-- The test API: a request, and `ok`, the values its answer must hold to count as a
-- success (JSON paths to strings, numbers or booleans: Slack's { ok = true }).
local request_decl = { record = {
  method = leaf(pattern_t("^%u+$", "an HTTP method in capitals")),
  url = leaf(string_t, { required = true }),
  headers = header_map,
  query = string_map,
  body = leaf(string_t),
  json = leaf(json_t),
  -- a form body, rendered with the connection's values and the client's credentials
  form = string_map,
  ok = string_map,
} }

-- A request declared as data, rendered with the connection's values (revoke_request,
-- exchange_request).
local templated_request_decl = { record = {
  method = leaf(pattern_t("^%u+$", "an HTTP method in capitals")),
  url = leaf(string_t, { required = true }),
  headers = header_map,
  query = string_map,
  form = string_map,
  json = leaf(json_t),
  basic = { record = { username = leaf(string_t, { required = true }), password = leaf(string_t) } },
} }

--- The connector format. Each key is one setup step; see docs/connectors.md.
M.connector = { record = {
  id = leaf(pattern_t("^[a-z0-9][a-z0-9_-]*$", "lowercase letters, digits, '-' and '_'"), { required = true }),
  title = leaf(string_t),
  fields = { array = field_decl },                                   -- 1
  -- 2: the redirect URL is the runtime's (`connrt redirect-url`); 3: client id and
  -- secret are never in the script.
  -- how an account is connected: a browser sign-in (default), the client's own
  -- credentials, a device code, or fields the user fills in (API keys, passwords)
  auth = leaf(enum_t("authorization_code", "client_credentials", "device_code", "fields")),
  issuer = leaf(string_t),
  -- RFC 9207: the server always sends `iss` on the callback, so one without it is refused
  -- (set from the metadata's authorization_response_iss_parameter_supported with `discovery`)
  issuer_in_response = leaf(boolean_t),
  -- the authorization server's issuer URL (a field template allowed): its metadata (RFC
  -- 8414, OpenID Connect discovery) fills the URL keys the connector leaves out
  discovery = leaf(string_t),
  -- "dynamic": a client registered at the server (RFC 7591) on first connect, then reused
  registration = leaf(enum_t("dynamic")),
  -- the protected resource the tokens are for (RFC 8707), sent on authorize and token requests
  resource = leaf(string_t),
  authorize_url = leaf(string_t),                                    -- 4 (authorization_code)
  device_url = leaf(string_t),                                       -- device_code (RFC 8628)
  scopes = { array = leaf(string_t) },
  scope_separator = leaf(string_t),
  authorize_params = string_map,
  -- the name the client id goes by in the authorize request and a token request's body
  -- (TikTok's client_key); default client_id
  client_id_param = leaf(pattern_t("^[%w_.-]+$", "a parameter name of letters, digits, '_', '.' and '-'")),
  -- what is sent as redirect_uri in the authorize and code exchange requests instead of
  -- the redirect URL: a template of fields (eBay's RuName, a name registered for it)
  redirect_uri = leaf(string_t),
  pkce = leaf(boolean_t),
  -- how the S256 challenge is encoded: base64url (RFC 7636) or hex (TikTok's desktop apps)
  pkce_encoding = leaf(enum_t("base64url", "hex")),
  token_url = leaf(string_t),                                        -- 5 (all but fields)
  client_auth = leaf(enum_t("basic", "body")),
  token_params = string_map,
  -- headers every request to the token, refresh, device and revoke URLs carries
  -- (Reddit's descriptive User-Agent)
  token_headers = string_map,
  -- how token, refresh and revoke requests carry their parameters: a form (RFC 6749)
  -- or a JSON object (Notion, Atlassian)
  token_request_format = leaf(enum_t("form", "json")),
  refresh_url = leaf(string_t),                                      -- 6
  revoke_url = leaf(string_t),                                       -- 7 (RFC 7009)
  -- 7, for providers whose revocation is not RFC 7009: the request to send instead
  revoke_request = templated_request_decl,
  -- fields the callback sets, field key -> callback parameter (Zoho's accounts-server):
  -- each one a field with choices, the callback's value one of them
  callback_fields = { map = leaf(string_t) },
  -- a client registered on each server at connect time by the provider's own app API
  -- (Mastodon's POST /api/v1/apps, not RFC 7591): the URL and its form
  app_registration = { record = { url = leaf(string_t, { required = true }), form = string_map } },
  -- sent right after the code exchange; its answer is the token kept (Facebook's
  -- short-lived user token exchanged for a long-lived one)
  exchange_request = templated_request_decl,
  -- 8: required, unless `discovery` gives the userinfo endpoint (connector.lua checks)
  test = { one_of = { leaf(string_t), request_decl } },
  name = leaf(string_t, { required = true }),                        -- 9
  allowed_urls = { array = leaf(string_t), required = true, max = "ALLOWED_URLS" }, -- 10
  unique_id = leaf(string_t, { required = true }),                   -- 11
  -- names of the values kept with the connection from the token response, hooks.callback
  -- or hooks.lookup (`instance_url`, `api_endpoint`); any other value is dropped
  values = { array = leaf(value_name_t), max_items = limits.VALUES },
  request = { record = {                                             -- 12
    headers = header_map,
    query = string_map,
    body = string_map,
    basic = { record = { username = leaf(string_t, { required = true }), password = leaf(string_t) } },
  } },
  -- the username git presents the token with (connrt git-credential): GitHub's
  -- "x-access-token", GitLab's "oauth2", Bitbucket's "x-token-auth"; a template of
  -- fields and kept values
  git_username = leaf(string_t),
  refresh_on = { array = leaf(function(v)
    if math.type(v) ~= "integer" or v < 400 or v > 599 then return "expected an HTTP error status, got " .. tostring(v) end
  end) },
  -- the methods besides GET and HEAD that hooks.lookup's api.request may send (a read
  -- that must be a POST: GraphQL, Dropbox); a lookup reads, so none by default
  lookup_methods = { array = leaf(enum_t("POST", "PUT", "PATCH", "DELETE")) },
  hooks = { record = {
    token_response = leaf(function_t),
    callback = leaf(function_t),
    expired = leaf(function_t),
    lookup = leaf(function_t),
  } },
} }

local function keys_sorted(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

-- The closest known key, for "did you mean" hints on typos.
local function closest(name, record)
  local best, best_d
  for k in pairs(record) do
    local d = 0
    local a, b = name, k
    if math.abs(#a - #b) <= 2 then
      for i = 1, math.max(#a, #b) do
        if a:sub(i, i) ~= b:sub(i, i) then d = d + 1 end
      end
      if d <= 2 and (not best_d or d < best_d) then best, best_d = k, d end
    end
  end
  return best
end

local function join(path, key)
  if type(key) == "number" then return path .. "[" .. key .. "]" end
  return path == "" and key or path .. "." .. key
end

local validate

local function validate_record(v, decl, path, errs)
  if type(v) ~= "table" then
    errs[#errs + 1] = { path, "expected a table, got " .. type(v) }
    return
  end
  for _, k in ipairs(keys_sorted(v)) do
    if type(k) ~= "string" or not decl.record[k] then
      local hint = type(k) == "string" and closest(k, decl.record)
      errs[#errs + 1] = { join(path, tostring(k)), "unknown key" .. (hint and (" (did you mean '" .. hint .. "'?)") or ""),
        problem = "unknown_key", suggest = hint or nil }
    end
  end
  for _, k in ipairs(keys_sorted(decl.record)) do
    local sub = decl.record[k]
    if v[k] == nil then
      if sub.required then errs[#errs + 1] = { join(path, k), "is required", problem = "required" } end
    else
      validate(v[k], sub, join(path, k), errs)
    end
  end
end

function validate(v, decl, path, errs)
  if decl.check then
    local msg = decl.check(v)
    if msg then errs[#errs + 1] = { path, msg } end
  elseif decl.record then
    validate_record(v, decl, path, errs)
  elseif decl.array then
    if type(v) ~= "table" then
      errs[#errs + 1] = { path, "expected an array, got " .. type(v) }
      return
    end
    local n = #v
    for k in pairs(v) do
      if math.type(k) ~= "integer" or k < 1 or k > n then
        errs[#errs + 1] = { path, "expected an array, got a table with key " .. tostring(k) }
        return
      end
    end
    local max = decl.max and require("connrt.limits")[decl.max]
    if max and n > max then
      errs[#errs + 1] = { path, ("%d entries; at most %d"):format(n, max) }
      return
    end
    if decl.max_items and n > decl.max_items then
      errs[#errs + 1] = { path, ("has %d entries, more than the %d allowed"):format(n, decl.max_items) }
      return
    end
    for i = 1, n do validate(v[i], decl.array, join(path, i), errs) end
  elseif decl.map then
    if type(v) ~= "table" then
      errs[#errs + 1] = { path, "expected a table of names to values, got " .. type(v) }
      return
    end
    for _, k in ipairs(keys_sorted(v)) do
      local bad = type(k) == "string" and decl.key_check and decl.key_check(k)
      if type(k) ~= "string" then
        errs[#errs + 1] = { path, "expected names as keys, got " .. type(k) }
      elseif bad then
        errs[#errs + 1] = { join(path, k), bad }
      else
        validate(v[k], decl.map, join(path, k), errs)
      end
    end
  elseif decl.one_of then
    local closest_errs
    for _, d in ipairs(decl.one_of) do
      local sub = {}
      validate(v, d, path, sub)
      if #sub == 0 then return end
      -- report against the declaration of the value's own kind (table or not)
      if (type(v) == "table") == (d.check == nil) then closest_errs = sub end
    end
    for _, e in ipairs(closest_errs or { { path, "has the wrong type: " .. type(v) } }) do
      errs[#errs + 1] = e
    end
  end
end

--- Validates `value` against `decl`. Returns a list of {path, message}, empty when valid;
-- an entry also has `problem` ("unknown_key", with `suggest`: the closest known key, or
-- "required") where a caller may say more about it without reading the message.
function M.validate(value, decl)
  local errs = {}
  validate(value, decl, "", errs)
  return errs
end

return M
