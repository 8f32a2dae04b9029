-- A scripted user with a browser: signs in at the local oidc-provider with plain HTTP
-- requests and a cookie jar, the way a person's browser would, and follows the final
-- redirect to connrt's listener.
--
-- As a program (CONNRT_BROWSER="connrt script spec/support/browser.lua"): the URL is the
-- last argument; SIGNIN_USER (default john), SIGNIN_ACTION (approve | deny | none) and
-- SIGNIN_CALLBACK_DELAY (seconds), SIGNIN_REWRITE_STATE (a state to send instead of the
-- real one), SIGNIN_PASTE_TO (a file or FIFO to write the callback address to instead of
-- following it, as a person pastes it; SIGNIN_PASTE_FORM=code writes only the code,
-- nocode the address without it), SIGNIN_CODE_TO (a file the code is appended to, for
-- the specs that search outputs for it) and SIGNIN_PROXY (FROM=TO: a reverse proxy that maps the
-- public redirect origin FROM to connrt's listener at TO) steer it; SIGNIN_LOG names a
-- file for what it saw. The device flow's pages (confirm, abort, success) are handled too.
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

-- The hidden inputs of the first form on a page, as form pairs.
local function hidden_inputs(html)
  local form = html:match("<form.-</form>") or ""
  local out = {}
  for input in form:gmatch("<input[^>]*>") do
    if input:find('type="hidden"', 1, true) then
      out[#out + 1] = { input:match('name="([^"]*)"'), (input:match('value="([^"]*)"') or ""):gsub("&amp;", "&") }
    end
  end
  return out
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
  for _ = 1, 8 do
    if not resp then callback = where break end
    local html = resp.body
    if html:find("document.forms[0].submit()", 1, true) then
      -- a page that posts its form as soon as it loads: do what the script would
      resp, where = follow(client, form_action(html, where), opts, "POST", url.form_encode(hidden_inputs(html)))
    elseif html:find("op.deviceConfirmForm", 1, true) then
      -- the device flow's confirmation page (RFC 8628): confirm the code, or abort
      local fields = hidden_inputs(html)
      if opts.action == "deny" then fields[#fields + 1] = { "abort", "yes" } end
      resp, where = follow(client, form_action(html, where), opts, "POST", url.form_encode(fields))
    elseif html:find("Sign-in Success", 1, true) or html:find("interrupted", 1, true) then
      -- the device flow ends on the server's own page: there is no callback
      client:close()
      return { status = resp.status, body = "<p>" .. (html:match("<h1>(.-)</h1>") or "") .. "</p>" }, nil
    elseif html:find('name="login"', 1, true) then
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
  if opts.code_to then
    -- for the specs that search every output for the code: the code itself, nowhere else
    local f = assert(io.open(opts.code_to, "a"))
    f:write(url.decode(callback:match("[?&]code=([^&#]+)") or "", true), "\n")
    f:close()
  end
  if opts.callback_delay then require("connrt.sys").sleep(opts.callback_delay) end
  if opts.rewrite then callback = opts.rewrite(callback) end
  if opts.paste_to then
    -- the person copies the address the browser was sent to (or just its code)
    local text = callback
    if opts.paste_form == "code" then text = callback:match("[?&]code=([^&]+)") end
    if opts.paste_form == "nocode" then text = callback:gsub("code=[^&]+&?", "") end
    local f = assert(io.open(opts.paste_to, "w"))
    f:write(text, "\n")
    f:close()
    client:close()
    return { status = 0, body = "<p>pasted</p>" }, callback
  end
  if opts.origin_from then
    -- a reverse proxy in front of connrt's listener
    callback = opts.origin_to .. callback:sub(#opts.origin_from + 1)
  end
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
      end,
      paste_to = os.getenv("SIGNIN_PASTE_TO"), code_to = os.getenv("SIGNIN_CODE_TO"), paste_form = os.getenv("SIGNIN_PASTE_FORM"),
      origin_from = (os.getenv("SIGNIN_PROXY") or ""):match("^(.-)="),
      origin_to = (os.getenv("SIGNIN_PROXY") or ""):match("=(.*)$") })
    if ok then
      log(("landing %d %s"):format(resp.status, resp.body:match("<p>(.-)</p>") or ""))
    else
      log("error " .. tostring(resp))
    end
  end
  if lf then lf:close() end
end

return M
