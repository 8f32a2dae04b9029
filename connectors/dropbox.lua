-- Dropbox. https://developers.dropbox.com/oauth-guide
-- A refresh token only with token_access_type=offline. The test API is an RPC-style
-- POST whose body is the JSON `null`. Dropbox's token revoke is a bearer-authenticated
-- RPC call (POST /2/auth/token/revoke), not RFC 7009: a revoke_request.
return {
  id = "dropbox",
  title = "Dropbox",
  authorize_url = "https://www.dropbox.com/oauth2/authorize",
  scopes = { "account_info.read" },
  authorize_params = { token_access_type = "offline" },
  pkce = true,
  token_url = "https://api.dropboxapi.com/oauth2/token",
  client_auth = "body",
  test = { method = "POST", url = "/users/get_current_account", body = "null",
    headers = { ["Content-Type"] = "application/json" } },
  name = "{{name.display_name}}",
  unique_id = "{{account_id}}",
  allowed_urls = { "https://api.dropboxapi.com/2", "https://content.dropboxapi.com/2" },
  revoke_request = {
    method = "POST",
    url = "https://api.dropboxapi.com/2/auth/token/revoke",
    headers = { Authorization = "Bearer {{access_token}}" },
  },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
