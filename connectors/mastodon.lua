-- Mastodon (any instance). https://docs.joinmastodon.org/methods/oauth/
-- https://docs.joinmastodon.org/methods/apps/ (POST /api/v1/apps)
-- https://docs.joinmastodon.org/methods/accounts/#verify_credentials
-- https://docs.joinmastodon.org/methods/timelines/#home
-- https://docs.joinmastodon.org/api/oauth-scopes/
-- Quirks: there is no global client: every instance is its own authorization server, and
-- the app registers itself there (POST /api/v1/apps: client_name, redirect_uris, scopes,
-- website), not with RFC 7591. connrt does this on the first connect to an instance
-- (app_registration) and keeps the client id and secret sealed for that instance, its
-- redirect URI and scopes, reusing them on every later connect; --client-id (an app made
-- in the instance's Development settings) wins when given. The scopes asked for must be
-- among those registered, which is why the registration names the same scopes. Tokens
-- do not expire and come without a refresh token (no expires_in). Revocation is RFC 7009
-- (client_id, client_secret, token).
-- Unconfirmed: PKCE (S256 is sent; Mastodon 4.3 and later check it, older versions
-- ignore it).
return {
  id = "mastodon",
  title = "Mastodon",
  fields = {
    { key = "instance", label = "Instance", description = "your server's host name, e.g. mastodon.social",
      required = true, pattern = "[%w][%w-]*%.[%w.-]*[%w]" },
  },
  app_registration = {
    url = "https://{{instance}}/api/v1/apps",
    form = { client_name = "connrt", redirect_uris = "{{redirect_uri}}", scopes = "{{scope}}" },
  },
  authorize_url = "https://{{instance}}/oauth/authorize",
  scopes = { "read", "write" },
  token_url = "https://{{instance}}/oauth/token",
  client_auth = "body",
  revoke_url = "https://{{instance}}/oauth/revoke",
  test = "/v1/accounts/verify_credentials",
  name = "@{{username}}@{{fields.instance}}",
  unique_id = "{{fields.instance}}/{{id}}",
  allowed_urls = { "https://{{instance}}/api" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
