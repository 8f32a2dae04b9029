--- via_proxy.lua - `connrt request` and `connrt token` handed to a running `connrt
-- proxy` when CONNRT_PROXY names its unix socket: this process then loads neither
-- libcurl nor the store (no OpenSSL, no LMDB, no unsealing), and pays one local round
-- trip instead of a TLS handshake. The proxy sends the request with Connection:request,
-- as this process would, and redacts the answer as `connrt request` does (Connrt-Cli);
-- its own refusals come back with a Connrt-Error header naming the error's kind, which
-- is raised here as the same error, so output and exit status are the direct path's. A
-- socket that cannot be reached is a one-line notice, and the caller goes direct.
local errors = require("connrt.errors")
local log = require("connrt.log")
local sys = require("connrt.sys")

local M = {}

M.TIMEOUT = 600 -- seconds without a byte from the proxy before giving up

-- the proxy's kinds that are not connrt's own
local KINDS = { needs_reconnect = "provider", unauthorized = "failed", internal = "failed" }

local function socket_path()
  local p = os.getenv("CONNRT_PROXY")
  if p and p ~= "" then return p end
end

-- One exchange with the proxy: `head` (the request line and headers, without the blank
-- line) and `body`. Returns {status, header_list, headers, body}, or nil and why the
-- proxy could not be reached (the caller goes direct).
local function exchange(path, head, body)
  local fd, why = sys.unix_connect(path)
  if not fd then return nil, why end
  local ok, err = sys.write(fd, head .. "\r\n\r\n" .. (body or ""))
  if not ok then
    sys.close(fd)
    return nil, err
  end
  local parts = {}
  while true do
    if #sys.poll_read({ fd }, M.TIMEOUT) == 0 then
      sys.close(fd)
      errors.raise("network", "CONNRT_PROXY %s: no answer in %d s", path, M.TIMEOUT)
    end
    local data = sys.read(fd, 65536)
    if not data or data == "" then break end
    parts[#parts + 1] = data
  end
  sys.close(fd)
  local text = table.concat(parts)
  local head_end = text:find("\r\n\r\n", 1, true)
  local status = text:match("^HTTP/1%.%d (%d%d%d)")
  if not head_end or not status then
    errors.raise("network", "CONNRT_PROXY %s: not an HTTP answer", path)
  end
  local resp = { status = tonumber(status), header_list = {}, headers = {} }
  for line in text:sub(1, head_end - 1):gmatch("[^\r\n]+") do
    local n, v = line:match("^([^:]+):%s*(.-)%s*$")
    if n then
      resp.header_list[#resp.header_list + 1] = { name = n, value = v }
      resp.headers[n:lower()] = v
    end
  end
  resp.body = text:sub(head_end + 4)
  local len = tonumber(resp.headers["content-length"] or "")
  if len and #resp.body > len then resp.body = resp.body:sub(1, len) end
  return resp
end

-- Raises the proxy's own error as connrt's.
local function raise_from(resp)
  local kind = resp.headers["connrt-error"]
  local doc = require("cjson.safe").decode(resp.body) or {}
  kind = KINDS[kind] or kind
  if not errors.exit_codes[kind] then kind = "failed" end
  local message = tostring(doc.message or ("the proxy answered " .. resp.status))
  -- the reason the proxy's connrt gave, when it is one of that kind's
  if errors.reason_kind[doc.reason] == kind then errors.fail(kind, doc.reason, "%s", message) end
  errors.raise(kind, "%s", message)
end

local function notice(path, why)
  log.err("connrt: CONNRT_PROXY=%s: %s; going direct", path, why)
end

-- a header value or path that cannot go on a request line or header line as it is
local function one_line(s) return not s:find("[%c]") end

--- `connrt request` through the proxy. `req`: ref, method, url, headers (array of
-- {name, value}), body, json. Returns the response as Connection:request returns it
-- ({status, headers (map), header_list, body, json}), or nil when no proxy is set or it
-- cannot be reached (after a notice).
function M.request(req)
  local path = socket_path()
  if not path then return nil end
  local lines = {}
  local u = req.url
  local target
  if u:match("^[%a][%w+.-]*:") then
    if not one_line(u) then errors.raise("usage", "the URL holds a control character") end
    target = "/" .. req.ref .. "/"
    lines[#lines + 1] = "Connrt-Target: " .. u
  else
    if u:sub(1, 1) ~= "/" then u = "/" .. u end
    if not one_line(u) or u:find(" ", 1, true) then errors.raise("usage", "the URL %q holds a space or a control character", u) end
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
  local resp, why = exchange(path, table.concat(lines, "\r\n"), body)
  if not resp then notice(path, why) return nil end
  if resp.headers["connrt-error"] then raise_from(resp) end
  -- decoded when first read (--json), within the same bound as without the proxy
  return setmetatable(resp, { __index = function(r, key)
    if key ~= "json" then return nil end
    if not (r.headers["content-type"] or ""):lower():find("json", 1, true) then return nil end
    require("connrt.limits").check_json_size(r.body, req.url:match("^[^?#]*"))
    local doc = require("cjson.safe").decode(r.body)
    rawset(r, "json", doc)
    return doc
  end })
end

--- `connrt token ID` through the proxy: the token, or nil (no proxy, or not reached).
function M.token(ref)
  local path = socket_path()
  if not path then return nil end
  if not ref:match("^[%w_.-]+$") then return nil end
  local resp, why = exchange(path, ("GET /_connrt/token/%s HTTP/1.1\r\nHost: connrt-proxy\r\nConnection: close"):format(ref))
  if not resp then notice(path, why) return nil end
  if resp.headers["connrt-error"] or resp.status ~= 200 then raise_from(resp) end
  return (resp.body:gsub("\n$", ""))
end

return M
