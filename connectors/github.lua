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
  -- github.com for git over https (connrt git-credential), with the token as the password
  allowed_urls = { "https://api.github.com", "https://github.com/" },
  git_username = "x-access-token",
  -- revoking deletes the app's grant: DELETE /applications/{client_id}/grant with the
  -- client's id and secret as HTTP Basic and the token in a JSON body (not RFC 7009)
  revoke_request = {
    method = "DELETE",
    url = "https://api.github.com/applications/{{client_id}}/grant",
    basic = { username = "{{client_id}}", password = "{{client_secret}}" },
    headers = { Accept = "application/vnd.github+json", ["X-GitHub-Api-Version"] = "2022-11-28" },
    json = { access_token = "{{access_token}}" },
  },
  request = {
    headers = {
      Authorization = "Bearer {{access_token}}",
      Accept = "application/vnd.github+json",
      ["X-GitHub-Api-Version"] = "2022-11-28",
    },
  },
}
