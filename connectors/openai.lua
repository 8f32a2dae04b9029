-- OpenAI: an API key. https://platform.openai.com/docs/api-reference/authentication
-- https://platform.openai.com/docs/api-reference/debugging-requests
-- https://platform.openai.com/docs/api-reference/models/list
-- The key goes as `Authorization: Bearer`. No endpoint names a standard key's owner,
-- but every answer names its organization in an `openai-organization` header: hooks.lookup
-- keeps it, and the connection is known by it. Users in several organizations (or with
-- a legacy user key) pick one per call with OpenAI-Organization / OpenAI-Project headers
-- (-H), not fixed here. Admin keys are a separate type for the Administration API.
-- Keys do not expire; revoke them in the dashboard.
return {
  id = "openai",
  title = "OpenAI",
  auth = "fields",
  fields = {
    { key = "api_key", label = "API key", description = "platform.openai.com > API keys", required = true, secret = true },
  },
  values = { "organization" },
  test = "/models",
  name = "OpenAI ({{values.organization}})",
  unique_id = "{{values.organization}}",
  allowed_urls = { "https://api.openai.com/v1" },
  request = { headers = { Authorization = "Bearer {{api_key}}" } },
  hooks = {
    lookup = function(api)
      local r = api.get("/models")
      if r.status ~= 200 then
        local e = type(r.json) == "table" and type(r.json.error) == "table" and r.json.error.message
        return nil, "GET /models answered " .. r.status .. (type(e) == "string" and (": " .. e) or "")
      end
      local org = r.headers["openai-organization"]
      if type(org) ~= "string" or org == "" then return nil, "GET /models answered without an openai-organization header" end
      return { organization = org }
    end,
  },
}
