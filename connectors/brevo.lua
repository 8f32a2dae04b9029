-- Brevo (formerly Sendinblue): an API key in a header. https://developers.brevo.com/docs/getting-started
-- No OAuth: the connection is the key, kept sealed.
return {
  id = "brevo",
  title = "Brevo",
  auth = "fields",
  fields = {
    { key = "api_key", label = "API key", description = "SMTP & API > API keys in your Brevo account",
      required = true, secret = true },
  },
  test = "/account",
  name = "{{companyName}} ({{email}})",
  unique_id = "{{email}}",
  allowed_urls = { "https://api.brevo.com/v3" },
  request = { headers = { ["api-key"] = "{{api_key}}", Accept = "application/json" } },
}
