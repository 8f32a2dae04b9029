-- Square (OAuth code flow). https://developer.squareup.com/docs/oauth-api/overview
-- https://developer.squareup.com/reference/square/o-auth/obtain-token
-- https://developer.squareup.com/reference/square/objects/ObtainTokenResponse
-- https://developer.squareup.com/docs/oauth-api/refresh-revoke-limit-scope
-- https://developer.squareup.com/reference/square/merchants-api/retrieve-merchant
-- Quirks: the token request is a JSON body (client_id, client_secret, code); the token
-- response says when the token ends as `expires_at` (ISO 8601), not expires_in, and
-- names the seller (merchant_id): hooks.token_response turns the date into seconds.
-- Access tokens last 30 days; in the code flow a refresh returns the same refresh token,
-- which does not expire. Every API call carries a dated Square-Version. Revoking sends
-- the client id and token as JSON with `Authorization: Client {client_secret}`. The
-- environment picks the hosts: connect.squareup.com or connect.squareupsandbox.com.
-- session=false shows the seller the sign-in page rather than reusing a session. PKCE
-- is Square's flow for public clients (no secret; rotating refresh tokens), so it is off
-- in this code flow.
-- Unconfirmed: the token endpoint's error body (the stand-in answers Square's API error
-- shape {"errors": [{"category", "code", "detail"}]}); the revoke header.
local function utc_time(iso)
  local y, mo, d, h, mi, s, zone = iso:match("^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)[%.%d]*(.*)$")
  if not y then return nil end
  local shift = 0
  if zone ~= "Z" then
    local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    shift = (sign == "+" and -1 or 1) * (tonumber(zh) * 3600 + tonumber(zm) * 60)
  end
  -- os.time reads a table as local time: correct by the local offset
  local t = os.time({ year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
    min = tonumber(mi), sec = tonumber(s), isdst = false })
  local now = os.time()
  local utc_now = os.date("!*t", now)
  utc_now.isdst = false
  return t - (os.time(utc_now) - now) + shift
end

local function token_response(raw)
  local doc = connrt.json.decode(raw.body)
  if type(doc) ~= "table" then return nil, "the token endpoint did not answer JSON (HTTP " .. raw.status .. ")" end
  if raw.status ~= 200 or type(doc.access_token) ~= "string" then
    local e = type(doc.errors) == "table" and type(doc.errors[1]) == "table" and doc.errors[1] or {}
    return nil, tostring(e.code or doc.type or "no error code") .. ": " .. tostring(e.detail or doc.message or "no detail")
  end
  if type(doc.expires_at) == "string" then
    local at = utc_time(doc.expires_at)
    if not at then return nil, "expires_at is not an ISO 8601 time: " .. doc.expires_at end
    doc.expires_in = math.max(0, at - os.time())
  end
  return doc
end

return {
  id = "square",
  title = "Square",
  fields = {
    { key = "env", label = "Environment", description = "squareup (production) or squareupsandbox (sandbox)",
      default = "squareup", choices = { "squareup", "squareupsandbox" } },
  },
  authorize_url = "https://connect.{{env}}.com/oauth2/authorize",
  scopes = { "MERCHANT_PROFILE_READ", "PAYMENTS_READ" },
  authorize_params = { session = "false" },
  pkce = false,
  token_url = "https://connect.{{env}}.com/oauth2/token",
  client_auth = "body",
  token_request_format = "json",
  test = "/merchants/me",
  name = "{{merchant.business_name}}",
  unique_id = "{{merchant.id}}",
  allowed_urls = { "https://connect.{{env}}.com/v2" },
  revoke_request = {
    method = "POST",
    url = "https://connect.{{env}}.com/oauth2/revoke",
    headers = { Authorization = "Client {{client_secret}}" },
    json = { client_id = "{{client_id}}", access_token = "{{access_token}}" },
  },
  request = { headers = { Authorization = "Bearer {{access_token}}", ["Square-Version"] = "2025-01-23" } },
  hooks = { token_response = token_response },
}
