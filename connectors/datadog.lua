-- Datadog: an API key and an application key. https://docs.datadoghq.com/api/latest/authentication/
-- https://docs.datadoghq.com/api/latest/key-management/validate-api-and-application-keys/
-- https://docs.datadoghq.com/getting_started/site/
-- Quirks: two keys in two headers (DD-API-KEY on every call, DD-APPLICATION-KEY for
-- reads and most management calls); the site picks the API host, api.{site} (not the
-- web host, app.{site}): a field. The test API checks both keys. No endpoint names the
-- organization or user of a key pair, so the connection is named by a label you give
-- (e.g. the organization's name) and known by site and label.
-- Unconfirmed: GET /api/v2/current_user as an identity endpoint (not used).
return {
  id = "datadog",
  title = "Datadog",
  auth = "fields",
  fields = {
    { key = "site", label = "Site", description = "the Datadog site your organization is on", default = "datadoghq.com",
      choices = { "datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com",
        "ap2.datadoghq.com", "uk1.datadoghq.com", "ddog-gov.com", "us2.ddog-gov.com" } },
    { key = "label", label = "Name", description = "a name for this connection, e.g. your organization's", required = true },
    { key = "api_key", label = "API key", description = "Organization Settings > API Keys", required = true, secret = true },
    { key = "app_key", label = "Application key", description = "Organization Settings > Application Keys",
      required = true, secret = true },
  },
  test = "/api/v2/validate_keys",
  name = "{{fields.label}} (Datadog {{fields.site}})",
  unique_id = "{{fields.site}}/{{fields.label}}",
  allowed_urls = { "https://api.{{site}}" },
  request = { headers = { ["DD-API-KEY"] = "{{api_key}}", ["DD-APPLICATION-KEY"] = "{{app_key}}" } },
}
