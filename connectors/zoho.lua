-- Zoho (accounts OAuth, CRM and other Zoho APIs). https://www.zoho.com/accounts/protocol/oauth/multi-dc.html
-- https://www.zoho.com/accounts/protocol/oauth/multi-dc/client-authorization.html
-- https://www.zoho.com/crm/developer/docs/api/multi-dc.html
-- https://www.bigin.com/developer/docs/apis/multi-dc.html (accounts and API domains per data centre)
-- https://zoho.com/thrive/resources/api/identify-user-location.html (access_type, prompt)
-- https://www.zoho.com/crm/developer/docs/api/v8/get-users.html (GET /crm/v8/users; page not read)
-- Quirks: Zoho runs separate data centres, each with its own accounts host
-- (accounts.zoho.com, .eu, .in, .com.au, .jp, .sa, .uk, .com.cn, accounts.zohocloud.ca)
-- that issues and refreshes that centre's tokens. The sign-in starts at
-- accounts.zoho.com (accounts.zoho.com.cn for China: give --field accounts_server=...),
-- which sends the user on to their centre; the callback names it in `accounts-server`,
-- which sets the accounts_server field (callback_fields): the code is exchanged, and
-- refreshes go, there. The field's choices are Zoho's accounts hosts, so a callback
-- naming any other host fails the connect before the code is sent. The token response
-- names the API host in `api_domain` (https://www.zohoapis.com, .eu, ...; the accounts
-- pages show https://api.zoho.eu too), which hooks.token_response accepts only from
-- Zoho's list and keeps as `api_host` for the allowed URL. API calls send
-- `Authorization: Zoho-oauthtoken TOKEN`. A refresh token comes only with
-- access_type=offline and, after the first consent, only with prompt=consent (both
-- sent); refreshes answer without one (it is kept); Zoho keeps at most 20 refresh tokens
-- per user and client, revoking the oldest silently. Multi-DC must be enabled for the
-- client in Zoho's API console (a secret per data centre is possible: connrt keeps one).
-- Scopes are comma-separated Service.scope.OPERATION names (add others with --scope).
-- Token errors come as HTTP 200 {"error": "invalid_code"}; at a refresh that means a
-- dead refresh token.
-- Unconfirmed: revocation with the refresh token in the form body (Zoho's examples put it
-- in the query string, where connrt never puts a token); the user info endpoint
-- (GET /oauth/user/info and its field names, from secondary sources); PKCE (off).
local ACCOUNTS = { "https://accounts.zoho.com", "https://accounts.zoho.eu", "https://accounts.zoho.in",
  "https://accounts.zoho.com.au", "https://accounts.zoho.jp", "https://accounts.zoho.sa", "https://accounts.zoho.uk",
  "https://accounts.zoho.com.cn", "https://accounts.zohocloud.ca" }
local API_HOSTS = { ["www.zohoapis.ca"] = true }
for _, tld in ipairs({ "com", "eu", "in", "com.au", "jp", "sa", "uk", "com.cn" }) do
  API_HOSTS["www.zohoapis." .. tld], API_HOSTS["api.zoho." .. tld] = true, true
end

local function token_response(raw)
  local doc = connrt.json.decode(raw.body)
  if type(doc) ~= "table" then return nil, "the token endpoint did not answer JSON (HTTP " .. raw.status .. ")" end
  if raw.status ~= 200 or doc.error ~= nil or type(doc.access_token) ~= "string" then
    local e = tostring(doc.error or "no error code")
    -- a refresh token Zoho no longer knows is answered invalid_code: an invalid grant
    if raw.grant == "refresh_token" and e == "invalid_code" then return nil, "invalid_grant: invalid_code", "invalid_grant" end
    return nil, e, type(doc.error) == "string" and doc.error or nil
  end
  local values = {}
  if doc.api_domain ~= nil then
    local host = type(doc.api_domain) == "string" and doc.api_domain:match("^https://([%w.]+)/?$")
    if not (host and API_HOSTS[host:lower()]) then
      return nil, "the token response names API domain " .. tostring(doc.api_domain):sub(1, 200)
        .. ", which is not one of Zoho's"
    end
    values.api_host = host:lower()
  end
  return { access_token = doc.access_token, refresh_token = doc.refresh_token, expires_in = doc.expires_in,
    token_type = doc.token_type, scope = doc.scope, values = values }
end

return {
  id = "zoho",
  title = "Zoho",
  fields = {
    { key = "accounts_server", label = "Zoho accounts server",
      description = "where the sign-in starts: https://accounts.zoho.com (every data centre but China's, which the "
        .. "callback then names) or https://accounts.zoho.com.cn",
      default = "https://accounts.zoho.com", choices = ACCOUNTS },
  },
  callback_fields = { accounts_server = "accounts-server" },
  authorize_url = "{{accounts_server}}/oauth/v2/auth",
  authorize_params = { access_type = "offline", prompt = "consent" },
  scopes = { "AaaServer.profile.Read", "ZohoCRM.users.READ" },
  scope_separator = ",",
  pkce = false,
  token_url = "{{accounts_server}}/oauth/v2/token",
  client_auth = "body",
  revoke_request = {
    method = "POST",
    url = "{{accounts_server}}/oauth/v2/token/revoke",
    form = { token = "{{refresh_token}}" },
  },
  values = { "api_host" },
  test = "{{accounts_server}}/oauth/user/info",
  name = "{{Display_Name}} ({{Email}})",
  unique_id = "{{ZUID}}",
  allowed_urls = { "https://{{api_host}}", "{{accounts_server}}/oauth/user/info" },
  request = { headers = { Authorization = "Zoho-oauthtoken {{access_token}}" } },
  hooks = { token_response = token_response },
}
