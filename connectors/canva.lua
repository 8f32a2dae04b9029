-- Canva Connect API. https://www.canva.dev/docs/connect/authentication/
-- https://www.canva.dev/docs/connect/api-reference/authentication/generate-access-token/
-- GET /users/me and /users/me/profile: Canva Connect's Users API reference (page not read).
-- Quirks: PKCE (S256) is required, with HTTP Basic client authentication (Canva's
-- recommendation; the body also works); refresh tokens are single-use and each refresh
-- returns a new one. GET /users/me names the user and team by id only, so
-- hooks.lookup reads the display name from /users/me/profile. Revocation is RFC 7009
-- style (revoking the refresh token ends its lineage and the consent).
-- Unconfirmed: the token endpoint's error body (the stand-in answers RFC 6749's); the
-- profile's field names; the scope names beyond profile:read.
return {
  id = "canva",
  title = "Canva",
  authorize_url = "https://www.canva.com/api/oauth/authorize",
  scopes = { "profile:read", "design:meta:read" },
  pkce = true,
  token_url = "https://api.canva.com/rest/v1/oauth/token",
  client_auth = "basic",
  revoke_url = "https://api.canva.com/rest/v1/oauth/revoke",
  values = { "display_name" },
  test = "/users/me",
  name = "{{values.display_name}}",
  unique_id = "{{team_user.team_id}}/{{team_user.user_id}}",
  allowed_urls = { "https://api.canva.com/rest/v1" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
  hooks = {
    lookup = function(api)
      local r = api.get("/users/me/profile")
      local p = type(r.json) == "table" and r.json.profile
      if r.status ~= 200 or type(p) ~= "table" or type(p.display_name) ~= "string" then
        return nil, "GET /users/me/profile answered " .. r.status .. " without profile.display_name"
      end
      return { display_name = p.display_name }
    end,
  },
}
