-- Todoist (API v1). https://todoist.com/api/v1/docs#tag/Authorization (as the SDK cites it; not read)
-- Endpoints and request shapes as the first-party SDK sends them:
-- https://github.com/Doist/todoist-api-typescript (src/authentication.ts, src/consts/endpoints.ts)
-- Quirks: scopes are comma-separated; the token response is only access_token and
-- token_type: no refresh token, no expiry (the token lives until revoked). Revoking is a
-- POST of the client's id and secret and the token as JSON to /access_tokens/revoke, not
-- RFC 7009. API v1 replaced REST v2 and Sync v9.
-- Unconfirmed: PKCE (off); the token endpoint's error body (the stand-in answers
-- {"error": "..."}); the API's 401 body; the reference names the revocation a DELETE on
-- /access_tokens, the SDK a POST on /access_tokens/revoke (the SDK's is used).
return {
  id = "todoist",
  title = "Todoist",
  authorize_url = "https://todoist.com/oauth/authorize",
  scopes = { "data:read" },
  scope_separator = ",",
  pkce = false,
  token_url = "https://todoist.com/oauth/access_token",
  client_auth = "body",
  test = "/user",
  name = "{{full_name}} ({{email}})",
  unique_id = "{{id}}",
  allowed_urls = { "https://api.todoist.com/api/v1" },
  revoke_request = {
    method = "POST",
    url = "https://api.todoist.com/api/v1/access_tokens/revoke",
    json = { client_id = "{{client_id}}", client_secret = "{{client_secret}}", access_token = "{{access_token}}" },
  },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
