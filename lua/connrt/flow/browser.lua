--- flow/browser.lua - the browser way of connecting: open the user's browser on the
-- authorization URL and wait on the loopback listener, with a countdown on a terminal,
-- for the callback that carries our state; the browser's request is answered last,
-- with a page that says how it went. Opening a browser is shared with the paste and
-- device ways.
local code = require("connrt.flow.code")
local errors = require("connrt.errors")
local listener = require("connrt.listener")
local log = require("connrt.log")
local page = require("connrt.page")
local redirect = require("connrt.flow.redirect")
local request = require("connrt.request")
local sys = require("connrt.sys")
local url = require("connrt.url")

local M = {}

M.DEFAULT_TIMEOUT = 300

--- Opens a browser on the URL: CONNRT_BROWSER (a command the URL is appended to), else
-- xdg-open where a display exists. Failing to open one is not an error: the URL is printed.
function M.open(auth_url)
  local cmd = os.getenv("CONNRT_BROWSER")
  if not cmd or cmd == "" then
    if not (os.getenv("DISPLAY") or os.getenv("WAYLAND_DISPLAY")) then return end
    cmd = "xdg-open"
  end
  local ok, err = sys.spawn_detached({ "sh", "-c", cmd .. ' "$1"', "connrt-browser", auth_url })
  if not ok then log.err("connrt: could not open a browser (%s); open the URL above yourself", err) end
end

-- Waits for the callback that carries `state`. Callbacks to other paths, or without our
-- state, are answered with an error page and the wait goes on (a stray or forged request
-- must not end the flow). Returns the request and its decoded query.
local function await_callback(l, where, state, deadline, title)
  local rejected = 0
  -- on a terminal, one line that counts down, redrawn each second and cleared at the end
  local tty = sys.isatty(2)
  local function status(left)
    if tty then
      io.stderr:write(("\r\27[KWaiting for the sign-in to %s: %d:%02d left"):format(title, left // 60, left % 60))
      io.stderr:flush()
    end
  end
  local function clear() if tty then io.stderr:write("\r\27[K") io.stderr:flush() end end
  while true do
    local left = deadline - sys.monotime()
    if left <= 0 then break end
    status(math.ceil(left))
    -- on a terminal, wake each second to redraw the count; else wait the whole time
    local req = l:accept(tty and math.min(left, 1) or left)
    if req then
      clear()
      if log.verbose then
        log.trace("listener: %s %s from %s", req.method, request.hide_url(req.path .. (req.query and ("?" .. req.query) or "")),
          req.peer or "?")
      end
      if req.method ~= "GET" then
        req:respond(405, page.headers({ Allow = "GET" }), page.render("error", title, "This address only takes the app's sign-in redirect."))
      elseif req.path ~= where.path then
        req:respond(404, page.headers(), page.render("error", title, "Nothing here: this is connrt's sign-in listener."))
      else
        local q = url.form_decode(req.query)
        if q.state ~= nil and q.state == state then return req, q end
        rejected = rejected + 1
        req:respond(400, page.headers(), page.failure(title, "wrong_state",
          "This sign-in link is not the one connrt is waiting for (wrong or missing state)."))
      end
    elseif not tty then
      break
    end
  end
  clear()
  if rejected > 0 then
    errors.fail("connect", "sign_in_timeout", "no valid callback before the timeout; %d callback(s) with a wrong or "
      .. "missing state were rejected", rejected)
  end
  errors.fail("connect", "sign_in_timeout", "timed out waiting for the sign-in callback on %s", where.url)
end

--- The authorization code flow through the loopback listener. `last(token, extras)`
-- runs once the code is exchanged (flow/finish.lua, or the blob of `connrt authorize`)
-- and returns the result, the success page and one more value; the browser's request
-- is answered after it. Returns the result and that value.
function M.run(ctx, last)
  local redirect_uri, where = redirect.get()
  local a = code.new_attempt(ctx, redirect_uri)
  -- listen before the URL is shown, so a fast browser cannot arrive first
  local l, lerr, lwhy = listener.open(where.host, where.port)
  if not l then errors.fail("connect", lwhy or "not_completed", "%s (is another connrt run waiting?)", lerr) end
  code.show_url(ctx, a.url)
  if ctx.opts.browser ~= false then M.open(a.url) end
  local timeout = ctx.opts.timeout or M.DEFAULT_TIMEOUT
  log.err("Waiting for the sign-in callback on %s (timeout %ds)...", redirect_uri, timeout)
  local req, q = await_callback(l, where, a.state, sys.monotime() + timeout, ctx.c.title)
  l:close() -- state is used once: no second callback is listened for
  local ok, result, body, extra = pcall(function()
    local token, extras = code.to_token(ctx, q, a.verifier, redirect_uri)
    return last(token, extras)
  end)
  if not ok then
    local msg = errors.is(result) and result.message or "internal error"
    req:respond(400, page.headers(), page.failure(ctx.c.title, page.reason(result, q), log.redact(msg)))
    error(result, 0)
  end
  req:respond(200, page.headers(), body)
  return result, extra
end

return M
