-- Discord. https://discord.com/developers/docs/topics/oauth2
-- Rate limits answer 429 with Retry-After (connrt request --retries honours it).
return {
  id = "discord",
  title = "Discord",
  authorize_url = "https://discord.com/oauth2/authorize",
  scopes = { "identify", "email" },
  pkce = false,
  token_url = "https://discord.com/api/oauth2/token",
  client_auth = "basic",
  revoke_url = "https://discord.com/api/oauth2/token/revoke",
  test = "/users/@me",
  name = "{{username}}",
  unique_id = "{{id}}",
  allowed_urls = { "https://discord.com/api" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
