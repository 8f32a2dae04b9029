-- HubSpot. https://developers.hubspot.com/docs/api/oauth-quickstart-guide
-- https://developers.hubspot.com/docs/api-reference/auth-oauth-v3/guide
-- https://developers.hubspot.com/docs/api-reference/auth-oauth-v3/public-token/post-oauth-v3-token-introspect
-- Access tokens are short-lived (30 minutes); client credentials go in the form body.
-- The test API is the token's own metadata (hub_id, user_id, user, hub_domain) from the
-- v3 introspection endpoint, which takes the token and the client's credentials in a
-- form body: the v1 metadata call (GET /oauth/v1/access-tokens/{token}) puts the token in
-- the URL, which connrt never does (and HubSpot retires v1 in February 2027).
return {
  id = "hubspot",
  title = "HubSpot",
  authorize_url = "https://app.hubspot.com/oauth/authorize",
  scopes = { "oauth", "crm.objects.contacts.read" },
  pkce = false,
  token_url = "https://api.hubapi.com/oauth/v1/token",
  client_auth = "body",
  test = { method = "POST", url = "/oauth/v3/token/introspect",
    form = { client_id = "{{client_id}}", client_secret = "{{client_secret}}", token = "{{access_token}}",
      token_type_hint = "access_token" } },
  name = "{{user}} at {{hub_domain}}",
  unique_id = "{{hub_id}}-{{user_id}}",
  allowed_urls = { "https://api.hubapi.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
