-- ServiceNow (an instance's inbound OAuth).
-- https://www.servicenow.com/docs/r/zurich/platform-security/authentication/t_ManageTokens.html
-- https://www.servicenow.com/docs/bundle/yokohama-security-management/page/product/secops-integration-sir/
--   secops-integration-splunk-addon/task/configure-application-registry-splunk.html (registering an app)
-- https://developer.servicenow.com/dev.do#!/reference/api/latest/rest/c_TableAPI
-- Quirks: every customer runs their own instance (usually NAME.service-now.com, but
-- custom domains exist), asked for whole; the instance's admin registers the app
-- (System OAuth > Application Registry > "Create an OAuth API endpoint for external
-- clients") and gives you its client id and secret. Defaults: access tokens 30 minutes,
-- refresh tokens 100 days, both set per registry entry. Client id and secret in the
-- body. The test API reads the signed-in user's own sys_user record.
-- Unconfirmed: PKCE (off); scopes (none asked for); the token endpoint's error body (the
-- stand-in answers RFC 6749's); the revocation endpoint (/oauth_revoke_token.do, not set).
return {
  id = "servicenow",
  title = "ServiceNow",
  fields = {
    { key = "instance", label = "Instance host", description = "e.g. dev12345.service-now.com",
      required = true, pattern = "[%w][%w-]*%.[%w.-]*[%w]" },
  },
  authorize_url = "https://{{instance}}/oauth_auth.do",
  pkce = false,
  token_url = "https://{{instance}}/oauth_token.do",
  client_auth = "body",
  test = { url = "/table/sys_user",
    query = { sysparm_query = "sys_id=javascript:gs.getUserID()", sysparm_limit = "1",
      sysparm_fields = "sys_id,name,user_name,email" } },
  name = "{{result.0.name}} at {{fields.instance}}",
  unique_id = "{{fields.instance}}/{{result.0.sys_id}}",
  allowed_urls = { "https://{{instance}}/api/now" },
  request = { headers = { Authorization = "Bearer {{access_token}}", Accept = "application/json" } },
}
