-- Intercom. https://developers.intercom.com/docs/build-an-integration/learn-more/authentication/setting-up-oauth
-- The workspace's region picks the API host (a field); tokens do not expire. The token
-- response carries the access token twice, as `access_token` and as `token`: the copy is
-- a secret like the original, so this connector declares no `values` and connrt keeps
-- nothing of the response in clear.
return {
  id = "intercom",
  title = "Intercom",
  fields = {
    { key = "api_host", label = "Region's API host", default = "api.intercom.io",
      choices = { "api.intercom.io", "api.eu.intercom.io", "api.au.intercom.io" } },
  },
  authorize_url = "https://app.intercom.com/oauth",
  pkce = false,
  token_url = "https://{{api_host}}/auth/eagle/token",
  client_auth = "body",
  test = "/me",
  name = "{{name}} at {{app.name}}",
  unique_id = "{{app.id_code}}/{{id}}",
  allowed_urls = { "https://{{api_host}}" },
  request = {
    headers = { Authorization = "Bearer {{access_token}}", Accept = "application/json", ["Intercom-Version"] = "2.11" },
  },
}
