-- Zoom. https://developers.zoom.us/docs/integrations/oauth/
-- HTTP Basic client authentication; scopes are set on the app, not asked for.
return {
  id = "zoom",
  title = "Zoom",
  authorize_url = "https://zoom.us/oauth/authorize",
  pkce = true,
  token_url = "https://zoom.us/oauth/token",
  client_auth = "basic",
  revoke_url = "https://zoom.us/oauth/revoke",
  test = "/users/me",
  name = "{{first_name}} {{last_name}}",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.zoom.us/v2" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
