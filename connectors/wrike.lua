-- Wrike API v4. https://developers.wrike.com/oauth-20-authorization
-- https://developers.wrike.com/overview ; https://developers.wrike.com/faq
-- GET /contacts?me=true: Wrike's API v4 reference, Contacts (page not read)
-- Quirks: the token response names the account's data centre in `host` (www.wrike.com,
-- app-eu.wrike.com, ...), which becomes the API host: allowed URL https://{host}/api/v4.
-- hooks.token_response accepts only a host under wrike.com, so a token response cannot
-- send the credentials anywhere else. Scopes are comma-separated; with none the token
-- reads and writes workspace data. A v4 token reaches one account. Refresh tokens are
-- issued; client id and secret go in the body.
-- Unconfirmed: whether refreshes must go to {host} rather than login.wrike.com (they go
-- to login.wrike.com, the token URL); token lifetimes; PKCE (off); revocation (none).
local function token_response(raw)
  local doc = connrt.json.decode(raw.body)
  if type(doc) ~= "table" then return nil, "the token endpoint did not answer JSON (HTTP " .. raw.status .. ")" end
  if raw.status ~= 200 or doc.error then
    return nil, tostring(doc.error or "no error code") .. ": " .. tostring(doc.error_description or doc.errorDescription or ""),
      type(doc.error) == "string" and doc.error or nil
  end
  if doc.host ~= nil then
    local h = type(doc.host) == "string" and doc.host:lower() or ""
    if not (h == "wrike.com" or h:match("^[%w][%w%-%.]*%.wrike%.com$")) then
      return nil, "the token response names API host " .. tostring(doc.host) .. ", which is not a wrike.com host"
    end
  end
  return doc
end

return {
  id = "wrike",
  title = "Wrike",
  authorize_url = "https://login.wrike.com/oauth2/authorize/v4",
  scopes = { "Default", "wsReadOnly" },
  scope_separator = ",",
  pkce = false,
  token_url = "https://login.wrike.com/oauth2/token",
  client_auth = "body",
  values = { "host" },
  test = { url = "/contacts", query = { me = "true" } },
  name = "{{data.0.firstName}} {{data.0.lastName}}",
  unique_id = "{{data.0.profiles.0.accountId}}/{{data.0.id}}",
  allowed_urls = { "https://{{host}}/api/v4" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
  hooks = { token_response = token_response },
}
