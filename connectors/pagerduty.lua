-- PagerDuty REST API v2: a user API token. https://developer.pagerduty.com/docs/rest-api-v2/authentication/
-- https://developer.pagerduty.com/docs/rest-api-v2/rest-api/ ; GET /users/me:
-- https://developer.pagerduty.com/api-reference/ (Users: Get the current user)
-- Quirks: the header is exactly `Authorization: Token token={token}` (any other form is
-- a 401; OAuth tokens use Bearer instead), with `Accept:
-- application/vnd.pagerduty+json;version=2`. The API is JSON only. This connector takes
-- a user token: account-level (general access) tokens have no /users/me and write calls
-- with them need a From: header naming a user.
-- Unconfirmed: the EU service region's host (api.eu.pagerduty.com).
return {
  id = "pagerduty",
  title = "PagerDuty",
  auth = "fields",
  fields = {
    { key = "api_host", label = "Service region", description = "api.pagerduty.com (US) or api.eu.pagerduty.com (EU)",
      default = "api.pagerduty.com", choices = { "api.pagerduty.com", "api.eu.pagerduty.com" } },
    { key = "api_token", label = "User API token", description = "My Profile > User Settings > API Access",
      required = true, secret = true },
  },
  test = "/users/me",
  name = "{{user.name}} ({{user.email}})",
  unique_id = "{{user.id}}",
  allowed_urls = { "https://{{api_host}}" },
  request = {
    headers = { Authorization = "Token token={{api_token}}", Accept = "application/vnd.pagerduty+json;version=2" },
  },
}
