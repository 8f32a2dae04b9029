--- fuzz/token.lua - harness for token-response parsing (oauth.normalize: JSON, or
-- form-encoded when the content type says so or the body is not JSON).
--
-- Input: a first line "STATUS CONTENT-TYPE" (either part may be missing: 200, no content
-- type), then the body. The response must become a token whose every field has the type
-- the rest of connrt relies on (the store encodes it as JSON, `connrt show` formats its
-- expiry), or a provider error. The same goes for the shipped connectors that parse
-- their token responses themselves (hooks.token_response, run by oauth.fetch_token): a
-- hook that fails on the input is a crash.
local cjson = require("cjson")
local errors = require("connrt.errors")
local format = require("connrt.format")
local connector = require("connrt.connector")
local oauth = require("connrt.oauth")

local SCALAR = { string = true, number = true, boolean = true }

local function check(cond, fmt, ...)
  if not cond then error(string.format(fmt, ...), 2) end
end

local function check_token(tok, status)
  check(status >= 200 and status <= 299, "a token from an HTTP %d answer", status)
  check(type(tok.access_token) == "string" and tok.access_token ~= "", "access_token is not a non-empty string")
  for _, k in ipairs({ "refresh_token", "id_token", "token_type", "scope" }) do
    check(tok[k] == nil or type(tok[k]) == "string", "%s is a %s", k, type(tok[k]))
  end
  if tok.expires_in ~= nil then
    check(math.type(tok.expires_in) == "integer" and tok.expires_in >= 0, "expires_in %s", tostring(tok.expires_in))
    check(math.type(tok.expires_at) == "integer", "expires_at %s", tostring(tok.expires_at))
    format.utc(tok.expires_at)
    format.expiry(tok.expires_at)
  else
    check(tok.expires_at == nil, "expires_at without expires_in")
  end
  check(type(tok.values) == "table", "values is not a table")
  for k, v in pairs(tok.values) do
    check(type(k) == "string" and SCALAR[type(v)], "values[%s] is a %s", tostring(k), type(v))
  end
  -- what the store does with it
  cjson.encode(tok)
end

local HOOKED = {}
for _, id in ipairs({ "slack", "mailchimp" }) do
  HOOKED[#HOOKED + 1] = connector.load(_G.FUZZ_ROOT .. "/connectors/" .. id .. ".lua")
end

return function(data)
  local head, body = data:match("^([^\n]*)\n(.*)$")
  if not head then head, body = "", data end
  local status, ctype = head:match("^(%d%d%d) ?(.*)$")
  status = tonumber(status) or 200
  local header = {}
  if ctype and ctype ~= "" then header["content-type"] = ctype end
  local raw = { status = status, header = header, headers = {}, body = body }
  local ok, tok = pcall(oauth.normalize, raw, "token endpoint https://auth.example.test/token")
  if ok then
    check_token(tok, status)
  elseif not errors.is(tok) then
    error(tok, 0)
  else
    check(tok.kind == "provider", "a %s error: %s", tok.kind, tok.message)
  end
  for _, c in ipairs(HOOKED) do
    ok, tok = pcall(oauth.fetch_token, c, nil, "token endpoint https://auth.example.test/token", raw)
    if ok then
      check_token(tok, 200)
    elseif not errors.is(tok) then
      error(tok, 0)
    else
      check(tok.kind == "provider", "%s: a %s error: %s", c.id, tok.kind, tok.message)
    end
  end
end
