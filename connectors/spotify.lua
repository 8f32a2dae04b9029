-- Spotify. https://developer.spotify.com/documentation/web-api/tutorials/code-flow
-- HTTP Basic client authentication; PKCE supported. A refresh response may come without
-- a refresh token: the old one is kept.
return {
  id = "spotify",
  title = "Spotify",
  authorize_url = "https://accounts.spotify.com/authorize",
  scopes = { "user-read-email", "user-read-private" },
  pkce = true,
  token_url = "https://accounts.spotify.com/api/token",
  client_auth = "basic",
  test = "/me",
  name = "{{display_name}}",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.spotify.com/v1" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
