-- FreshBooks. https://www.freshbooks.com/developers/authentication
-- https://www.freshbooks.com/api/get-authenticated-on-the-freshbooks-api
-- Quirks: the token request is a JSON body with the client's id and secret, as
-- FreshBooks' examples send it; access tokens last 12 hours; refresh tokens never
-- expire but are single-use (each refresh returns a new one, which is kept). Scopes are
-- chosen on the app. The token names no account: /users/me lists the business
-- memberships, each with the account id the accounting endpoints
-- (/accounting/account/{account_id}/...) need. FreshBooks takes only https redirect URIs
-- without a query: register a public https redirect and run connrt behind it
-- (CONNRT_REDIRECT_URL and CONNRT_LISTEN).
-- Unconfirmed: PKCE (off); the revocation endpoint (/auth/oauth/revoke, 2nd; not set).
return {
  id = "freshbooks",
  title = "FreshBooks",
  authorize_url = "https://auth.freshbooks.com/oauth/authorize/",
  pkce = false,
  token_url = "https://api.freshbooks.com/auth/oauth/token",
  client_auth = "body",
  token_request_format = "json",
  test = "/auth/api/v1/users/me",
  name = "{{response.first_name}} {{response.last_name}} ({{response.email}})",
  unique_id = "{{response.id}}",
  allowed_urls = { "https://api.freshbooks.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
