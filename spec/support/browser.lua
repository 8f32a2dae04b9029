-- A scripted user with a browser: signs in at the local oidc-provider with plain HTTP
-- requests and a cookie jar, the way a person's browser would, and follows the final
-- redirect to connrt's listener.
--
-- As a program (CONNRT_BROWSER="connrt run spec/support/browser.lua"): the URL is the
-- last argument; SIGNIN_USER (default john), SIGNIN_ACTION (approve | deny | none) and
-- SIGNIN_CALLBACK_DELAY (seconds) and SIGNIN_REWRITE_STATE (a state to send instead of
-- the real one) steer it; SIGNIN_LOG names a file for what it saw.
-- As a module: require("support.browser").signin(url, opts).
local http = require("connrt.http")
local url = require("connrt.url")

local M = {}

local function header(resp, name)
  for _, h in ipairs(resp.headers) do
    if h.name:lower() == name then return h.value end
  end
end

local function absolute(base, loc)
  if loc:match("^%a[%w+.-]*://") then return loc end
  local u = assert(url.parse(base))
  return url.build({ scheme = u.scheme, host = u.host, port = u.port, path = loc:match("^[^?]*"),
    query = loc:match("%?(.*)$") })
end

-- Follows redirects within the authorization server; stops before leaving it (the
-- callback) and returns that URL, or the last response when a page is shown.
local function follow(client, start, opts, method, body)
  local current = start
  local server = assert(url.parse(start))
  for _ = 1, 20 do
    local resp = assert(client:request({ method = method or "GET", url = current, body = body,
      headers = body and { "Content-Type: application/x-www-form-urlencoded" } or nil }))
    method, body = "GET", nil
    local loc = header(resp, "location")
    if resp.status >= 300 and resp.status < 400 and loc then
      local nxt = absolute(current, loc)
      local u = assert(url.parse(nxt))
      if u.host ~= server.host or u.port ~= server.port then return nil, nxt end
      current = nxt
    else
      if opts.log then opts.log(("page %d %s"):format(resp.status, current)) end
      return resp, current
    end
  end
  error("too many redirects")
end

local function form_action(html, page_url)
  local action = html:match('<form[^>]-action="([^"]+)"')
  assert(action, "no form on the page " .. page_url)
  return absolute(page_url, (action:gsub("&amp;", "&")))
end

--- Signs in at the authorization URL. opts: user, action ("approve" | "deny"),
-- callback_delay (seconds before the callback is sent), log (function). Returns the
-- callback response {status, body} from connrt's listener, and the callback URL.
function M.signin(auth_url, opts)
  opts = opts or {}
  local client = http.client({ cookies = true, timeout = 30 })
  local resp, where = follow(client, auth_url, opts)
  local callback
  for _ = 1, 5 do
    if not resp then callback = where break end
    local html = resp.body
    if html:find('name="login"', 1, true) then
      resp, where = follow(client, form_action(html, where), opts, "POST",
        url.form_encode({ { "prompt", "login" }, { "login", opts.user or "john" }, { "password", "any" } }))
    elseif html:find('value="consent"', 1, true) or html:find("/confirm", 1, true) or html:find("Authorize", 1, true) then
      if opts.action == "deny" then
        local abort = html:match('href="([^"]*/abort)"')
        assert(abort, "no abort link on the consent page")
        resp, where = follow(client, absolute(where, abort), opts)
      else
        resp, where = follow(client, form_action(html, where), opts, "POST",
          url.form_encode({ { "prompt", "consent" } }))
      end
    else
      error("unexpected page at " .. where .. ": " .. html:sub(1, 300))
    end
  end
  assert(callback, "the authorization server never redirected back")
  if opts.log then opts.log("callback " .. callback:gsub("code=[^&]+", "code=...")) end
  if opts.callback_delay then require("connrt.sys").sleep(opts.callback_delay) end
  if opts.rewrite then callback = opts.rewrite(callback) end
  local cb = assert(client:request({ url = callback }))
  client:close()
  return cb, callback
end

if arg and arg[0] and arg[0]:match("browser%.lua$") then
  local target = arg[#arg]
  local logfile = os.getenv("SIGNIN_LOG")
  local lf = logfile and io.open(logfile, "a")
  local function log(line) if lf then lf:write(line, "\n") lf:flush() end end
  local action = os.getenv("SIGNIN_ACTION") or "approve"
  if action ~= "none" then
    local ok, resp = pcall(M.signin, target, { user = os.getenv("SIGNIN_USER"), action = action,
      callback_delay = tonumber(os.getenv("SIGNIN_CALLBACK_DELAY") or ""), log = log,
      rewrite = os.getenv("SIGNIN_REWRITE_STATE") and function(u)
        return (u:gsub("state=[^&]+", "state=" .. os.getenv("SIGNIN_REWRITE_STATE")))
      end })
    if ok then
      log(("landing %d %s"):format(resp.status, resp.body:match("<p>(.-)</p>") or ""))
    else
      log("error " .. tostring(resp))
    end
  end
  if lf then lf:close() end
end

return M
