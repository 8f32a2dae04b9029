--- request.lua - sending HTTP requests: one libcurl client per process, errors that name
-- the URL, and the credentials a connection adds to a request.
--
-- The C client never follows redirects; `send` follows them only when asked and only to
-- URLs the caller allows, dropping every header the caller marked as a credential
-- when the scheme, host or port changes (curl alone would drop only Authorization and
-- Cookie).
local cjson = require("cjson")
local crypto = require("connrt.crypto")
local errors = require("connrt.errors")
local log = require("connrt.log")
local template = require("connrt.template")
local txt = require("connrt.text")
local url = require("connrt.url")

local M = {}

local client
local function shared_client()
  if not client then
    -- required here, not at the top: commands that send nothing never load libcurl
    client = require("connrt.http").client({ ca_bundle = os.getenv("CONNRT_CA_BUNDLE"),
      max_body = require("connrt.limits").ANSWER_BODY })
  end
  return client
end

-- ---- the --verbose trace: values are hidden by name before a line is built ----

local TRACE_BODY_MAX = 2000

-- "a=1&code=xyz" -> "a=1&code=[redacted]". One pair at a time, split at its first '='
-- (a pattern "([^&=]+)=" searched anywhere is quadratic in a long run without '=').
local function hide_pairs(text)
  return (text:gsub("[^&]+", function(pair)
    local eq = pair:find("=", 1, true)
    if eq and eq > 1 and eq < #pair and log.secret_name(url.decode(pair:sub(1, eq - 1), true)) then
      return pair:sub(1, eq) .. "[redacted]"
    end
  end))
end

local function hide_url(u)
  local base, rest = u:match("^([^?#]*)(.*)$")
  return base .. rest:gsub("^%?([^#]*)", function(q) return "?" .. hide_pairs(q) end)
    :gsub("#(.*)$", function(f) return "#" .. hide_pairs(f) end)
end

local function hide_json(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    out[k] = (type(k) == "string" and log.secret_name(k) and x ~= "" and type(x) ~= "table") and "[redacted]" or hide_json(x)
  end
  return out
end

local function hide_body(body, ctype)
  if body == nil or body == "" then return nil end
  ctype = (ctype or ""):lower()
  local doc = body:match("^%s*[%[{]") and require("cjson.safe").decode(body)
  local text
  if type(doc) == "table" then
    text = cjson.encode(hide_json(doc))
  elseif ctype:find("x-www-form-urlencoded", 1, true) or body:match("^[%w%%._~+-]+=[^%s]*$") then
    text = hide_pairs(body)
  elseif body:find("[%z\1-\8\14-\31\127]") then
    return ("(%d bytes of %s)"):format(#body, ctype ~= "" and ctype or "binary data")
  else
    text = body
  end
  if #text > TRACE_BODY_MAX then text = log.clip(text, TRACE_BODY_MAX) .. ("... (%d bytes)"):format(#body) end
  return text
end

-- A token endpoint's answer carries credentials under any name a provider chooses (a
-- token_response hook finds them in {"data": {"tok": ...}}), and the trace is written
-- before any hook has said which values are secret. So such an answer is traced as its
-- shape: every string is hidden but those of the names RFC 6749 gives to what is no
-- secret (an error, its description, the token type, the scope); numbers and booleans
-- stay (expires_in, ok).
local SHOWN = { error = true, error_description = true, error_uri = true, token_type = true, scope = true,
  message = true }

local function shape_json(v)
  if type(v) ~= "table" then return type(v) == "string" and v ~= "" and "[redacted]" or v end
  local out = {}
  for k, x in pairs(v) do
    out[k] = (SHOWN[k] and type(x) ~= "table") and x or shape_json(x)
  end
  return out
end

local function shape_body(body, ctype)
  if body == nil or body == "" then return nil end
  local doc = body:match("^%s*[%[{]") and require("cjson.safe").decode(body)
  local text
  if type(doc) == "table" then
    text = cjson.encode(shape_json(doc))
  elseif (ctype or ""):lower():find("x-www-form-urlencoded", 1, true) or body:match("^[%w%%._~+-]+=[^%s]*$") then
    text = body:gsub("[^&]+", function(pair)
      local eq = pair:find("=", 1, true)
      if not eq then return "[redacted]" end
      if SHOWN[url.decode(pair:sub(1, eq - 1), true)] then return nil end
      return pair:sub(1, eq) .. "[redacted]"
    end)
  else
    return ("(%d bytes of %s, not shown: a token endpoint's answer)"):format(#body, ctype or "no content type")
  end
  if #text > TRACE_BODY_MAX then text = log.clip(text, TRACE_BODY_MAX) .. ("... (%d bytes)"):format(#body) end
  return text
end

--- A URL for the trace: the values of secret-named query parameters hidden.
M.hide_url = hide_url

-- `hidden`: lowercased names of headers whose value carries a secret (M.with_parameters
-- says which of a connector's do); a secret-looking name is hidden too, and every line
-- passes log.redact.
-- `shape_only`: the answer is a token endpoint's (shape_body).
local function trace_exchange(method, target, headers, hidden_headers, body, resp, shape_only)
  log.trace("> %s %s", method, hide_url(target))
  local ctype
  for _, h in ipairs(headers) do
    local hidden = log.secret_name(h[1]) or (hidden_headers or {})[h[1]:lower()]
    log.trace("> %s: %s", h[1], hidden and "[redacted]" or h[2])
    if h[1]:lower() == "content-type" then ctype = h[2] end
  end
  local b = hide_body(body, ctype)
  if b then log.trace("> %s", b) end
  if not resp then return end
  log.trace("< %d", resp.status)
  for _, h in ipairs(resp.headers or {}) do
    log.trace("< %s: %s", h.name, log.secret_name(h.name) and "[redacted]" or h.value)
  end
  b = (shape_only and shape_body or hide_body)(resp.body, resp.header["content-type"])
  if b then log.trace("< %s", b) end
end

-- The reason (errors.lua) of each transport failure code of src/api/http.c.
local TRANSPORT_REASON = { connect = "unreachable", resolve = "unreachable", timeout = "timeout", tls = "tls",
  protocol = "protocol", other = "transport" }

--- Sends `req` {method, url, headers = array of {name, value}, body, secret_headers =
-- set of lowercased header names (credentials: dropped on a redirect to another
-- origin), hidden_headers = set of lowercased header names the --verbose trace hides
-- (those carrying a secret), follow = max redirects, allowed = URL list for
-- redirects, origin = req.url already parsed, when the caller has it, max_body = bytes
-- the answer may have (a token endpoint's: limits.TOKEN_BODY), token_answer = true when
-- the answer carries credentials (a token endpoint's: traced as its shape only), stream = true to
-- let a final answer's body stream (`connrt proxy` only: src/api/http.c; the response then has
-- `stream` and an empty body), hold = statuses never streamed, stream_max = bytes a streamed body
-- may have, abortable = true to let the proxy's loop stop it when its client goes away}. `what` names the
-- request in errors ("token endpoint"). Returns the client's response {status, headers
-- (list), header (map, names lowercased: built in src/api/http.c), body, url}. Raises a
-- network error when no answer came.
function M.send(req, what)
  local current = req.url
  local headers = req.headers or {}
  local method, body = req.method or "GET", req.body
  local origin = req.origin or url.parse(current)
  for hop = 0, req.follow or 0 do
    local lines = {}
    for i, h in ipairs(headers) do lines[i] = h[1] .. ": " .. h[2] end
    local resp, err, code = shared_client():request({
      method = method, url = current, headers = lines, body = body, timeout = req.timeout, max_body = req.max_body,
      allowed = req.allowed,
      -- `connrt proxy` (a request from one of its coroutines): a final answer may stream;
      -- the statuses the caller acts on and a redirect it follows are kept whole
      stream = req.stream, hold = req.hold, hold_redirects = hop < (req.follow or 0), stream_max = req.stream_max,
      abortable = req.abortable,
    })
    if log.verbose then trace_exchange(method, current, headers, req.hidden_headers, body, resp, req.token_answer) end
    if not resp then
      local why = (err or "?"):gsub("^%u+ %S+: ", "")
      if code == "refused" then
        errors.fail("refused", "refused_url", "%s: %s %s: %s (allowed: %s); nothing was sent", what, method, url.without_query(current),
          why, table.concat(req.allowed, ", "))
      end
      if code == "too_big" then
        -- it did answer: with more than any answer here should hold
        errors.fail("provider", "too_big", "%s: %s %s answered with a %s", what, method, url.without_query(current),
          (why:gsub("^response ", "")))
      end
      if code == "client_left" then
        -- (connrt proxy's loop: the client whose request this is has gone)
        errors.fail("network", "client_left", "%s: not sent, or stopped: the client closed its side of the connection "
          .. "(connrt proxy takes a client that shut down its sending side for gone, as nginx does)", what)
      end
      errors.fail("network", TRANSPORT_REASON[code] or "transport", "%s: no answer from %s %s: %s", what, method,
        url.without_query(current), why)
    end
    local loc = resp.header.location
    if not (resp.status >= 300 and resp.status < 400 and loc and hop < (req.follow or 0)) then
      return resp
    end
    local target = loc:match("^%a[%w+.-]*://") and loc or url.join(url.build({
      scheme = origin.scheme, host = origin.host, port = origin.port, path = "",
    }), loc)
    -- the allowed URLs as they are now (a long-running caller, the proxy, reads them
    -- again from the store: they may have changed while this hop was answered)
    if req.before_hop then req.allowed = req.before_hop() end
    local ok, why = url.allowed(target, req.allowed or {})
    if not ok then
      errors.raise("refused", "%s: %s %s redirected to %s, which is refused: %s", what, method,
        url.without_query(current), url.without_query(target), why)
    end
    local t = url.parse(target)
    local keeps_body = resp.status == 307 or resp.status == 308
    if t.scheme ~= origin.scheme or t.host ~= origin.host or t.port ~= origin.port then
      if keeps_body and body and req.body_secret then
        -- the body carries what the connector added (credentials in a form): it would go
        -- to the other origin as it is, since a 307 or 308 keeps it
        errors.raise("refused", "%s: %s %s redirected to another origin (%s) with a %d, which would resend the body "
          .. "the connector's parameters are in; not followed", what, method, url.without_query(current),
          url.without_query(target), resp.status)
      end
      local kept = {}
      for _, h in ipairs(headers) do
        if not (req.secret_headers or {})[h[1]:lower()] then kept[#kept + 1] = h end
      end
      headers = kept
    end
    if resp.status == 303 or ((resp.status == 301 or resp.status == 302) and method == "POST") then
      method, body = "GET", nil
    end
    current, origin = target, t
  end
end

-- True when a header's template or its rendered value carries a secret: it names one
-- (opts.secret_var, else a token or the client secret) or holds a registered one.
local function carries_secret(text, value, secret_var)
  for _, var in ipairs(template.variables(text)) do
    if secret_var then
      if secret_var(var) then return true end
    else
      local ns, name = template.split(var)
      if (ns == nil or ns == "token") and require("connrt.connector").SECRET_NAMES[name] then return true end
    end
  end
  return log.redact(value) ~= value
end
M.carries_secret = carries_secret

--- Builds the request a connection sends: the connector's request parameters (headers,
-- query, body values) rendered with `scope`, merged with the caller's own `req`
-- (caller's values win). `req.json`, when given, is sent as a JSON body (`req.json_text`,
-- the text it was read from, as it is when no body value joins it). Every header the
-- connector adds counts as a credential (dropped on a redirect to another origin), and a
-- body it adds to (refused on a 307/308 to another origin); the --verbose trace hides
-- the headers that carry a secret (opts.secret_var(path) says which placeholders name
-- one) and shows the rest. With opts.from_connector, `req` itself was made by the
-- connector (its test API, a hooks.lookup request): its headers and body count as the
-- connector's too.
local function known_only(map, scope)
  local out = {}
  for k, v in pairs(map or {}) do
    local ok = true
    for _, var in ipairs(template.variables(tostring(v))) do
      local segs = {}
      for seg in var:gmatch("[^.]+") do segs[#segs + 1] = seg end
      if template.lookup(scope, segs) == nil then ok = false end
    end
    if ok then out[k] = v end
  end
  return out
end

-- ---- headers are one line each: checked where they are made ----

--- Raises an error of `kind` ("usage" for the caller's own headers, "connector" for a
-- hook's or a connector's) naming `where` unless `name: value` is one header line
-- (text.header_problem).
function M.check_header(name, value, kind, where)
  local why = txt.header_problem(name, value)
  if why then errors.raise(kind, "%s: %s", where, why) end
end

-- template.render's `encode` for the values substituted into a header (or, with
-- `strict`, into HTTP Basic credentials, where RFC 7617 allows no control character at
-- all): each must fit on the header's line. Whose mistake it is depends on where the
-- value comes from: the layer of the scope (template.scope) it is found in; the fields and
-- the client's credentials are the user's, the rest the provider's (tokens are checked when they arrive: oauth.finish_token).
local function one_line(scope, where, strict)
  return function(v, path)
    local bad = txt.control_char(v, not strict)
    if not bad then return v end
    local layer = template.layer_of(scope, path)
    if layer == "fields" or layer == "client" then
      errors.raise("usage", "%s: {{%s}}, which you gave, contains a control character (%s), which a header cannot carry",
        where, path, bad)
    end
    errors.raise("provider", "%s: {{%s}}, a value from the provider, contains a control character (%s), which a header "
      .. "cannot carry", where, path, bad)
  end
end

-- Renders a map of header templates into {name, value} pairs, each value checked.
local function render_headers(map, scope, where)
  local out = template.render_pairs(map, scope, where, one_line(scope, where))
  for _, p in ipairs(out) do M.check_header(p[1], p[2], "connector", where) end
  return out
end
M.render_headers = render_headers

--- The HTTP Basic Authorization header of `user` and `pass` (RFC 7617: base64 of
-- user-id ":" password), its credential registered as a secret.
function M.basic_authorization(user, pass)
  return { "Authorization", "Basic " .. log.secret(crypto.b64encode(user .. ":" .. pass)) }
end

-- HTTP Basic from rendered templates.
local function basic_header(basic, scope, where)
  local user = template.render(basic.username, scope, where .. ".basic.username", one_line(scope, where .. ".basic.username", true))
  local pass = basic.password and template.render(basic.password, scope, where .. ".basic.password",
    one_line(scope, where .. ".basic.password", true)) or ""
  return M.basic_authorization(user, pass)
end

-- The connector's part of M.with_parameters, which depends on `params` and `scope` alone
-- (so a connection caches it while its scope stays: Connection:request): its headers
-- rendered ({name, value, lower, hidden}), its query and body values rendered.
function M.render_parameters(params, scope, where, opts)
  if opts and opts.skip_unknown then
    -- before every value exists (hooks.lookup): leave out parameters that name missing ones
    params = { headers = known_only(params.headers, scope), query = known_only(params.query, scope),
      body = known_only(params.body, scope), basic = params.basic }
  end
  local added = render_headers(params.headers, scope, where .. ".headers")
  if params.basic then added[#added + 1] = basic_header(params.basic, scope, where) end
  local secret_var = opts and opts.secret_var
  local headers = {}
  for i, p in ipairs(added) do
    local text = params.headers and params.headers[p[1]]
    headers[i] = { p[1], p[2], p[1]:lower(), text == nil or carries_secret(tostring(text), p[2], secret_var) }
  end
  return { headers = headers,
    query = next(params.query or {}) and template.render_pairs(params.query, scope, where .. ".query") or nil,
    form = next(params.body or {}) and template.render_pairs(params.body, scope, where .. ".body") or {} }
end

--- Builds the request a connection sends (the comment above known_only says how).
-- `opts.rendered`: what M.render_parameters returned for the same params and scope, when
-- the caller kept it.
function M.with_parameters(params, scope, req, where, opts)
  local out = { method = req.method or "GET", headers = {}, body = req.body, secret_headers = {}, hidden_headers = {} }
  local rendered = opts and opts.rendered or M.render_parameters(params, scope, where, opts)
  local given = {}
  local own = req.headers or {}
  for _, h in ipairs(own) do given[h[1]:lower()] = true end
  local headers, secret = out.headers, out.secret_headers
  for _, p in ipairs(rendered.headers) do
    local name = p[3]
    if not given[name] then
      headers[#headers + 1] = { p[1], p[2] }
      secret[name] = true
      if p[4] then out.hidden_headers[name] = true end
    end
  end
  local from_connector = opts and opts.from_connector
  for _, h in ipairs(own) do
    headers[#headers + 1] = h
    if from_connector then
      secret[h[1]:lower()] = true
      if log.redact(h[2]) ~= h[2] then out.hidden_headers[h[1]:lower()] = true end
    end
  end
  out.url = req.url
  if rendered.query then out.url = url.add_query(req.url, rendered.query) end
  local form = rendered.form
  out.body_secret = #form > 0 or (from_connector and (req.json ~= nil or (req.body or "") ~= "")) or false
  if req.json ~= nil then
    -- a JSON body: the connector's body values join the object; the caller's win
    local doc = req.json
    if type(doc) == "table" and #form > 0 then
      doc = {}
      for k, v in pairs(req.json) do doc[k] = v end
      for _, p in ipairs(form) do if doc[p[1]] == nil then doc[p[1]] = p[2] end end
    end
    -- as the caller wrote it when nothing joined it (req.json_text): cjson would write
    -- its numbers again to 14 digits (12345678901234567890 as 1.2345678901235e+19)
    out.body = doc == req.json and req.json_text or cjson.encode(doc)
    out.headers[#out.headers + 1] = { "Content-Type", "application/json" }
  elseif #form > 0 and out.method ~= "GET" and out.method ~= "HEAD" then
    if out.body and out.body ~= "" then
      out.body = out.body .. "&" .. url.form_encode(form)
    else
      out.body = url.form_encode(form)
      out.headers[#out.headers + 1] = { "Content-Type", "application/x-www-form-urlencoded" }
    end
  end
  return out
end

--- The provider's error in a JSON answer, as text, or nil: `error`, `message` or
-- `error_description`, or the `message` or `code` of an error object.
function M.error_detail(body)
  local doc = require("cjson.safe").decode(body or "")
  if type(doc) ~= "table" then return nil end
  local e = doc.error or doc.message or doc.error_description
  if type(e) == "table" then e = e.message or e.code end
  if e == nil or e == cjson.null or type(e) == "table" then return nil end
  return log.clip(tostring(e), 300)
end

--- Joins `u` to the first of `allowed` (when relative) and checks it against all of
-- them; returns the URL and its parsed form, or raises a refused error: `message` is a
-- format given the URL (without its query), why, and the allowed list.
function M.allowed_target(allowed, u, message)
  local target = url.join(allowed[1], u)
  local ok, why = url.allowed(target, allowed)
  if not ok then errors.raise("refused", message, url.without_query(target), why, table.concat(allowed, ", ")) end
  return target, why
end

--- Refuses (a connector error) the URL `target` of a declared request (`where`: the
-- connector and key) outside `reach` (origins.reach).
function M.check_reach(target, where, reach)
  local inside, o = require("connrt.origins").within(target, reach)
  if not inside then
    errors.raise("connector", "%s.url sends to %s, which is not the origin of the connection's token, refresh, revoke, "
      .. "device or allowed URLs (%s): tokens and the client secret go nowhere else; nothing was sent", where, o,
      table.concat(reach or {}, ", "))
  end
end

--- Builds a request a connector declares as data (revoke_request, exchange_request):
-- { method, url, headers, query, form, json, basic } rendered with `scope` (an array of
-- tables, first match wins). The URL's values are percent-encoded and it must be https
-- (or loopback), at one of the origins of `reach` (origins.reach of the connection: its
-- token, refresh, revoke, device and allowed URLs), as it carries tokens and the client
-- secret. Returns { method, url, headers, body } for M.send.
function M.from_template(spec, scope, where, reach)
  local connector = require("connrt.connector")
  local target = connector.render_url_text(spec.url, scope, where .. ".url")
  local ok, why = url.check_secure(target, where .. ".url")
  if not ok then errors.raise("connector", "%s", why) end
  M.check_reach(target, where, reach)
  target = url.add_query(target, template.render_pairs(spec.query, scope, where .. ".query"))
  local headers = render_headers(spec.headers, scope, where .. ".headers")
  if spec.basic then headers[#headers + 1] = basic_header(spec.basic, scope, where) end
  local body
  if spec.json then
    body = cjson.encode(template.render_table(spec.json, scope, where .. ".json"))
    headers[#headers + 1] = { "Content-Type", "application/json" }
  elseif spec.form then
    body = url.form_encode(template.render_pairs(spec.form, scope, where .. ".form"))
    headers[#headers + 1] = { "Content-Type", "application/x-www-form-urlencoded" }
  end
  -- all of it is the connector's: every header a credential, the body one too
  local secret_headers = {}
  for _, h in ipairs(headers) do secret_headers[h[1]:lower()] = true end
  return { method = spec.method or "POST", url = target, headers = headers, body = body, secret_headers = secret_headers,
    body_secret = body ~= nil }
end

return M
