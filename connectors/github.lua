-- GitHub (OAuth app). https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
-- The token endpoint answers form-encoded unless asked for JSON (connrt always sends
-- Accept: application/json) and reports errors as HTTP 200 with `error=...`, which the
-- runtime's token parser turns into a provider error. Classic OAuth app tokens do not
-- expire and come without a refresh token.
return {
  id = "github",
  title = "GitHub",
  authorize_url = "https://github.com/login/oauth/authorize",
  scopes = { "read:user", "user:email" },
  token_url = "https://github.com/login/oauth/access_token",
  client_auth = "body",
  test = "/user",
  name = "{{login}}'s GitHub",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.github.com" },
  request = {
    headers = {
      Authorization = "Bearer {{access_token}}",
      Accept = "application/vnd.github+json",
      ["X-GitHub-Api-Version"] = "2022-11-28",
    },
  },
}
