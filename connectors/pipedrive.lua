-- Pipedrive. https://pipedrive.readme.io/docs/marketplace-oauth-authorization
-- Quirk: the token response carries api_domain, the company's own API host, which
-- becomes the allowed URL (it must be https). HTTP Basic client authentication.
return {
  id = "pipedrive",
  title = "Pipedrive",
  authorize_url = "https://oauth.pipedrive.com/oauth/authorize",
  pkce = false,
  token_url = "https://oauth.pipedrive.com/oauth/token",
  client_auth = "basic",
  revoke_url = "https://oauth.pipedrive.com/oauth/revoke",
  values = { "api_domain" },
  test = "/v1/users/me",
  name = "{{data.name}} at {{data.company_name}}",
  unique_id = "{{data.company_id}}/{{data.id}}",
  allowed_urls = { "{{api_domain}}/api" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
