-- Airtable. https://airtable.com/developers/web/api/oauth-reference
-- PKCE is required; HTTP Basic client authentication for confidential clients.
return {
  id = "airtable",
  title = "Airtable",
  authorize_url = "https://airtable.com/oauth2/v1/authorize",
  scopes = { "data.records:read", "schema.bases:read", "user.email:read" },
  pkce = true,
  token_url = "https://airtable.com/oauth2/v1/token",
  client_auth = "basic",
  test = "/meta/whoami",
  name = "{{email}}",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.airtable.com/v0" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
