-- LinkedIn: Sign In with LinkedIn using OpenID Connect, 3-legged OAuth.
-- https://learn.microsoft.com/en-us/linkedin/shared/authentication/authorization-code-flow
-- https://learn.microsoft.com/en-us/linkedin/consumer/integrations/self-serve/sign-in-with-linkedin-v2
-- https://learn.microsoft.com/en-us/linkedin/shared/authentication/programmatic-refresh-tokens
-- Quirks: access tokens last 60 days (expires_in) and come without a refresh token
-- unless the app is an approved partner; then refresh_token and refresh_token_expires_in
-- (365 days counted from the first consent, not extended by refreshing) come too. Without
-- one, `connrt refresh` says there is no refresh token and the member connects again
-- when the 60 days end. The member must accept every scope asked for. client_secret in
-- the form body. Versioned REST calls (/rest/...) also need LinkedIn-Version: YYYYMM and
-- X-Restli-Protocol-Version: 2.0.0, a version chosen per call (-H), not fixed here.
-- Unconfirmed: PKCE for web apps (off, as other clients do); a revoke endpoint (none set).
return {
  id = "linkedin",
  title = "LinkedIn",
  authorize_url = "https://www.linkedin.com/oauth/v2/authorization",
  scopes = { "openid", "profile", "email" },
  pkce = false,
  token_url = "https://www.linkedin.com/oauth/v2/accessToken",
  client_auth = "body",
  test = "/v2/userinfo",
  name = "{{name}} ({{email}})",
  unique_id = "{{sub}}",
  allowed_urls = { "https://api.linkedin.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
