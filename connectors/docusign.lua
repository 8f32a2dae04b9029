-- DocuSign eSignature (authorization code grant). https://developers.docusign.com/platform/auth/authcode
-- https://developers.docusign.com/platform/auth/reference
-- https://developers.docusign.com/platform/auth/reference/user-info
-- https://developers.docusign.com/docs/esign-rest-api/reference/accounts/accounts/get/
-- Quirks: the API host is per account and known only after the sign-in: hooks.lookup
-- reads the user's accounts from the auth host's /oauth/userinfo and keeps the default
-- account's base_uri and account_id, which make the allowed URL
-- {base_uri}/restapi/v2.1/accounts/{account_id}. The environment (production or the
-- developer sandbox, account-d) picks the auth host. HTTP Basic client authentication
-- (integration key and secret key); codes last 2 minutes. userinfo is rate-limited per
-- user and key, so it is read once, at connect.
-- Unconfirmed: PKCE with a confidential client (off); token lifetimes (expires_in
-- says); a revocation endpoint (none documented).
-- the userinfo endpoint of each environment's auth host
local USERINFO = {
  ["account.docusign.com"] = "https://account.docusign.com/oauth/userinfo",
  ["account-d.docusign.com"] = "https://account-d.docusign.com/oauth/userinfo",
}

return {
  id = "docusign",
  title = "DocuSign",
  fields = {
    { key = "auth_host", label = "Environment", description = "account.docusign.com, or account-d.docusign.com for the developer sandbox",
      default = "account.docusign.com", choices = { "account.docusign.com", "account-d.docusign.com" },
      secret = false }, -- a host, though its name says "auth"
  },
  authorize_url = "https://{{auth_host}}/oauth/auth",
  scopes = { "signature" },
  pkce = false,
  token_url = "https://{{auth_host}}/oauth/token",
  client_auth = "basic",
  values = { "base_uri", "account_id", "user_id", "user_name" },
  test = "{{base_uri}}/restapi/v2.1/accounts/{{account_id}}",
  name = "{{values.user_name}} at {{accountName}}",
  unique_id = "{{values.account_id}}/{{values.user_id}}",
  allowed_urls = { "{{base_uri}}/restapi/v2.1/accounts/{{account_id}}", "https://{{auth_host}}/oauth/userinfo" },
  request = { headers = { Authorization = "Bearer {{access_token}}", Accept = "application/json" } },
  hooks = {
    lookup = function(api)
      local r = api.get(USERINFO[api.values.auth_host])
      local u = r.json
      if r.status ~= 200 or type(u) ~= "table" or type(u.accounts) ~= "table" then
        return nil, "GET /oauth/userinfo answered " .. r.status
      end
      local chosen
      for _, a in ipairs(u.accounts) do
        if type(a) == "table" and (a.is_default == true or a.is_default == "true") then chosen = a end
      end
      chosen = chosen or u.accounts[1]
      if type(chosen) ~= "table" or type(chosen.base_uri) ~= "string" or type(chosen.account_id) ~= "string" then
        return nil, "the user has no account with a base_uri"
      end
      return { base_uri = chosen.base_uri, account_id = chosen.account_id, user_id = u.sub, user_name = u.name }
    end,
  },
}
