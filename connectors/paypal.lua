-- PayPal: Log in with PayPal. https://developer.paypal.com/docs/log-in-with-paypal/integrate
-- https://developer.paypal.com/log-in/build ; https://developer.paypal.com/log-in/build-button
-- https://developer.paypal.com/docs/api/identity/v1/#userinfo_get
-- Quirks: `openid` must be among the scopes; flowEntry=static on the authorize URL;
-- HTTP Basic client authentication; the token response brings a refresh token and an
-- id_token. Log in with PayPal must be enabled on the app, with its return URL and the
-- attributes to share. The environment picks the hosts: www.paypal.com and
-- api-m.paypal.com, or www.sandbox.paypal.com and api-m.sandbox.paypal.com.
-- Unconfirmed: PKCE (off); the userinfo path and fields (user_id, name, emails); a
-- revocation endpoint (none documented).
return {
  id = "paypal",
  title = "PayPal",
  fields = {
    { key = "environment", label = "Environment", description = "paypal (live) or sandbox.paypal (sandbox)",
      default = "paypal", choices = { "paypal", "sandbox.paypal" } },
  },
  authorize_url = "https://www.{{environment}}.com/signin/authorize",
  scopes = { "openid", "profile", "email" },
  authorize_params = { flowEntry = "static" },
  pkce = false,
  token_url = "https://api-m.{{environment}}.com/v1/oauth2/token",
  client_auth = "basic",
  test = { url = "/identity/oauth2/userinfo", query = { schema = "paypalv1.1" } },
  name = "{{name}}",
  unique_id = "{{user_id}}",
  allowed_urls = { "https://api-m.{{environment}}.com/v1" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
