-- Xero. https://developer.xero.com/documentation/guides/oauth2/auth-flow
-- Quirk: API calls name the organisation in a xero-tenant-id header, and the tenant is
-- only known after the sign-in: hooks.lookup reads GET /connections with the new token
-- and keeps the first organisation. offline_access gives refresh tokens, which rotate.
return {
  id = "xero",
  title = "Xero",
  authorize_url = "https://login.xero.com/identity/connect/authorize",
  scopes = { "openid", "profile", "email", "accounting.settings.read", "offline_access" },
  pkce = true,
  token_url = "https://identity.xero.com/connect/token",
  client_auth = "basic",
  revoke_url = "https://identity.xero.com/connect/revocation",
  values = { "tenant_id", "tenant_name" },
  test = "/api.xro/2.0/Organisation",
  name = "{{values.tenant_name}}",
  unique_id = "{{values.tenant_id}}",
  allowed_urls = { "https://api.xero.com" },
  request = {
    headers = { Authorization = "Bearer {{access_token}}", ["xero-tenant-id"] = "{{tenant_id}}",
      Accept = "application/json" },
  },
  hooks = {
    lookup = function(api)
      local r = api.get("/connections")
      if r.status ~= 200 or type(r.json) ~= "table" then return nil, "GET /connections answered " .. r.status end
      for _, t in ipairs(r.json) do
        if t.tenantType == "ORGANISATION" then return { tenant_id = t.tenantId, tenant_name = t.tenantName } end
      end
      return nil, "the sign-in granted no organisation"
    end,
  },
}
