-- Etsy Open API v3. https://developers.etsy.com/documentation/essentials/authentication
-- https://developers.etsy.com/documentation/essentials/requests (x-api-key on every request)
-- https://github.com/etsy/open-api/discussions/1529 (from 9 February 2026 the x-api-key
-- header must carry the shared secret: "keystring:shared_secret")
-- https://developers.etsy.com/documentation/reference/#operation/getMe
-- https://developers.etsy.com/documentation/reference/#operation/getUser
-- Quirks: PKCE (S256) is required and the token request carries the client id only: no
-- client secret goes to the token endpoint (connect without --client-secret). Every API
-- call needs `x-api-key: KEYSTRING:SHARED_SECRET` beside the Bearer token; the shared
-- secret is asked for as a secret field (sealed with the connection, sent only to
-- openapi.etsy.com), never taken from the client secret. Etsy only redirects to https
-- URLs: set CONNRT_REDIRECT_URL to an https address that reaches connrt's listener.
-- GET /users/me names the user and shop by id only; hooks.lookup reads the user's name
-- from GET /users/{user_id}.
-- Unconfirmed: the lifetimes (access 1 h, refresh 90 days: expires_in is read); whether
-- refresh tokens rotate (the newest is kept); no revocation endpoint is documented.
return {
  id = "etsy",
  title = "Etsy",
  fields = {
    { key = "shared_secret", label = "Etsy shared secret",
      description = "the app's shared secret (Your Apps, See API key details), sent with the keystring in x-api-key",
      required = true, secret = true },
  },
  authorize_url = "https://www.etsy.com/oauth/connect",
  scopes = { "email_r", "shops_r", "listings_r" },
  pkce = true,
  token_url = "https://api.etsy.com/v3/public/oauth/token",
  client_auth = "body",
  values = { "user_name" },
  test = "/users/me",
  name = "{{values.user_name}}",
  unique_id = "{{test.user_id}}",
  allowed_urls = { "https://openapi.etsy.com/v3/application" },
  request = {
    headers = { Authorization = "Bearer {{access_token}}", ["x-api-key"] = "{{client_id}}:{{shared_secret}}" },
  },
  hooks = {
    lookup = function(api)
      local me = api.get("/users/me")
      local id = type(me.json) == "table" and me.json.user_id
      if me.status ~= 200 or id == nil then
        return nil, "GET /users/me answered " .. me.status .. " without user_id"
      end
      local u = api.get("/users/" .. connrt.url.encode(tostring(math.tointeger(id) or id)))
      local p = u.json
      if u.status ~= 200 or type(p) ~= "table" then
        return nil, "GET /users/" .. tostring(id) .. " answered " .. u.status
      end
      -- (trimmed from each end: "^%s*(.-)%s*$" is quadratic in a run of inner blanks)
      local full = table.concat({ type(p.first_name) == "string" and p.first_name or "",
        type(p.last_name) == "string" and p.last_name or "" }, " ")
      local first = full:find("%S")
      full = first and full:match("^.*%S", first) or ""
      if full == "" then full = "Etsy user " .. tostring(math.tointeger(id) or id) end
      return { user_name = full }
    end,
  },
}
