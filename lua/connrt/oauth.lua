--- oauth.lua - the OAuth 2.0 authorization code grant, as the connector describes it:
-- the authorization URL (state, PKCE S256), the token request with the client
-- authentication the connector names, and turning a token response into one normalized
-- token.
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

--- A fresh state value: 32 random bytes (256 bits), base64url.
function M.new_state()
  return crypto.b64url_encode(crypto.random(32))
end

--- A PKCE pair (RFC 7636): a 32-byte random verifier, base64url (43 characters), and
-- its S256 challenge: the SHA-256 of the verifier, base64url-encoded (RFC 7636), or
-- hex-encoded where the connector says `pkce_encoding = "hex"` (TikTok's desktop apps).
function M.new_pkce(encoding)
  local verifier = crypto.b64url_encode(crypto.random(32))
  local digest = crypto.sha256(verifier)
  return verifier, encoding == "hex" and crypto.hex(digest) or crypto.b64url_encode(digest)
end

--- What the authorize and code exchange requests send as redirect_uri: the redirect URL
-- the listener waits on, or the connector's `redirect_uri` rendered with the fields
-- (eBay's RuName, which eBay maps to the redirect URL registered with it).
function M.sent_redirect_uri(c, fields, redirect_uri)
  if not c.redirect_uri then return redirect_uri end
  return template.render(c.redirect_uri, template.scope({ fields = fields }), c.path .. ": redirect_uri")
end

--- The authorization URL. `ctx`: fields, client_id, redirect_uri, state, challenge.
function M.authorize_url(c, ctx)
  local base = connector.render_url(c, "authorize_url", ctx.fields)
  local params = {
    { "response_type", "code" },
    { c.client_id_param, ctx.client_id },
    { "redirect_uri", M.sent_redirect_uri(c, ctx.fields, ctx.redirect_uri) },
  }
  local scopes = ctx.scopes or c.scopes
  if #scopes > 0 then params[#params + 1] = { "scope", table.concat(scopes, c.scope_separator) } end
  params[#params + 1] = { "state", ctx.state }
  if c.pkce then
    params[#params + 1] = { "code_challenge", ctx.challenge }
    params[#params + 1] = { "code_challenge_method", "S256" }
  end
  -- the connector's own parameters, then the caller's (--param), which win
  local extra = {}
  for _, p in ipairs(ctx.params or {}) do extra[p[1]] = true end
  local scope = template.scope({ client = { client_id = ctx.client_id }, fields = ctx.fields })
  for _, p in ipairs(template.render_pairs(c.authorize_params, scope, c.path .. ": authorize_params")) do
    if not extra[p[1]] then params[#params + 1] = p end
  end
  for _, p in ipairs(ctx.params or {}) do
    if connector.RESERVED_PARAMS[p[1]] or p[1] == c.client_id_param then
      errors.raise("usage", "--param %s: connrt sets this parameter itself", p[1])
    end
    params[#params + 1] = p
  end
  return url.add_query(base, params)
end

--- The token endpoint request for `grant` (array of {name, value}), with the client
-- authentication the connector names, `Accept: application/json` (unless the
-- connector's token_headers say otherwise) and the connector's token_headers.
-- opts.no_token_params leaves the connector's token_params out (for the device
-- authorization endpoint). The request's `grant` is the grant_type it asks for (what
-- hooks.token_response is told as raw.grant).
function M.token_request(c, token_url, ctx, grant, opts)
  local params = {}
  local grant_type
  for _, p in ipairs(grant) do
    params[#params + 1] = p
    if p[1] == "grant_type" then grant_type = p[2] end
  end
  local scope = template.scope({ client = { client_id = ctx.client_id }, fields = ctx.fields })
  if not (opts and opts.no_token_params) then
    for _, p in ipairs(template.render_pairs(c.token_params, scope, c.path .. ": token_params")) do
      params[#params + 1] = p
    end
  end
  local json = c.token_request_format == "json"
  local extra = template.render_pairs(c.token_headers, scope, c.path .. ": token_headers")
  local accept = "application/json"
  local hidden = {}
  for _, h in ipairs(extra) do
    if h[1]:lower() == "accept" then accept = h[2] end
    if request.carries_secret(tostring(c.token_headers[h[1]]), h[2], function(v) return connector.secret_var(c, v) end) then
      hidden[h[1]:lower()] = true
    end
  end
  local headers = {
    { "Accept", accept },
    { "Content-Type", json and "application/json" or "application/x-www-form-urlencoded" },
  }
  for _, h in ipairs(extra) do
    if h[1]:lower() ~= "accept" then headers[#headers + 1] = h end
  end
  if c.client_auth == "basic" then
    -- RFC 6749 2.3.1: id and secret are form-encoded before they are joined
    headers[#headers + 1] = request.basic_authorization(url.encode(ctx.client_id), url.encode(ctx.client_secret or ""))
  else
    params[#params + 1] = { c.client_id_param, ctx.client_id }
    if ctx.client_secret then params[#params + 1] = { "client_secret", ctx.client_secret } end
  end
  -- a token endpoint's answer is small: a huge one is refused before it is parsed
  if json then
    -- a JSON object of the same parameters (Notion, Atlassian)
    local doc = {}
    for _, p in ipairs(params) do if doc[p[1]] == nil then doc[p[1]] = p[2] end end
    return { method = "POST", url = token_url, headers = headers, body = cjson.encode(doc), max_body = limits.TOKEN_BODY,
      grant = grant_type, hidden_headers = hidden, token_answer = true }
  end
  return { method = "POST", url = token_url, headers = headers, body = url.form_encode(params),
    max_body = limits.TOKEN_BODY, grant = grant_type, hidden_headers = hidden, token_answer = true }
end

local function title_of(body)
  local t = require("connrt.text").html_title(body)
  return t and (" (page title: " .. log.clip(t, 80) .. ")") or ""
end

--- Parses a token endpoint's body: JSON, or form-encoded when the provider says so.
-- Returns a table, or nil.
local function parse_body(raw)
  local ctype = (raw.header["content-type"] or ""):lower()
  if ctype:find("x-www-form-urlencoded", 1, true) then
    return (url.form_decode(raw.body))
  end
  local v = cjson.decode(raw.body)
  if type(v) == "table" then return v end
  if ctype == "" or ctype:find("text/plain", 1, true) then
    local map = url.form_decode(raw.body)
    if map.access_token or map.error then return map end
  end
  return nil
end

local SCALAR = { string = true, number = true, boolean = true }
local MAX_EXPIRES_IN = 2 ^ 53
local TOKEN_KEYS = { access_token = true, refresh_token = true, id_token = true,
  token_type = true, expires_in = true, scope = true }

-- A value the store can keep: a string, a boolean or a finite number (the decoder takes
-- NaN and Infinity, which JSON, and so the store, cannot hold).
local function storable(v)
  if type(v) == "number" then return v == v and v ~= math.huge and v ~= -math.huge end
  return SCALAR[type(v)] == true
end

--- A value as connrt keeps it: a number JSON (14 significant digits in the store) would
-- not give back exactly, such as an account id of 15 or more digits, becomes its exact
-- decimal text, so what a template renders later is what the provider sent (and what the
-- record's binding covers is the value itself, not a rounding of it). Others as they are.
function M.keep_value(v)
  if type(v) ~= "number" then return v end
  local i = math.tointeger(v)
  if i then
    if i > -1e14 and i < 1e14 then return v end
    return ("%d"):format(i)
  end
  if tonumber(("%.14g"):format(v)) == v then return v end
  return ("%.17g"):format(v)
end

-- Raises a provider error when `v` (a string kept as `what`) is longer than `max` bytes.
local function bounded(v, max, where, what)
  if type(v) == "string" and #v > max then
    errors.fail("provider", "too_big", "%s: %s is %d bytes, more than the %d bytes connrt keeps; nothing was stored",
      where, what, #v, max)
  end
end

-- The values a token keeps: only the names the connector declares in `values` (every
-- other key of a provider's answer is dropped: an answer may carry secrets beside the
-- token, Intercom's `token` or a `session_token`, and values are kept in clear). A
-- provider's body (`from` nil) is read at its top level. A table hooks.token_response
-- built (`from` "hook") may name its values in `values`: each must be declared, and a
-- name that looks secret (log.secret_name) is the connector's error, as for
-- hooks.callback and lookup. A pasted `connrt authorize` result ("pasted") has them in
-- `values` too.
local function keep_values(t, where, c, from)
  local declared = {}
  for _, k in ipairs(c and c.values or {}) do declared[k] = true end
  local explicit = from ~= nil and type(t.values) == "table"
  local out = {}
  for k, v in pairs(explicit and t.values or t) do
    if type(k) == "string" and (explicit or not (TOKEN_KEYS[k] or k == "values")) then
      if explicit and from == "hook" then M.check_value_name(c, "token_response", k) end
      if declared[k] and storable(v) then
        bounded(v, limits.VALUE_BYTES, where, "value " .. k)
        out[k] = M.keep_value(v)
      end
    end
  end
  return out
end

--- Raises a connector error when a hook returns a value named `k` that connrt must not
-- keep: a name that looks secret (log.secret_name: values are stored and shown in
-- clear), or one the connector does not declare in `values`.
function M.check_value_name(c, hook, k)
  if log.secret_name(k) then
    errors.raise("connector", "%s: hooks.%s returned the value %s, whose name looks secret: values are stored and "
      .. "shown in clear, so connrt keeps no secret among them (a credential the API needs is the token itself)",
      c.path, hook, k)
  end
  for _, d in ipairs(c.values or {}) do if d == k then return end end
  errors.raise("connector", "%s: hooks.%s returned the value %s, which is not declared in `values` (declared: %s); "
    .. "connrt keeps only declared values", c.path, hook, k, #(c.values or {}) > 0 and table.concat(c.values, ", ") or "none")
end

-- Raises a provider error when a text kept in clear carries one of the token's secrets.
local function no_token_inside(tok, where, what, v)
  if type(v) == "string" then
    for _, k in ipairs({ "access_token", "refresh_token", "id_token" }) do
      local s = tok[k]
      if s and #s >= 8 and v:find(s, 1, true) then
        errors.raise("provider", "%s: %s carries the %s, and it would be kept in clear; nothing was stored", where,
          what, k:gsub("_", " "))
      end
    end
  end
  -- (and any spelling of a secret the redactor knows, a number's too: the answer's were
  -- learned first)
  if log.value_shows_secret(v, true) then
    errors.raise("provider", "%s: %s carries a secret (in some spelling), and it would be kept in clear; nothing was "
      .. "stored", where, what)
  end
end

--- Checks a token table (from the default parser or a hook) and fills expires_at. `c`
-- is the connector (its declared `values`); `from` is "hook" for a table
-- hooks.token_response returned, "pasted" for a pasted authorize result. Returns
-- {access_token, refresh_token, id_token, token_type, scope, expires_in, expires_at,
-- values = the declared values of the response}.
function M.finish_token(t, where, c, from)
  if type(t) ~= "table" then
    errors.fail("provider", "bad_answer", "%s: expected a token table, got %s", where, type(t))
  end
  if t.access_token ~= nil and t.access_token ~= cjson.null and type(t.access_token) ~= "string" then
    errors.fail("provider", "bad_answer", "%s: access_token is a %s, not a string", where, type(t.access_token))
  end
  if type(t.access_token) ~= "string" or t.access_token == "" then
    errors.fail("provider", "bad_answer", "%s: the response has no access_token", where)
  end
  local tok = {}
  for k in pairs(TOKEN_KEYS) do
    local v = t[k]
    if v ~= nil and v ~= cjson.null then tok[k] = v end
  end
  for _, k in ipairs({ "access_token", "refresh_token", "id_token" }) do
    if tok[k] ~= nil and type(tok[k]) ~= "string" then
      errors.fail("provider", "bad_answer", "%s: %s is a %s, not a string", where, k, type(tok[k]))
    end
    log.secret(tok[k])
    bounded(tok[k], limits.TOKEN_BYTES, where, "the " .. k:gsub("_", " "))
    -- a token goes into header lines (Bearer): RFC 6749 allows printable ASCII only
    local bad = tok[k] and require("connrt.text").control_char(tok[k])
    if bad then errors.fail("provider", "bad_answer", "%s: the %s contains a control character (%s)", where, k, bad) end
  end
  -- scope as a JSON array of strings (Twitch) is the space-separated list of RFC 6749
  if type(tok.scope) == "table" then
    local n, strings = 0, true
    for _, s in pairs(tok.scope) do n, strings = n + 1, strings and type(s) == "string" end
    if strings and n == #tok.scope then tok.scope = table.concat(tok.scope, " ") end
  end
  for _, k in ipairs({ "token_type", "scope" }) do
    if type(tok[k]) == "number" then tok[k] = tostring(math.tointeger(tok[k]) or tok[k]) end
    if tok[k] ~= nil and type(tok[k]) ~= "string" then
      errors.fail("provider", "bad_answer", "%s: %s is a %s, not a string", where, k, type(tok[k]))
    end
  end
  bounded(tok.token_type, limits.VALUE_BYTES, where, "token_type")
  bounded(tok.scope, limits.SCOPE_BYTES, where, "scope")
  local bad = tok.token_type and require("connrt.text").control_char(tok.token_type)
  if bad then errors.fail("provider", "bad_answer", "%s: the token_type contains a control character (%s)", where, bad) end
  if tok.expires_in ~= nil then
    local n = tonumber(tok.expires_in)
    -- not NaN, not infinite, and an integer the store and the clock can hold
    if not n or n ~= n or n < 0 or n >= MAX_EXPIRES_IN then
      errors.fail("provider", "bad_answer", "%s: expires_in is not a number of seconds: %s", where, tostring(tok.expires_in))
    end
    tok.expires_in = math.floor(n)
    -- issued_at with it: the token's lifetime bounds how early it is refreshed
    tok.issued_at = os.time()
    tok.expires_at = tok.issued_at + tok.expires_in
  end
  tok.values = keep_values(t, where, c, from)
  no_token_inside(tok, where, "token_type", tok.token_type)
  no_token_inside(tok, where, "scope", tok.scope)
  for k, v in pairs(tok.values) do no_token_inside(tok, where, "value " .. k, v) end
  return tok
end

--- A token response's error code and description, as text (nil when there are none):
-- RFC 6749's "error" and "error_description", or an error object's fields (Facebook's
-- {"error": {"type": ..., "message": ...}}). A JSON null or false error is no error.
function M.error_of(body)
  local function text(v) return SCALAR[type(v)] and require("connrt.format").value(v) or nil end
  local e, d = body.error, body.error_description
  if e == nil or e == cjson.null or e == false then return nil end
  if type(e) == "table" then
    return text(e.type) or text(e.code) or text(e.error) or "an error object",
      text(e.message) or text(e.error_description) or text(d)
  end
  return text(e) or type(e), text(d)
end

-- Names in a token endpoint's answer that carry no credential: RFC 6749's words (the
-- error, its description, the token type, the scope), RFC 8628's user code and
-- verification URLs (shown to the user); an error's whole subtree is skipped (its code
-- and message are what connrt prints: Square's {"errors": [{"code": ...}]}).
local NOT_CREDENTIAL = { error = true, errors = true, error_description = true, error_uri = true, token_type = true,
  scope = true, message = true, detail = true, details = true, hint = true, user_code = true, verification_uri = true,
  verification_url = true, verification_uri_complete = true }
local MAX_LEARNED = 64 -- strings learned from one answer (each costs every later redaction a few finds)

-- An identifier's name (id, user_id, uid, teamId): an account id is printed as the
-- connection's unique id, and is no credential.
-- A secret-looking name (log.secret_name) in a token answer, but the codes: there a
-- `code` is an error or status code (ClickUp's ECODE, Pinterest's code), not the
-- authorization code, which is never in the answer; a device code is a credential.
local function secret_named(k)
  local n = k:lower()
  return log.secret_name(k) and (n == "device_code" or not n:find("code", 1, true))
end

local function id_name(k)
  local n = k:lower()
  return n == "id" or n == "uid" or n:match("[_%-]ids?$") ~= nil or k:match("%lIds?$") ~= nil
end

-- A string that looks like a token under a name a provider chose ({"data": {"tok": ...}}):
-- 16 bytes or more of RFC 6750's token characters, with a letter and a digit (no word,
-- email, URL, number or sentence).
local function tokenish(v)
  return #v >= 16 and v:match("^[%w%-._~+/=]+$") ~= nil and v:find("%a") ~= nil and v:find("%d") ~= nil
end

--- Registers as secrets (log.secret) the strings of a token endpoint's answer `raw` that
-- may be credentials, before anything else reads it: a hook (token_response) or an error
-- quoting it would otherwise print a token the redactor does not know yet (what connrt
-- takes as the token is registered again in finish_token). Learned: every string of 8
-- bytes or more without spaces under a secret-looking name (secret_named) at any
-- depth, and every token-like string (tokenish) under another name; never those under
-- NOT_CREDENTIAL names, identifiers' names or the values connector `c` declares (kept
-- in clear: declared no secret). A body that is neither JSON nor a form has its
-- token-like words learned. At most MAX_LEARNED, the secret-named first.
function M.learn_credentials(raw, c)
  local body = raw and raw.body
  if type(body) ~= "string" or body == "" then return end
  local skip = {}
  for k in pairs(NOT_CREDENTIAL) do skip[k] = true end
  for _, k in ipairs(c and c.values or {}) do skip[k] = true end
  local named, looks = {}, {}
  local function walk(v, key, depth)
    if key and (skip[key] or (id_name(key) and not secret_named(key))) then return end
    if type(v) == "string" then
      if key and secret_named(key) then
        if #v >= 8 and not v:find("%s") then named[#named + 1] = v end
      elseif tokenish(v) then
        looks[#looks + 1] = v
      end
    elseif type(v) == "table" and depth < 32 then
      for k, x in pairs(v) do walk(x, type(k) == "string" and k or key, depth + 1) end
    end
  end
  local ok, doc = pcall(parse_body, raw)
  if ok and type(doc) == "table" then
    walk(doc, nil, 0)
  else
    for w in body:sub(1, 65536):gmatch("[%w%-._~+/=]+") do
      if tokenish(w) then looks[#looks + 1] = w end
      if #looks >= MAX_LEARNED then break end
    end
  end
  local n = 0
  for _, list in ipairs({ named, looks }) do
    for _, v in ipairs(list) do
      if n >= MAX_LEARNED then return end
      log.secret(v)
      n = n + 1
    end
  end
end

--- Turns a raw token endpoint response {status, headers, header, body} into a token
-- (keeping the values connector `c` declares), or raises a provider error that says what
-- the endpoint answered.
function M.normalize(raw, where, c)
  M.learn_credentials(raw, c)
  local body = parse_body(raw)
  local ctype = raw.header["content-type"] or "no content type"
  if not body then
    errors.fail("provider", "bad_answer", "%s answered %d with %s, not a token response%s", where, raw.status,
      ctype:match("^[^;]*"), title_of(raw.body))
  end
  local e, d = M.error_of(body)
  if e or raw.status < 200 or raw.status > 299 then
    -- the OAuth error code is the provider's own word for the reason (RFC 6749 5.2)
    errors.fail("provider", e == "invalid_grant" and "invalid_grant" or "rejected", "%s answered %d: %s%s", where,
      raw.status, e or "no error code", d and (": " .. d) or "")
  end
  return M.finish_token(body, where, c)
end

--- Sends a token request (or takes the `raw` response already fetched) and returns the
-- normalized token, through the connector's token_response hook when it has one. The
-- hook is told the grant the answer is for (raw.grant): `grant`, else the request's.
function M.fetch_token(c, req, where, raw, grant)
  raw = raw or request.send(req, where)
  M.learn_credentials(raw, c)
  if c.hooks.token_response then
    local r = connector.hook_response(raw)
    r.grant = grant or (req and req.grant)
    -- nil, message[, code]: the code is the provider's error in RFC 6749's words
    local t, err, code = connector.call_hook(c, "token_response", r)
    if t == nil then
      errors.fail("provider", code == "invalid_grant" and "invalid_grant" or "rejected", "%s answered %d: %s", where,
        raw.status, tostring(err or "rejected by hooks.token_response"))
    end
    return M.finish_token(t, where .. " (through hooks.token_response)", c, "hook")
  end
  return M.normalize(raw, where, c)
end

return M
