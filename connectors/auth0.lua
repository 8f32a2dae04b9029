-- Auth0 (a tenant's own users). https://auth0.com/docs/get-started/authentication-and-authorization-flow/authorization-code-flow
-- https://auth0.com/docs/secure/tokens/refresh-tokens
-- https://auth0.com/docs/secure/tokens/refresh-tokens/revoke-refresh-tokens
-- https://auth0.com/docs/api/authentication#user-profile (GET /userinfo)
-- Quirks: the host is the tenant's domain ({tenant}.{region}.auth0.com, or a custom
-- domain), asked for whole. offline_access gives a refresh token when the API allows
-- offline access; rotation is set per application (the newest refresh token is kept).
-- Without an `audience` the access token is only good for /userinfo: pass one at
-- connect time with --param audience=... (the Management API is
-- https://DOMAIN/api/v2/, which is allowed here). Revoking posts the refresh token as
-- JSON to /oauth/revoke (it revokes refresh tokens only), not RFC 7009's form.
-- Client id and secret in the body (a regular web application's default, "Post").
-- Unconfirmed: that the token endpoint takes a form as well as JSON (a form is sent).
return {
  id = "auth0",
  title = "Auth0",
  fields = {
    { key = "domain", label = "Tenant domain", description = "e.g. example.eu.auth0.com, or your custom domain",
      required = true, pattern = "[%w][%w-]*%.[%w.-]*[%w]" },
  },
  authorize_url = "https://{{domain}}/authorize",
  scopes = { "openid", "profile", "email", "offline_access" },
  pkce = true,
  token_url = "https://{{domain}}/oauth/token",
  client_auth = "body",
  test = "https://{{domain}}/userinfo",
  name = "{{name}} ({{email}})",
  unique_id = "{{fields.domain}}/{{sub}}",
  allowed_urls = { "https://{{domain}}/userinfo", "https://{{domain}}/api/v2" },
  revoke_request = {
    method = "POST",
    url = "https://{{domain}}/oauth/revoke",
    json = { client_id = "{{client_id}}", client_secret = "{{client_secret}}", token = "{{refresh_token}}" },
  },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
