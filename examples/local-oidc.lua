-- A connector for the local OpenID Connect server that the specs and `make demo` run
-- (oidc-provider, see spec/support/oidc-server.mjs). It uses every step of the format;
-- docs/connectors.md explains each key.
return {
  id = "local-oidc",
  title = "Local OIDC",

  -- 1. fields the user fills in (here: where the server runs)
  fields = {
    { key = "server", label = "Server URL", required = true, default = "http://127.0.0.1:9400",
      pattern = "https?://[%w.-]+:?%d*" },
  },

  -- RFC 9207: the callback's `iss` must be this
  issuer = "{{server}}",

  -- 4. login
  authorize_url = "{{server}}/auth",
  scopes = { "openid", "email", "profile", "offline_access" },
  authorize_params = { prompt = "consent" },
  pkce = true,

  -- 5. token (6. refresh uses the same URL)
  token_url = "{{server}}/token",
  client_auth = "basic",

  -- 7. revoke
  revoke_url = "{{server}}/token/revocation",

  -- 8. test API: the userinfo endpoint, relative to the first allowed URL
  test = "/me",

  -- 9. connection name, 11. unique identifier: from the test API's answer
  name = "{{name}}'s Account",
  unique_id = "{{email}}",

  -- 10. where the connection may send its credentials
  allowed_urls = { "{{server}}/" },

  -- 12. what every request carries
  request = {
    headers = { Authorization = "Bearer {{access_token}}" },
  },
}
