-- X (Twitter) API v2, OAuth 2.0 with PKCE. https://docs.x.com/resources/fundamentals/authentication/oauth-2-0/authorization-code
-- PKCE is required; confidential clients authenticate with HTTP Basic; offline.access
-- gives a refresh token. API answers wrap their values in `data`.
return {
  id = "twitter",
  title = "X (Twitter)",
  authorize_url = "https://x.com/i/oauth2/authorize",
  scopes = { "tweet.read", "users.read", "offline.access" },
  pkce = true,
  token_url = "https://api.x.com/2/oauth2/token",
  client_auth = "basic",
  revoke_url = "https://api.x.com/2/oauth2/revoke",
  test = "/users/me",
  name = "@{{data.username}}",
  unique_id = "{{data.id}}",
  allowed_urls = { "https://api.x.com/2" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
