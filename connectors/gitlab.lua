-- GitLab, gitlab.com or a self-hosted instance. https://docs.gitlab.com/api/oauth2/
-- The base URL is a field (default https://gitlab.com), so one connector serves every
-- instance; the runtime checks it is an absolute URL without path tricks.
return {
  id = "gitlab",
  title = "GitLab",
  fields = {
    { key = "base_url", label = "GitLab URL", description = "https://gitlab.com or your instance's address",
      default = "https://gitlab.com", pattern = "https://[%w.-]+%.[%a]+[:%d]*" },
  },
  authorize_url = "{{base_url}}/oauth/authorize",
  scopes = { "read_user", "api" },
  pkce = true,
  token_url = "{{base_url}}/oauth/token",
  client_auth = "body",
  revoke_url = "{{base_url}}/oauth/revoke",
  test = "/user",
  name = "{{username}}'s GitLab",
  unique_id = "{{id}}",
  -- the whole instance for git over https (connrt git-credential): repositories live
  -- at {{base_url}}/GROUP/PROJECT.git; OAuth tokens go to git with the username oauth2
  allowed_urls = { "{{base_url}}/api/v4", "{{base_url}}/" },
  git_username = "oauth2",
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
