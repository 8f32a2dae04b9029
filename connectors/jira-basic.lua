-- Jira Cloud with an email address and an API token: HTTP Basic.
-- https://developer.atlassian.com/cloud/jira/platform/basic-auth-for-rest-apis/
-- No OAuth: the site is a field restricted to a host label.
return {
  id = "jira-basic",
  title = "Jira Cloud (API token)",
  auth = "fields",
  fields = {
    { key = "site", label = "Site", description = "the NAME of NAME.atlassian.net", required = true,
      pattern = "[%w][%w-]*" },
    { key = "email", label = "Email", required = true },
    { key = "api_token", label = "API token", required = true, secret = true },
  },
  test = "/myself",
  name = "{{displayName}} at {{fields.site}}",
  unique_id = "{{fields.site}}/{{accountId}}",
  allowed_urls = { "https://{{site}}.atlassian.net/rest/api/3" },
  request = {
    basic = { username = "{{email}}", password = "{{api_token}}" },
    headers = { Accept = "application/json" },
  },
}
