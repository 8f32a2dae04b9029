--- discovery.lua - an authorization server's metadata (RFC 8414, OpenID Connect
-- Discovery 1.0), fetched and checked before anything of it is used.
--
-- The rules: the document is fetched like a token endpoint's answer (the same size limit
-- and timeout, no redirect followed); it is a JSON object whose `issuer` is exactly the
-- URL it was fetched for (RFC 8414 section 3.3: a server cannot speak for another); every
-- endpoint connrt uses from it is https (or http on a loopback host), carries no
-- credentials in its URL, and is on the issuer's origin (scheme, host and port): a
-- connection's credentials go where the connector author or the user pointed, never
-- where a metadata document alone says. A connector that needs an endpoint elsewhere
-- (a token endpoint on another host) sets that key itself; keys the connector sets win.
-- Each refusal is a provider error that names the document, the key and both values.
local cjson = require("cjson.safe")
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local log = require("connrt.log")
local origins = require("connrt.origins")
local request = require("connrt.request")
local text = require("connrt.text")
local url = require("connrt.url")

local M = {}

-- The endpoints connrt uses, by metadata name.
M.ENDPOINTS = { "authorization_endpoint", "token_endpoint", "revocation_endpoint", "device_authorization_endpoint",
  "registration_endpoint", "userinfo_endpoint" }
-- The lists it reads (methods and grants the server supports).
local LISTS = { "token_endpoint_auth_methods_supported", "grant_types_supported", "scopes_supported",
  "code_challenge_methods_supported", "response_types_supported" }

--- Checks an issuer identifier (RFC 8414 section 2): an absolute https URL (http on a
-- loopback host) without query, fragment or userinfo. Returns it parsed, or raises a
-- `kind` error naming `what`.
function M.check_issuer(issuer, what, kind)
  local u, err = url.check_secure(issuer, what)
  if not u then errors.raise(kind, "%s", err) end
  if u.has_query or u.fragment ~= "" then
    errors.raise(kind, "%s %s: an issuer has no query or fragment", what, issuer)
  end
  return u
end

--- The well-known URLs of `issuer`'s metadata, in the order they are tried: RFC 8414's
-- (the well-known segment between the host and the issuer's path) and OpenID Connect's
-- (appended to the issuer).
function M.well_known(issuer)
  local u = M.check_issuer(issuer, "issuer", "usage")
  local path = text.rstrip(u.path, "/")
  local base = url.build({ scheme = u.scheme, host = u.host, port = u.port, path = "" })
  return { base .. "/.well-known/oauth-authorization-server" .. path, text.rstrip(issuer, "/")
    .. "/.well-known/openid-configuration" }
end

-- GETs a metadata document: the token endpoint's size limit and timeout, no redirects.
-- Returns the response.
function M.get(target, what)
  return request.send({ method = "GET", url = target, headers = { { "Accept", "application/json" } },
    max_body = limits.TOKEN_BODY }, what)
end

--- Decodes a metadata document's body: a JSON object, else a provider error naming it.
function M.decode(resp, what)
  local doc = cjson.decode(resp.body)
  if type(doc) ~= "table" or (next(doc) ~= nil and doc[1] ~= nil) then
    errors.raise("provider", "%s answered %d with %s, not a JSON object; nothing was stored", what, resp.status,
      #resp.body == 0 and "an empty body" or "a body that is not JSON metadata")
  end
  return doc
end

--- Fetches and checks `issuer`'s metadata. Returns the metadata (the issuer, the
-- endpoints and lists above, and `url`, where it was found); raises a provider error (a
-- network error when the server does not answer) that names what was wrong.
function M.fetch(issuer)
  local tried = {}
  for _, target in ipairs(M.well_known(issuer)) do
    local what = "authorization server metadata " .. target
    local resp = M.get(target, what)
    if resp.status == 200 then
      local doc = M.decode(resp, what)
      if doc.issuer ~= issuer then
        errors.raise("provider", "%s names the issuer %s, not %s, the issuer it was fetched for (RFC 8414 3.3: a server "
          .. "speaks only for itself); nothing was stored", what,
          type(doc.issuer) == "string" and text.escape_controls(log.clip(doc.issuer, 200)) or "(none)", issuer)
      end
      local md = { issuer = issuer, url = target }
      -- RFC 9207 2.4: a server that says it sends iss on the callback must be held to it
      md.iss_parameter_supported = doc.authorization_response_iss_parameter_supported == true
      for _, k in ipairs(M.ENDPOINTS) do
        local v = doc[k]
        if v ~= nil and v ~= cjson.null then
          if type(v) ~= "string" then
            errors.raise("provider", "%s: %s is a %s, not a URL; nothing was stored", what, k, type(v))
          end
          md[k] = v
        end
      end
      for _, k in ipairs(LISTS) do
        if type(doc[k]) == "table" then
          local out = {}
          for _, s in ipairs(doc[k]) do if type(s) == "string" then out[#out + 1] = s end end
          md[k] = out
        end
      end
      return md
    end
    tried[#tried + 1] = ("%s answered %d"):format(target, resp.status)
  end
  errors.raise("provider", "no authorization server metadata for %s: %s; nothing was stored", issuer,
    table.concat(tried, ", "))
end

--- The endpoint `name` of metadata `md`, checked: https (or loopback http), no
-- credentials or template in it, on the issuer's origin. Returns it, or nil when the
-- metadata has none; raises a provider error naming both values otherwise.
function M.endpoint(md, name)
  local v = md[name]
  if v == nil then return nil end
  local where = "authorization server metadata " .. md.url
  local u, why = url.check_secure(v, name)
  if not u then errors.raise("provider", "%s: %s; nothing was stored", where, why) end
  if v:find("{{", 1, true) or v:find("}}", 1, true) then
    errors.raise("provider", "%s: %s %s holds '{{' or '}}'; nothing was stored", where, name, v)
  end
  local want, got = origins.of(md.issuer), origins.of(v)
  if got ~= want then
    errors.raise("provider", "%s: %s %s is on %s, not on the issuer's origin %s: connrt sends credentials only where "
      .. "the issuer is (a connector that means it sets the URL itself); nothing was stored", where, name, v, got,
      want)
  end
  return v
end

return M
