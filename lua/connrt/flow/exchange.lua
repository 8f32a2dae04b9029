--- flow/exchange.lua - a connector's exchange_request: the token a grant brought is
-- traded for another before anything else uses it (Facebook's short-lived user token
-- for a long-lived one).
local context = require("connrt.flow.context")
local limits = require("connrt.limits")
local oauth = require("connrt.oauth")
local origins = require("connrt.origins")
local request = require("connrt.request")
local template = require("connrt.template")
local url = require("connrt.url")

local M = {}

--- Sends the connector's exchange_request with the token just obtained and the client's
-- credentials, and returns the token it answers with (a refresh token the exchange does
-- not bring is kept).
function M.run(ctx, token)
  local c = ctx.c
  local req = request.from_template(c.exchange_request, template.scope({
    token = { access_token = token.access_token, refresh_token = token.refresh_token },
    client = { client_id = ctx.client_id, client_secret = ctx.client_secret },
    fields = ctx.fields, values = token.values or {} }), c.path .. ": exchange_request",
    origins.reach(ctx.urls, context.known_allowed(ctx)))
  local where = "token exchange at " .. url.without_query(req.url)
  req.max_body, req.token_answer = limits.TOKEN_BODY, true -- its answer is a token response
  local new = oauth.normalize(request.send(req, where), where, c)
  new.refresh_token = new.refresh_token or token.refresh_token
  for k, v in pairs(token.values or {}) do if new.values[k] == nil then new.values[k] = v end end
  return new
end

return M
