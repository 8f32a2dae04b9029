-- Zendesk. https://developer.zendesk.com/documentation/ticketing/working-with-oauth/
-- The subdomain is part of every host (a field restricted to a host label).
return {
  id = "zendesk",
  title = "Zendesk",
  fields = {
    { key = "subdomain", label = "Subdomain", description = "the NAME of NAME.zendesk.com", required = true,
      pattern = "[%w][%w-]*" },
  },
  authorize_url = "https://{{subdomain}}.zendesk.com/oauth/authorizations/new",
  scopes = { "read" },
  pkce = true,
  token_url = "https://{{subdomain}}.zendesk.com/oauth/tokens",
  client_auth = "body",
  test = "/users/me.json",
  name = "{{user.name}} at {{fields.subdomain}}",
  unique_id = "{{fields.subdomain}}/{{user.id}}",
  allowed_urls = { "https://{{subdomain}}.zendesk.com/api/v2" },
  -- revoking deletes the token that makes the call (not RFC 7009)
  revoke_request = {
    method = "DELETE",
    url = "https://{{subdomain}}.zendesk.com/api/v2/oauth/tokens/current.json",
    headers = { Authorization = "Bearer {{access_token}}" },
  },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
