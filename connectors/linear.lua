-- Linear. https://linear.app/developers/oauth-2-0-authentication
-- The API is GraphQL: the test API is a POST of { viewer { id name email } }.
return {
  id = "linear",
  title = "Linear",
  authorize_url = "https://linear.app/oauth/authorize",
  scopes = { "read" },
  scope_separator = ",",
  pkce = true,
  token_url = "https://api.linear.app/oauth/token",
  client_auth = "body",
  revoke_url = "https://api.linear.app/oauth/revoke",
  test = { method = "POST", url = "/graphql", json = { query = "{ viewer { id name email } }" } },
  name = "{{data.viewer.name}}",
  unique_id = "{{data.viewer.id}}",
  allowed_urls = { "https://api.linear.app" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
