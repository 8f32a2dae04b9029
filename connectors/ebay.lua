-- eBay (REST APIs, user access tokens). https://developer.ebay.com/api-docs/static/oauth-consent-request.html
-- https://developer.ebay.com/api-docs/static/oauth-auth-code-grant-request.html
-- https://developer.ebay.com/api-docs/static/oauth-refresh-token-request.html
-- https://developer.ebay.com/api-docs/static/oauth-redirect-uri.html (the RuName)
-- https://developer.ebay.com/api-docs/commerce/identity/resources/user/methods/getUser (page not read)
-- https://developer.ebay.com/api-docs/sell/inventory/resources/inventory_item/methods/getInventoryItems (page not read)
-- Quirks: `redirect_uri` is not a URL but the app's RuName (eRedirect name), a name
-- registered in the developer portal that eBay maps to the "auth accepted URL" it sends
-- the browser to: register connrt's redirect URL (`connrt redirect-url`, or the https
-- CONNRT_REDIRECT_URL that reaches connrt's listener) as that URL and give the RuName as
-- a field; it is sent as redirect_uri in the consent and code exchange requests
-- (connector key `redirect_uri`). The client (App ID and Cert ID) authenticates with
-- HTTP Basic. Scopes are URLs, space-separated. The environment field picks the
-- production or sandbox hosts (auth., api. and apiz.). A refresh answers with a new
-- access token only: the refresh token (about 18 months) is kept. The token type is
-- "User Access Token"; API calls still send it as Bearer. API errors come as
-- {"errors": [{"errorId", "domain", "message", ...}]}.
-- Unconfirmed: a revocation endpoint (none is documented: revoking deletes the connection
-- locally; the user ends the grant in eBay's account settings); the identity API's
-- field names beyond username and userId.
return {
  id = "ebay",
  title = "eBay",
  fields = {
    { key = "runame", label = "RuName", description = "the app's RuName (eBay Redirect URL name) from the developer portal",
      required = true, pattern = "[%w_][%w_-]*" },
    { key = "environment", label = "Environment", description = "ebay (production) or sandbox.ebay (sandbox)",
      default = "ebay", choices = { "ebay", "sandbox.ebay" } },
  },
  authorize_url = "https://auth.{{environment}}.com/oauth2/authorize",
  redirect_uri = "{{runame}}",
  scopes = {
    "https://api.ebay.com/oauth/api_scope",
    "https://api.ebay.com/oauth/api_scope/commerce.identity.readonly",
    "https://api.ebay.com/oauth/api_scope/sell.inventory.readonly",
  },
  pkce = false,
  token_url = "https://api.{{environment}}.com/identity/v1/oauth2/token",
  client_auth = "basic",
  test = "https://apiz.{{environment}}.com/commerce/identity/v1/user/",
  name = "{{username}} on eBay",
  unique_id = "{{userId}}",
  allowed_urls = { "https://api.{{environment}}.com", "https://apiz.{{environment}}.com/commerce/identity/v1" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
