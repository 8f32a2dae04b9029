-- Reddit. https://github.com/reddit-archive/reddit/wiki/OAuth2
-- duration=permanent asks for a refresh token; HTTP Basic client authentication; the API
-- lives on oauth.reddit.com and refuses requests without a descriptive User-Agent
-- ("<platform>:<app id>:<version> (by /u/<username>)"), a field here, sent to the token
-- endpoint too (token_headers).
return {
  id = "reddit",
  title = "Reddit",
  fields = {
    { key = "user_agent", label = "User-Agent", description = "platform:app-id:version (by /u/username)",
      default = "linux:connrt:" .. connrt.version .. " (by /u/connrt)" },
  },
  authorize_url = "https://www.reddit.com/api/v1/authorize",
  scopes = { "identity", "read" },
  authorize_params = { duration = "permanent" },
  pkce = false,
  token_url = "https://www.reddit.com/api/v1/access_token",
  client_auth = "basic",
  token_headers = { ["User-Agent"] = "{{user_agent}}" },
  revoke_url = "https://www.reddit.com/api/v1/revoke_token",
  test = "/api/v1/me",
  name = "u/{{name}}",
  unique_id = "{{id}}",
  allowed_urls = { "https://oauth.reddit.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}", ["User-Agent"] = "{{user_agent}}" } },
}
