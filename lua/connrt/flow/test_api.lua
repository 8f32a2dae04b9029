--- flow/test_api.lua - the connector's test API, called with the new credentials before
-- anything is saved: a connection is kept only when the provider accepts it, and the
-- answer is what name and unique_id are rendered from. An answer that is an error by
-- the connector's own rule (test.ok, hooks.expired) or a web page fails the connect.
local cjson = require("cjson.safe")
local connector = require("connrt.connector")
local errors = require("connrt.errors")
local format = require("connrt.format")
local limits = require("connrt.limits")
local log = require("connrt.log")
local request = require("connrt.request")
local template = require("connrt.template")
local text = require("connrt.text")
local url = require("connrt.url")

local M = {}

local function json_body(resp)
  local ctype = (resp.header["content-type"] or ""):lower()
  local v = cjson.decode(resp.body)
  if type(v) == "table" then return v end
  if ctype:find("json", 1, true) then return nil end
  return {}
end

-- Raises a provider error when a 2xx answer of the test API is an error by the
-- connector's own rule: a value test.ok names differs (Slack's 200 {"ok": false}), or
-- hooks.expired says the answer means the token is not valid.
local function test_refused(c, resp, what)
  local detail = request.error_detail(resp.body)
  local doc = cjson.decode(resp.body)
  local paths = {}
  for k in pairs(c.test.ok or {}) do paths[#paths + 1] = k end
  table.sort(paths)
  for _, path in ipairs(paths) do
    local want = c.test.ok[path]
    local segs = template.parse("{{" .. path .. "}}", c.path .. ": test.ok")[1].segs
    local got
    if type(doc) == "table" then got = template.lookup({ doc }, segs) end
    if got ~= want then
      errors.raise("provider", "%s answered %d with %s = %s, not %s%s; the connection was not saved", what, resp.status,
        path, format.shown(got), format.shown(want), detail and (": " .. detail) or "")
    end
  end
  if c.hooks.expired and require("connrt.connection").expired_by_hook(c, resp) then
    errors.raise("provider", "%s answered %d%s, which hooks.expired says means the token is not valid; the connection "
      .. "was not saved", what, resp.status, detail and (": " .. detail) or "")
  end
end

--- Calls the connector's test API with the new credentials (`scope`: template.scope of
-- the token, client, fields and kept values). Returns the decoded response (an empty
-- table when it is not JSON).
function M.call(c, scope, allowed, client_secret)
  local t = c.test
  local target = connector.render_url_text(t.url, scope, c.path .. ": test.url")
  target = request.allowed_target(allowed, target,
    c.path:gsub("%%", "%%%%") .. ": test API %s is refused: %s (allowed: %s)")
  local req = { method = t.method, body = t.body,
    url = url.add_query(target, template.render_pairs(t.query, scope, c.path .. ": test.query")),
    headers = request.render_headers(t.headers, scope, c.path .. ": test.headers") }
  req.json = t.json
  if t.form then
    -- a form body (HubSpot's token introspection takes the token and the client's own
    -- credentials this way, never in the URL)
    local form_scope = { { client_secret = client_secret }, ns = scope.ns }
    for i = 1, #scope do form_scope[i + 1] = scope[i] end
    req.body = url.form_encode(template.render_pairs(t.form, form_scope, c.path .. ": test.form"))
    req.headers[#req.headers + 1] = { "Content-Type", "application/x-www-form-urlencoded" }
  end
  local full = request.with_parameters(c.request, scope, req, c.path .. ": request",
    { from_connector = true, secret_var = function(v) return connector.secret_var(c, v) end })
  -- an identity call: its answer is parsed here, in the runtime, so it is bounded
  full.follow, full.allowed, full.max_body = 5, allowed, limits.API_BODY
  local what = "test API " .. t.method .. " " .. url.without_query(target)
  local resp = request.send(full, what)
  if resp.status < 200 or resp.status > 299 then
    local detail = request.error_detail(resp.body)
    errors.raise("provider", "%s answered %d%s; the connection was not saved", what, resp.status,
      detail and (": " .. detail) or "")
  end
  test_refused(c, resp, what)
  local body = json_body(resp)
  if not body then
    errors.fail("provider", "bad_answer", "%s answered %d with a body that is not valid JSON", what, resp.status)
  end
  local ctype = (resp.header["content-type"] or ""):lower()
  local page_start = resp.body:sub(1, 512):lower()
  if ctype:find("html", 1, true) and next(body) == nil
      and (page_start:find("<html", 1, true) or page_start:find("<!doctype", 1, true)) then
    -- a web page (a login wall, a portal) where an API answer was expected
    local title = text.html_title(resp.body)
    errors.fail("provider", "bad_answer", "%s answered %d with %s, not JSON%s; the connection was not saved", what, resp.status,
      ctype:match("^[^;]*"), title and (" (page title: " .. log.clip(title, 80) .. ")") or "")
  end
  return body
end

return M
