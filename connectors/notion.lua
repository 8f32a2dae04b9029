-- Notion (public integration). https://developers.notion.com/docs/authorization
-- Quirks: the token request is HTTP Basic with a JSON body; every API call needs a
-- Notion-Version header; the token response names the workspace (workspace_id,
-- workspace_name, bot_id), which is what the connection is named after.
return {
  id = "notion",
  title = "Notion",
  authorize_url = "https://api.notion.com/v1/oauth/authorize",
  authorize_params = { owner = "user" },
  pkce = false,
  token_url = "https://api.notion.com/v1/oauth/token",
  client_auth = "basic",
  token_request_format = "json",
  values = { "workspace_id", "workspace_name", "bot_id" }, -- from the token response
  test = "/users/me",
  name = "{{values.workspace_name}}",
  unique_id = "{{values.workspace_id}}",
  allowed_urls = { "https://api.notion.com/v1" },
  request = {
    headers = { Authorization = "Bearer {{access_token}}", ["Notion-Version"] = "2022-06-28" },
  },
}
