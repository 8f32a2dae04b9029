-- Sentry: a user auth token. https://docs.sentry.io/api/auth/
-- https://docs.sentry.io/api/users/retrieve-the-current-credentials/ (GET /api/0/)
-- The token goes as `Authorization: Bearer`. The base URL is a field: https://sentry.io,
-- a region (https://us.sentry.io, https://de.sentry.io) or a self-hosted instance.
-- GET /api/0/ names the token's user and scopes. Organization tokens (sntrys_...) and
-- API keys have no user there (user is null), so this connector takes user auth tokens
-- (sntryu_...); an organization token needs a copy that tests GET /api/0/organizations/.
-- Unconfirmed: token expiry (none assumed).
return {
  id = "sentry",
  title = "Sentry",
  auth = "fields",
  fields = {
    { key = "base_url", label = "Sentry URL", description = "https://sentry.io, https://de.sentry.io or your instance's address",
      default = "https://sentry.io", pattern = "https://[%w.-]+%.[%a]+[:%d]*" },
    { key = "token", label = "User auth token", description = "Settings > Account > Personal Tokens",
      required = true, secret = true },
  },
  test = "/",
  name = "{{user.name}} ({{user.email}})",
  unique_id = "{{fields.base_url}}/{{user.id}}",
  allowed_urls = { "{{base_url}}/api/0" },
  request = { headers = { Authorization = "Bearer {{token}}" } },
}
