-- Anthropic (Claude API): an API key. https://docs.anthropic.com/en/api/overview
-- https://docs.anthropic.com/en/api/versioning ; https://docs.anthropic.com/en/api/models-list
-- Quirks: the key goes in `x-api-key`, and every request carries `anthropic-version`.
-- No endpoint names a standard key's owner, but every answer names the key's
-- organization in an `anthropic-organization-id` header: hooks.lookup keeps it, and the
-- connection is known by it. Keys belong to a Workspace; Admin keys are a separate type
-- (GET /v1/organizations/me). Keys do not expire; revoke them in the Console.
return {
  id = "anthropic",
  title = "Anthropic",
  auth = "fields",
  fields = {
    { key = "api_key", label = "API key", description = "console.anthropic.com > API keys", required = true, secret = true },
  },
  values = { "organization_id" },
  test = "/v1/models",
  name = "Anthropic organization {{values.organization_id}}",
  unique_id = "{{values.organization_id}}",
  allowed_urls = { "https://api.anthropic.com" },
  request = { headers = { ["x-api-key"] = "{{api_key}}", ["anthropic-version"] = "2023-06-01" } },
  hooks = {
    lookup = function(api)
      local r = api.get("/v1/models")
      if r.status ~= 200 then
        local e = type(r.json) == "table" and type(r.json.error) == "table" and r.json.error.message
        return nil, "GET /v1/models answered " .. r.status .. (type(e) == "string" and (": " .. e) or "")
      end
      local org = r.headers["anthropic-organization-id"]
      if type(org) ~= "string" or org == "" then return nil, "GET /v1/models answered without an anthropic-organization-id header" end
      return { organization_id = org }
    end,
  },
}
