-- Keycloak, a self-hosted identity server. https://www.keycloak.org/securing-apps/oidc-layers
-- Nothing but the issuer is written here: the realm's metadata (OpenID Connect discovery)
-- gives the authorization, token and revocation endpoints and the userinfo endpoint,
-- which is the test API. The server's address and the realm are fields, so one connector
-- serves every instance. Create a confidential OpenID Connect client in the realm with
-- `connrt redirect-url` as its redirect URI (or, where the realm allows anonymous dynamic
-- registration, add registration = "dynamic" and give no client id).
return {
  id = "keycloak",
  title = "Keycloak",
  fields = {
    { key = "server", label = "Keycloak URL", description = "your Keycloak's address, e.g. https://sso.example.com",
      required = true, pattern = "https://[%w.-]+%.[%a]+[:%d]*" },
    { key = "realm", label = "Realm", required = true, pattern = "[%w_.-]+" },
  },
  -- the issuer: its metadata fills authorize_url, token_url, revoke_url, issuer and test
  discovery = "{{server}}/realms/{{realm}}",
  scopes = { "openid", "profile", "email" },
  client_auth = "basic",
  name = "{{preferred_username}} at {{fields.realm}}",
  unique_id = "{{fields.realm}}/{{sub}}",
  -- the realm's endpoints (userinfo) and its admin API
  allowed_urls = { "{{server}}/realms/{{realm}}/", "{{server}}/admin/realms/{{realm}}/" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
