-- Asana. https://developers.asana.com/docs/oauth
-- API answers wrap their values in `data`.
return {
  id = "asana",
  title = "Asana",
  authorize_url = "https://app.asana.com/-/oauth_authorize",
  scopes = { "users:read" },
  pkce = true,
  token_url = "https://app.asana.com/-/oauth_token",
  client_auth = "body",
  revoke_url = "https://app.asana.com/-/oauth_revoke",
  test = "/users/me",
  name = "{{data.name}}",
  unique_id = "{{data.gid}}",
  allowed_urls = { "https://app.asana.com/api/1.0" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
