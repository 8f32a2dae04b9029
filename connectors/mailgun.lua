-- Mailgun: HTTP Basic with the user name `api` and an API key.
-- https://documentation.mailgun.com/docs/mailgun/api-reference/authentication
-- https://documentation.mailgun.com/docs/mailgun/api-reference
-- https://documentation.mailgun.com/docs/mailgun/quickstart-guide/requests (GET /v4/domains/{name}: the
-- reference's Domains section, page not read)
-- Quirks: the region is the sending domain's, fixed when the domain was created (US
-- api.mailgun.net or EU api.eu.mailgun.net; data never crosses regions): a field. There
-- is no current-user endpoint: the connection is the sending domain (a field), which
-- the test API reads, and is known by the domain's id. Endpoints are versioned apart
-- (/v3/{domain}/messages, /v4/domains). Domain Sending Keys may only send messages, so
-- they fail this test: give an account API key.
-- Unconfirmed: the fields of GET /v4/domains/{name} beyond domain.name and domain.id.
return {
  id = "mailgun",
  title = "Mailgun",
  auth = "fields",
  fields = {
    { key = "api_host", label = "Region", description = "api.mailgun.net (US) or api.eu.mailgun.net (EU)",
      default = "api.mailgun.net", choices = { "api.mailgun.net", "api.eu.mailgun.net" } },
    { key = "sending_domain", label = "Sending domain", description = "e.g. mg.example.com", required = true,
      pattern = "[%w][%w-]*%.[%w.-]*[%w]" },
    { key = "api_key", label = "API key", description = "Settings > API Security", required = true, secret = true },
  },
  test = "/v4/domains/{{sending_domain}}",
  name = "{{domain.name}} on Mailgun",
  unique_id = "{{domain.id}}",
  allowed_urls = { "https://{{api_host}}" },
  request = { basic = { username = "api", password = "{{api_key}}" } },
}
