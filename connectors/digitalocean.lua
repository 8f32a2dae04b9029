-- DigitalOcean: a personal access token. https://docs.digitalocean.com/reference/api/create-personal-access-token/
-- https://docs.digitalocean.com/reference/api/digitalocean/#tag/Account (GET /v2/account)
-- The token goes as `Authorization: Bearer`; it is scoped to a team. DigitalOcean also
-- offers OAuth apps, not covered here.
-- Unconfirmed: the account's team fields (not used).
return {
  id = "digitalocean",
  title = "DigitalOcean",
  auth = "fields",
  fields = {
    { key = "token", label = "Personal access token", description = "API > Tokens in the control panel",
      required = true, secret = true },
  },
  test = "/account",
  name = "{{account.email}}",
  unique_id = "{{account.uuid}}",
  allowed_urls = { "https://api.digitalocean.com/v2" },
  request = { headers = { Authorization = "Bearer {{token}}" } },
}
