--- via_proxy.lua - `connrt request` and `connrt token` handed to a running `connrt
-- proxy` when CONNRT_PROXY names its unix socket: this process then loads neither
-- libcurl nor the store (no OpenSSL, no LMDB, no unsealing), and pays one local round
-- trip instead of a TLS handshake. The proxy sends the request with Connection:request,
-- as this process would, and renders and redacts what `connrt request` prints of the
-- answer (Connrt-Cli, shown.lua);
-- its own refusals come back with a Connrt-Error header naming the error's kind, which
-- is raised here as the same error, so output and exit status are the direct path's. A
-- socket that cannot be reached is a one-line notice, and the caller goes direct.
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local log = require("connrt.log")
local sys = require("connrt.sys")
local txt = require("connrt.text")

local M = {}

-- Seconds the whole exchange with the proxy may take, from connect to the answer's last
-- byte: above the proxy's upstream timeout (60 s by default), a refresh and the retry
-- that follows it, and a bound however slowly a stuck or hostile peer trickles bytes.
M.TIMEOUT = 600
-- Seconds to connect: nothing has been sent then, so a proxy that does not take the
-- connection (stopped, its backlog full) is a notice and the caller goes direct.
M.CONNECT_TIMEOUT = 2

-- The kinds a proxy's Connrt-Error header may name (proxy.lua: json_error and the kinds
-- of the errors it passes on), each as connrt's kind and the reason it implies when the
-- body gives none of that kind. Any other is not a proxy's answer.
local KINDS = {
  failed = { "failed" }, usage = { "usage" }, connector = { "connector" }, connect = { "connect" },
  provider = { "provider" }, network = { "network" }, refused = { "refused" }, store = { "store" },
  notfound = { "notfound" }, needs_reconnect = { "provider", "needs_reconnect" }, unauthorized = { "failed" },
  internal = { "failed" },
}

-- The statuses the proxy's HTTP parser (evhttp) answers with before its handler runs,
-- when nothing was sent upstream (README: 400 a malformed head, 413 a body over
-- --max-body or broken chunked framing, 417 an Expect, 501 a method not served).
local PARSER_REFUSALS = { [400] = true, [413] = true, [417] = true, [501] = true }

-- Headers of the proxy's own connection to this process (hop-by-hop): not part of the
-- answer the direct path would show.
local HOP = txt.HOP_BY_HOP

local function socket_path()
  local p = os.getenv("CONNRT_PROXY")
  if p and p ~= "" then return p end
end

-- The proxy's answer breaks the protocol: a network error naming the socket.
local function broken(path, fmt, ...)
  errors.fail("network", "protocol", "CONNRT_PROXY %s: " .. fmt, path, ...)
end

-- `line` without the spaces and tabs at its ends: in time linear in its length (a
-- pattern like "^%s*(.-)%s*$" is quadratic in a long run of inner spaces).
local function trim(line, from)
  local i = line:find("[^ \t]", from) or #line + 1
  local j = #line
  while j >= i do
    local b = line:byte(j)
    if b ~= 32 and b ~= 9 then break end
    j = j - 1
  end
  return line:sub(i, j)
end

-- The answer's status and headers from its head `text`.
local function parse_head(path, text)
  local status = text:match("^HTTP/1%.%d (%d%d%d)%f[^%d]")
  if not status then broken(path, "not an HTTP answer") end
  -- an interim status (1xx) is never a final answer (Connection:request refuses one from
  -- an upstream too), and 0xx is no status at all
  if tonumber(status) < 200 then broken(path, "status %s is not a final answer", status) end
  local resp = { status = tonumber(status), header_list = {}, headers = {} }
  for line in text:gmatch("[^\r\n]+") do
    local colon = line:find(":", 1, true)
    if colon and colon > 1 then
      local n, v = line:sub(1, colon - 1), trim(line, colon + 1)
      local lower = n:lower()
      if lower == "transfer-encoding" then
        broken(path, "the answer has a Transfer-Encoding: not a proxy's answer")
      end
      if not HOP[lower] then
        resp.header_list[#resp.header_list + 1] = { name = n, value = v }
        resp.headers[lower] = v
      end
    end
  end
  -- a length is digits (not 0x2, -3, 1.5 or 1e400, which tonumber would read), within an
  -- integer; the proxy sends every answer it gives connrt whole, with its length, never
  -- chunked (its framing would be taken for the body)
  local len = resp.headers["content-length"]
  if len and not (len:match("^%d+$") and #len <= 15) then broken(path, "the answer's Content-Length is not a number") end
  resp.length = len and math.tointeger(tonumber(len))
  return resp
end

-- One exchange with the proxy at `path`: `head` (the request line and headers, without
-- the blank line) and `body`; the answer's body may have at most `max_body` bytes.
-- Returns {status, header_list, headers, body}, or nil and why the proxy could not be
-- reached (nothing was sent: the caller goes direct). Once the request is sent, a
-- failure is an error: the proxy may have sent it upstream already.
-- `on_head(resp)`, when given, is called once the head has come (it may raise): when it
-- returns a function and a bound, the body (up to that bound) is handed to the function
-- as it comes instead of being kept (resp.body is then nil), so an answer that is printed
-- costs no memory of its size.
function M.exchange(path, head, body, max_body, on_head)
  local deadline = sys.monotime() + M.TIMEOUT
  local fd, why = sys.unix_connect(path, M.CONNECT_TIMEOUT)
  if not fd then return nil, why end
  -- a request not written whole is one the proxy does not act on (its length is given)
  local ok, err = sys.write(fd, head .. "\r\n\r\n" .. (body or ""), M.TIMEOUT)
  if not ok then
    sys.close(fd)
    return nil, err
  end
  local text, resp, parts, size, sink, sink_max = "", nil, {}, 0, nil, nil
  local max_head = limits.ANSWER_HEAD
  -- every failure from here closes the socket first
  local function fail(kind, reason, fmt, ...)
    sys.close(fd)
    errors.fail(kind, reason, fmt, ...)
  end
  -- body bytes: kept, or handed on (never past the length given: what follows is not the
  -- answer's)
  local function take(data)
    if resp.length and size + #data > resp.length then data = data:sub(1, resp.length - size) end
    size = size + #data
    local bound = sink and sink_max or max_body
    if size > bound then
      fail("provider", "too_big", "CONNRT_PROXY %s: the answer is larger than connrt takes (%d bytes of body)", path,
        bound)
    end
    if sink then sink(data) else parts[#parts + 1] = data end
  end
  while not (resp and resp.length and size >= resp.length) do
    local left = deadline - sys.monotime()
    if left <= 0 or #sys.poll_read({ fd }, left) == 0 then
      fail("network", "timeout", "CONNRT_PROXY %s: no whole answer in %d s", path, M.TIMEOUT)
    end
    local data, rerr = sys.read(fd, 65536)
    if not data then fail("network", "transport", "CONNRT_PROXY %s: %s", path, rerr) end
    if data == "" then break end
    if resp then
      take(data)
    else
      -- the head is looked for in what came since the last look (and the 3 bytes before)
      local from = math.max(1, #text - 2)
      text = text .. data
      local head_end = text:find("\r\n\r\n", from, true)
      if head_end then
        local rest = text:sub(head_end + 4)
        local got, r = pcall(parse_head, path, text:sub(1, head_end - 1))
        if got and on_head then got, r = pcall(function() sink, sink_max = on_head(r) return r end) end
        if not got then
          sys.close(fd)
          error(r, 0)
        end
        resp = r
        take(rest)
      elseif #text > max_head then
        fail("network", "protocol", "CONNRT_PROXY %s: the answer's headers are larger than connrt takes (%d bytes)",
          path, max_head)
      end
    end
  end
  sys.close(fd)
  if not resp then broken(path, "not an HTTP answer") end
  resp.body = not sink and table.concat(parts) or nil
  -- fewer bytes than the length given: the proxy (a worker that died) or the peer cut it
  -- short, and part of an answer, a token above all, is never taken for the whole (an
  -- answer to HEAD, or a 204 or 304, gives a length without its body)
  local bodiless = head:match("^HEAD ") or resp.status == 204 or resp.status == 304
  if resp.length and size < resp.length and not bodiless then
    errors.fail("network", "transport", "CONNRT_PROXY %s: the answer was cut short (%d of its %d bytes)", path,
      size, resp.length)
  end
  return resp
end

-- Raises the proxy's own error (its kind in Connrt-Error, its JSON body {message,
-- reason}) as connrt's; an answer that is not one the proxy gives is a network error
-- (protocol) naming the socket, never taken at its word.
local function raise_from(path, resp)
  local name = resp.headers["connrt-error"]
  local k = KINDS[name or ""]
  if not k then
    broken(path, "not an answer of connrt proxy (status %d, Connrt-Error %s)", resp.status,
      txt.escape_controls(tostring(name)))
  end
  local doc = require("cjson.safe").decode(resp.body)
  if type(doc) ~= "table" or type(doc.message) ~= "string" or (doc.reason ~= nil and type(doc.reason) ~= "string") then
    broken(path, "the proxy's error answer (status %d) is not its JSON error", resp.status)
  end
  local kind = k[1]
  -- the reason the proxy's connrt gave, when it is one of that kind's
  local reason = errors.reason_kind[doc.reason] == kind and doc.reason or k[2] or errors.default_reason[kind]
  errors.fail(kind, reason, "%s", doc.message)
end

local function notice(path, why)
  log.err("connrt: CONNRT_PROXY=%s: %s; going direct", path, why)
end

-- The proxy's refusals of a call that is not its to make, before it sent anything: a
-- connection it does not serve (its --connection list), another store or key than this
-- command's (Connrt-Store), or other settings (Connrt-Settings). The command goes
-- direct, as without the proxy.
local NOT_OURS = { not_served = true, other_store = true, other_settings = true }

-- The environment variables besides the store's and key's (store.selection) that change
-- how a call is made: TLS trust, libcurl's proxy variables, the connector sandbox's
-- limits, refresh timing, the store's waits and where connrt's Lua code is; and every
-- libpq variable (PG*: a PostgreSQL store's TLS, timeouts and connection). A command
-- hands its call to a proxy only when the proxy runs with the same ones (M.settings).
M.SETTINGS = { "CONNRT_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "http_proxy", "https_proxy", "HTTPS_PROXY",
  "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", "CONNRT_CONNECTOR_MEMORY", "CONNRT_CONNECTOR_CPU",
  "CONNRT_REFRESH_MARGIN", "CONNRT_LEASE_TTL", "CONNRT_LOCK_TIMEOUT", "CONNRT_LUA_DIR", "CONNRT_MOD_DIR" }

--- A fingerprint (SHA-256, hex) of this process's M.SETTINGS and PG* variables, those
-- set and not empty, by name: equal in two processes that make a call the same way.
-- (A fingerprint, not the values: a proxy variable or PGPASSWORD may hold a password.)
function M.settings()
  local parts = {}
  for _, name in ipairs(M.SETTINGS) do
    local v = os.getenv(name)
    if v and v ~= "" then parts[#parts + 1] = name .. "=" .. v end
  end
  for _, entry in ipairs(sys.environ_with("PG")) do
    if not entry:match("^[^=]*=$") then parts[#parts + 1] = entry end
  end
  table.sort(parts)
  local crypto = require("connrt.crypto")
  return crypto.hex(crypto.sha256("connrt settings\0" .. table.concat(parts, "\0")))
end

-- True, after a notice, when `resp` (the proxy's answer) is such a refusal.
local function not_ours(path, resp)
  if not resp.headers["connrt-error"] then return false end
  local doc = require("cjson.safe").decode(resp.body)
  if type(doc) ~= "table" or not NOT_OURS[doc.reason] then return false end
  notice(path, ("the proxy does not serve this call (%s)"):format(doc.reason))
  return true
end

-- The Connrt-Store header naming the store and key this command would open
-- (store.selection), and the Connrt-Settings header (M.settings); or nil after a notice
-- when the store and key cannot be told (the direct path then says what is wrong with
-- them).
local function store_header(path)
  local selection = require("connrt.store").selection()
  if not selection then
    notice(path, "the store or key this command would open cannot be compared with the proxy's (missing, or open to "
      .. "its group or others)")
    return nil
  end
  return "Connrt-Store: " .. selection .. "\r\nConnrt-Settings: " .. M.settings()
end

-- True for a connection reference the proxy can be asked for as it is: one path segment
-- of the characters the proxy routes on, not a dot segment (which a path resolver would
-- take as one) and not the proxy's own /_connrt/. Any other goes the direct path, which
-- gives it that path's answer (no such connection, a usage error).
local function proxiable_ref(ref)
  return type(ref) == "string" and ref:match("^[%w_.-]+$") ~= nil and ref ~= "." and ref ~= ".." and ref ~= "_connrt"
end

-- True for a URL that goes on the proxy's request line (or its Connrt-Target header)
-- byte for byte as the direct path would read it: the characters RFC 3986 allows in a
-- URL, and no dot segment (the direct path resolves those against the allowed URL; on
-- the request line they would follow the connection's name). Any other goes direct,
-- which accepts or refuses it as it does without the proxy.
local function proxiable_url(u)
  if not u:match("^[%w%-._~:/?#%[%]@!$&'()*+,;=%%]*$") then return false end
  local p = u:match("^[^?#]*")
  for seg in (p .. "/"):gmatch("([^/]*)/") do
    if seg == "." or seg == ".." then return false end
  end
  return true
end

-- Header names that mean something to the proxy or to the HTTP framing between this
-- process and the proxy, not to the upstream: the proxy's own controls (Connrt-*), the
-- message's length and coding, hop-by-hop headers and Host. A request that carries one
-- goes the direct path, which sends or refuses it as it does without the proxy.

-- True for headers that reach the upstream through the proxy as the direct path would
-- send them: each one header line (connrt.text header_problem), none of the names above.
-- Nor a header named `close`, which the request's own `Connection: close` makes
-- hop-by-hop to the proxy, nor a value with blanks at either end, which the proxy's HTTP
-- parser trims (RFC 9110 5.5) and the direct path sends as given.
local function proxiable_headers(headers)
  for _, hv in ipairs(headers or {}) do
    local name, value = hv[1], hv[2]
    if txt.header_problem(name, value) then return false end
    local lower = name:lower()
    if txt.PROXY_DROPPED[lower] or lower:sub(1, 6) == "connrt" or lower == "close" then return false end
    if tostring(value):find("^[ \t]") or tostring(value):find("[ \t]$") then return false end
  end
  return true
end

--- The URL `sent` as the proxy shows it with the connection's secrets redacted (its
-- Connrt-Shown-Url), when that is `sent` with parts replaced by "[redacted]" and nothing
-- else (a proxy can hide a part, never add text); else nil. Each piece between the marks
-- is looked for from where the last one ended (textscan.find: memmem), so in time linear
-- in their lengths.
function M.shown_url(sent, shown)
  local find = require("connrt.textscan").find
  if type(shown) ~= "string" or type(sent) ~= "string" then return nil end
  -- the proxy saw the path with a leading slash
  if sent:sub(1, 1) ~= "/" and not sent:match("^%a[%w+.-]*://") and shown:sub(1, 1) == "/" then shown = shown:sub(2) end
  local MARK = "[redacted]"
  local at, from, first = 1, 1, true
  while true do
    local i = shown:find(MARK, from, true)
    local piece = shown:sub(from, (i or #shown + 1) - 1)
    local j = find(sent, piece, at)
    if not j or (first and j ~= 1) then return nil end
    if not i then
      -- the last piece ends where `sent` ends
      if sent:sub(#sent - #piece + 1) ~= piece or #sent - #piece + 1 < at then return nil end
      return shown
    end
    at, from, first = j + #piece, i + #MARK, false
  end
end

--- `connrt request` through the proxy. `req`: ref, method, url, headers (array of
-- {name, value}), body, json, form (what the command prints: shown.FORMS),
-- on_status(status, url) (called before the output, with the URL as the proxy showed it,
-- redacted) and write(bytes) (the command's standard output as the proxy rendered and
-- redacted it: shown.lua, printed as it comes). Returns {status, shown_url} once the
-- output is written; or nil when no proxy is set, it cannot be reached, or it refused the
-- request itself (after a notice: nothing was sent, nothing was written).
function M.request(req)
  local path = socket_path()
  if not path then return nil end
  local u = req.url
  if not proxiable_ref(req.ref) or type(u) ~= "string" or not proxiable_url(u) or not proxiable_headers(req.headers) then
    return nil
  end
  local store = store_header(path)
  if not store then return nil end
  local lines = { store }
  local target
  -- absolute as url.join tells it, which the direct path uses
  if u:match("^%a[%w+.-]*://") then
    target = "/" .. req.ref .. "/"
    lines[#lines + 1] = "Connrt-Target: " .. u
  else
    if u:sub(1, 1) ~= "/" then u = "/" .. u end
    target = "/" .. req.ref .. u
  end
  table.insert(lines, 1, ("%s %s HTTP/1.1"):format(req.method, target))
  lines[#lines + 1] = "Host: connrt-proxy"
  lines[#lines + 1] = "Connection: close"
  lines[#lines + 1] = "Connrt-Cli: " .. req.form
  for _, hv in ipairs(req.headers or {}) do lines[#lines + 1] = hv[1] .. ": " .. hv[2] end
  local body = req.body
  if req.json ~= nil then
    body = req.json_text or require("cjson").encode(req.json)
    lines[#lines + 1] = "Connrt-Json: 1"
  end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  -- the proxy's own error or its parser's refusal is kept (within ANSWER_BODY); the
  -- upstream's answer, rendered for the form asked (Connrt-Shown), is printed as it comes
  -- (an answer of ANSWER_BODY bytes is at most MAX_GROWTH times larger rendered: JSON
  -- escapes, "[redacted]")
  local shown_url
  local resp, why = M.exchange(path, table.concat(lines, "\r\n"), body, limits.ANSWER_BODY, function(r)
    if r.headers["connrt-error"] then return nil end
    local marked = r.headers["connrt-shown"]
    if not marked and PARSER_REFUSALS[r.status] then return nil end
    -- any other answer must be the upstream's, as the proxy rendered it for this form: an
    -- unmarked one may have been sent on (it is not sent again, directly)
    if marked ~= req.form then
      broken(path, "not an answer of connrt proxy (status %d, without Connrt-Shown: %s)", r.status, req.form)
    end
    shown_url = M.shown_url(req.url, r.headers["connrt-shown-url"])
    req.on_status(r.status, shown_url or req.url)
    return req.write, limits.ANSWER_BODY * require("connrt.shown").MAX_GROWTH
  end)
  if not resp then notice(path, why) return nil end
  if not_ours(path, resp) then return nil end
  if resp.headers["connrt-error"] then
    -- an upstream answered, and the proxy could not render its answer for this form (a
    -- body too large to decode for --json): its status line first, as the direct path
    local status = tonumber((resp.headers["connrt-shown-status"] or ""):match("^[1-9]%d%d$"))
    if status then req.on_status(status, M.shown_url(req.url, resp.headers["connrt-shown-url"]) or req.url) end
    raise_from(path, resp)
  end
  if not resp.headers["connrt-shown"] then
    -- the proxy's HTTP parser answered (a body over its --max-body, a head it refuses)
    -- before its handler ran: nothing went upstream, and the direct path gives the answer
    -- this command gives without a proxy
    notice(path, ("the proxy refused the request itself (%d)"):format(resp.status))
    return nil
  end
  return { status = resp.status, shown_url = shown_url }
end

--- `connrt token ID` through the proxy: the token, or nil (no proxy, or not reached).
function M.token(ref)
  local path = socket_path()
  if not path then return nil end
  if not proxiable_ref(ref) then return nil end
  local store = store_header(path)
  if not store then return nil end
  local resp, why = M.exchange(path, ("GET /_connrt/token/%s HTTP/1.1\r\nHost: connrt-proxy\r\nConnection: close\r\n%s")
    :format(ref, store), nil, limits.TOKEN_BODY)
  if not resp then notice(path, why) return nil end
  if not_ours(path, resp) then return nil end
  if resp.headers["connrt-error"] or resp.status ~= 200 then raise_from(path, resp) end
  -- a token as the direct path takes one from a token endpoint (oauth.lua): one line of
  -- printable text, within TOKEN_BYTES; never whatever bytes a peer sends
  local tok = resp.body:match("^(.*)\n$") or resp.body
  local bad = txt.control_char(tok)
  if tok == "" or #tok > limits.TOKEN_BYTES or bad then
    broken(path, "the proxy's answer is not a token (%s)", tok == "" and "empty" or bad and ("a control character, " .. bad)
      or ("more than " .. limits.TOKEN_BYTES .. " bytes"))
  end
  return tok
end

return M
