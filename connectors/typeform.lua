-- Typeform. https://www.typeform.com/developers/get-started/applications/
-- https://www.typeform.com/developers/get-started/scopes/
-- Test API: GET /me (Typeform's Create API reference, "Retrieve your own account"; page not read).
-- Quirks: `offline` among the scopes gives a refresh token; accounts in the EU data
-- centre have their own authorization server and OAuth clients at api.typeform.eu (a
-- field). client_id and client_secret in the form body.
-- Unconfirmed: PKCE (off); the 7-day access token lifetime (expires_in says); the fields
-- of GET /me beyond alias and email (the account is known by its email); a revoke
-- endpoint (none documented).
return {
  id = "typeform",
  title = "Typeform",
  fields = {
    { key = "api_host", label = "Data centre", description = "api.typeform.com, or api.typeform.eu for EU accounts",
      default = "api.typeform.com", choices = { "api.typeform.com", "api.typeform.eu" } },
  },
  authorize_url = "https://{{api_host}}/oauth/authorize",
  scopes = { "accounts:read", "forms:read", "responses:read", "offline" },
  pkce = false,
  token_url = "https://{{api_host}}/oauth/token",
  client_auth = "body",
  test = "/me",
  name = "{{alias}} ({{email}})",
  unique_id = "{{email}}",
  allowed_urls = { "https://{{api_host}}" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
