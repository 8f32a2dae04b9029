-- Fitbit Web API. https://dev.fitbit.com/build/reference/web-api/developer-guide/authorization
-- https://dev.fitbit.com/build/reference/web-api/authorization/authorize
-- https://dev.fitbit.com/build/reference/web-api/authorization/oauth2-token
-- https://dev.fitbit.com/build/reference/web-api/authorization/refresh-token
-- https://dev.fitbit.com/build/reference/web-api/authorization/revoke-token
-- https://dev.fitbit.com/build/reference/web-api/user/get-profile
-- Quirks: PKCE (S256) with a server app's HTTP Basic client authentication; users may
-- untick scopes (the token's `scope` lists what was granted); access tokens last 8 hours
-- and each refresh returns a new refresh token. Errors come as
-- {"errors": [{"errorType", "message"}], "success": false}, not RFC 6749's `error`:
-- hooks.token_response reads them, so a dead refresh token is reported as invalid_grant
-- (and the connection marked for reconnecting). Revocation is RFC 7009.
-- Unconfirmed: that refresh tokens are single-use (the new one is kept either way).
local function token_response(raw)
  local doc = connrt.json.decode(raw.body)
  if type(doc) ~= "table" then return nil, "the token endpoint did not answer JSON (HTTP " .. raw.status .. ")" end
  if raw.status ~= 200 or doc.success == false then
    local e = type(doc.errors) == "table" and doc.errors[1] or {}
    return nil, tostring(e.errorType or "no error type") .. ": " .. tostring(e.message or "no message"),
      type(e.errorType) == "string" and e.errorType or nil
  end
  return doc
end

return {
  id = "fitbit",
  title = "Fitbit",
  authorize_url = "https://www.fitbit.com/oauth2/authorize",
  scopes = { "profile", "activity" },
  pkce = true,
  token_url = "https://api.fitbit.com/oauth2/token",
  client_auth = "basic",
  revoke_url = "https://api.fitbit.com/oauth2/revoke",
  test = "/1/user/-/profile.json",
  name = "{{user.displayName}}",
  unique_id = "{{user.encodedId}}",
  allowed_urls = { "https://api.fitbit.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
  hooks = { token_response = token_response },
}
