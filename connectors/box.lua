-- Box. https://developer.box.com/guides/authentication/oauth2/
-- Refresh tokens are single use: each refresh returns a new one (saved with the new
-- access token in one transaction).
return {
  id = "box",
  title = "Box",
  authorize_url = "https://account.box.com/api/oauth2/authorize",
  pkce = false,
  token_url = "https://api.box.com/oauth2/token",
  client_auth = "body",
  revoke_url = "https://api.box.com/oauth2/revoke",
  test = "/users/me",
  name = "{{name}} ({{login}})",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.box.com/2.0" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
