--- protected.lua - `connrt connect URL`: a protected resource (an MCP server, an API
-- that publishes RFC 9728 metadata) connected without a connector file.
--
-- The URL is requested without credentials; its 401's `WWW-Authenticate: Bearer
-- resource_metadata="..."` names the resource's metadata (RFC 9728 section 5), else the
-- metadata is looked for at the resource origin's well-known URL (section 3.1: with the
-- resource's path, then without). The metadata must be for this resource (its `resource`
-- covers the URL) and name an authorization server; the first one named is used. What
-- comes out is a connector (its source text): discovery of that server, dynamic
-- registration, the resource as RFC 8707 indicator, the URL as test API, and the
-- resource's origin and path as its only allowed URL. `connrt connect` runs it like any
-- connector; --print-connector prints it, for an author to start from.
local discovery = require("connrt.discovery")
local errors = require("connrt.errors")
local log = require("connrt.log")
local text = require("connrt.text")
local url = require("connrt.url")

local M = {}

-- The resource_metadata parameter of a WWW-Authenticate header, or nil.
function M.challenge_metadata(header)
  if type(header) ~= "string" then return nil end
  local i = header:find("resource_metadata", 1, true)
  while i do
    local v = header:match('^resource_metadata%s*=%s*"([^"]*)"', i)
    if v then return v end
    i = header:find("resource_metadata", i + 1, true)
  end
  return nil
end

-- The resource's well-known metadata URLs: with its path (RFC 9728 3.1), then without.
local function well_known(u)
  local base = url.build({ scheme = u.scheme, host = u.host, port = u.port, path = "" })
  local path = text.rstrip(u.path, "/")
  local out = {}
  if path ~= "" then out[1] = base .. "/.well-known/oauth-protected-resource" .. path end
  out[#out + 1] = base .. "/.well-known/oauth-protected-resource"
  return out
end

-- Fetches and checks one resource metadata document. Returns it, or nil and the status
-- when there is none there.
local function fetch_metadata(target, resource_url)
  local ok, why = url.check_secure(target, "resource_metadata")
  if not ok then errors.raise("provider", "%s named by %s: %s; nothing was stored", target, resource_url, why) end
  local what = "protected resource metadata " .. target
  local resp = discovery.get(target, what)
  if resp.status ~= 200 then return nil, resp.status end
  local doc = discovery.decode(resp, what)
  local resource = doc.resource
  if type(resource) ~= "string" then
    errors.raise("provider", "%s has no resource identifier (`resource`); nothing was stored", what)
  end
  local covered = url.check_secure(resource, "resource") and url.allowed(resource_url, { resource })
  if not covered then
    errors.raise("provider", "%s is for the resource %s, which does not cover %s, the URL it was found for (RFC 9728 "
      .. "3.3); nothing was stored", what, text.escape_controls(log.clip(resource, 200)), resource_url)
  end
  local servers = doc.authorization_servers
  if type(servers) ~= "table" or type(servers[1]) ~= "string" then
    errors.raise("provider", "%s names no authorization server (`authorization_servers`); nothing was stored", what)
  end
  discovery.check_issuer(servers[1], what .. ": authorization_servers[1]", "provider")
  local scopes = {}
  for _, s in ipairs(type(doc.scopes_supported) == "table" and doc.scopes_supported or {}) do
    if type(s) == "string" and s:match("^[%w%-._~:/]+$") then scopes[#scopes + 1] = s end
  end
  return { resource = resource, issuer = servers[1], scopes = scopes, metadata_url = target }
end

--- Finds what protects `target`: {resource, issuer, scopes, metadata_url}. Raises a
-- usage error for a URL connrt cannot use, a provider error for metadata that is missing
-- or wrong, a network error when nothing answers.
function M.resolve(target)
  local u, why = url.check_secure(target, "URL")
  if not u then errors.raise("usage", "connrt connect %s", why) end
  if u.fragment ~= "" then errors.raise("usage", "connrt connect %s: a resource URL has no fragment", target) end
  local resp = discovery.get(target, "protected resource " .. target)
  local named = resp.status == 401 and M.challenge_metadata(resp.header["www-authenticate"])
  if named then
    local md, status = fetch_metadata(named, target)
    if not md then
      errors.raise("provider", "%s answered %d: the resource metadata its 401 names is not there; nothing was stored",
        named, status)
    end
    return md
  end
  local tried = {}
  for _, candidate in ipairs(well_known(u)) do
    local md, status = fetch_metadata(candidate, target)
    if md then return md end
    tried[#tried + 1] = ("%s answered %d"):format(candidate, status)
  end
  errors.raise("provider", "%s answered %d without naming its metadata (no WWW-Authenticate resource_metadata), and %s: "
    .. "it publishes no RFC 9728 metadata, so connrt cannot tell who issues its tokens; write a connector for it",
    target, resp.status, table.concat(tried, ", "))
end

-- A connector id from the resource's host: lowercase letters, digits and '-'.
local function id_of(u)
  local id = u.host:lower():gsub("[^a-z0-9]+", "-"):gsub("^%-+", "")
  id = text.rstrip(id, "-")
  return (id ~= "" and id or "resource"):sub(1, 60)
end

--- The connector source for `target` protected as `md` (from M.resolve).
function M.connector_source(target, md)
  local u = assert(url.parse(md.resource))
  -- the resource's origin and path: the one place the connection's token goes
  local allowed = url.build({ scheme = u.scheme, host = u.host, port = u.port, path = u.path })
  local function q(s) return ("%q"):format(s) end
  local scopes = {}
  for _, s in ipairs(md.scopes) do scopes[#scopes + 1] = q(s) end
  local host = u.host .. ((u.port == 443 and u.scheme == "https") and "" or (":" .. u.port))
  return table.concat({
    ("-- The connector of %s, as `connrt connect %s --print-connector` wrote it from the resource's"):format(
      md.resource, target),
    ("-- metadata (%s). connrt check and docs/connectors.md say what each key means."):format(md.metadata_url),
    "return {",
    ("  id = %s,"):format(q(id_of(u))),
    ("  title = %s,"):format(q(host)),
    "  -- the authorization server's metadata (RFC 8414) gives the endpoints",
    ("  discovery = %s,"):format(q(md.issuer)),
    "  -- connrt registers itself there on first connect (RFC 7591), once",
    "  registration = \"dynamic\",",
    "  -- tokens are asked for this resource (RFC 8707)",
    ("  resource = %s,"):format(q(md.resource)),
    ("  scopes = { %s },"):format(table.concat(scopes, ", ")),
    ("  test = %s,"):format(q(target)),
    ("  name = %s,"):format(q(host)),
    "  -- one connection per resource: a value of the test API's answer ({{sub}}) keeps one per account",
    ("  unique_id = %s,"):format(q(md.resource)),
    ("  allowed_urls = { %s },"):format(q(allowed)),
    "  request = { headers = { Authorization = \"Bearer {{access_token}}\" } },",
    "}",
    "",
  }, "\n")
end

return M
