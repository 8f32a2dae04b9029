--- via_proxy.lua - `connrt request` and `connrt token` handed to a running `connrt
-- proxy` when CONNRT_PROXY names its unix socket: this process then loads neither
-- libcurl nor the store (no OpenSSL, no LMDB, no unsealing), and pays one local round
-- trip instead of a TLS handshake. The proxy sends the request with Connection:request,
-- as this process would, and redacts the answer as `connrt request` does (Connrt-Cli);
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

-- One exchange with the proxy at `path`: `head` (the request line and headers, without
-- the blank line) and `body`; the answer's body may have at most `max_body` bytes.
-- Returns {status, header_list, headers, body}, or nil and why the proxy could not be
-- reached (nothing was sent: the caller goes direct). Once the request is sent, a
-- failure is an error: the proxy may have sent it upstream already.
function M.exchange(path, head, body, max_body)
  local deadline = sys.monotime() + M.TIMEOUT
  local fd, why = sys.unix_connect(path, M.CONNECT_TIMEOUT)
  if not fd then return nil, why end
  -- a request not written whole is one the proxy does not act on (its length is given)
  local ok, err = sys.write(fd, head .. "\r\n\r\n" .. (body or ""), M.TIMEOUT)
  if not ok then
    sys.close(fd)
    return nil, err
  end
  local text, head_end, parts, size = "", nil, {}, 0
  -- the proxy's head carries the upstream's header lines in Connrt-Forwarded twice (as
  -- lines, and joined by name), JSON-escaped (at most 6 bytes a byte, \u001b): a head the
  -- direct path takes fits in 13 times its bound
  local max_head = 13 * limits.ANSWER_HEAD
  local max_total = max_head + max_body
  while true do
    local left = deadline - sys.monotime()
    if left <= 0 or #sys.poll_read({ fd }, left) == 0 then
      sys.close(fd)
      errors.fail("network", "timeout", "CONNRT_PROXY %s: no whole answer in %d s", path, M.TIMEOUT)
    end
    local data, rerr = sys.read(fd, 65536)
    if not data then
      sys.close(fd)
      errors.fail("network", "transport", "CONNRT_PROXY %s: %s", path, rerr)
    end
    if data == "" then break end
    size = size + #data
    if size > max_total then
      sys.close(fd)
      errors.fail("provider", "too_big", "CONNRT_PROXY %s: the answer is larger than connrt takes (%d bytes of "
        .. "body)", path, max_body)
    end
    if head_end then
      parts[#parts + 1] = data
    else
      -- the head is looked for in what came since the last look (and the 3 bytes before)
      local from = math.max(1, #text - 2)
      text = text .. data
      head_end = text:find("\r\n\r\n", from, true)
      if head_end then
        parts[1] = text:sub(head_end + 4)
        text = text:sub(1, head_end - 1)
      elseif #text > max_head then
        sys.close(fd)
        broken(path, "the answer's headers are larger than connrt takes (%d bytes)", max_head)
      end
    end
  end
  sys.close(fd)
  local status = text:match("^HTTP/1%.%d (%d%d%d)")
  if not head_end or not status then broken(path, "not an HTTP answer") end
  local resp = { status = tonumber(status), header_list = {}, headers = {} }
  for line in text:gmatch("[^\r\n]+") do
    local colon = line:find(":", 1, true)
    if colon and colon > 1 then
      local n, v = line:sub(1, colon - 1), trim(line, colon + 1)
      local lower = n:lower()
      if not HOP[lower] then
        resp.header_list[#resp.header_list + 1] = { name = n, value = v }
        resp.headers[lower] = v
      end
    end
  end
  resp.body = table.concat(parts)
  if #resp.body > max_body then
    errors.fail("provider", "too_big", "CONNRT_PROXY %s: the answer is larger than connrt takes (%d bytes of body)",
      path, max_body)
  end
  local len = tonumber(resp.headers["content-length"] or "")
  if len and #resp.body > len then resp.body = resp.body:sub(1, len) end
  -- fewer bytes than the length given: the proxy (a worker that died) or the peer cut it
  -- short, and part of an answer, a token above all, is never taken for the whole (an
  -- answer to HEAD, or a 204 or 304, gives a length without its body)
  local bodiless = head:match("^HEAD ") or resp.status == 204 or resp.status == 304
  if len and #resp.body < len and not bodiless then
    errors.fail("network", "transport", "CONNRT_PROXY %s: the answer was cut short (%d of its %d bytes)", path,
      #resp.body, len)
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
local function proxiable_headers(headers)
  for _, hv in ipairs(headers or {}) do
    local name, value = hv[1], hv[2]
    if txt.header_problem(name, value) then return false end
    local lower = name:lower()
    if txt.PROXY_DROPPED[lower] or lower:sub(1, 6) == "connrt" then return false end
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

-- A line of the answer's head: a string without CR, LF or NUL.
local function is_line(x)
  return type(x) == "string" and not x:find("[\r\n%z]")
end

-- A list of lines (keys 1..n and nothing else).
local function is_list_of_lines(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do
    if not is_line(t[i]) then return false end
  end
  return true
end

-- A map of lines to lines.
local function is_map_of_lines(t)
  if type(t) ~= "table" then return false end
  for k, v in pairs(t) do
    if not (is_line(k) and is_line(v)) then return false end
  end
  return true
end

--- `connrt request` through the proxy. `req`: ref, method, url, headers (array of
-- {name, value}), body, json. Returns the response as the command shows it ({status,
-- headers (map, redacted), shown_headers (log.shown_headers's), shown_url, body, json}),
-- or nil when no proxy is set or it cannot be reached (after a notice).
function M.request(req)
  local path = socket_path()
  if not path then return nil end
  local u = req.url
  if not proxiable_ref(req.ref) or type(u) ~= "string" or not proxiable_url(u) or not proxiable_headers(req.headers) then
    return nil
  end
  local lines = {}
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
  lines[#lines + 1] = "Connrt-Cli: 1"
  for _, hv in ipairs(req.headers or {}) do lines[#lines + 1] = hv[1] .. ": " .. hv[2] end
  local body = req.body
  if req.json ~= nil then
    body = require("cjson").encode(req.json)
    lines[#lines + 1] = "Connrt-Json: 1"
  end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  local resp, why = M.exchange(path, table.concat(lines, "\r\n"), body, limits.ANSWER_BODY)
  if not resp then notice(path, why) return nil end
  if resp.headers["connrt-error"] then raise_from(path, resp) end
  if not resp.headers["connrt-forwarded"] then
    -- the proxy's HTTP parser answered (a body over its --max-body, a head it refuses)
    -- before its handler ran: nothing went upstream, and the direct path gives the answer
    -- this command gives without a proxy
    notice(path, ("the proxy refused the request itself (%d)"):format(resp.status))
    return nil
  end
  -- the upstream's header lines as the direct path shows them (log.shown_headers), which
  -- the proxy redacted: a list of lines and a map of names to their joined values, each a
  -- string without CR, LF or NUL (which end a line)
  local fwd = require("cjson.safe").decode(resp.headers["connrt-forwarded"])
  local shown_lines, map = type(fwd) == "table" and fwd.lines, type(fwd) == "table" and fwd.map
  if not (is_list_of_lines(shown_lines) and is_map_of_lines(map)) then
    broken(path, "Connrt-Forwarded is not the answer's header lines")
  end
  local shown = M.shown_url(req.url, resp.headers["connrt-shown-url"])
  resp.shown_headers, resp.headers, resp.header_list = { lines = shown_lines, map = map }, map, nil
  resp.shown_url = shown
  -- decoded when first read (--json), within the same bound as without the proxy
  return setmetatable(resp, { __index = function(r, key)
    if key ~= "json" then return nil end
    if not (r.headers["content-type"] or ""):lower():find("json", 1, true) then return nil end
    limits.check_json_size(r.body, req.url:match("^[^?#]*"))
    local doc = require("cjson.safe").decode(r.body)
    rawset(r, "json", doc)
    return doc
  end })
end

--- `connrt token ID` through the proxy: the token, or nil (no proxy, or not reached).
function M.token(ref)
  local path = socket_path()
  if not path then return nil end
  if not proxiable_ref(ref) then return nil end
  local resp, why = M.exchange(path, ("GET /_connrt/token/%s HTTP/1.1\r\nHost: connrt-proxy\r\nConnection: close"):format(ref),
    nil, limits.TOKEN_BODY)
  if not resp then notice(path, why) return nil end
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
