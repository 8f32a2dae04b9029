--- fuzz/url.lua - harness for the URL parser and the allowed-URL rule (lua/connrt/url.lua).
--
-- Input: lines; the first is a URL, the next ones (up to 8) the allowed URLs. Checks that
-- url.parse gives a well-formed table (which url.build turns back into the same URL) or
-- nil and a message; that url.remove_dot_segments agrees with RFC 3986's algorithm; and
-- that whatever url.allowed accepts (as it is, or joined to the first allowed URL as
-- request.allowed_target does) libcurl, which sends the request, reads with the same
-- scheme, host and port and a path under the same allowed URL's path.
local url = require("connrt.url")

local curl_url = _G.curl_url -- registered by fuzz/lua_driver.c

local function check(cond, fmt, ...)
  if not cond then error(string.format(fmt, ...), 2) end
end

-- RFC 3986 section 5.2.4, step by step, to compare url.remove_dot_segments with.
local function rfc_remove_dots(input)
  local out = ""
  local function drop_last() out = out:gsub("/?[^/]*$", "", 1) end
  while input ~= "" do
    if input:sub(1, 3) == "../" then input = input:sub(4)
    elseif input:sub(1, 2) == "./" then input = input:sub(3)
    elseif input:sub(1, 3) == "/./" then input = input:sub(3)
    elseif input == "/." then input = "/"
    elseif input:sub(1, 4) == "/../" then input = input:sub(4); drop_last()
    elseif input == "/.." then input = "/"; drop_last()
    elseif input == "." or input == ".." then input = ""
    else
      local seg = input:match("^/?[^/]*")
      out = out .. seg
      input = input:sub(#seg + 1)
    end
  end
  return out
end

local FIELDS = { "scheme", "userinfo", "host", "port", "path", "query", "fragment" }

local function check_parsed(u, s)
  check(u.scheme == "http" or u.scheme == "https", "scheme %s", tostring(u.scheme))
  check(type(u.host) == "string" and u.host ~= "" and u.host == u.host:lower(), "host %s", tostring(u.host))
  check(math.type(u.port) == "integer" and u.port >= 1 and u.port <= 65535, "port %s", tostring(u.port))
  check(type(u.path) == "string" and u.path:sub(1, 1) == "/", "path %s", tostring(u.path))
  check(type(u.query) == "string" and type(u.fragment) == "string", "query or fragment is not a string")
  check(u.userinfo == nil or type(u.userinfo) == "string", "userinfo %s", type(u.userinfo))
  local again = url.parse(url.build(u))
  check(again, "%q parses, but its rebuilt form %q does not", s, url.build(u))
  for _, k in ipairs(FIELDS) do
    check(again[k] == u[k], "%s of %q changes from %s to %s when rebuilt", k, s, tostring(u[k]), tostring(again[k]))
  end
  local p = url.remove_dot_segments(u.path)
  local want = rfc_remove_dots(u.path)
  if want == "" then want = "/" end
  check(p == want, "remove_dot_segments(%q) is %q, RFC 3986 says %q", u.path, p, want)
end

local function under(path, prefix)
  prefix = prefix:gsub("/$", "")
  return prefix == "" or path == prefix or path:sub(1, #prefix + 1) == prefix .. "/"
end

-- url.allowed accepted `target`: one allowed URL that accepts it on its own must also hold
-- it as libcurl reads both (when libcurl refuses the target, nothing is sent).
local function check_curl(target, allowed)
  local s, h, p, path = curl_url(target)
  if not s then return end
  for _, a in ipairs(allowed) do
    if url.allowed(target, { a }) then
      local as, ah, ap, apath = curl_url(a)
      if as and as:lower() == s:lower() and ah:lower() == h:lower() and ap == p and under(path, apath) then
        return
      end
    end
  end
  error(string.format("url.allowed accepts %q, which libcurl reads as %s://%s:%s%s, outside %s",
    target, s, h, tostring(p), tostring(path), table.concat(allowed, " ")))
end

local function check_allowed(target, allowed)
  local ok, why = url.allowed(target, allowed)
  check(ok == true and type(why) == "table" or ok == false and type(why) == "string",
    "allowed returned %s, %s", tostring(ok), tostring(why))
  if ok then
    local u = url.parse(target)
    check(u and not u.userinfo, "allowed accepts %q with userinfo or unparsed", target)
    check_curl(target, allowed)
  end
end

return function(data)
  local lines = {}
  for line in (data .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
    if #lines == 9 then break end
  end
  local target = lines[1]
  local allowed = { table.unpack(lines, 2) }

  local u, err = url.parse(target)
  if u then check_parsed(u, target) else check(type(err) == "string", "parse gave no message") end
  check_allowed(target, allowed)
  if #allowed > 0 then check_allowed(url.join(allowed[1], target), allowed) end
end
