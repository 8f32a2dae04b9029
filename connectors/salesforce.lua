-- Salesforce. https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm
-- Quirk: the token response carries instance_url, the org's API host, which becomes the
-- allowed URL (it must be https); it has no expires_in. refresh_token (offline access)
-- is a scope. `domain` picks production (login) or sandbox (test).
return {
  id = "salesforce",
  title = "Salesforce",
  fields = {
    { key = "domain", label = "Login domain", description = "login (production) or test (sandbox)",
      default = "login", choices = { "login", "test" } },
  },
  authorize_url = "https://{{domain}}.salesforce.com/services/oauth2/authorize",
  scopes = { "api", "refresh_token" },
  pkce = true,
  token_url = "https://{{domain}}.salesforce.com/services/oauth2/token",
  client_auth = "body",
  revoke_url = "https://{{domain}}.salesforce.com/services/oauth2/revoke",
  values = { "instance_url" },
  test = "/services/oauth2/userinfo",
  name = "{{name}} ({{preferred_username}})",
  unique_id = "{{organization_id}}/{{user_id}}",
  allowed_urls = { "{{instance_url}}" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
