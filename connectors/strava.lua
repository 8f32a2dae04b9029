-- Strava API v3. https://developers.strava.com/docs/authentication
-- https://developers.strava.com/docs/getting-started/
-- https://developers.strava.com/docs/reference/#api-Athletes-getLoggedInAthlete
-- Quirks: scopes are comma-separated and the athlete may untick some: the callback's
-- `scope` says what was granted (the token response does not), kept by hooks.callback.
-- The code exchange answers with the athlete beside the token (no call needed for the
-- account's id), which hooks.token_response keeps; refreshes answer without it. Access
-- tokens last 6 hours and each refresh may return a new refresh token (the newest is
-- kept). Errors are Strava's fault shape ({"message", "errors": [{"resource", "field",
-- "code"}]}): a dead code or refresh token is reported as invalid_grant. Deauthorizing
-- is a POST with the access token, not RFC 7009. No PKCE. approval_prompt=auto asks
-- again only when the scopes change.
local function token_response(raw)
  local doc = connrt.json.decode(raw.body)
  if type(doc) ~= "table" then return nil, "the token endpoint did not answer JSON (HTTP " .. raw.status .. ")" end
  if raw.status ~= 200 or type(doc.access_token) ~= "string" then
    local e = type(doc.errors) == "table" and type(doc.errors[1]) == "table" and doc.errors[1] or {}
    local what = tostring(e.resource or "?") .. " " .. tostring(e.field or "?") .. " " .. tostring(e.code or "?")
    local dead = (e.resource == "AuthorizationCode" or e.resource == "RefreshToken") and e.code == "invalid"
    return nil, (dead and "invalid_grant: " or "") .. tostring(doc.message or "no message") .. " (" .. what .. ")",
      dead and "invalid_grant" or nil
  end
  -- only what `values` declares: the athlete's id (expires_in says the expiry already)
  local values = {}
  local a = doc.athlete
  if type(a) == "table" and a.id ~= nil then
    values.athlete_id = tostring(math.tointeger(a.id) or a.id)
  end
  return { access_token = doc.access_token, refresh_token = doc.refresh_token, expires_in = doc.expires_in,
    token_type = doc.token_type, values = values }
end

return {
  id = "strava",
  title = "Strava",
  authorize_url = "https://www.strava.com/oauth/authorize",
  scopes = { "read", "activity:read_all" },
  scope_separator = ",",
  authorize_params = { approval_prompt = "auto" },
  pkce = false,
  token_url = "https://www.strava.com/oauth/token",
  client_auth = "body",
  values = { "athlete_id", "athlete_username", "granted_scope" },
  test = "/athlete",
  name = "{{firstname}} {{lastname}}",
  unique_id = "{{values.athlete_id}}",
  allowed_urls = { "https://www.strava.com/api/v3" },
  revoke_request = {
    method = "POST",
    url = "https://www.strava.com/oauth/deauthorize",
    headers = { Authorization = "Bearer {{access_token}}" },
  },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
  hooks = {
    callback = function(query)
      return { granted_scope = query.scope }
    end,
    token_response = token_response,
  },
}
