-- Cloudflare: a user API token. https://developers.cloudflare.com/fundamentals/api/get-started/create-token/
-- https://developers.cloudflare.com/api/resources/user/subresources/tokens/methods/verify/
-- https://developers.cloudflare.com/fundamentals/api/troubleshooting/
-- The token goes as `Authorization: Bearer` (the legacy global key's X-Auth-Email and
-- X-Auth-Key are a different scheme, not mixed in). Every answer is wrapped in
-- {success, errors, messages, result}. Verifying a token names the token, not a person:
-- the connection is known by the token's id. Account-owned tokens verify at
-- /accounts/{account_id}/tokens/verify instead, which needs a copy with an account field.
-- Tokens can carry not_before and expires_on; revoke them in the dashboard.
-- Unconfirmed: the status of an invalid token's answer (the stand-in answers 401).
return {
  id = "cloudflare",
  title = "Cloudflare",
  auth = "fields",
  fields = {
    { key = "token", label = "API token", description = "My Profile > API Tokens", required = true, secret = true },
  },
  test = "/user/tokens/verify",
  name = "Cloudflare token {{result.id}} ({{result.status}})",
  unique_id = "{{result.id}}",
  allowed_urls = { "https://api.cloudflare.com/client/v4" },
  request = { headers = { Authorization = "Bearer {{token}}" } },
}
