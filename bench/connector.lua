-- The benchmarks' connector: the local authorization server for sign-in and tokens,
-- nginx on loopback as the upstream API.
return {
  id = "bench",
  title = "Benchmark",
  fields = {
    { key = "server", required = true },
    { key = "api", required = true },
  },
  issuer = "{{server}}",
  authorize_url = "{{server}}/auth",
  scopes = { "openid", "email", "profile", "offline_access" },
  authorize_params = { prompt = "consent" },
  token_url = "{{server}}/token",
  test = "/me",
  name = "{{name}}'s Account",
  unique_id = "{{email}}",
  allowed_urls = { "{{server}}/", "{{api}}/" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
