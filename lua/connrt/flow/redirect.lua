--- flow/redirect.lua - the redirect URL a browser sign-in comes back to, and where the
-- listener serves it (CONNRT_REDIRECT_URL, CONNRT_LISTEN). A file of its own so that
-- `connrt redirect-url` reads it without loading the rest of the flow (and with it
-- LMDB, OpenSSL and libcurl).
local errors = require("connrt.errors")
local url = require("connrt.url")

local M = {}

M.DEFAULT = "http://127.0.0.1:8400/callback"

--- The redirect URL to register with the app (CONNRT_REDIRECT_URL or the default) and
-- where the listener serves it: the redirect URL's own loopback host and port, or
-- CONNRT_LISTEN (host:port) when connrt runs behind a reverse proxy and the redirect URL
-- is public. The listener always checks the path (and the state).
function M.get()
  local r = os.getenv("CONNRT_REDIRECT_URL")
  if not r or r == "" then r = M.DEFAULT end
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

return M
