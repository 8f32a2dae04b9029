-- Harvest API v2. https://help.getharvest.com/api-v2/authentication-api/authentication/authentication/
-- https://help.getharvest.com/api-v2/introduction/overview/general/
-- https://help.getharvest.com/api-v2/users-api/users/users/#retrieve-the-currently-authenticated-user
-- Quirks: every API call names the account in a Harvest-Account-Id header, and the
-- account is only known after the sign-in: hooks.lookup reads the accounts the token
-- reaches (id.getharvest.com/api/v2/accounts) and keeps the first Harvest one (the
-- lookup itself goes without the header, which names a value not known yet). Every call
-- also needs a User-Agent naming the app and a contact (a field): without it Harvest
-- answers 400. Access tokens last about two weeks; refresh tokens are issued.
-- Unconfirmed: client id and secret in the body; scopes (none asked for: the user
-- picks accounts); PKCE (off); token lifetimes; revocation (none documented).
local function id_text(v) return type(v) == "number" and tostring(math.tointeger(v) or v) or v end

return {
  id = "harvest",
  title = "Harvest",
  fields = {
    { key = "user_agent", label = "User-Agent", description = "your app and a contact, e.g. MyApp (you@example.com)",
      required = true },
  },
  authorize_url = "https://id.getharvest.com/oauth2/authorize",
  pkce = false,
  token_url = "https://id.getharvest.com/api/v2/oauth2/token",
  client_auth = "body",
  values = { "account_id", "account_name" },
  test = "/users/me",
  name = "{{first_name}} {{last_name}} at {{values.account_name}}",
  unique_id = "{{values.account_id}}/{{id}}",
  allowed_urls = { "https://api.harvestapp.com/v2", "https://id.getharvest.com/api/v2/accounts" },
  request = {
    headers = { Authorization = "Bearer {{access_token}}", ["Harvest-Account-Id"] = "{{account_id}}",
      ["User-Agent"] = "{{user_agent}}" },
  },
  hooks = {
    lookup = function(api)
      local r = api.get("https://id.getharvest.com/api/v2/accounts")
      if r.status ~= 200 or type(r.json) ~= "table" or type(r.json.accounts) ~= "table" then
        return nil, "GET /api/v2/accounts answered " .. r.status
      end
      for _, a in ipairs(r.json.accounts) do
        if type(a) == "table" and a.product == "harvest" and a.id ~= nil then
          return { account_id = id_text(a.id), account_name = a.name }
        end
      end
      return nil, "the sign-in reaches no Harvest account"
    end,
  },
}
