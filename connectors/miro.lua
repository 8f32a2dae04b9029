-- Miro REST API v2. https://developers.miro.com/docs/getting-started-with-oauth
-- https://developers.miro.com/reference/exchange-authorization-code-with-access-token
-- https://developers.miro.com/reference/get-new-access-token-using-refresh-token
-- https://developers.miro.com/reference/oauth-20-authorization-v2 (step "Get access token context", GET /v1/oauth-token)
-- Quirks: authorizing installs the app on a team the user picks; the OAuth endpoints
-- stay on v1 while the API is v2. Miro's reference shows the token parameters in the
-- query string but says to send them in the body (as connrt does). Whether tokens
-- expire is chosen when the app is created: then access tokens last an hour and every
-- refresh returns a new pair, invalidating the old one; otherwise the token lives until
-- the app is uninstalled. The team and user come from the token's context endpoint.
-- No revoke key: Miro's v1 revocation takes the token in the query string, which connrt
-- never sends.
-- Unconfirmed: PKCE (off); the token endpoint's error body (the stand-in answers RFC
-- 6749's); the context's field names (team, user); that ids are strings.
return {
  id = "miro",
  title = "Miro",
  authorize_url = "https://miro.com/oauth/authorize",
  pkce = false,
  token_url = "https://api.miro.com/v1/oauth/token",
  client_auth = "body",
  test = "https://api.miro.com/v1/oauth-token",
  name = "{{user.name}} at {{team.name}}",
  unique_id = "{{team.id}}/{{user.id}}",
  allowed_urls = { "https://api.miro.com/v2", "https://api.miro.com/v1/oauth-token" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
