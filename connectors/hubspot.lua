-- HubSpot. https://developers.hubspot.com/docs/api/oauth-quickstart-guide
-- Access tokens are short-lived (30 minutes); client credentials go in the form body.
-- The test API is the token's own metadata (hub_id, user).
return {
  id = "hubspot",
  title = "HubSpot",
  authorize_url = "https://app.hubspot.com/oauth/authorize",
  scopes = { "oauth", "crm.objects.contacts.read" },
  pkce = false,
  token_url = "https://api.hubapi.com/oauth/v1/token",
  client_auth = "body",
  test = "/oauth/v1/access-tokens/{{access_token}}",
  name = "{{user}} at {{hub_domain}}",
  unique_id = "{{hub_id}}-{{user_id}}",
  allowed_urls = { "https://api.hubapi.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
