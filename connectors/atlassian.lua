-- Atlassian cloud (Jira; Confluence alike). https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/
-- Quirks: the token request is a JSON body; API calls go through api.atlassian.com with
-- the site's cloud id in the path, found after the sign-in (hooks.lookup on
-- accessible-resources); audience and prompt=consent are required authorize parameters;
-- offline_access gives rotating refresh tokens.
return {
  id = "atlassian",
  title = "Atlassian",
  authorize_url = "https://auth.atlassian.com/authorize",
  scopes = { "read:jira-user", "read:jira-work", "offline_access" },
  authorize_params = { audience = "api.atlassian.com", prompt = "consent" },
  pkce = false,
  token_url = "https://auth.atlassian.com/oauth/token",
  client_auth = "body",
  token_request_format = "json",
  values = { "cloud_id", "site_name", "site_url" },
  test = "/ex/jira/{{cloud_id}}/rest/api/3/myself",
  name = "{{displayName}} at {{values.site_name}}",
  unique_id = "{{values.cloud_id}}/{{accountId}}",
  allowed_urls = { "https://api.atlassian.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}", Accept = "application/json" } },
  hooks = {
    lookup = function(api)
      local r = api.get("/oauth/token/accessible-resources")
      if r.status ~= 200 or type(r.json) ~= "table" then
        return nil, "accessible-resources answered " .. r.status
      end
      local site = r.json[1]
      if type(site) ~= "table" or type(site.id) ~= "string" then return nil, "the sign-in granted no site" end
      return { cloud_id = site.id, site_name = site.name, site_url = site.url }
    end,
  },
}
