-- SendGrid (Twilio SendGrid): an API key.
-- https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/authentication
-- https://www.twilio.com/docs/sendgrid/api-reference/users-api/retrieve-your-username
-- https://www.twilio.com/docs/sendgrid/api-reference/api-key-permissions/retrieve-a-list-of-scopes-for-which-this-user-has-access
-- The key goes as `Authorization: Bearer`. EU regional subusers use api.eu.sendgrid.com
-- (a field). GET /v3/user/username names the account; a restricted key without user
-- read access gets 403 there and cannot connect through this test. Subusers are reached
-- with the parent's key and an on-behalf-of header per call (not with Mail Send).
-- Unconfirmed: the exact permission GET /v3/user/username needs.
return {
  id = "sendgrid",
  title = "SendGrid",
  auth = "fields",
  fields = {
    { key = "api_host", label = "Region", description = "api.sendgrid.com, or api.eu.sendgrid.com for EU subusers",
      default = "api.sendgrid.com", choices = { "api.sendgrid.com", "api.eu.sendgrid.com" } },
    { key = "api_key", label = "API key", description = "Settings > API Keys", required = true, secret = true },
  },
  test = "/v3/user/username",
  name = "{{username}}",
  unique_id = "{{user_id}}",
  allowed_urls = { "https://{{api_host}}" },
  request = { headers = { Authorization = "Bearer {{api_key}}" } },
}
