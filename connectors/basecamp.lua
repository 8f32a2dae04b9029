-- Basecamp (Basecamp 4 / bc3 API). https://github.com/basecamp/bc3-api/blob/master/sections/authentication.md
-- https://github.com/basecamp/bc3-api/blob/master/sections/people.md#get-my-personal-info
-- Quirks: the account is found after the sign-in: hooks.lookup reads
-- launchpad.37signals.com/authorization.json and keeps the first Basecamp (product
-- "bc3") account, whose href (https://3.basecampapi.com/ACCOUNT_ID) becomes the allowed
-- URL every call goes to. Every request needs a User-Agent naming the app and a contact
-- ("MyApp (you@example.com)"), a field here. No scopes; access tokens last two weeks.
-- Basecamp asks not to use the identity for "log in with Basecamp" (emails are not
-- verified). The legacy type=web_server / type=refresh parameters are not sent (the
-- current documentation uses the standard grant_type).
-- Unconfirmed: PKCE (off); whether refreshes return a new refresh token (kept if so);
-- the token endpoint's error body (the stand-in answers RFC 6749's); revocation (none).
local function id_text(v) return type(v) == "number" and tostring(math.tointeger(v) or v) or v end

return {
  id = "basecamp",
  title = "Basecamp",
  fields = {
    { key = "user_agent", label = "User-Agent", description = "your app and a contact, e.g. MyApp (you@example.com)",
      required = true },
  },
  authorize_url = "https://launchpad.37signals.com/authorization/new",
  pkce = false,
  token_url = "https://launchpad.37signals.com/authorization/token",
  client_auth = "body",
  values = { "account_href", "account_id", "account_name" },
  test = "/my/profile.json",
  name = "{{name}} at {{values.account_name}}",
  unique_id = "{{values.account_id}}/{{id}}",
  allowed_urls = { "{{account_href}}", "https://launchpad.37signals.com/authorization.json" },
  request = { headers = { Authorization = "Bearer {{access_token}}", ["User-Agent"] = "{{user_agent}}" } },
  hooks = {
    lookup = function(api)
      local r = api.get("https://launchpad.37signals.com/authorization.json")
      if r.status ~= 200 or type(r.json) ~= "table" or type(r.json.accounts) ~= "table" then
        return nil, "authorization.json answered " .. r.status
      end
      for _, a in ipairs(r.json.accounts) do
        if type(a) == "table" and a.product == "bc3" and type(a.href) == "string" then
          return { account_href = a.href, account_id = id_text(a.id), account_name = a.name }
        end
      end
      return nil, "the sign-in reaches no Basecamp (bc3) account"
    end,
  },
}
