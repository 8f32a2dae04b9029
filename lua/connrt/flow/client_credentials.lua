--- flow/client_credentials.lua - the client credentials way of connecting (an app that
-- acts as itself, no user signs in): the client's own credentials buy the token.
local context = require("connrt.flow.context")
local finish = require("connrt.flow.finish")
local oauth = require("connrt.oauth")

local M = {}

--- Connects `ctx` by the client credentials grant. Returns what flow/finish.lua does.
function M.run(ctx)
  local grant = { { "grant_type", "client_credentials" } }
  if #ctx.scopes > 0 then grant[#grant + 1] = { "scope", table.concat(ctx.scopes, ctx.c.scope_separator) } end
  local treq = oauth.token_request(ctx.c, ctx.urls.token_url, context.token_client(ctx), grant)
  return finish.run(ctx, oauth.fetch_token(ctx.c, treq, "token endpoint " .. ctx.urls.token_url))
end

return M
