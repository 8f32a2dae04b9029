--- url.lua - parsing, building and encoding URLs, and the allowed-URL rule.
--
-- Everything that decides where a request goes works on parsed URLs, never on string
-- prefixes: `allowed` compares scheme, host, port and whole path segments after dot
-- segments are resolved, so `https://api.example.com.evil.test`, userinfo tricks and
-- `..` climbing out of a prefix do not match.
local M = {}

local split = require("connrt.urlparse").parse
local rstrip = require("connrt.text").rstrip

local DEFAULT_PORT = { http = 80, https = 443 }

--- Percent-encodes everything but RFC 3986 unreserved characters.
function M.encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

--- Decodes percent-escapes; `plus` also turns '+' into a space (form encoding).
function M.decode(s, plus)
  if plus then s = s:gsub("+", " ") end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Encodes pairs as application/x-www-form-urlencoded (or a query string).
-- `pairs_list` is an array of {name, value}; a map is sorted by name for a stable order.
function M.form_encode(params)
  local list = params
  if params[1] == nil then
    list = {}
    for k, v in pairs(params) do list[#list + 1] = { k, v } end
    table.sort(list, function(a, b) return a[1] < b[1] end)
  end
  local out = {}
  for _, p in ipairs(list) do
    out[#out + 1] = M.encode(p[1]) .. "=" .. M.encode(p[2])
  end
  return table.concat(out, "&")
end

--- Decodes a query or form body into a map (first value of a name wins) and a list.
function M.form_decode(s)
  local map, list = {}, {}
  for part in tostring(s or ""):gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=?(.*)$")
    k, v = M.decode(k, true), M.decode(v, true)
    list[#list + 1] = { k, v }
    if map[k] == nil then map[k] = v end
  end
  return map, list
end

local function bad(url, why)
  return nil, string.format("invalid URL %q: %s", url, why)
end

--- Parses an absolute http(s) URL. Returns a table {scheme, host, port, path, query,
-- fragment, userinfo, has_query} with scheme and host lowercased and the port filled in,
-- or nil and a message that names the URL. The URL is split in C (src/api/urlparse.c),
-- because every request parses its URL; these are the rules it applies:
--   * no spaces or control characters anywhere;
--   * scheme "://" with scheme http or https (any case);
--   * the authority runs to the first "/", "?" or "#"; userinfo is what comes before
--     its last "@";
--   * the host is a bracketed IPv6 literal (hex digits, ":" and ".") or runs to the
--     first ":"; a host name is letters, digits, "." and "-", starts with neither "."
--     nor "-" and has no ".."; a port is ":" and digits, from 1 to 65535;
--   * the path runs to the first "?" or "#" ("/" when empty), the query to the next "#",
--     the fragment is the rest; has_query says whether a "?" came after the authority.
function M.parse(url)
  if type(url) ~= "string" then return nil, "invalid URL: not a string" end
  local u, why = split(url)
  if not u then return bad(url, why) end
  return u
end

--- Builds a URL string from parsed parts (the default port is left out).
function M.build(u)
  local s = u.scheme .. "://"
  if u.userinfo then s = s .. u.userinfo .. "@" end
  s = s .. u.host
  if u.port and u.port ~= DEFAULT_PORT[u.scheme] then s = s .. ":" .. u.port end
  s = s .. (u.path or "/")
  if u.query and u.query ~= "" then s = s .. "?" .. u.query end
  if u.fragment and u.fragment ~= "" then s = s .. "#" .. u.fragment end
  return s
end

--- Appends query parameters (array of {name, value}) to a URL string.
function M.add_query(url, params)
  if #params == 0 then return url end
  local q = M.form_encode(params)
  local base, frag = url:match("^([^#]*)(#?.*)$")
  local sep = base:find("?", 1, true) and (base:sub(-1) == "?" and "" or "&") or "?"
  return base .. sep .. q .. frag
end

--- Resolves "." and ".." segments of an absolute path (RFC 3986 section 5.2.4), in C:
-- the allowed-URL rule uses the same function.
M.remove_dot_segments = require("connrt.urlparse").remove_dot_segments

--- `u` without its query and fragment: how a URL is named in messages and traces,
-- where a query may carry a credential.
function M.without_query(u)
  if not u:find("[?#]") then return u end
  return (u:gsub("[?#].*$", ""))
end

--- Joins a URL relative to a base: "/user" against "https://gitlab.com/api/v4" gives
-- "https://gitlab.com/api/v4/user" (the base is a prefix, as API docs write them).
-- Absolute URLs are returned as they are.
function M.join(base, ref)
  if ref:match("^%a[%w+.-]*://") then return ref end
  -- rstrip, not gsub("/+$"): that pattern is quadratic in a long run of slashes
  local b = rstrip(M.without_query(base), "/")
  if ref:sub(1, 1) ~= "/" then ref = "/" .. ref end
  return b .. ref
end

local LOOPBACK = { ["127.0.0.1"] = true, ["localhost"] = true, ["[::1]"] = true }

--- True for loopback hosts (the only hosts plain http is accepted for).
function M.is_loopback(host)
  if LOOPBACK[host] then return true end
  -- a dotted quad in 127.0.0.0/8, each part 0-255 written without leading zeros: anything
  -- else (127.0.0.999, 127.000.0.1) is a name libcurl would look up, not a loopback address
  local a, b, c, d = host:match("^(127)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  if not a then return false end
  for _, part in ipairs({ b, c, d }) do
    if tonumber(part) > 255 or (#part > 1 and part:sub(1, 1) == "0") then return false end
  end
  return true
end

--- True when `u` is an http or https URL with a host (one to send a user's browser to).
function M.is_web(u)
  local p = M.parse(u)
  return p ~= nil and (p.scheme == "https" or p.scheme == "http") and p.host ~= nil and p.host ~= ""
end

--- Checks that a URL may carry credentials: https, or http to a loopback host.
-- Returns the parsed URL, or nil and a message naming `what`.
function M.check_secure(url, what)
  local u, err = M.parse(url)
  if not u then return nil, string.format("%s: %s", what, err) end
  if u.scheme ~= "https" and not M.is_loopback(u.host) then
    return nil, string.format("%s %s: plain http is allowed only for loopback hosts", what, url)
  end
  if u.userinfo then
    return nil, string.format("%s %s: credentials in the URL are not allowed", what, url)
  end
  return u
end

local check_allowed = require("connrt.urlparse").allowed

--- True when `url` falls under one of `allowed` (URL strings): same scheme, host and
-- port, and its path (dot segments resolved) is the allowed path or below it at a
-- segment boundary; then the parsed URL too. Returns false and a reason otherwise. A URL
-- with userinfo, a backslash or an encoded '/', '\' or '.' in its path falls under none,
-- and an allowed URL with userinfo allows nothing (libcurl would read "https://a@b@host/"
-- as another host than we do). The rule is applied in C (src/api/urlparse.c), the same
-- code the HTTP client runs on the final URL right before it is sent.
function M.allowed(url, allowed)
  local u, err = M.parse(url)
  if not u then return false, err end
  local ok, why = check_allowed(url, allowed)
  if not ok then return false, why end
  return true, u
end

return M
