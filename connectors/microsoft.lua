-- Microsoft identity platform (Entra ID) and Microsoft Graph.
-- https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow
-- The tenant is a field: common, organizations, consumers, a tenant id or a domain.
-- offline_access asks for a refresh token; refresh tokens rotate. No revoke endpoint.
return {
  id = "microsoft",
  title = "Microsoft",
  fields = {
    { key = "tenant", label = "Tenant", description = "common, organizations, consumers, or a tenant id or domain",
      default = "common", pattern = "[%w][%w.-]*" },
  },
  authorize_url = "https://login.microsoftonline.com/{{tenant}}/oauth2/v2.0/authorize",
  scopes = { "openid", "profile", "email", "offline_access", "User.Read" },
  authorize_params = { response_mode = "query" },
  pkce = true,
  token_url = "https://login.microsoftonline.com/{{tenant}}/oauth2/v2.0/token",
  client_auth = "body",
  test = "/me",
  name = "{{displayName}} ({{userPrincipalName}})",
  unique_id = "{{id}}",
  allowed_urls = { "https://graph.microsoft.com/v1.0" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
