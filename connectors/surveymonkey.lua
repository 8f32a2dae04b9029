-- SurveyMonkey API v3. https://api.surveymonkey.com/v3/docs (OAuth, Users: GET /users/me)
-- Quirks: the data centre (US, EU, Canada) picks the host of the sign-in, the token and
-- the API (a field). Scopes are set on the app (some need a paid plan); apps start as
-- drafts, then deploy as Public or Private. Tokens are long-lived and come without a
-- refresh token. Errors are {"error": {"id", "name", "docs", "message",
-- "http_status_code"}}.
-- Unconfirmed: the EU and Canada hosts (api.eu.surveymonkey.com, api.surveymonkey.ca);
-- client id and secret in the body; the token endpoint's error body (the stand-in
-- answers RFC 6749's); the access_url said to come with the token (ignored); revocation.
return {
  id = "surveymonkey",
  title = "SurveyMonkey",
  fields = {
    { key = "api_host", label = "Data centre", description = "api.surveymonkey.com (US), api.eu.surveymonkey.com or api.surveymonkey.ca",
      default = "api.surveymonkey.com", choices = { "api.surveymonkey.com", "api.eu.surveymonkey.com", "api.surveymonkey.ca" } },
  },
  authorize_url = "https://{{api_host}}/oauth/authorize",
  pkce = false,
  token_url = "https://{{api_host}}/oauth/token",
  client_auth = "body",
  test = "/users/me",
  name = "{{username}} ({{email}})",
  unique_id = "{{id}}",
  allowed_urls = { "https://{{api_host}}/v3" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
