-- Stripe Connect (OAuth for Standard accounts). https://docs.stripe.com/connect/oauth-reference
-- The platform's secret key is the client secret (given like any client secret, never
-- in this file); the token response names the connected account (stripe_user_id),
-- kept with the connection. Deauthorizing is not RFC 7009: POST /oauth/deauthorize with
-- the secret key as HTTP Basic user and the client and account ids in the form.
return {
  id = "stripe",
  title = "Stripe",
  authorize_url = "https://connect.stripe.com/oauth/authorize",
  scopes = { "read_write" },
  pkce = false,
  token_url = "https://connect.stripe.com/oauth/token",
  client_auth = "body",
  values = { "stripe_user_id" },
  test = "/account",
  name = "Stripe {{id}}",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.stripe.com/v1" },
  revoke_request = {
    method = "POST",
    url = "https://connect.stripe.com/oauth/deauthorize",
    basic = { username = "{{client_secret}}" },
    form = { client_id = "{{client_id}}", stripe_user_id = "{{stripe_user_id}}" },
  },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
