-- The allowed-URL cases, in one place: the URLs a connection whose allowed URLs are an
-- https API under /v1 and an http service on a loopback port must accept, and the bypass
-- attempts it must refuse (other hosts and ports, userinfo tricks, encoded and ;param dot
-- segments...). spec/url_spec.lua checks them against connrt.url with example hosts;
-- spec/proxy_nginx_spec.lua sends them through `connrt proxy` as Connrt-Target values with
-- the hosts of a real nginx, whose log shows what was sent.
--
-- M.cases(where) fills in the hosts. where: api (the API's host), port (its port as
-- usually written: "" for https's default), xport (the same port spelled out), wrongport
-- (another port on the API's host), near (another name near or for the API's host), loop
-- (the loopback service's host:port), loop_port (the same host, another port), loop_host
-- (another loopback host, the same port). Returns {allowed, ok, refused}, arrays of URLs.
local M = {}

local ALLOWED = { "https://{api}{port}/v1", "http://{loop}/" }

local OK = {
  "https://{api}{port}/v1", "https://{api}{port}/v1/", "https://{api}{port}/v1/me",
  "https://{API}{port}/v1/me?x=1", "https://{api}{xport}/v1/me",
  "https://{api}{port}/v1/a/../b", "http://{loop}/me",
  -- path parameters on a segment that is a name (matrix params, jsessionid)
  "https://{api}{port}/v1/a;b=1/me", "https://{api}{port}/v1/..x;y/me",
  "https://{api}{port}/v1/me;jsessionid=1", "https://{api}{port}/v1/...;x",
  -- percent-encoded text that decodes to no separator: UTF-8, a literal '%', a blank
  "https://{api}{port}/v1/caf%C3%A9", "https://{api}{port}/v1/100%25off", "https://{api}{port}/v1/a%20b",
}

local REFUSED = {
  "https://{api}.evil.test{port}/v1/me",
  "https://{api}{port}@evil.test/v1/me",
  "https://evil.test@{api}{port}/v1/me",
  "https://{api}{wrongport}/v1/me",
  "http://{api}{port}/v1/me",
  "https://{api}{port}/v10",
  "https://{api}{port}/v1/../admin",
  "https://{api}{port}/v1/%2e%2e/admin",
  "https://{api}{port}/v1%2f..%2fadmin",
  "https://{api}{port}/v1/..%2Fadmin",
  "https://{api}{port}/v1\\..\\admin",
  "https://{api}{port}/",
  "https://evil.test/v1/me",
  "https://{near}{port}/v1/me",
  "http://{loop_port}/me",
  "http://{loop_host}/me",
  "ftp://{api}{port}/v1/me",
  "https://{api}.{xport}/v1/me",
  -- dot segments with ";params": Tomcat, Jetty and Spring cut the params, then climb
  "https://{api}{port}/v1/x/..;/..;/admin",
  "https://{api}{port}/v1/..;/admin",
  "https://{api}{port}/v1/..;jsessionid=1/admin",
  "https://{api}{port}/v1/..%3B/admin",
  "https://{api}{port}/v1/..%3b/admin",
  "https://{api}{port}/v1/.;x/me",
  "http://{loop}/a/..;/b",
  -- what a server that decodes once more, or normalizes what it decoded, reads as a dot
  -- segment or a separator: double encoding, IIS's %u, overlong UTF-8, characters NFKC
  -- makes '.' or '/', an encoded NUL or tab after ".." (review 27)
  "https://{api}{port}/v1/%252e%252e/admin",
  "https://{api}{port}/v1/%25252e%25252e/admin",
  "https://{api}{port}/v1%252fadmin",
  "https://{api}{port}/v1/%u002e%u002e/admin",
  "https://{api}{port}/v1/%C0%AE%C0%AE/admin",
  "https://{api}{port}/v1/%E0%80%AE%E0%80%AE/admin",
  "https://{api}{port}/v1/%EF%BC%8E%EF%BC%8E/admin",
  "https://{api}{port}/v1/%e2%80%a5/admin",
  "https://{api}{port}/v1/..%EF%BC%8Fadmin",
  "https://{api}{port}/v1/..%00/admin",
  "https://{api}{port}/v1/..%09/admin",
  "https://{api}{port}/v1/x%",
}

--- The example hosts spec/url_spec.lua uses.
M.EXAMPLE = { api = "api.example.com", port = "", xport = ":443", wrongport = ":8443", near = "api.example.co",
  loop = "127.0.0.1:9400", loop_port = "127.0.0.1:9401", loop_host = "127.0.0.2:9400" }

function M.cases(where)
  local vars = setmetatable({ API = where.api:upper() }, { __index = where })
  local function fill(list)
    local out = {}
    for i, u in ipairs(list) do
      out[i] = u:gsub("{([%w_]+)}", function(k) return assert(vars[k], k) end)
    end
    return out
  end
  return { allowed = fill(ALLOWED), ok = fill(OK), refused = fill(REFUSED) }
end

return M
