--- flow/device.lua - the device way of connecting (RFC 8628's device authorization
-- grant): show the user a code to enter on another device, then poll the token
-- endpoint until the sign-in is done, honouring the server's interval and slow_down.
local browser = require("connrt.flow.browser")
local cjson = require("cjson.safe")
local context = require("connrt.flow.context")
local errors = require("connrt.errors")
local finish = require("connrt.flow.finish")
local log = require("connrt.log")
local oauth = require("connrt.oauth")
local request = require("connrt.request")
local sys = require("connrt.sys")

local M = {}

--- Connects `ctx` by the device grant. Returns what flow/finish.lua does.
function M.run(ctx)
  local c, urls = ctx.c, ctx.urls
  local params = {}
  if #ctx.scopes > 0 then params[1] = { "scope", table.concat(ctx.scopes, c.scope_separator) } end
  local dreq = oauth.token_request(c, urls.device_url, context.token_client(ctx), params, { no_token_params = true })
  local what = "device endpoint " .. urls.device_url
  local resp = request.send(dreq, what)
  local d = cjson.decode(resp.body)
  if resp.status ~= 200 or type(d) ~= "table" or d.error or not d.device_code or not d.user_code then
    local e = type(d) == "table" and d.error and (": " .. tostring(d.error) .. (d.error_description and (": " .. d.error_description) or "")) or ""
    errors.raise("provider", "%s answered %d%s, not a device authorization", what, resp.status, e)
  end
  log.secret(d.device_code)
  local verify = d.verification_uri or d.verification_url
  log.err("To connect %s, open %s and enter the code: %s", c.title, tostring(verify), d.user_code)
  if d.verification_uri_complete then
    log.err("or open this URL, which carries the code:")
    log.err("%s", tostring(d.verification_uri_complete)) -- the provider's text: escaped like any line
  end
  if ctx.opts.browser ~= false then browser.open(d.verification_uri_complete or verify) end
  local interval = tonumber(d.interval) or 5
  local expires = tonumber(d.expires_in) or 600
  local start = sys.monotime()
  local deadline = start + math.min(expires, ctx.opts.timeout or expires)
  local grant = { { "grant_type", "urn:ietf:params:oauth:grant-type:device_code" }, { "device_code", d.device_code } }
  local where = "token endpoint " .. urls.token_url
  while true do
    sys.sleep(interval)
    local raw = request.send(oauth.token_request(c, urls.token_url, context.token_client(ctx), grant), where)
    local body = cjson.decode(raw.body)
    local err = type(body) == "table" and body.error
    if err == "slow_down" then
      interval = interval + 5 -- RFC 8628 3.5
      log.err("The server asked to poll more slowly: every %ds now", interval)
    elseif err == "expired_token" or (err == "invalid_grant" and sys.monotime() - start >= expires) then
      -- RFC 8628 says expired_token; servers that forget expired codes say invalid_grant
      errors.raise("connect", "the device code expired before the sign-in was completed (%s); run connrt run again; nothing was saved", err)
    elseif err == "access_denied" then
      errors.raise("connect", "authorization denied: access_denied; nothing was saved")
    elseif err ~= "authorization_pending" then
      return finish.run(ctx, oauth.fetch_token(c, nil, where, raw, grant[1][2]))
    end
    if sys.monotime() + interval > deadline then
      errors.raise("connect", "the sign-in was not completed within %ds; nothing was saved", math.floor(deadline - start))
    end
  end
end

return M
