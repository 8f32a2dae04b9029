-- Facebook Login and the Graph API. https://developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow
-- There is no refresh token: the user token is exchanged for a long-lived one (about 60
-- days, grant_type=fb_exchange_token, through exchange_request) and the connection is
-- connected again when that ends. Scopes are comma-separated.
return {
  id = "facebook",
  title = "Facebook",
  authorize_url = "https://www.facebook.com/v22.0/dialog/oauth",
  scopes = { "public_profile", "email" },
  scope_separator = ",",
  pkce = false,
  token_url = "https://graph.facebook.com/v22.0/oauth/access_token",
  client_auth = "body",
  test = "/me?fields=id,name",
  name = "{{name}}",
  unique_id = "{{id}}",
  allowed_urls = { "https://graph.facebook.com/v22.0" },
  -- the code buys a short-lived user token (an hour or two): exchange it at once for a
  -- long-lived one (about 60 days), which is what the connection keeps
  exchange_request = {
    method = "POST",
    url = "https://graph.facebook.com/v22.0/oauth/access_token",
    form = { grant_type = "fb_exchange_token", client_id = "{{client_id}}", client_secret = "{{client_secret}}",
      fb_exchange_token = "{{access_token}}" },
  },
  -- revoking removes the app's permissions: DELETE /me/permissions with the token
  revoke_request = {
    method = "DELETE",
    url = "https://graph.facebook.com/v22.0/me/permissions",
    headers = { Authorization = "Bearer {{access_token}}" },
  },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
