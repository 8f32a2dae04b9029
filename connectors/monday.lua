-- monday.com (OAuth 2.1, the flow of every new app). https://developer.monday.com/apps/docs/oauth-2-1
-- https://developer.monday.com/apps/docs/migrating-to-the-new-oauth-flow
-- https://developer.monday.com/api-reference/docs/authentication
-- https://developer.monday.com/api-reference/docs/api-versioning
-- Quirks: the authorize URL is the legacy flow's, the token URL is not (oauth_ms); PKCE
-- is part of 2.1; access tokens expire and refresh tokens rotate. The API is GraphQL
-- (POST /v2) and takes the token in Authorization without "Bearer", as monday's examples
-- send it, with a dated API-Version on every call. An account admin must have installed
-- the app before the sign-in completes. Legacy (2.0) tokens are refused from API version
-- 2027-04.
-- Unconfirmed: client authentication in the body; the token response's fields (the
-- stand-in answers RFC 6749's); the scope separator (space); the revocation URL (not
-- set); whether "Bearer" is also accepted.
return {
  id = "monday",
  title = "monday.com",
  authorize_url = "https://auth.monday.com/oauth2/authorize",
  scopes = { "me:read", "account:read", "boards:read" },
  pkce = true,
  token_url = "https://auth.monday.com/oauth_ms/oauth/token",
  client_auth = "body",
  test = { method = "POST", url = "/v2", json = { query = "query { me { id name email account { id name } } }" } },
  name = "{{data.me.name}} at {{data.me.account.name}}",
  unique_id = "{{data.me.account.id}}/{{data.me.id}}",
  allowed_urls = { "https://api.monday.com" },
  -- a dated version: monday supports each for about a year; raise it deliberately
  request = { headers = { Authorization = "{{access_token}}", ["API-Version"] = "2025-10" } },
}
