--- flow.lua - the connect flow of `connrt run`: from a connector file to a stored
-- connection.
--
-- Steps: load and check the connector; collect its fields; build the authorization URL
-- with a fresh state and PKCE; wait on the loopback listener for the callback that
-- carries our state; exchange the code; run the test API with the new credentials;
-- compute the name and unique id; save everything in one write transaction. Nothing is
-- saved unless every step succeeded. The browser's request is answered last, with a
-- page that says how it went.
local cjson = require("cjson.safe")
local connector = require("connrt.connector")
local errors = require("connrt.errors")
local listener = require("connrt.listener")
local log = require("connrt.log")
local oauth = require("connrt.oauth")
local page = require("connrt.page")
local request = require("connrt.request")
local store = require("connrt.store")
local sys = require("connrt.sys")
local template = require("connrt.template")
local url = require("connrt.url")

local M = {}

M.DEFAULT_REDIRECT = "http://127.0.0.1:8400/callback"
M.DEFAULT_TIMEOUT = 300

--- The redirect URL to register with the app: CONNRT_REDIRECT_URL or the default.
-- Returns the URL and the host, port and path the listener serves.
function M.redirect()
  local r = os.getenv("CONNRT_REDIRECT_URL")
  if not r or r == "" then r = M.DEFAULT_REDIRECT end
  local u, err = url.parse(r)
  if not u then errors.raise("usage", "CONNRT_REDIRECT_URL: %s", err) end
  if u.scheme ~= "http" or not url.is_loopback(u.host) then
    errors.raise("usage", "CONNRT_REDIRECT_URL %s: the listener serves plain http on a loopback address (127.0.0.1, [::1] or localhost)", r)
  end
  if u.has_query or u.fragment ~= "" then
    errors.raise("usage", "CONNRT_REDIRECT_URL %s: must not have a query or fragment", r)
  end
  local bind = u.host == "localhost" and "127.0.0.1" or u.host:gsub("^%[(.*)%]$", "%1")
  return r, { host = bind, port = u.port, path = u.path }
end

-- Reads a line from the terminal, hidden for secrets.
local function prompt(f)
  local label = (f.label or f.key) .. (f.default and (" [" .. f.default .. "]") or "") .. ": "
  if f.secret then return sys.readline_noecho(label) end
  io.stderr:write(label)
  io.stderr:flush()
  return io.stdin:read("l")
end

--- Collects field values: --field values first, then defaults, then a prompt on a
-- terminal for missing required fields. Checks choices and patterns.
function M.collect_fields(c, given, interactive)
  for k in pairs(given) do
    local known = false
    for _, f in ipairs(c.fields) do if f.key == k then known = true end end
    if not known then
      local keys = {}
      for _, f in ipairs(c.fields) do keys[#keys + 1] = f.key end
      errors.raise("usage", "--field %s: %s has no such field (fields: %s)", k, c.path,
        #keys > 0 and table.concat(keys, ", ") or "none")
    end
  end
  local values, secret = {}, {}
  for _, f in ipairs(c.fields) do
    local v = given[f.key]
    if v == nil and interactive and f.required and f.default == nil then
      v = prompt(f)
      if v == "" then v = nil end
    end
    if v == nil then v = f.default end
    if v == nil and f.required then
      errors.raise("usage", "field %s (%s) is required: pass --field %s=VALUE", f.key, f.label or f.key, f.key)
    end
    if v ~= nil then
      if f.secret then
        if v == "" then errors.raise("usage", "field %s: the secret is empty", f.key) end
        log.secret(v)
        secret[f.key] = true
      end
      local ok, why = connector.check_field_value(f, v)
      if not ok then
        if f.secret then why = "the value does not match what the field allows" end
        errors.raise("usage", "field %s: %s", f.key, why)
      end
      values[f.key] = v
    end
  end
  return values, secret
end

local function read_secret_file(path)
  local f, err = io.open(path, "rb")
  if not f then errors.raise("usage", "--client-secret-file: %s", err) end
  local s = f:read("a"):gsub("[\r\n]+$", "")
  f:close()
  if s == "" then errors.raise("usage", "--client-secret-file %s is empty", path) end
  return s
end

--- The client id and secret: flags, then CONNRT_CLIENT_ID / CONNRT_CLIENT_SECRET, then
-- what was given for this connector before (kept sealed in the store).
function M.client_credentials(c, opts, st)
  local id = opts.client_id or os.getenv("CONNRT_CLIENT_ID")
  local secret = opts.client_secret
  if opts.client_secret_file then secret = read_secret_file(opts.client_secret_file) end
  secret = secret or os.getenv("CONNRT_CLIENT_SECRET")
  if id == "" then id = nil end
  if secret == "" then secret = nil end
  if not id then
    local saved = st:client(c.id)
    if saved then id, secret = saved.client_id, secret or saved.client_secret end
  end
  if not id then
    errors.raise("usage", "no client id for %s: pass --client-id or set CONNRT_CLIENT_ID (the app's OAuth client id)", c.id)
  end
  log.secret(secret)
  return id, secret
end

-- Opens a browser on the URL: CONNRT_BROWSER (a command the URL is appended to), else
-- xdg-open where a display exists. Failing to open one is not an error: the URL is printed.
local function open_browser(auth_url)
  local cmd = os.getenv("CONNRT_BROWSER")
  if not cmd or cmd == "" then
    if not (os.getenv("DISPLAY") or os.getenv("WAYLAND_DISPLAY")) then return end
    cmd = "xdg-open"
  end
  local ok, err = sys.spawn_detached({ "sh", "-c", cmd .. ' "$1"', "connrt-browser", auth_url })
  if not ok then log.err("connrt: could not open a browser (%s); open the URL above yourself", err) end
end

--- Waits for the callback that carries `state`. Callbacks to other paths, or without our
-- state, are answered with an error page and the wait goes on (a stray or forged request
-- must not end the flow). Returns the request and its decoded query.
local function await_callback(l, where, state, deadline, title)
  local rejected = 0
  while true do
    local left = deadline - sys.monotime()
    if left <= 0 then break end
    local req = l:accept(left)
    if not req then break end
    if req.method ~= "GET" then
      req:respond(405, page.headers({ Allow = "GET" }), page.render("error", title, "This address only takes the app's sign-in redirect."))
    elseif req.path ~= where.path then
      req:respond(404, page.headers(), page.render("error", title, "Nothing here: this is connrt's sign-in listener."))
    else
      local q = url.form_decode(req.query)
      if q.state == nil or q.state ~= state then
        rejected = rejected + 1
        req:respond(400, page.headers(), page.render("error", title,
          "This sign-in link is not the one connrt is waiting for (wrong or missing state). Start again from the terminal."))
      else
        return req, q
      end
    end
  end
  if rejected > 0 then
    errors.raise("connect", "no valid callback before the timeout; %d callback(s) with a wrong or missing state were rejected", rejected)
  end
  errors.raise("connect", "timed out waiting for the sign-in callback on %s", where.url)
end

local function json_body(resp)
  local ctype = (resp.header["content-type"] or ""):lower()
  local v = cjson.decode(resp.body)
  if type(v) == "table" then return v end
  if ctype:find("json", 1, true) then return nil end
  return {}
end

--- Calls the connector's test API with the new credentials. Returns the decoded
-- response (an empty table when it is not JSON).
function M.test_api(c, scope, allowed)
  local t = c.test
  local target = template.render(t.url, scope, c.path .. ": test.url", url.encode)
  target = url.join(allowed[1], target)
  local ok, why = url.allowed(target, allowed)
  if not ok then
    errors.raise("refused", "%s: test API %s is refused: %s (allowed: %s)", c.path, target, why,
      table.concat(allowed, ", "))
  end
  local req = { method = t.method, body = t.body,
    url = url.add_query(target, template.render_pairs(t.query, scope, c.path .. ": test.query")),
    headers = template.render_pairs(t.headers, scope, c.path .. ": test.headers") }
  req.json = t.json
  local full = request.with_parameters(c.request, scope, req, c.path .. ": request")
  full.follow, full.allowed = 5, allowed
  local what = "test API " .. t.method .. " " .. target:gsub("[?#].*$", "")
  local resp = request.send(full, what)
  if resp.status < 200 or resp.status > 299 then
    local detail = ""
    local body = cjson.decode(resp.body)
    if type(body) == "table" then
      local e = body.error or body.message or body.error_description
      if type(e) == "table" then e = e.message or e.code end
      if e then detail = ": " .. tostring(e) end
    end
    errors.raise("provider", "%s answered %d%s; the connection was not saved", what, resp.status, detail)
  end
  local body = json_body(resp)
  if not body then
    errors.raise("provider", "%s answered %d with a body that is not valid JSON", what, resp.status)
  end
  return body
end

--- Runs the whole flow. `opts`: connector (path), fields (map), client_id,
-- client_secret, client_secret_file, timeout (seconds), browser (boolean),
-- interactive (boolean), home (store directory). Returns the saved record and whether
-- an existing connection was updated.
function M.run(opts)
  local c = connector.load(opts.connector)
  local redirect_uri, where = M.redirect()
  where.url = redirect_uri
  local fields, secret_fields = M.collect_fields(c, opts.fields or {}, opts.interactive)
  local st = store.open(opts.home)
  local client_id, client_secret = M.client_credentials(c, opts, st)

  local urls = {}
  for _, k in ipairs({ "issuer", "token_url", "refresh_url", "revoke_url" }) do
    urls[k] = connector.render_url(c, k, fields)
  end
  local allowed = {}
  for i = 1, #c.allowed_urls do allowed[i] = connector.render_url(c, i, fields) end

  local state = oauth.new_state()
  local verifier, challenge = oauth.new_pkce()
  log.secret(state)
  log.secret(verifier)
  local auth_url = oauth.authorize_url(c, {
    fields = fields, client_id = client_id, redirect_uri = redirect_uri,
    state = state, challenge = challenge,
  })

  -- listen before the URL is shown, so a fast browser cannot arrive first
  local l, lerr = listener.open(where.host, where.port)
  if not l then errors.raise("connect", "%s (is another connrt run waiting?)", lerr) end
  log.err("Open this URL to connect %s:", c.title)
  io.stderr:write(auth_url, "\n") -- the URL alone on its line; its state is ours to show
  io.stderr:flush()
  if opts.browser ~= false then open_browser(auth_url) end
  log.err("Waiting for the sign-in callback on %s (timeout %ds)...", redirect_uri, opts.timeout or M.DEFAULT_TIMEOUT)

  local deadline = sys.monotime() + (opts.timeout or M.DEFAULT_TIMEOUT)
  local req, q = await_callback(l, where, state, deadline, c.title)
  l:close() -- state is used once: no second callback is listened for

  local ok, result, updated = pcall(function()
    log.secret(q.code)
    if q.error then
      local desc = q.error_description and (": " .. q.error_description) or ""
      if q.error == "access_denied" then
        errors.raise("connect", "authorization denied: access_denied%s; nothing was saved", desc)
      end
      errors.raise("connect", "the app answered the sign-in with an error: %s%s; nothing was saved", q.error, desc)
    end
    if q.iss and urls.issuer and q.iss ~= urls.issuer then
      errors.raise("connect", "the callback comes from issuer %s, not %s (RFC 9207 mix-up defence); nothing was saved",
        q.iss, urls.issuer)
    end
    if not q.code or q.code == "" then
      errors.raise("connect", "the callback carries no code; nothing was saved")
    end
    local extras = {}
    if c.hooks.callback then
      local v = connector.call_hook(c, "callback", q)
      if v ~= nil and type(v) ~= "table" then
        errors.raise("connector", "%s: hooks.callback must return a table of values, returned %s", c.path, type(v))
      end
      for k, x in pairs(v or {}) do extras[k] = x end
    end

    local grant = { { "grant_type", "authorization_code" }, { "code", q.code }, { "redirect_uri", redirect_uri } }
    if c.pkce then grant[#grant + 1] = { "code_verifier", verifier } end
    local treq = oauth.token_request(c, urls.token_url, {
      fields = fields, client_id = client_id, client_secret = client_secret }, grant)
    local token = oauth.fetch_token(c, treq, "token endpoint " .. urls.token_url)

    -- values the rest of the flow and later requests can use in templates
    local values = {}
    for k, v in pairs(token.values) do values[k] = v end
    for k, v in pairs(extras) do values[k] = v end
    local token_scope = { access_token = token.access_token, token_type = token.token_type,
      scope = token.scope, expires_in = token.expires_in }
    local me = M.test_api(c, { token_scope, fields, values }, allowed)

    local scope = { token_scope, fields, values, me }
    local name = template.render(c.name, scope, c.path .. ": name")
    local unique_id = template.render(c.unique_id, scope, c.path .. ": unique_id")
    if unique_id == "" then
      errors.raise("provider", "%s: unique_id rendered empty; cannot tell accounts apart", c.path)
    end

    local plain_fields, secrets = {}, { access_token = token.access_token,
      refresh_token = token.refresh_token, id_token = token.id_token,
      client_secret = client_secret, fields = {} }
    for k, v in pairs(fields) do
      if secret_fields[k] then secrets.fields[k] = v else plain_fields[k] = v end
    end
    if next(secrets.fields) == nil then secrets.fields = nil end
    local rec = {
      v = 1, connector = c.id, title = c.title, connector_path = c.path,
      name = name, unique_id = unique_id, fields = plain_fields, values = values,
      client_id = client_id, client_auth = c.client_auth, urls = urls, allowed_urls = allowed,
      token_type = token.token_type, scope = token.scope, expires_at = token.expires_at,
      has_refresh_token = token.refresh_token ~= nil,
    }
    local id, upd = st:save(rec, secrets, c.source, { client_id = client_id, client_secret = client_secret })
    rec.id = id
    return rec, upd
  end)
  if not ok then
    local msg = errors.is(result) and result.message or "internal error"
    req:respond(400, page.headers(), page.render("error", c.title, log.redact(msg)))
    st:close()
    error(result, 0)
  end
  req:respond(200, page.headers(), page.render("ok", c.title,
    string.format("Connected to %s as %s. You can close this tab.", c.title, result.name)))
  st:close()
  return result, updated
end

return M
