-- Okta (the org authorization server). https://developer.okta.com/docs/guides/implement-grant-type/authcode/main/
-- https://developer.okta.com/docs/api/openapi/okta-oauth/oauth/orgas/revoke
-- https://developer.okta.com/docs/reference/api/oidc/#userinfo
-- https://developer.okta.com/docs/api/openapi/okta-management/management/tag/User/#tag/User/operation/getUser (GET /api/v1/users/me)
-- Quirks: every customer has their own Okta host: *.okta.com, *.oktapreview.com or a
-- custom domain, asked for whole (a field that can only be a host name). This connects
-- through the org authorization server (/oauth2/v1), whose tokens reach Okta's own APIs
-- (okta.* scopes); a custom authorization server (/oauth2/default/v1, for your own APIs)
-- needs a copy with that path. offline_access gives a refresh token when the app allows
-- the refresh grant; rotation is set per app (the newest refresh token is kept).
-- Revocation is RFC 7009 with the client's authentication.
-- Unconfirmed: client authentication (HTTP Basic, Okta's default for web apps, is used);
-- whether Okta sends `iss` on the callback (no issuer key, so none is required).
return {
  id = "okta",
  title = "Okta",
  fields = {
    { key = "domain", label = "Okta domain", description = "your org's host, e.g. dev-123456.okta.com or a custom domain",
      required = true, pattern = "[%w][%w-]*%.[%w.-]*[%w]" },
  },
  authorize_url = "https://{{domain}}/oauth2/v1/authorize",
  scopes = { "openid", "profile", "email", "offline_access", "okta.users.read.self" },
  pkce = true,
  token_url = "https://{{domain}}/oauth2/v1/token",
  client_auth = "basic",
  revoke_url = "https://{{domain}}/oauth2/v1/revoke",
  test = "https://{{domain}}/oauth2/v1/userinfo",
  name = "{{name}} ({{preferred_username}})",
  unique_id = "{{fields.domain}}/{{sub}}",
  allowed_urls = { "https://{{domain}}/api/v1", "https://{{domain}}/oauth2/v1/userinfo" },
  request = { headers = { Authorization = "Bearer {{access_token}}", Accept = "application/json" } },
}
