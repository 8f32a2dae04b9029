-- Mailchimp Marketing API. https://mailchimp.com/developer/marketing/guides/access-user-data-oauth-2/
-- Quirks: the API host depends on the account's data center, known only after the
-- sign-in: hooks.lookup reads the metadata endpoint (`dc`, `api_endpoint`) and
-- api_endpoint becomes an allowed URL. Tokens do not expire, and the token response
-- says so with "expires_in": 0, which hooks.token_response drops (0 would read as
-- "already expired"). There is no refresh.
return {
  id = "mailchimp",
  title = "Mailchimp",
  authorize_url = "https://login.mailchimp.com/oauth2/authorize",
  pkce = false,
  token_url = "https://login.mailchimp.com/oauth2/token",
  client_auth = "body",
  values = { "api_endpoint", "dc" },
  test = "/",
  name = "{{account_name}}",
  unique_id = "{{account_id}}",
  allowed_urls = { "{{api_endpoint}}/3.0", "https://login.mailchimp.com/oauth2/metadata" },
  request = { headers = { Authorization = "OAuth {{access_token}}" } },
  hooks = {
    token_response = function(raw)
      local doc = connrt.json.decode(raw.body)
      if type(doc) ~= "table" then return nil, "the token endpoint answered " .. raw.status .. " without JSON" end
      local err = doc.error ~= connrt.json.null and doc.error or nil
      if err or raw.status ~= 200 then
        local desc = type(doc.error_description) == "string" and (": " .. doc.error_description) or ""
        return nil, (type(err) == "string" and err or "no error code") .. desc
      end
      if doc.expires_in == 0 then doc.expires_in = nil end
      return doc
    end,
    lookup = function(api)
      local r = api.get("https://login.mailchimp.com/oauth2/metadata")
      local m = r.json
      if r.status ~= 200 or type(m) ~= "table" then return nil, "the metadata endpoint answered " .. r.status end
      if type(m.dc) ~= "string" or type(m.api_endpoint) ~= "string" then
        return nil, "the metadata has no dc or api_endpoint"
      end
      return { dc = m.dc, api_endpoint = m.api_endpoint }
    end,
  },
}
