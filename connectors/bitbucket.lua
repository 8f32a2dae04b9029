-- Bitbucket Cloud. https://developer.atlassian.com/cloud/bitbucket/oauth-2
-- Test API: https://developer.atlassian.com/cloud/bitbucket/rest/api-group-users/
-- Bitbucket's OAuth is not Atlassian 3LO: no audience, no offline_access, no cloud id.
-- There is no scope parameter: the permissions ticked on the OAuth consumer (in a
-- workspace's settings) are the token's scopes, and `account` is what GET /user needs.
-- HTTP Basic client authentication; the code grant always brings a refresh token, and
-- the access token lasts a couple of hours (expires_in says how long). Usernames change,
-- so the account is known by its uuid.
-- Unconfirmed: PKCE (not documented, so off); whether refresh tokens rotate (the new one
-- is kept either way); revocation (none documented, so no revoke key).
return {
  id = "bitbucket",
  title = "Bitbucket",
  authorize_url = "https://bitbucket.org/site/oauth2/authorize",
  pkce = false,
  token_url = "https://bitbucket.org/site/oauth2/access_token",
  client_auth = "basic",
  test = "/user",
  name = "{{display_name}}'s Bitbucket",
  unique_id = "{{uuid}}",
  -- bitbucket.org for git over https (connrt git-credential), as x-token-auth
  allowed_urls = { "https://api.bitbucket.org/2.0", "https://bitbucket.org/" },
  git_username = "x-token-auth",
  request = { headers = { Authorization = "Bearer {{access_token}}", Accept = "application/json" } },
}
