-- Webex (integrations). https://developer.webex.com/docs/integrations
-- https://developer.webex.com/meeting/docs/authentication
-- Test API: GET /people/me (https://developer.webex.com/docs/api/v1/people/get-my-own-details).
-- client_id and client_secret in the form body; scopes are space-separated; access
-- tokens and refresh tokens both expire (expires_in, refresh_token_expires_in).
-- Government (FedRAMP) tenants use another base URL, not covered here.
-- Unconfirmed: PKCE (off); lifetimes (14 and 90 days); a revoke endpoint (none documented);
-- the token endpoint's error body (the stand-in answers Webex's usual
-- {"message", "errors", "trackingId"}).
return {
  id = "webex",
  title = "Webex",
  authorize_url = "https://webexapis.com/v1/authorize",
  scopes = { "spark:people_read", "spark:rooms_read" },
  pkce = false,
  token_url = "https://webexapis.com/v1/access_token",
  client_auth = "body",
  test = "/people/me",
  name = "{{displayName}} ({{emails.0}})",
  unique_id = "{{id}}",
  allowed_urls = { "https://webexapis.com/v1" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
