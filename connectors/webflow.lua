-- Webflow Data API v2. https://developers.webflow.com/data/reference/oauth-app
-- https://developers.webflow.com/data/reference/authentication
-- https://developers.webflow.com/data/reference/token/authorized-by
-- The user grants access to chosen sites or a workspace. Tokens do not expire and come
-- without a refresh token. GET /token/authorized_by (scope authorized_user:read) names
-- the user; errors are {"code", "message", "externalReference", "details"}.
-- Unconfirmed: the token endpoint (api.webflow.com/oauth/access_token, as other clients
-- use it) and its error body; PKCE (off); the revocation endpoint (not set).
return {
  id = "webflow",
  title = "Webflow",
  authorize_url = "https://webflow.com/oauth/authorize",
  scopes = { "authorized_user:read", "sites:read" },
  pkce = false,
  token_url = "https://api.webflow.com/oauth/access_token",
  client_auth = "body",
  test = "/token/authorized_by",
  name = "{{firstName}} {{lastName}} ({{email}})",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.webflow.com/v2" },
  request = { headers = { Authorization = "Bearer {{access_token}}", Accept = "application/json" } },
}
