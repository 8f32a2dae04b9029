-- Vercel: an access token. https://vercel.com/docs/rest-api/authentication/create-an-auth-token
-- https://vercel.com/docs/rest-api/user/get-the-user (GET /v2/user)
-- The token goes as `Authorization: Bearer`. Team resources need ?teamId= (or ?slug=)
-- on each call: add it to the request (`connrt request vercel '/v9/projects?teamId=...'`).
-- Tokens may carry an expiry chosen at creation; revoke them in the dashboard.
-- Unconfirmed: the fields of GET /v2/user beyond id, username and email.
return {
  id = "vercel",
  title = "Vercel",
  auth = "fields",
  fields = {
    { key = "token", label = "Access token", description = "Account Settings > Tokens", required = true, secret = true },
  },
  test = "/v2/user",
  name = "{{user.username}} ({{user.email}})",
  unique_id = "{{user.id}}",
  allowed_urls = { "https://api.vercel.com" },
  request = { headers = { Authorization = "Bearer {{token}}" } },
}
