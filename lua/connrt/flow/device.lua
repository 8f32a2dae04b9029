--- flow/device.lua - the device way of connecting (RFC 8628's device authorization
-- grant): show the user a code to enter on another device, then poll the token
-- endpoint until the sign-in is done, honouring the server's interval and slow_down.
local browser = require("connrt.flow.browser")
local cjson = require("cjson.safe")
local context = require("connrt.flow.context")
local errors = require("connrt.errors")
local finish = require("connrt.flow.finish")
local format = require("connrt.format")
local limits = require("connrt.limits")
local log = require("connrt.log")
local oauth = require("connrt.oauth")
local request = require("connrt.request")
local sys = require("connrt.sys")
local url = require("connrt.url")

local M = {}

-- A number the provider sent, within [lo, hi]; `default` when it is no number at all
-- (missing, a string, NaN).
local function bounded(v, default, lo, hi)
  if type(v) ~= "number" or v ~= v then return default end
  return math.max(lo, math.min(hi, v))
end

--- Connects `ctx` by the device grant. Returns what flow/finish.lua does.
function M.run(ctx)
  local c, urls = ctx.c, ctx.urls
  local params = {}
  if #ctx.scopes > 0 then params[1] = { "scope", table.concat(ctx.scopes, c.scope_separator) } end
  local dreq = oauth.token_request(c, urls.device_url, context.token_client(ctx), params, { no_token_params = true })
  local what = "device endpoint " .. urls.device_url
  local resp = request.send(dreq, what)
  local d = cjson.decode(resp.body)
  local e, desc
  if type(d) == "table" then e, desc = oauth.error_of(d) end
  if resp.status ~= 200 or type(d) ~= "table" or e or type(d.device_code) ~= "string" or d.device_code == ""
      or type(d.user_code) ~= "string" or d.user_code == "" then
    errors.raise("provider", "%s answered %d%s, not a device authorization (RFC 8628 3.2: a device_code and a user_code)",
      what, resp.status, e and (": " .. e .. (desc and (": " .. desc) or "")) or "")
  end
  log.secret(d.device_code)
  local verify = d.verification_uri or d.verification_url
  local complete = d.verification_uri_complete
  if type(verify) ~= "string" or not url.is_web(verify) then
    errors.raise("provider", "%s answered with verification_uri %s, not an http(s) URL to send the user to", what,
      format.shown(verify))
  end
  if complete ~= nil and (type(complete) ~= "string" or not url.is_web(complete)) then complete = nil end
  log.err("To connect %s, open %s and enter the code: %s", c.title, verify, d.user_code)
  if complete then
    log.err("or open this URL, which carries the code:")
    log.err("%s", complete) -- the provider's text: escaped like any line
  end
  if ctx.opts.browser ~= false then browser.open(complete or verify) end
  -- the server's pace and lifetime, within bounds: an interval of a billion seconds (or
  -- NaN, or a string) must not stall connrt, nor an endless lifetime keep it polling
  local interval = bounded(d.interval, 5, 1, limits.DEVICE_INTERVAL_MAX)
  local expires = bounded(d.expires_in, 600, 1, limits.DEVICE_LIFETIME_MAX)
  local start = sys.monotime()
  local deadline = start + math.min(expires, ctx.opts.timeout or expires)
  local grant = { { "grant_type", "urn:ietf:params:oauth:grant-type:device_code" }, { "device_code", d.device_code } }
  local where = "token endpoint " .. urls.token_url
  while true do
    sys.sleep(math.max(0, math.min(interval, deadline - sys.monotime())))
    local raw = request.send(oauth.token_request(c, urls.token_url, context.token_client(ctx), grant), where)
    local body = cjson.decode(raw.body)
    local err = type(body) == "table" and body.error
    if err == "slow_down" then
      interval = math.min(interval + 5, limits.DEVICE_INTERVAL_MAX) -- RFC 8628 3.5
      log.err("The server asked to poll more slowly: every %ds now", interval)
    elseif err == "expired_token" or (err == "invalid_grant" and sys.monotime() - start >= expires) then
      -- RFC 8628 says expired_token; servers that forget expired codes say invalid_grant
      errors.fail("connect", "expired", "the device code expired before the sign-in was completed (%s); run connrt run again; nothing was saved", err)
    elseif err == "access_denied" then
      errors.fail("connect", "denied", "authorization denied: access_denied; nothing was saved")
    elseif err ~= "authorization_pending" then
      return finish.run(ctx, oauth.fetch_token(c, nil, where, raw, grant[1][2]))
    end
    if sys.monotime() + interval > deadline then
      errors.fail("connect", "sign_in_timeout", "the sign-in was not completed within %ds; nothing was saved", math.floor(deadline - start))
    end
  end
end

return M
