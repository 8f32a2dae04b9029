--- flow/context.lua - what every step of one connect shares, gathered once before the
-- first request: the connector, field values, the client's credentials, rendered URLs,
-- allowed URLs known so far, scopes and the caller's options. The store is opened here
-- only for a connect that saves (`connrt run`); `connrt authorize` saves nothing and
-- reads a remembered client from a store that exists, creating none.
local connector = require("connrt.connector")
local inputs = require("connrt.flow.inputs")
local origins = require("connrt.origins")
local store = require("connrt.lazy")("connrt.store") -- authorize may never open one: no LMDB

local M = {}

--- The context of a connect (`opts`: see flow.run). `saves`: the store is opened now
-- (as ctx.st, for the caller to close) because the connect ends by saving.
function M.prepare(opts, saves)
  local c = opts.loaded or connector.load(opts.connector)
  local ctx = { c = c, opts = opts }
  ctx.fields, ctx.secret_fields = inputs.collect_fields(c, opts.fields or {}, opts.interactive, opts.field_files)
  if saves then ctx.st = store.open(opts.home) end
  ctx.urls = {}
  for _, k in ipairs({ "issuer", "device_url", "token_url", "refresh_url", "revoke_url" }) do
    ctx.urls[k] = connector.render_url(c, k, ctx.fields)
  end
  -- allowed URLs that name fields only are known now; those naming values from the
  -- token response or hooks.lookup (declared in `values`) are rendered in flow/finish.lua
  ctx.allowed_static = {}
  for i = 1, #c.allowed_urls do
    if connector.allowed_url_static(c, i) then ctx.allowed_static[i] = connector.render_url(c, i, ctx.fields) end
  end
  if c.auth ~= "fields" then
    local function remembered(reach)
      if ctx.st then return ctx.st:client(c.id, reach) end
      if not store.exists(opts.home) then return nil end
      local st = store.open(opts.home)
      local ok, saved, why = pcall(st.client, st, c.id, reach)
      st:close()
      if not ok then error(saved, 0) end
      return saved, why
    end
    ctx.authorize_url = c.authorize_url and connector.render_url(c, "authorize_url", ctx.fields)
    ctx.client_id, ctx.client_secret, ctx.client_given = inputs.client_credentials(c, opts, remembered,
      origins.reach(ctx.urls, ctx.allowed_static, { ctx.authorize_url }))
  end
  ctx.scopes = {}
  for _, sc in ipairs(c.scopes) do ctx.scopes[#ctx.scopes + 1] = sc end
  for _, sc in ipairs(opts.scopes or {}) do ctx.scopes[#ctx.scopes + 1] = sc end
  return ctx
end

--- The allowed URLs known so far (before the token's and the lookup's values), in the
-- connector's order.
function M.known_allowed(ctx)
  local out = {}
  for i = 1, #ctx.c.allowed_urls do
    if ctx.allowed_static[i] then out[#out + 1] = ctx.allowed_static[i] end
  end
  return out
end

--- The client part of oauth.token_request's context.
function M.token_client(ctx)
  return { fields = ctx.fields, client_id = ctx.client_id, client_secret = ctx.client_secret }
end

return M
