-- Figma. https://www.figma.com/developers/api#oauth2
-- Quirk: refreshing goes to a separate URL (/v1/oauth/refresh), whose answer has no new
-- refresh token (the old one is kept). HTTP Basic client authentication.
return {
  id = "figma",
  title = "Figma",
  authorize_url = "https://www.figma.com/oauth",
  scopes = { "current_user:read", "file_content:read" },
  pkce = false,
  token_url = "https://api.figma.com/v1/oauth/token",
  refresh_url = "https://api.figma.com/v1/oauth/refresh",
  client_auth = "basic",
  test = "/me",
  name = "{{handle}}",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.figma.com/v1" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
