-- Calendly. https://developer.calendly.com/create-a-developer-account
-- API answers wrap the user in `resource`; its `uri` is the stable id.
return {
  id = "calendly",
  title = "Calendly",
  authorize_url = "https://auth.calendly.com/oauth/authorize",
  pkce = true,
  token_url = "https://auth.calendly.com/oauth/token",
  client_auth = "body",
  revoke_url = "https://auth.calendly.com/oauth/revoke",
  test = "/users/me",
  name = "{{resource.name}}",
  unique_id = "{{resource.uri}}",
  allowed_urls = { "https://api.calendly.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
