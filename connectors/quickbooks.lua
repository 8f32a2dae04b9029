-- QuickBooks Online (Intuit). https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0
-- Quirk: the company id (realmId) arrives only in the callback query; hooks.callback
-- keeps it as realm_id for the API paths. The API host is production or sandbox. HTTP
-- Basic client authentication; refresh tokens rotate.
return {
  id = "quickbooks",
  title = "QuickBooks Online",
  fields = {
    { key = "api_host", label = "API host", default = "quickbooks.api.intuit.com",
      choices = { "quickbooks.api.intuit.com", "sandbox-quickbooks.api.intuit.com" } },
  },
  authorize_url = "https://appcenter.intuit.com/connect/oauth2",
  scopes = { "com.intuit.quickbooks.accounting" },
  pkce = false,
  token_url = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
  client_auth = "basic",
  revoke_url = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
  values = { "realm_id" },
  test = "/{{realm_id}}/companyinfo/{{realm_id}}",
  name = "{{CompanyInfo.CompanyName}}",
  unique_id = "{{values.realm_id}}",
  allowed_urls = { "https://{{api_host}}/v3/company" },
  request = { headers = { Authorization = "Bearer {{access_token}}", Accept = "application/json" } },
  hooks = {
    callback = function(query)
      if type(query.realmId) ~= "string" or not query.realmId:match("^%d+$") then
        error("the callback carries no numeric realmId")
      end
      return { realm_id = query.realmId }
    end,
  },
}
