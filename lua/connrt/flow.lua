--- flow.lua - the connect flow of `connrt run` and `connrt authorize`: from a connector
-- file to a stored connection. This file only picks the way of connecting; each way and
-- each shared step is a file of its own under flow/:
--
--   flow/context.lua            what the steps share (connector, fields, client, URLs)
--   flow/inputs.lua             fields, prompts, secret files, the client id and secret
--   flow/redirect.lua           the redirect URL and where the listener serves it
--   flow/browser.lua            the browser + loopback listener way (and opening a browser)
--   flow/code.lua               the authorization code steps browser and paste share
--   flow/paste.lua              the paste way, and the result `connrt authorize` prints
--   flow/device.lua             the device code way (RFC 8628)
--   flow/client_credentials.lua the client credentials way
--   flow/fields.lua             the fields way (API keys)
--   flow/finish.lua             the last steps of every way, ending in one save:
--   flow/exchange.lua, flow/lookup.lua, flow/values.lua, flow/test_api.lua,
--   flow/naming.lua, flow/record.lua
--
-- Nothing is saved unless every step succeeded; `connrt authorize` saves nothing and
-- creates no store.
local context = require("connrt.flow.context")
local errors = require("connrt.errors")
local page = require("connrt.page")

local M = {}

-- The way of connecting of each auth other than the browser and paste ways.
local WAYS = { fields = "connrt.flow.fields", client_credentials = "connrt.flow.client_credentials",
  device_code = "connrt.flow.device" }

--- Runs the whole flow. `opts`: connector (path) or loaded (a loaded connector), fields
-- (map), field_files (map of key to path), client_id, client_secret,
-- client_secret_file, scopes (extra scopes), params (extra authorize parameters, array of
-- {name, value}), paste (boolean), timeout (seconds), browser (boolean), interactive
-- (boolean), home (store directory), replace (boolean). Returns the saved record and
-- whether an existing connection was updated.
function M.run(opts)
  local ctx = context.prepare(opts, true)
  local ok, rec, updated = pcall(function()
    local way = WAYS[ctx.c.auth]
    if way then return require(way).run(ctx) end
    if opts.paste then return require("connrt.flow.paste").run(ctx) end
    local finish = require("connrt.flow.finish")
    return require("connrt.flow.browser").run(ctx, function(token, extras)
      local r, upd = finish.run(ctx, token, extras)
      return r, page.success(ctx.c.title, r.name), upd
    end)
  end)
  ctx.st:close()
  if not ok then error(rec, 0) end
  return rec, updated
end

--- `connrt authorize`: the browser part of the authorization code flow, on a machine
-- with a browser. Exchanges the code and returns a one-line blob that `connrt run
-- --paste` takes on the server, which then runs the test API and saves, and the
-- connector's id. Saves no connection, so opens no store (unless a client is registered
-- now: it is kept).
function M.authorize(opts)
  local ctx = context.prepare(opts, false)
  local ok, line = pcall(function()
    if ctx.c.auth ~= "authorization_code" then
      errors.raise("usage", "%s connects with auth = %q: connrt authorize is for browser sign-ins", ctx.c.id, ctx.c.auth)
    end
    local paste = require("connrt.flow.paste")
    return (require("connrt.flow.browser").run(ctx, function(token, extras)
      return paste.blob(ctx, token, extras), page.authorized(ctx.c.title)
    end))
  end)
  if ctx.st then ctx.st:close() end -- open only when a client was registered now
  if not ok then error(line, 0) end
  return line, ctx.c.id
end

return M
