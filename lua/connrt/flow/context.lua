--- flow/context.lua - what every step of one connect shares, gathered once before the
-- first request: the connector (completed from its server's metadata: autoconf.lua),
-- field values, the client's credentials, rendered URLs, allowed URLs known so far, the
-- reach known before the sign-in, scopes and the caller's options. The store is opened
-- here only for a connect that saves something: `connrt run`, or a client registered
-- now; `connrt authorize` otherwise reads a remembered client from a store that exists,
-- creating none.
local connector = require("connrt.connector")
local inputs = require("connrt.flow.inputs")
local origins = require("connrt.origins")
local store = require("connrt.lazy")("connrt.store") -- authorize may never open one: no LMDB

local M = {}

--- Renders the URLs a connect knows from `fields` before the sign-in into ctx: urls (in
-- place) and allowed_static, the allowed URLs that name fields only (those naming values
-- from the token response or hooks.lookup, declared in `values`, are rendered in
-- flow/finish.lua).
function M.render_static(c, ctx, fields)
  for _, k in ipairs({ "issuer", "device_url", "token_url", "refresh_url", "revoke_url" }) do
    ctx.urls[k] = connector.render_url(c, k, fields)
  end
  for i = 1, #c.allowed_urls do
    if connector.allowed_url_static(c, i) then ctx.allowed_static[i] = connector.render_url(c, i, fields) end
  end
end

--- The reach of a connect as known before the sign-in (origins.reach of its URLs,
-- allowed URLs and authorize URL). With `callback_fields`, the callback may set those
-- fields to any of their choices, so the reach is that of every choice (Zoho: every
-- data centre's accounts host): a client is remembered for, and reused within, all of
-- them.
function M.reach_before(c, ctx)
  local reach = origins.reach(ctx.urls, ctx.allowed_static, { ctx.authorize_url })
  if not c.callback_fields then return reach end
  local set = {}
  for _, o in ipairs(reach) do set[o] = true end
  local keys = {}
  for k in pairs(c.callback_fields) do keys[#keys + 1] = k end
  table.sort(keys)
  local choices = {}
  for _, f in ipairs(c.fields) do choices[f.key] = f.choices end
  local fields = {}
  for k, v in pairs(ctx.fields) do fields[k] = v end
  local function each(i)
    if i > #keys then
      local probe = { urls = {}, allowed_static = {} }
      M.render_static(c, probe, fields)
      local authorize = c.authorize_url and connector.render_url(c, "authorize_url", fields)
      for _, o in ipairs(origins.reach(probe.urls, probe.allowed_static, { authorize })) do set[o] = true end
      return
    end
    for _, ch in ipairs(choices[keys[i]]) do
      fields[keys[i]] = ch
      each(i + 1)
    end
  end
  each(1)
  local out = {}
  for o in pairs(set) do out[#out + 1] = o end
  table.sort(out)
  return out
end

--- The context of a connect (`opts`: see flow.run). `saves`: the store is opened now
-- (as ctx.st) because the connect ends by saving; without it, it is opened only to keep
-- a client registered now. The caller closes ctx.st when it is set.
function M.prepare(opts, saves)
  local c = opts.loaded or connector.load(opts.connector)
  local ctx = { c = c, opts = opts }
  ctx.fields, ctx.secret_fields = inputs.collect_fields(c, opts.fields or {}, opts.interactive, opts.field_files)
  local given = (opts.client_id or os.getenv("CONNRT_CLIENT_ID") or "") ~= ""
  local registers = not given and ((c.discovery and c.registration == "dynamic") or c.app_registration)
  if saves or registers then ctx.st = store.open(opts.home) end
  -- `discovery`, `registration`, `resource`: the server's metadata completes the connector
  require("connrt.autoconf").apply(ctx)
  ctx.urls, ctx.allowed_static = {}, {}
  M.render_static(c, ctx, ctx.fields)
  ctx.scopes = {}
  for _, sc in ipairs(c.scopes) do ctx.scopes[#ctx.scopes + 1] = sc end
  for _, sc in ipairs(opts.scopes or {}) do ctx.scopes[#ctx.scopes + 1] = sc end
  if c.auth ~= "fields" then
    ctx.authorize_url = c.authorize_url and connector.render_url(c, "authorize_url", ctx.fields)
    local reach = M.reach_before(c, ctx)
    ctx.reach_before = reach
    if c.app_registration and not given then
      -- an app registered on this server (Mastodon), or registered now; kept per server,
      -- for the reach it was registered with (checked again in flow/finish.lua)
      ctx.registered = true
      ctx.client_id, ctx.client_secret, ctx.client_given = require("connrt.app_registration").client(ctx.st, c,
        ctx.fields, require("connrt.oauth").sent_redirect_uri(c, ctx.fields, (require("connrt.flow.redirect").get())),
        table.concat(ctx.scopes, c.scope_separator), reach)
    elseif not ctx.client_id then
      -- (a client registered at the server by autoconf.lua is given already)
      local function remembered(r)
        if ctx.st then return ctx.st:client(c.id, r) end
        if not store.exists(opts.home) then return nil end
        local st = store.open(opts.home)
        local ok, saved, why = pcall(st.client, st, c.id, r)
        st:close()
        if not ok then error(saved, 0) end
        return saved, why
      end
      ctx.client_id, ctx.client_secret, ctx.client_given = inputs.client_credentials(c, opts, remembered, reach)
    end
  end
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
