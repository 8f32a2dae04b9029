--- flow/code.lua - the authorization code grant's steps that the browser way
-- (flow/browser.lua) and the paste way (flow/paste.lua) share: a fresh attempt (state,
-- PKCE, the authorization URL), showing that URL, and checking the callback's query
-- (errors, issuer, hooks.callback) before its code is exchanged for a token.
local connector = require("connrt.connector")
local context = require("connrt.flow.context")
local errors = require("connrt.errors")
local log = require("connrt.log")
local oauth = require("connrt.oauth")
local values = require("connrt.flow.values")

local M = {}

--- The authorization URL of a fresh attempt: a new state and PKCE pair.
function M.new_attempt(ctx, redirect_uri)
  local a = { state = log.secret(oauth.new_state()) }
  local challenge
  a.verifier, challenge = oauth.new_pkce(ctx.c.pkce_encoding)
  log.secret(a.verifier)
  a.url = oauth.authorize_url(ctx.c, {
    fields = ctx.fields, client_id = ctx.client_id, redirect_uri = redirect_uri,
    state = a.state, challenge = challenge, scopes = ctx.scopes, params = ctx.opts.params,
  })
  return a
end

--- Prints the authorization URL on standard error, alone on its line.
function M.show_url(ctx, auth_url)
  log.err("Open this URL to connect %s:", ctx.c.title)
  io.stderr:write(auth_url, "\n") -- the URL alone on its line; its state is ours to show
  io.stderr:flush()
end

--- The values hooks.callback keeps from the callback's query (an empty table without
-- the hook, or when it returns nil). `nil, "message"` fails the connect (a connect
-- error, exit 4) before the code is exchanged; anything else that is not a table of
-- values is a connector error naming the hook.
function M.callback_values(c, q)
  if not c.hooks.callback then return {} end
  local v, why = connector.call_hook(c, "callback", q)
  if v == nil and why ~= nil then
    -- the hook's way to say the sign-in came back without what the provider should send
    -- (QuickBooks' realmId): the connect failed, before the code is exchanged
    errors.raise("connect", "%s: hooks.callback: %s; nothing was saved", c.path, log.clip(tostring(why), 500))
  end
  if v == nil then return {} end
  local out = {}
  for k, x in pairs(values.check(c, "callback", v)) do out[k] = x end
  return out
end

--- Fields the callback sets (`callback_fields`, Zoho's accounts-server): a callback
-- parameter's value becomes its field's value, when it is one of the field's choices
-- (a value outside them fails the connect, exit 4, before the code is sent anywhere),
-- and the URLs rendered from fields follow it (the code is exchanged at the host the
-- callback names, and refreshes go there). Only choices the connector declares can be
-- chosen, all of them within the reach a client was given for (context.reach_before).
function M.callback_fields(ctx, q)
  local c = ctx.c
  local changed = false
  for k, param in pairs(c.callback_fields or {}) do
    local v = q[param]
    if v ~= nil and v ~= ctx.fields[k] then
      for _, f in ipairs(c.fields) do
        if f.key == k then
          local ok, why = connector.check_field_value(f, v)
          if not ok then
            errors.raise("connect", "the callback's %s names %s for field %s: %s; nothing was sent or saved", param,
              log.clip(tostring(v), 200), k, log.clip(why, 500))
          end
        end
      end
      ctx.fields[k], changed = v, true
    end
  end
  if changed then context.render_static(c, ctx, ctx.fields) end
end

--- RFC 9207: the callback's `iss` must be the issuer of the server its code goes to
-- (urls.issuer, rendered after callback_fields moved it); a missing iss is accepted
-- unless the server said it sends one (ctx.c.issuer_in_response, set by the connector or
-- from metadata's authorization_response_iss_parameter_supported: RFC 9207 2.4).
function M.check_issuer(ctx, q)
  local issuer = ctx.urls.issuer
  if not issuer then return end
  if q.iss == nil and ctx.c.issuer_in_response then
    errors.fail("connect", "mix_up", "the callback carries no iss, though %s sends one (RFC 9207 2.4 mix-up defence); "
      .. "nothing was saved", issuer)
  end
  if q.iss ~= nil and q.iss ~= issuer then
    errors.fail("connect", "mix_up", "the callback comes from issuer %s, not %s (RFC 9207 mix-up defence); nothing was saved",
      tostring(q.iss), issuer)
  end
end

--- Checks a callback's query (from the listener or pasted) and exchanges its code.
-- Returns the token and the values the callback hook kept.
function M.to_token(ctx, q, verifier, redirect_uri)
  local c, urls = ctx.c, ctx.urls
  log.secret(q.code)
  if q.error then
    local desc = type(q.error_description) == "string" and (": " .. q.error_description) or ""
    if q.error == "access_denied" then
      errors.fail("connect", "denied", "authorization denied: access_denied%s; nothing was saved", desc)
    end
    errors.fail("connect", "sign_in_error", "the app answered the sign-in with an error: %s%s; nothing was saved", q.error, desc)
  end
  if not q.code or q.code == "" then
    errors.fail("connect", "no_code", "the callback carries no code; nothing was saved")
  end
  -- the fields the callback sets first: they move the issuer with the token endpoint
  -- (Zoho's accounts-server), and iss must name the server the code goes to
  M.callback_fields(ctx, q)
  M.check_issuer(ctx, q)
  local extras = M.callback_values(c, q)
  local grant = { { "grant_type", "authorization_code" }, { "code", q.code },
    { "redirect_uri", oauth.sent_redirect_uri(c, ctx.fields, redirect_uri) } }
  if c.pkce then grant[#grant + 1] = { "code_verifier", verifier } end
  local treq = oauth.token_request(c, urls.token_url, context.token_client(ctx), grant)
  return oauth.fetch_token(c, treq, "token endpoint " .. urls.token_url), extras
end

return M
