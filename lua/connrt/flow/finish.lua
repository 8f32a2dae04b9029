--- flow/finish.lua - the last steps of every way of connecting, once a token (or, for
-- field connections, nothing) is in hand: the exchange_request, hooks.lookup, the
-- allowed URLs, the test API, the name and unique id, and one write transaction.
-- Nothing is saved unless every step succeeded.
local connector = require("connrt.connector")
local exchange = require("connrt.flow.exchange")
local lookup = require("connrt.flow.lookup")
local naming = require("connrt.flow.naming")
local record = require("connrt.flow.record")
local template = require("connrt.template")
local test_api = require("connrt.flow.test_api")
local values_check = require("connrt.flow.values")

local M = {}

-- The allowed URLs known so far, in the connector's order.
local function known_allowed(ctx)
  local out = {}
  for i = 1, #ctx.c.allowed_urls do
    if ctx.allowed_static[i] then out[#out + 1] = ctx.allowed_static[i] end
  end
  return out
end

--- Finishes the connect `ctx` (flow/context.lua, with its store open) with `token` (nil
-- for field connections) and the values hooks.callback kept (`extras`). Returns the
-- saved record and whether an existing connection was updated.
function M.run(ctx, token, extras)
  local c = ctx.c
  if token and c.exchange_request then token = exchange.run(ctx, token) end
  -- only declared values are here (oauth.finish_token, flow/values.lua); `from` says who gave each
  local values, from = {}, {}
  for k, v in pairs(token and token.values or {}) do values[k], from[k] = v, nil end
  for k, v in pairs(extras or {}) do values[k], from[k] = v, "hooks.callback" end
  local token_scope, client_layer = {}, { client_id = ctx.client_id }
  if token then
    token_scope.access_token, token_scope.token_type = token.access_token, token.token_type
    token_scope.scope, token_scope.expires_in = token.scope, token.expires_in
  end
  local function scope(me)
    return template.scope({ token = token_scope, client = client_layer, fields = ctx.fields, values = values, test = me })
  end
  if c.hooks.lookup then
    local found = lookup.run(c, scope(), known_allowed(ctx))
    for k, v in pairs(found) do values[k], from[k] = v, "hooks.lookup" end
  end
  values_check.check_no_secret(ctx, token, values, from)
  -- every allowed URL, now that the token's and the lookup's values exist
  ctx.allowed = {}
  for i = 1, #c.allowed_urls do
    ctx.allowed[i] = ctx.allowed_static[i] or connector.render_allowed(c, i,
      template.scope({ fields = ctx.fields, values = values }))
  end
  local me = test_api.call(c, scope(), ctx.allowed, ctx.client_secret)
  local name, unique_id = naming.render(c, scope(me))
  local rec, secrets, client = record.build(ctx, token, values, name, unique_id)
  local id, updated = ctx.st:save(rec, secrets, c.source, client,
    token and ("token endpoint " .. tostring(ctx.urls.token_url)) or c.path, { replace = ctx.opts.replace })
  rec.id = id
  return rec, updated
end

return M
