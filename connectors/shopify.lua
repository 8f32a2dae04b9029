-- Shopify (authorization code grant for an app).
-- https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant
-- Quirks: the shop is part of every host name (a field, letters, digits and hyphens
-- only, so it cannot change the host); the token goes in X-Shopify-Access-Token, not
-- Authorization; scopes are comma-separated. Offline tokens do not expire.
return {
  id = "shopify",
  title = "Shopify",
  fields = {
    { key = "shop", label = "Shop", description = "the NAME of NAME.myshopify.com", required = true,
      pattern = "[%w][%w-]*" },
  },
  authorize_url = "https://{{shop}}.myshopify.com/admin/oauth/authorize",
  scopes = { "read_products", "read_orders" },
  scope_separator = ",",
  pkce = false,
  token_url = "https://{{shop}}.myshopify.com/admin/oauth/access_token",
  client_auth = "body",
  test = "/shop.json",
  name = "{{test.shop.name}}",
  unique_id = "{{test.shop.id}}",
  allowed_urls = { "https://{{shop}}.myshopify.com/admin/api/2025-01" },
  request = { headers = { ["X-Shopify-Access-Token"] = "{{access_token}}" } },
}
