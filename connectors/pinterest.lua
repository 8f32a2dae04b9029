-- Pinterest API v5. https://developers.pinterest.com/docs/getting-started/set-up-authentication-and-authorization/
-- Token and user account shapes: the first-party client pinterest/pinterest-python-generated-api-client
-- (docs/OauthApi.md, docs/UserAccountApi.md).
-- HTTP Basic client authentication (app id and secret); scopes are comma-separated.
-- Access tokens last about 30 days and refresh tokens about a year (expires_in and
-- refresh_token_expires_in say). v4 is retired: v5 only.
-- Unconfirmed: PKCE (not documented: off); a revocation endpoint (none known); whether
-- GET /user_account always carries `id` (the account is known by its username, which
-- every source shows).
return {
  id = "pinterest",
  title = "Pinterest",
  authorize_url = "https://www.pinterest.com/oauth/",
  scopes = { "user_accounts:read", "boards:read", "pins:read" },
  scope_separator = ",",
  pkce = false,
  token_url = "https://api.pinterest.com/v5/oauth/token",
  client_auth = "basic",
  test = "/user_account",
  name = "{{username}} on Pinterest",
  unique_id = "{{username}}",
  allowed_urls = { "https://api.pinterest.com/v5" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
