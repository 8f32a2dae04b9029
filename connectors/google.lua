-- Google. https://developers.google.com/identity/protocols/oauth2/web-server
-- A refresh token is issued only with access_type=offline, and again on a later sign-in
-- only with prompt=consent. PKCE is supported.
return {
  id = "google",
  title = "Google",
  issuer = "https://accounts.google.com",
  authorize_url = "https://accounts.google.com/o/oauth2/v2/auth",
  scopes = { "openid", "email", "profile" },
  authorize_params = { access_type = "offline", prompt = "consent", include_granted_scopes = "true" },
  pkce = true,
  token_url = "https://oauth2.googleapis.com/token",
  client_auth = "body",
  revoke_url = "https://oauth2.googleapis.com/revoke",
  test = "/userinfo",
  name = "{{name}} ({{email}})",
  unique_id = "{{sub}}",
  allowed_urls = { "https://openidconnect.googleapis.com/v1", "https://www.googleapis.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
