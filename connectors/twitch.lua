-- Twitch (Helix API). https://dev.twitch.tv/docs/authentication/getting-tokens-oauth/
-- https://dev.twitch.tv/docs/authentication (every API call carries Client-Id)
-- https://dev.twitch.tv/docs/authentication/refresh-tokens
-- https://dev.twitch.tv/docs/authentication/revoke-tokens
-- https://dev.twitch.tv/docs/authentication/validate-tokens
-- https://dev.twitch.tv/docs/api/reference/#get-users
-- Quirks: every Helix call needs a `Client-Id` header with the app's client id beside
-- the Bearer token (a token of another client is refused), so the request parameters
-- send `{{client_id}}`. The token response's `scope` is a JSON array (read as the usual
-- space-separated list). Refreshing may return a new refresh token (the newest is kept).
-- Token errors come as {"status", "message"} (no RFC 6749 `error` code), read by
-- hooks.token_response. Revocation is a form of client_id and token (no client secret).
-- GET /users without parameters answers the token's own user. Twitch asks apps that
-- keep sessions to call GET https://id.twitch.tv/oauth2/validate hourly; connrt does not
-- (a token revoked meanwhile is found on the next call, which answers 401).
-- Unconfirmed: PKCE (not documented; not sent).
local function token_response(raw)
  local doc = connrt.json.decode(raw.body)
  if type(doc) ~= "table" then return nil, "the token endpoint did not answer JSON (HTTP " .. raw.status .. ")" end
  if raw.status ~= 200 or type(doc.access_token) ~= "string" then
    -- {"status": 400, "message": "Invalid authorization code"}: a dead code or refresh
    -- token is an invalid grant
    local msg = tostring(doc.message or doc.error or "no message")
    local dead = raw.status == 400 and (msg:find("Invalid authorization code", 1, true)
      or msg:find("Invalid refresh token", 1, true))
    return nil, (dead and "invalid_grant: " or "") .. msg, dead and "invalid_grant" or nil
  end
  return doc
end

return {
  id = "twitch",
  title = "Twitch",
  authorize_url = "https://id.twitch.tv/oauth2/authorize",
  scopes = { "user:read:email" },
  pkce = false,
  token_url = "https://id.twitch.tv/oauth2/token",
  client_auth = "body",
  revoke_request = {
    method = "POST",
    url = "https://id.twitch.tv/oauth2/revoke",
    form = { client_id = "{{client_id}}", token = "{{access_token}}" },
  },
  test = "/users",
  name = "{{data.0.display_name}}",
  unique_id = "{{data.0.id}}",
  allowed_urls = { "https://api.twitch.tv/helix" },
  request = { headers = { Authorization = "Bearer {{access_token}}", ["Client-Id"] = "{{client_id}}" } },
  hooks = { token_response = token_response },
}
