-- ClickUp API v2. https://developer.clickup.com/docs/authentication
-- https://developer.clickup.com/reference/getaccesstoken
-- https://developer.clickup.com/reference/getauthorizeduser
-- Quirks: the authorize page is https://app.clickup.com/api and takes no scope (the user
-- picks the Workspaces to authorize); the token response is only an access_token, which
-- does not expire; there is no refresh token and no revocation (the user removes the
-- app). Errors come as {"err": "...", "ECODE": "..."}, read by hooks.token_response.
-- ClickUp's reference lists the token request's client_id, client_secret and code as
-- query parameters; connrt sends them in the form body (secrets never go in URLs), as
-- other OAuth clients of ClickUp do (n8n, 2nd).
-- Unconfirmed: that OAuth tokens go as `Authorization: Bearer` (personal tokens go raw;
-- ClickUp's page says only "the Authorization header"); the ECODE values; PKCE (off).
return {
  id = "clickup",
  title = "ClickUp",
  authorize_url = "https://app.clickup.com/api",
  pkce = false,
  token_url = "https://api.clickup.com/api/v2/oauth/token",
  client_auth = "body",
  test = "/user",
  name = "{{user.username}} ({{user.email}})",
  unique_id = "{{user.id}}",
  allowed_urls = { "https://api.clickup.com/api/v2" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
  hooks = {
    token_response = function(raw)
      local doc = connrt.json.decode(raw.body)
      if type(doc) ~= "table" then return nil, "the token endpoint did not answer JSON (HTTP " .. raw.status .. ")" end
      if raw.status ~= 200 or doc.err then
        return nil, tostring(doc.ECODE or "no ECODE") .. ": " .. tostring(doc.err or "no err")
      end
      return doc
    end,
  },
}
