-- Dropbox. https://developers.dropbox.com/oauth-guide
-- A refresh token only with token_access_type=offline. The test API is an RPC-style
-- POST whose body is the JSON `null`. Dropbox's token revoke is a bearer-authenticated
-- RPC call, not RFC 7009, so there is no revoke_url.
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
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
