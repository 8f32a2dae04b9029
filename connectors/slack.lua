-- Slack (user token). https://api.slack.com/authentication/oauth-v2
-- Quirks: user scopes go in `user_scope` (comma-separated); the user token is nested
-- under `authed_user`; errors come as HTTP 200 with {"ok": false, "error": "..."}, from
-- the token endpoint and from the API alike. No PKCE: Slack offers it only once an app
-- is switched, for good, to a public client. With token rotation on, responses
-- carry expires_in and a refresh_token.
local function token_response(raw)
  local doc = connrt.json.decode(raw.body)
  if type(doc) ~= "table" then return nil, "the token endpoint did not answer JSON (HTTP " .. raw.status .. ")" end
  if doc.ok ~= true then return nil, type(doc.error) == "string" and doc.error or "ok is not true" end
  local user = doc.authed_user
  if type(user) ~= "table" then
    -- a refresh (token rotation) answers at the top level
    if doc.access_token then return doc end
    return nil, "the response has no authed_user (was user_scope asked for?)"
  end
  local team = type(doc.team) == "table" and doc.team or {}
  return {
    access_token = user.access_token, refresh_token = user.refresh_token, expires_in = user.expires_in,
    token_type = user.token_type, scope = user.scope,
    values = { user_id = user.id, team_id = team.id, team_name = team.name, app_id = doc.app_id },
  }
end

return {
  id = "slack",
  title = "Slack",
  authorize_url = "https://slack.com/oauth/v2/authorize",
  scope_separator = ",",
  authorize_params = { user_scope = "users:read,chat:write" },
  pkce = false,
  token_url = "https://slack.com/api/oauth.v2.access",
  client_auth = "basic", -- Slack asks for HTTP Basic rather than client_secret in the body
  revoke_url = "https://slack.com/api/auth.revoke",
  -- auth.test answers errors as 200 {"ok": false}: only ok = true is a working token
  test = { method = "POST", url = "/auth.test", ok = { ok = true } },
  name = "{{user}} at {{team}}",
  unique_id = "{{values.team_id}}-{{values.user_id}}",
  values = { "user_id", "team_id", "team_name", "app_id" }, -- from authed_user and team (hooks.token_response)
  allowed_urls = { "https://slack.com/api" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
  hooks = {
    token_response = token_response,
    -- Slack reports an expired token as 200 {"ok": false, "error": "token_expired"}
    expired = function(resp)
      local doc = connrt.json.decode(resp.body)
      return type(doc) == "table" and doc.ok == false and (doc.error == "token_expired" or doc.error == "invalid_auth")
    end,
  },
}
