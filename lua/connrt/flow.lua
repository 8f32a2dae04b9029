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
local limits = require("connrt.limits")
local listener = require("connrt.listener")
local log = require("connrt.log")
local oauth = require("connrt.oauth")
local page = require("connrt.page")
local request = require("connrt.request")
local store = require("connrt.store")
local sys = require("connrt.sys")
local template = require("connrt.template")
local text = require("connrt.text")
local url = require("connrt.url")

local M = {}

M.DEFAULT_REDIRECT = "http://127.0.0.1:8400/callback"
M.DEFAULT_TIMEOUT = 300

--- The redirect URL to register with the app (CONNRT_REDIRECT_URL or the default) and
-- where the listener serves it: the redirect URL's own loopback host and port, or
-- CONNRT_LISTEN (host:port) when connrt runs behind a reverse proxy and the redirect URL
-- is public. The listener always checks the path (and the state).
function M.redirect()
  local r = os.getenv("CONNRT_REDIRECT_URL")
  if not r or r == "" then r = M.DEFAULT_REDIRECT end
  local u, err = url.parse(r)
  if not u then errors.raise("usage", "CONNRT_REDIRECT_URL: %s", err) end
  if u.has_query or u.fragment ~= "" then
    errors.raise("usage", "CONNRT_REDIRECT_URL %s: must not have a query or fragment", r)
  end
  local listen = os.getenv("CONNRT_LISTEN")
  if listen and listen ~= "" then
    local host, port = listen:match("^%[([%x:.]+)%]:(%d+)$")
    if not host then host, port = listen:match("^([%d.]+):(%d+)$") end
    port = tonumber(port)
    if not host or not port or port > 65535 then
      errors.raise("usage", "CONNRT_LISTEN %s: expected an IP address and port, such as 127.0.0.1:8400", listen)
    end
    if u.scheme ~= "https" and not url.is_loopback(u.host) then
      errors.raise("usage", "CONNRT_REDIRECT_URL %s: a public redirect URL must be https", r)
    end
    return r, { host = host, port = port, path = u.path, url = r }
  end
  if u.scheme ~= "http" or not url.is_loopback(u.host) then
    errors.raise("usage", "CONNRT_REDIRECT_URL %s: the listener serves plain http on a loopback address "
      .. "(127.0.0.1, [::1] or localhost); set CONNRT_LISTEN to serve a public redirect URL behind a proxy", r)
  end
  local bind = u.host == "localhost" and "127.0.0.1" or u.host:gsub("^%[(.*)%]$", "%1")
  return r, { host = bind, port = u.port, path = u.path, url = r }
end

-- Reads a line from the terminal, hidden for secrets.
local function prompt(f)
  local label = (f.label or f.key) .. (f.default and (" [" .. f.default .. "]") or "") .. ": "
  if f.secret then return sys.readline_noecho(label) end
  io.stderr:write(label)
  io.stderr:flush()
  return io.stdin:read("l")
end

local function env_name(key)
  return "CONNRT_FIELD_" .. key:upper()
end

local function read_field_file(key, path)
  local f, err = io.open(path, "rb")
  if not f then errors.raise("usage", "--field-file %s: %s", key, err) end
  local v = text.rstrip(f:read("a"), "\r\n")
  f:close()
  return v
end

--- Collects field values: --field, --field-file (a file holding the value), the
-- environment (CONNRT_FIELD_<KEY>), then defaults, then a prompt on a terminal (hidden
-- for secrets) for missing required fields. Checks choices and patterns.
function M.collect_fields(c, flags, interactive, files)
  local given = {}
  for k, v in pairs(flags) do given[k] = v end
  for k, path in pairs(files or {}) do
    if given[k] ~= nil then errors.raise("usage", "field %s is given twice (--field and --field-file)", k) end
    given[k] = read_field_file(k, path)
  end
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
    if v == nil then v = os.getenv(env_name(f.key)) end
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
  local s = text.rstrip(f:read("a"), "\r\n")
  f:close()
  if s == "" then errors.raise("usage", "--client-secret-file %s is empty", path) end
  return s
end

--- The client id and secret: flags, then CONNRT_CLIENT_ID / CONNRT_CLIENT_SECRET, then
-- what was given for this connector before (kept sealed in the store).
--- The origins (scheme://host:port) the client's secret may be sent to: those of the
-- token, refresh, revoke and device URLs and of the allowed URLs (revoke_request and
-- exchange_request go there). A remembered client secret is reused only where each of
-- these origins is one it was given for: a connector that merely claims another's id
-- gets nothing.
function M.client_origins(urls, allowed)
  local set, out = {}, {}
  local function add(u)
    local p = u and url.parse(u)
    if p then
      local o = ("%s://%s:%d"):format(p.scheme, p.host, p.port)
      if not set[o] then set[o] = true; out[#out + 1] = o end
    end
  end
  for _, k in ipairs({ "device_url", "token_url", "refresh_url", "revoke_url" }) do add(urls[k]) end
  for _, a in pairs(allowed) do add(a) end
  table.sort(out)
  return out
end

function M.client_credentials(c, opts, st, origins)
  local id = opts.client_id or os.getenv("CONNRT_CLIENT_ID")
  local secret = opts.client_secret
  if opts.client_secret_file then secret = read_secret_file(opts.client_secret_file) end
  secret = secret or os.getenv("CONNRT_CLIENT_SECRET")
  if id == "" then id = nil end
  if secret == "" then secret = nil end
  local why
  if not id then
    local saved
    saved, why = st:client(c.id, origins)
    if saved then id, secret = saved.client_id, secret or saved.client_secret end
  end
  if not id then
    errors.raise("usage", "no client id for %s: pass --client-id or set CONNRT_CLIENT_ID (the app's OAuth client id)%s",
      c.id, why and ("; " .. why) or "")
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
  -- on a terminal, one line that counts down, redrawn each second and cleared at the end
  local tty = sys.isatty(2)
  local function status(left)
    if tty then
      io.stderr:write(("\r\27[KWaiting for the sign-in to %s: %d:%02d left"):format(title, left // 60, left % 60))
      io.stderr:flush()
    end
  end
  local function clear() if tty then io.stderr:write("\r\27[K") io.stderr:flush() end end
  while true do
    local left = deadline - sys.monotime()
    if left <= 0 then break end
    status(math.ceil(left))
    -- on a terminal, wake each second to redraw the count; else wait the whole time
    local req = l:accept(tty and math.min(left, 1) or left)
    if req then
      clear()
      if log.verbose then
        log.trace("listener: %s %s from %s", req.method, request.hide_url(req.path .. (req.query and ("?" .. req.query) or "")),
          req.peer or "?")
      end
      if req.method ~= "GET" then
        req:respond(405, page.headers({ Allow = "GET" }), page.render("error", title, "This address only takes the app's sign-in redirect."))
      elseif req.path ~= where.path then
        req:respond(404, page.headers(), page.render("error", title, "Nothing here: this is connrt's sign-in listener."))
      else
        local q = url.form_decode(req.query)
        if q.state ~= nil and q.state == state then return req, q end
        rejected = rejected + 1
        req:respond(400, page.headers(), page.failure(title, "wrong_state",
          "This sign-in link is not the one connrt is waiting for (wrong or missing state)."))
      end
    elseif not tty then
      break
    end
  end
  clear()
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

-- A value of the test API's answer as test.ok shows it: JSON-like, cut short.
local function shown(v)
  if v == nil or v == cjson.null then return "null" end
  if type(v) == "string" then return ("%q"):format(v:sub(1, 80)) end
  if type(v) == "table" then return "an object or array" end
  return require("connrt.format").value(v)
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
        path, shown(got), shown(want), detail and (": " .. detail) or "")
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
function M.test_api(c, scope, allowed, client_secret)
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
    { secret_var = function(v) return connector.secret_var(c, v) end })
  -- an identity call: its answer is parsed here, in the runtime, so it is bounded
  full.follow, full.allowed, full.max_body = 5, allowed, limits.API_BODY
  local what = "test API " .. t.method .. " " .. target:gsub("[?#].*$", "")
  local resp = request.send(full, what)
  if resp.status < 200 or resp.status > 299 then
    local detail = request.error_detail(resp.body)
    errors.raise("provider", "%s answered %d%s; the connection was not saved", what, resp.status,
      detail and (": " .. detail) or "")
  end
  test_refused(c, resp, what)
  local body = json_body(resp)
  if not body then
    errors.raise("provider", "%s answered %d with a body that is not valid JSON", what, resp.status)
  end
  local ctype = (resp.header["content-type"] or ""):lower()
  local page_start = resp.body:sub(1, 512):lower()
  if ctype:find("html", 1, true) and next(body) == nil
      and (page_start:find("<html", 1, true) or page_start:find("<!doctype", 1, true)) then
    -- a web page (a login wall, a portal) where an API answer was expected
    local title = text.html_title(resp.body)
    errors.raise("provider", "%s answered %d with %s, not JSON%s; the connection was not saved", what, resp.status,
      ctype:match("^[^;]*"), title and (" (page title: " .. title:sub(1, 80) .. ")") or "")
  end
  return body
end

-- Everything the steps of one connect share: the connector, field values, the store,
-- the client's credentials, rendered URLs, allowed URLs, scopes and extra parameters.
local function prepare(opts)
  local c = opts.loaded or connector.load(opts.connector)
  local ctx = { c = c, opts = opts }
  ctx.fields, ctx.secret_fields = M.collect_fields(c, opts.fields or {}, opts.interactive, opts.field_files)
  ctx.st = store.open(opts.home)
  ctx.urls = {}
  for _, k in ipairs({ "issuer", "device_url", "token_url", "refresh_url", "revoke_url" }) do
    ctx.urls[k] = connector.render_url(c, k, ctx.fields)
  end
  -- allowed URLs that name fields only are known now; those naming values from the
  -- token response or hooks.lookup (declared in `values`) are rendered in `finish`
  ctx.allowed_static = {}
  for i = 1, #c.allowed_urls do
    if connector.allowed_url_static(c, i) then ctx.allowed_static[i] = connector.render_url(c, i, ctx.fields) end
  end
  if c.auth ~= "fields" then
    ctx.client_id, ctx.client_secret = M.client_credentials(c, opts, ctx.st, M.client_origins(ctx.urls, ctx.allowed_static))
  end
  ctx.scopes = {}
  for _, sc in ipairs(c.scopes) do ctx.scopes[#ctx.scopes + 1] = sc end
  for _, sc in ipairs(opts.scopes or {}) do ctx.scopes[#ctx.scopes + 1] = sc end
  return ctx
end

-- The token request context of oauth.token_request.
local function client_ctx(ctx)
  return { fields = ctx.fields, client_id = ctx.client_id, client_secret = ctx.client_secret }
end

local SCALAR = { string = true, number = true, boolean = true }

-- Checks what a hook returned as values to keep: a table of names declared in `values`
-- (none that looks secret: oauth.check_value_name) to strings, numbers or booleans, each
-- within limits.VALUE_BYTES.
local function check_values(c, hook, v)
  if type(v) ~= "table" then
    errors.raise("connector", "%s: hooks.%s must return a table of values, returned %s", c.path, hook, type(v))
  end
  for k, x in pairs(v) do
    if type(k) ~= "string" then
      errors.raise("connector", "%s: hooks.%s must return values by name, got a %s key", c.path, hook, type(k))
    end
    if not SCALAR[type(x)] then
      errors.raise("connector", "%s: hooks.%s: value %s is a %s, not a string, number or boolean", c.path, hook, k, type(x))
    end
    if x ~= x or x == math.huge or x == -math.huge then
      errors.raise("connector", "%s: hooks.%s: value %s is %s, not a number the store can keep", c.path, hook, k,
        tostring(x))
    end
    v[k] = oauth.keep_value(x)
    oauth.check_value_name(c, hook, k)
    if type(x) == "string" and #x > limits.VALUE_BYTES then
      errors.raise("provider", "%s: hooks.%s: value %s is %d bytes, more than the %d bytes connrt keeps; nothing was "
        .. "stored", c.path, hook, k, #x, limits.VALUE_BYTES)
    end
  end
  return v
end

--- The values hooks.callback keeps from the callback's query (an empty table without
-- the hook, or when it returns nil). `nil, "message"` fails the connect (a connect
-- error, exit 4) before the code is exchanged; anything else that is not a table of
-- values is a connector error naming the hook.
function M.callback_values(c, q)
  if not c.hooks.callback then return {} end
  local v, why = connector.call_hook(c, "callback", q)
  if v == nil and why ~= nil then
    -- the hook's way to say the sign-in came back without what the provider should send
    -- (QuickBooks' realmId): the connect failed, before the code is exchanged
    errors.raise("connect", "%s: hooks.callback: %s; nothing was saved", c.path, tostring(why):sub(1, 500))
  end
  if v == nil then return {} end
  local out = {}
  for k, x in pairs(check_values(c, "callback", v)) do out[k] = x end
  return out
end

-- Checks a callback's query (from the listener or pasted) and exchanges its code.
-- Returns the token and the values the callback hook kept.
local function code_to_token(ctx, q, verifier, redirect_uri)
  local c, urls = ctx.c, ctx.urls
  log.secret(q.code)
  if q.error then
    local desc = type(q.error_description) == "string" and (": " .. q.error_description) or ""
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
  local extras = M.callback_values(c, q)
  local grant = { { "grant_type", "authorization_code" }, { "code", q.code }, { "redirect_uri", redirect_uri } }
  if c.pkce then grant[#grant + 1] = { "code_verifier", verifier } end
  local treq = oauth.token_request(c, urls.token_url, client_ctx(ctx), grant)
  return oauth.fetch_token(c, treq, "token endpoint " .. urls.token_url), extras
end

--- Runs hooks.lookup: after the token exchange and before the test API, the hook may
-- send requests through the new credentials (only to the allowed URLs known so far) and
-- returns values kept with the connection (a cloud id, a tenant, a data center).
-- `scope` is the template scope so far; `allowed` the allowed URLs known so far.
-- Returns the values table (string keys, scalar values).
function M.lookup(c, scope, allowed)
  local function send(req, what_kind)
    if type(req) ~= "table" or type(req.url) ~= "string" then
      errors.raise("connector", "%s: hooks.lookup: %s needs a url", c.path, what_kind)
    end
    if #allowed == 0 then
      errors.raise("connector", "%s: hooks.lookup: no allowed URL is known before the lookup", c.path)
    end
    local target = request.allowed_target(allowed, req.url,
      c.path:gsub("%%", "%%%%") .. ": hooks.lookup: %s is refused: %s (allowed: %s)")
    local headers = {}
    for k, v in pairs(req.headers or {}) do
      request.check_header(k, tostring(v), "connector", c.path .. ": hooks.lookup: " .. what_kind)
      headers[#headers + 1] = { k, tostring(v) }
    end
    local query = {}
    for k, v in pairs(req.query or {}) do query[#query + 1] = { tostring(k), tostring(v) } end
    table.sort(query, function(a, b) return a[1] < b[1] end)
    local method = req.method and tostring(req.method):upper() or "GET"
    local full = request.with_parameters(c.request, scope,
      { method = method, url = url.add_query(target, query), headers = headers, body = req.body, json = req.json },
      c.path .. ": request", { skip_unknown = true, secret_var = function(v) return connector.secret_var(c, v) end })
    full.follow, full.allowed, full.max_body = 5, allowed, limits.API_BODY
    local resp = request.send(full, "hooks.lookup " .. method .. " " .. target:gsub("[?#].*$", ""))
    local ctype = (resp.header["content-type"] or ""):lower()
    local doc
    if ctype:find("json", 1, true) then doc = cjson.decode(resp.body) end
    return { status = resp.status, headers = resp.header, body = resp.body, json = doc }
  end
  local api = {
    request = function(req) return send(req, "api.request") end,
    get = function(u, opts)
      local req = { url = u }
      for k, v in pairs(opts or {}) do req[k] = v end
      req.method = "GET"
      return send(req, "api.get")
    end,
    values = {},
  }
  for i = #scope, 1, -1 do for k, v in pairs(scope[i]) do if SCALAR[type(v)] then api.values[k] = v end end end
  api.values.access_token, api.values.refresh_token, api.values.id_token = nil, nil, nil
  local v, err = connector.call_hook(c, "lookup", api)
  if v == nil then
    errors.raise("provider", "%s: hooks.lookup failed: %s; nothing was saved", c.path, tostring(err or "it returned nothing"))
  end
  return check_values(c, "lookup", v)
end

-- The allowed URLs known so far, in the connector's order.
local function known_allowed(ctx)
  local out = {}
  for i = 1, #ctx.c.allowed_urls do
    if ctx.allowed_static[i] then out[#out + 1] = ctx.allowed_static[i] end
  end
  return out
end

--- Sends the connector's exchange_request with the token just obtained and the client's
-- credentials, and returns the token it answers with (a refresh token the exchange does
-- not bring is kept): Facebook's short-lived user token for a long-lived one.
function M.exchange(ctx, token)
  local c = ctx.c
  local req = request.from_template(c.exchange_request, template.scope({
    token = { access_token = token.access_token, refresh_token = token.refresh_token },
    client = { client_id = ctx.client_id, client_secret = ctx.client_secret },
    fields = ctx.fields, values = token.values or {} }), c.path .. ": exchange_request")
  local where = "token exchange at " .. req.url:gsub("[?#].*$", "")
  req.max_body, req.token_answer = limits.TOKEN_BODY, true -- its answer is a token response
  local new = oauth.normalize(request.send(req, where), where, c)
  new.refresh_token = new.refresh_token or token.refresh_token
  for k, v in pairs(token.values or {}) do if new.values[k] == nil then new.values[k] = v end end
  return new
end

-- The last steps of every way of connecting: the test API with the new credentials,
-- the name and unique id, and one write transaction. `token` is nil for field
-- connections. Returns the record and whether an existing connection was updated.
local function finish(ctx, token, extras)
  local c = ctx.c
  if token and c.exchange_request then token = M.exchange(ctx, token) end
  -- only declared values are here (oauth.finish_token, check_values); `from` says who gave each
  local values, from = {}, {}
  for k, v in pairs(token and token.values or {}) do values[k], from[k] = v, nil end
  for k, v in pairs(extras or {}) do values[k], from[k] = v, "hooks.callback" end
  local token_scope, client_layer = {}, { client_id = ctx.client_id }
  if token then
    token_scope.access_token, token_scope.token_type = token.access_token, token.token_type
    token_scope.scope, token_scope.expires_in = token.scope, token.expires_in
  end
  local function scope(me)
    return template.scope({ token = token_scope, client = client_layer, fields = ctx.fields, values = values, test = me })
  end
  if c.hooks.lookup then
    local found = M.lookup(c, scope(), known_allowed(ctx))
    for k, v in pairs(found) do values[k], from[k] = v, "hooks.lookup" end
  end
  -- values are kept in clear: none may carry a secret of this connection (a hook could
  -- copy one; the token response's own values were checked by oauth.finish_token)
  local hidden = {}
  for _, s in pairs({ token and token.access_token or false, token and token.refresh_token or false,
      token and token.id_token or false, ctx.client_secret or false }) do
    if s then hidden[#hidden + 1] = s end
  end
  for k in pairs(ctx.secret_fields) do hidden[#hidden + 1] = ctx.fields[k] end
  for k, v in pairs(values) do
    for _, s in ipairs(hidden) do
      if from[k] and type(v) == "string" and type(s) == "string" and #s >= 8 and v:find(s, 1, true) then
        errors.raise("connector", "%s: %s returned the value %s, which carries a secret of the connection; values are "
          .. "kept in clear, so nothing was saved", c.path, from[k], k)
      end
    end
  end
  -- every allowed URL, now that the token's and the lookup's values exist
  ctx.allowed = {}
  for i = 1, #c.allowed_urls do
    ctx.allowed[i] = ctx.allowed_static[i] or connector.render_allowed(c, i,
      template.scope({ fields = ctx.fields, values = values }))
  end
  local me = M.test_api(c, scope(), ctx.allowed, ctx.client_secret)

  local named = scope(me)
  local name = template.render(c.name, named, c.path .. ": name")
  local unique_id = template.render(c.unique_id, named, c.path .. ": unique_id")
  if unique_id == "" then
    errors.raise("provider", "%s: unique_id rendered empty; cannot tell accounts apart", c.path)
  end
  for _, p in ipairs({ { "name", name, limits.NAME_BYTES }, { "unique_id", unique_id, limits.UNIQUE_ID_BYTES } }) do
    if #p[2] > p[3] then
      errors.raise("provider", "%s: %s rendered %d bytes (from the test API's answer), more than the %d bytes connrt "
        .. "keeps; nothing was saved", c.path, p[1], #p[2], p[3])
    end
  end

  local plain_fields, secrets = {}, { client_secret = ctx.client_secret, fields = {} }
  if token then
    secrets.access_token, secrets.refresh_token, secrets.id_token = token.access_token, token.refresh_token, token.id_token
  end
  for k, v in pairs(ctx.fields) do
    if ctx.secret_fields[k] then secrets.fields[k] = v else plain_fields[k] = v end
  end
  if next(secrets.fields) == nil then secrets.fields = nil end
  local rec = {
    v = 1, connector = c.id, title = c.title, connector_path = c.path, auth = c.auth,
    name = name, unique_id = unique_id, fields = plain_fields, values = values,
    client_id = ctx.client_id, client_auth = c.client_auth, urls = ctx.urls, allowed_urls = ctx.allowed,
    token_type = token and token.token_type, scope = token and token.scope,
    expires_at = token and token.expires_at, issued_at = token and token.issued_at,
    has_refresh_token = token and token.refresh_token ~= nil or false,
  }
  local client = ctx.client_id and { client_id = ctx.client_id, client_secret = ctx.client_secret,
    origins = M.client_origins(ctx.urls, ctx.allowed) } or nil
  local id, updated = ctx.st:save(rec, secrets, c.source, client,
    token and ("token endpoint " .. tostring(ctx.urls.token_url)) or c.path, { replace = ctx.opts.replace })
  rec.id = id
  return rec, updated
end

-- The authorization URL of a fresh attempt: a new state and PKCE pair.
local function new_attempt(ctx, redirect_uri)
  local a = { state = log.secret(oauth.new_state()) }
  local challenge
  a.verifier, challenge = oauth.new_pkce()
  log.secret(a.verifier)
  a.url = oauth.authorize_url(ctx.c, {
    fields = ctx.fields, client_id = ctx.client_id, redirect_uri = redirect_uri,
    state = a.state, challenge = challenge, scopes = ctx.scopes, params = ctx.opts.params,
  })
  return a
end

local function show_url(ctx, auth_url)
  log.err("Open this URL to connect %s:", ctx.c.title)
  io.stderr:write(auth_url, "\n") -- the URL alone on its line; its state is ours to show
  io.stderr:flush()
end

-- The authorization code flow through the loopback listener. `last` runs once the code
-- is exchanged (finish, or the blob of `connrt authorize`) and returns the result, the
-- success page and one more value; the browser's request is answered after it.
local function via_listener(ctx, last)
  local redirect_uri, where = M.redirect()
  local a = new_attempt(ctx, redirect_uri)
  -- listen before the URL is shown, so a fast browser cannot arrive first
  local l, lerr = listener.open(where.host, where.port)
  if not l then errors.raise("connect", "%s (is another connrt run waiting?)", lerr) end
  show_url(ctx, a.url)
  if ctx.opts.browser ~= false then open_browser(a.url) end
  local timeout = ctx.opts.timeout or M.DEFAULT_TIMEOUT
  log.err("Waiting for the sign-in callback on %s (timeout %ds)...", redirect_uri, timeout)
  local req, q = await_callback(l, where, a.state, sys.monotime() + timeout, ctx.c.title)
  l:close() -- state is used once: no second callback is listened for
  local ok, result, body, extra = pcall(function()
    local token, extras = code_to_token(ctx, q, a.verifier, redirect_uri)
    return last(token, extras)
  end)
  if not ok then
    local msg = errors.is(result) and result.message or "internal error"
    req:respond(400, page.headers(), page.failure(ctx.c.title, page.reason(result, q), log.redact(msg)))
    error(result, 0)
  end
  req:respond(200, page.headers(), body)
  return result, extra
end

local BLOB_PREFIX = "connrt-authorized-v1:"

-- What was pasted: the redirected URL, a bare code, or a blob from `connrt authorize`.
local function read_paste(ctx, a)
  log.err("Sign in with a browser, then paste the address the browser was sent to (or the code):")
  local timeout = ctx.opts.timeout or M.DEFAULT_TIMEOUT
  if not sys.readable(0, timeout) then
    errors.raise("connect", "nothing was pasted within %ds; nothing was saved", timeout)
  end
  local line = io.stdin:read("l")
  if not line then errors.raise("connect", "nothing was pasted on standard input; nothing was saved") end
  line = text.trim(line)
  if line == "" then errors.raise("connect", "an empty line was pasted; nothing was saved") end
  if line:sub(1, #BLOB_PREFIX) == BLOB_PREFIX then
    local doc = cjson.decode(require("connrt.crypto").b64url_decode(line:sub(#BLOB_PREFIX + 1)) or "")
    if type(doc) ~= "table" or type(doc.token) ~= "table" then
      errors.raise("connect", "the pasted line is not a connrt authorize result (damaged in copying?); nothing was saved")
    end
    if doc.connector ~= ctx.c.id then
      errors.raise("connect", "the pasted result is for connector %s, not %s; nothing was saved", tostring(doc.connector), ctx.c.id)
    end
    return "blob", doc
  end
  if line:match("^%a[%w+.-]*://") then
    local query = line:match("%?([^#]*)") or ""
    local q = url.form_decode(query)
    log.secret(q.code)
    if q.state == nil or q.state ~= a.state then
      errors.raise("connect", "the pasted address carries %s state than this sign-in's (an old or forged link?); nothing was saved",
        q.state and "another" or "no")
    end
    if not q.code and not q.error then
      errors.raise("connect", "the pasted address carries no code; nothing was saved")
    end
    return "query", q
  end
  if not line:match("^[%w%-._~+/=]+$") then
    errors.raise("connect", "the pasted text is neither an address, a code nor a connrt authorize result; nothing was saved")
  end
  if not ctx.c.pkce then
    -- without PKCE only the state ties a code to this sign-in: ask for the whole address
    errors.raise("connect", "%s does not use PKCE: paste the whole address, so its state can be checked", ctx.c.id)
  end
  return "query", { code = log.secret(line) }
end

-- The authorization code flow without a listener: the URL is printed and the result of
-- the sign-in is pasted back on standard input.
local function via_paste(ctx)
  local redirect_uri = M.redirect()
  local a = new_attempt(ctx, redirect_uri)
  show_url(ctx, a.url)
  if ctx.opts.browser ~= false then open_browser(a.url) end
  local kind, v = read_paste(ctx, a)
  if kind == "blob" then
    local tok = oauth.finish_token(v.token, "the pasted authorize result", ctx.c, "pasted")
    return finish(ctx, tok, check_values(ctx.c, "callback", v.extras or {}))
  end
  local token, extras = code_to_token(ctx, v, a.verifier, redirect_uri)
  return finish(ctx, token, extras)
end

-- The client credentials grant: the client's own credentials buy the token.
local function via_client_credentials(ctx)
  local grant = { { "grant_type", "client_credentials" } }
  if #ctx.scopes > 0 then grant[#grant + 1] = { "scope", table.concat(ctx.scopes, ctx.c.scope_separator) } end
  local treq = oauth.token_request(ctx.c, ctx.urls.token_url, client_ctx(ctx), grant)
  return finish(ctx, oauth.fetch_token(ctx.c, treq, "token endpoint " .. ctx.urls.token_url))
end

-- A number the provider sent, within [lo, hi]; `default` when it is no number at all
-- (missing, a string, NaN).
local function bounded(v, default, lo, hi)
  if type(v) ~= "number" or v ~= v then return default end
  return math.max(lo, math.min(hi, v))
end

-- The device authorization grant (RFC 8628): show the code, poll until the user has
-- signed in elsewhere, honouring the server's interval and slow_down.
local function via_device(ctx)
  local c, urls = ctx.c, ctx.urls
  local params = {}
  if #ctx.scopes > 0 then params[1] = { "scope", table.concat(ctx.scopes, c.scope_separator) } end
  local dreq = oauth.token_request(c, urls.device_url, client_ctx(ctx), params, { no_token_params = true })
  local what = "device endpoint " .. urls.device_url
  local resp = request.send(dreq, what)
  local d = cjson.decode(resp.body)
  local e, desc
  if type(d) == "table" then e, desc = oauth.error_of(d) end
  if resp.status ~= 200 or type(d) ~= "table" or e or type(d.device_code) ~= "string" or d.device_code == ""
      or type(d.user_code) ~= "string" or d.user_code == "" then
    errors.raise("provider", "%s answered %d%s, not a device authorization (RFC 8628 3.2: a device_code and a user_code)",
      what, resp.status, e and (": " .. e .. (desc and (": " .. desc) or "")) or "")
  end
  log.secret(d.device_code)
  local verify = d.verification_uri or d.verification_url
  local complete = d.verification_uri_complete
  if type(verify) ~= "string" or not url.is_web(verify) then
    errors.raise("provider", "%s answered with verification_uri %s, not an http(s) URL to send the user to", what,
      shown(verify))
  end
  if complete ~= nil and (type(complete) ~= "string" or not url.is_web(complete)) then complete = nil end
  log.err("To connect %s, open %s and enter the code: %s", c.title, verify, d.user_code)
  if complete then
    log.err("or open this URL, which carries the code:")
    log.err("%s", complete) -- the provider's text: escaped like any line
  end
  if ctx.opts.browser ~= false then open_browser(complete or verify) end
  -- the server's pace and lifetime, within bounds: an interval of a billion seconds (or
  -- NaN, or a string) must not stall connrt, nor an endless lifetime keep it polling
  local interval = bounded(d.interval, 5, 1, limits.DEVICE_INTERVAL_MAX)
  local expires = bounded(d.expires_in, 600, 1, limits.DEVICE_LIFETIME_MAX)
  local start = sys.monotime()
  local deadline = start + math.min(expires, ctx.opts.timeout or expires)
  local grant = { { "grant_type", "urn:ietf:params:oauth:grant-type:device_code" }, { "device_code", d.device_code } }
  local where = "token endpoint " .. urls.token_url
  while true do
    sys.sleep(math.max(0, math.min(interval, deadline - sys.monotime())))
    local raw = request.send(oauth.token_request(c, urls.token_url, client_ctx(ctx), grant), where)
    local body = cjson.decode(raw.body)
    local err = type(body) == "table" and body.error
    if err == "slow_down" then
      interval = math.min(interval + 5, limits.DEVICE_INTERVAL_MAX) -- RFC 8628 3.5
      log.err("The server asked to poll more slowly: every %ds now", interval)
    elseif err == "expired_token" or (err == "invalid_grant" and sys.monotime() - start >= expires) then
      -- RFC 8628 says expired_token; servers that forget expired codes say invalid_grant
      errors.raise("connect", "the device code expired before the sign-in was completed (%s); run connrt run again; nothing was saved", err)
    elseif err == "access_denied" then
      errors.raise("connect", "authorization denied: access_denied; nothing was saved")
    elseif err ~= "authorization_pending" then
      return finish(ctx, oauth.fetch_token(c, nil, where, raw, grant[1][2]))
    end
    if sys.monotime() + interval > deadline then
      errors.raise("connect", "the sign-in was not completed within %ds; nothing was saved", math.floor(deadline - start))
    end
  end
end

--- Runs the whole flow. `opts`: connector (path) or loaded (a loaded connector), fields
-- (map), field_files (map of key to path), client_id, client_secret,
-- client_secret_file, scopes (extra scopes), params (extra authorize parameters, array of
-- {name, value}), paste (boolean), timeout (seconds), browser (boolean), interactive
-- (boolean), home (store directory). Returns the saved record and whether an existing
-- connection was updated.
function M.run(opts)
  local ctx = prepare(opts)
  local ok, rec, updated = pcall(function()
    local auth = ctx.c.auth
    if auth == "fields" then return finish(ctx) end
    if auth == "client_credentials" then return via_client_credentials(ctx) end
    if auth == "device_code" then return via_device(ctx) end
    if opts.paste then return via_paste(ctx) end
    return via_listener(ctx, function(token, extras)
      local r, upd = finish(ctx, token, extras)
      return r, page.success(ctx.c.title, r.name), upd
    end)
  end)
  ctx.st:close()
  if not ok then error(rec, 0) end
  return rec, updated
end

--- `connrt authorize`: the browser part of the authorization code flow, on a machine
-- with a browser. Exchanges the code and returns a one-line blob that `connrt run
-- --paste` takes on the server, which then runs the test API and saves. Saves nothing.
function M.authorize(opts)
  local ctx = prepare(opts)
  if ctx.c.auth ~= "authorization_code" then
    ctx.st:close()
    errors.raise("usage", "%s connects with auth = %q: connrt authorize is for browser sign-ins", ctx.c.id, ctx.c.auth)
  end
  local ok, blob = pcall(via_listener, ctx, function(token, extras)
    local doc = { connector = ctx.c.id, extras = extras, token = {
      access_token = token.access_token, refresh_token = token.refresh_token, id_token = token.id_token,
      token_type = token.token_type, scope = token.scope, expires_in = token.expires_in, values = token.values } }
    local b = BLOB_PREFIX .. require("connrt.crypto").b64url_encode(cjson.encode(doc))
    return b, page.authorized(ctx.c.title)
  end)
  ctx.st:close()
  if not ok then error(blob, 0) end
  return blob
end

return M
