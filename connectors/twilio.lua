-- Twilio: HTTP Basic with the Account SID and its Auth Token.
-- https://www.twilio.com/docs/usage/your-request-to-twilio
-- https://www.twilio.com/docs/iam/api/account (GET /2010-04-01/Accounts/{AccountSid}.json)
-- Quirks: the Account SID is the Basic user name and is also in every URL path
-- (/Accounts/{AccountSid}/...); POST bodies are form-encoded. An API key (SK...) would
-- be the user name instead, with its secret, beside the Account SID; this connector
-- takes the Auth Token (Standard API keys cannot read /Accounts, the test API).
return {
  id = "twilio",
  title = "Twilio",
  auth = "fields",
  fields = {
    { key = "account_sid", label = "Account SID", description = "AC followed by 32 hex digits (Console > Account info)",
      required = true, pattern = "AC%x+" },
    { key = "auth_token", label = "Auth Token", required = true, secret = true },
  },
  test = "/Accounts/{{account_sid}}.json",
  name = "{{friendly_name}}",
  unique_id = "{{sid}}",
  allowed_urls = { "https://api.twilio.com/2010-04-01" },
  request = { basic = { username = "{{account_sid}}", password = "{{auth_token}}" } },
}
