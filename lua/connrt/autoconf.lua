--- autoconf.lua - a connector completed from its authorization server's metadata, at
-- the start of a connect.
--
-- For a connector with `discovery` (the issuer URL, a field template allowed): the
-- metadata (discovery.lua, checked there) fills authorize_url, token_url, revoke_url,
-- device_url and issuer where the connector leaves them out, and the test API with the
-- userinfo endpoint where it has no `test`; keys the connector sets win, and only the
-- endpoints filled in are taken from the metadata (and checked). With `registration =
-- "dynamic"` and no client id from the user, the client is the one registered there
-- (registration.lua). What was discovered is kept with the connection (`discovery` of
-- its record): the issuer, where the metadata was, when, and which keys it filled.
local connector = require("connrt.connector")
local discovery = require("connrt.discovery")
local errors = require("connrt.errors")
local origins = require("connrt.origins")
local registration = require("connrt.registration")

local M = {}

-- connector key -> metadata endpoint
M.FILLS = {
  { "authorize_url", "authorization_endpoint" },
  { "token_url", "token_endpoint" },
  { "revoke_url", "revocation_endpoint" },
  { "device_url", "device_authorization_endpoint" },
}

-- The origins a registered client's id and secret go to (origins.reach): its server's
-- endpoints (the authorize URL gets the id), not the connector's allowed URLs.
local function client_reach(c, fields)
  local urls = {}
  for _, k in ipairs(origins.URL_KEYS) do urls[k] = connector.render_url(c, k, fields) end
  return origins.reach(urls, {}, { c.authorize_url and connector.render_url(c, "authorize_url", fields) })
end

--- Completes the connector of connect `ctx` (flow/context.lua's: c, fields, opts, st) from its
-- server's metadata, and sets ctx.client_id, ctx.client_secret for a registered client,
-- ctx.discovery (what is kept with the connection) and ctx.resource. Does nothing for a
-- connector without `discovery`.
function M.apply(ctx)
  local c = ctx.c
  if c.resource then ctx.resource = connector.render_url(c, "resource", ctx.fields) end
  if not c.discovery then return end
  local issuer = connector.render_url(c, "discovery", ctx.fields)
  local md = discovery.fetch(issuer)
  local filled = {}
  for _, p in ipairs(M.FILLS) do
    local key, name = p[1], p[2]
    if c[key] == nil and not (key == "revoke_url" and c.revoke_request) then
      c[key] = discovery.endpoint(md, name)
      if c[key] then filled[#filled + 1] = key end
    end
  end
  if c.issuer == nil then c.issuer, filled[#filled + 1] = md.issuer, "issuer" end
  -- the metadata's promise to send iss holds for its own issuer (RFC 9207 2.4)
  if md.iss_parameter_supported and connector.render_url(c, "issuer", ctx.fields) == md.issuer then
    c.issuer_in_response = true
  end
  if c.test == nil then
    local userinfo = discovery.endpoint(md, "userinfo_endpoint")
    if not userinfo then
      errors.raise("connector", "%s: has no `test`, and the metadata of %s (%s) has no userinfo_endpoint to use instead",
        c.path, issuer, md.url)
    end
    c.test = { url = userinfo, method = "GET" }
    filled[#filled + 1] = "test"
  end
  for _, k in ipairs(connector.NEEDS[c.auth]) do
    if c[k] == nil then
      local name
      for _, p in ipairs(M.FILLS) do if p[1] == k then name = p[2] end end
      errors.raise("provider", "the metadata of %s (%s) has no %s, which %s needs for auth = %q (or set %s in the "
        .. "connector); nothing was stored", issuer, md.url, name, c.path, c.auth, k)
    end
  end
  ctx.discovery = { issuer = issuer, metadata_url = md.url, fetched_at = os.time(), filled = filled }
  if c.registration == "dynamic" then
    local given = ctx.opts.client_id or os.getenv("CONNRT_CLIENT_ID")
    if given == nil or given == "" then
      local redirect_uri = c.auth == "authorization_code" and (require("connrt.flow.redirect").get()) or nil
      local client = registration.client(ctx.st, c, md, discovery.endpoint(md, "registration_endpoint"), redirect_uri,
        client_reach(c, ctx.fields))
      ctx.client_id, ctx.client_secret = client.client_id, client.client_secret
      c.client_auth = client.client_auth or c.client_auth
      ctx.discovery.registered = true
    end
  end
end

-- The token endpoint answers these when it is not there (any more).
M.GONE = { [404] = true, [405] = true, [410] = true }

--- After a refresh of connection `conn` failed at `target` with an endpoint error (no
-- answer, or M.GONE), fetches its server's metadata again: when the connector left the
-- token URL to the metadata and the metadata now names another one on the same origin,
-- the connection is updated to it (and to the metadata fetched now) and the new URL is
-- returned for one more try. Returns nil when nothing changed or nothing can be learned
-- (the original error stands). A token endpoint moved to another origin is refused: a
-- connection's credentials never follow a metadata change to a new place, only a new
-- connect (--replace) moves them.
function M.rediscover(conn, target)
  local rec = conn.rec
  local d = rec.discovery
  if type(d) ~= "table" or type(d.issuer) ~= "string" then return nil end
  local fills_token = false
  for _, k in ipairs(type(d.filled) == "table" and d.filled or {}) do fills_token = fills_token or k == "token_url" end
  if not fills_token or (rec.urls.refresh_url and rec.urls.refresh_url ~= rec.urls.token_url) then return nil end
  local ok, md = pcall(discovery.fetch, d.issuer)
  if not ok then return nil end
  local new = md.token_endpoint
  if new == nil or new == target then return nil end
  if origins.of(new) ~= origins.of(target) then
    errors.raise("provider", "refresh at %s failed, and the metadata of %s (%s) now names the token endpoint %s, on "
      .. "another origin: a connection's credentials do not follow a metadata change there; connect again (with "
      .. "--replace) to use it", target, d.issuer, md.url, new)
  end
  new = discovery.endpoint(md, "token_endpoint")
  local urls = {}
  for k, v in pairs(rec.urls) do urls[k] = v end
  urls.token_url = new
  local cached = {}
  for k, v in pairs(d) do cached[k] = v end
  cached.fetched_at, cached.metadata_url = os.time(), md.url
  conn.rec = conn.st:update(rec.id, rec.connector_hash, { urls = urls, discovery = cached }, conn.secrets.fields,
    conn.source)
  require("connrt.log").err("connrt: %s's token endpoint moved to %s (metadata of %s); connection %s follows it", d.issuer,
    new, d.issuer, rec.id)
  return new
end

return M
