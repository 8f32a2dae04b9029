--- update.lua - `connrt update ID [CONNECTOR.lua]`: a changed connector applied to a
-- stored connection, without a new sign-in.
--
-- A connection keeps the connector source it was connected with (stored under its hash,
-- which the record's binding covers), so editing the connector file changes nothing for
-- it: its requests keep the headers, allowed URLs and hooks it was connected with. This
-- loads the new source in the sandbox and checks that the connection's tokens still fit
-- it: the same connector id and way of connecting, no scope the connection was not
-- granted, token and refresh URLs at the same origin (the tokens were issued there), a
-- value for every field it needs. Anything else would need a new sign-in, and is refused
-- (exit 2) with `connrt run` named. It then renders the URLs and allowed URLs from the
-- stored fields and kept values (only the values the new connector declares stay), checks
-- that the request parameters and revoke_request render, and saves the new source and
-- record in one write transaction, bound again under the key. Nothing is sent: the name
-- and unique id stay as the test API gave them at connect time.
--
-- The tokens may not go anywhere new without the user saying so: a connector whose
-- endpoints or allowed URLs reach an origin the connection did not reach (origins.reach)
-- is refused unless `--replace` is given. The connector file is the one named, or the
-- absolute real path the connection remembers; a connection made before connrt
-- remembered that has a relative path, which is not resolved against the current
-- directory (another directory's file of that name is not the connector): refused, with
-- the explicit form named.
local connector = require("connrt.connector")
local errors = require("connrt.errors")
local log = require("connrt.log")
local origins = require("connrt.origins")
local request = require("connrt.request")
local store = require("connrt.store")
local sys = require("connrt.sys")
local template = require("connrt.template")
local url = require("connrt.url")

local M = {}

local URL_KEYS = { "issuer", "device_url", "token_url", "refresh_url", "revoke_url" }

local function read(path, id)
  local src, err = require("connrt.text").read_file(path)
  if not src then
    errors.raise("usage", "cannot read the connector %s: %s (give its path: connrt update %s CONNECTOR.lua)", path,
      tostring(err), id)
  end
  return src
end

local function again(path)
  return "that needs a new sign-in: connect again with connrt run " .. path
end

-- scheme://host:port of a URL, or nil
local function origin(u)
  local p = u and url.parse(u)
  return p and (p.scheme .. "://" .. p.host .. ":" .. tostring(p.port)) or nil
end

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- The fields of the connection under connector `c`: what is stored (plain and sealed),
-- else the field's default. Returns the plain and the secret ones.
local function fields_for(c, rec, secrets, path)
  local stored = {}
  for k, v in pairs(rec.fields or {}) do stored[k] = v end
  for k, v in pairs(secrets.fields or {}) do stored[k] = v end
  local plain, secret = {}, {}
  for _, f in ipairs(c.fields) do
    local v = stored[f.key]
    if v == nil then v = f.default end
    if v == nil and f.required then
      errors.raise("usage", "%s needs field %s, which connection %s does not have; %s --field %s=VALUE", path, f.key,
        rec.id, again(path), f.key)
    end
    if v ~= nil then
      local ok, why = connector.check_field_value(f, v)
      if not ok then
        errors.raise("usage", "field %s of connection %s: %s under %s; %s", f.key, rec.id,
          f.secret and "the stored value does not match what the field allows" or why, path, again(path))
      end
      if f.secret then secret[f.key] = v else plain[f.key] = v end
    end
  end
  return plain, next(secret) and secret or nil
end

-- Refuses a connector the connection's tokens do not fit.
local function fits(c, old, rec, path)
  if c.id ~= rec.connector then
    errors.raise("usage", "%s is a connector for %s, not %s, which connection %s was connected with (connrt run %s "
      .. "connects an account of its own)", path, c.id, rec.connector, rec.id, path)
  end
  if c.auth ~= rec.auth then
    errors.raise("usage", "%s connects with auth = %q, connection %s with %q: %s", path, c.auth, rec.id,
      tostring(rec.auth), again(path))
  end
  if c.auth == "authorization_code" or c.auth == "device_code" then
    -- what the user consented to: the scopes asked for then, and those granted
    local granted = {}
    for _, s in ipairs(old.scopes) do granted[s] = true end
    for s in tostring(rec.scope or ""):gmatch("[^%s,]+") do granted[s] = true end
    local more = {}
    for _, s in ipairs(c.scopes) do if not granted[s] then more[#more + 1] = s end end
    if #more > 0 then
      errors.raise("usage", "%s asks for scopes the connection was not granted: %s; %s", path, table.concat(more, ", "),
        again(path))
    end
  end
end

-- The connector file of connection `rec` when none is named: the absolute path it
-- remembers, never a relative one.
local function remembered_path(rec)
  local p = rec.connector_path
  if type(p) ~= "string" or p:sub(1, 1) ~= "/" then
    errors.raise("usage", "connection %s does not remember where its connector file is (%s); connrt does not look for "
      .. "it in the current directory: give its path, connrt update %s CONNECTOR.lua", rec.id,
      p and ("only the relative path " .. p) or "no path", rec.id)
  end
  return p
end

--- Updates connection `ref` to the connector at `path` (default: the absolute path it
-- remembers). `home`: the store directory; `opts.replace`: the connector may reach
-- origins the connection did not. Returns the record, the path and the list of what
-- changed (empty when nothing did).
function M.run(ref, path, home, opts)
  local st = store.open(home, { existing = "no connection " .. ref })
  local ok, rec, used, changed = pcall(function()
    local rec = st:find(ref)
    local secrets = st:secrets(rec) -- checked against the record's binding
    for _, s in pairs({ secrets.access_token, secrets.refresh_token, secrets.id_token, secrets.client_secret }) do
      log.secret(s)
    end
    for _, v in pairs(secrets.fields or {}) do log.secret(v) end
    path = path or remembered_path(rec)
    local src = read(path, rec.id)
    local c = connector.load_source(src, path)
    local old = connector.load_source(st:connector_source(rec), rec.connector_path or rec.connector)
    fits(c, old, rec, path)

    local plain, secret = fields_for(c, rec, secrets, path)
    local fields = {}
    for k, v in pairs(plain) do fields[k] = v end
    for k, v in pairs(secret or {}) do fields[k] = v end
    local urls = {}
    if c.auth ~= "fields" then
      for _, k in ipairs(URL_KEYS) do urls[k] = connector.render_url(c, k, fields) end
      -- a connector with `discovery`: what the metadata gave at connect time (kept with
      -- the connection) stays, for the keys the connector still leaves out
      for _, k in ipairs(c.discovery and URL_KEYS or {}) do
        if urls[k] == nil then urls[k] = (rec.urls or {})[k] end
      end
      local before = rec.urls or {}
      for _, k in ipairs({ "token_url", "refresh_url" }) do
        local was, now = before[k] or before.token_url, urls[k] or urls.token_url
        if origin(was) ~= origin(now) then
          errors.raise("usage", "%s: %s moves to another host (%s, was %s): the connection's tokens were issued at the "
            .. "old one; %s", path, k, tostring(origin(now)), tostring(origin(was)), again(path))
        end
      end
    end
    -- only the values the connector declares are kept
    local values = {}
    for _, k in ipairs(c.values) do
      if rec.values and rec.values[k] ~= nil then values[k] = rec.values[k] end
    end
    local allowed = {}
    for i = 1, #c.allowed_urls do
      allowed[i] = connector.allowed_url_static(c, i) and connector.render_url(c, i, fields)
        or connector.render_allowed(c, i, template.scope({ fields = fields, values = values }))
    end
    -- nowhere new for the connection's tokens without --replace
    local reach = origins.reach(urls, allowed)
    local wider = origins.outside(reach, origins.reach(rec.urls, rec.allowed_urls))
    if #wider > 0 and not (opts and opts.replace) then
      errors.raise("usage", "%s would send connection %s's credentials to %s, where the connection never sent them "
        .. "(it sends them to %s); nothing was changed: run connrt update %s %s --replace if you trust it there",
        path, rec.id, table.concat(wider, ", "), table.concat(origins.reach(rec.urls, rec.allowed_urls), ", "), rec.id,
        path)
    end
    -- what every later request renders must exist now (a new value would need a new sign-in)
    local scope = template.scope({
      token = { access_token = secrets.access_token, refresh_token = secrets.refresh_token,
        token_type = rec.token_type, scope = rec.scope },
      client = { client_id = rec.client_id, client_secret = secrets.client_secret }, fields = fields, values = values })
    request.with_parameters(c.request, scope, { method = "POST", url = allowed[1] }, path .. ": request")
    if c.revoke_request then request.from_template(c.revoke_request, scope, path .. ": revoke_request", reach) end

    -- a client registered at the server (RFC 7591) authenticates as it was registered
    local registered = c.registration and rec.discovery and rec.discovery.registered
    local patch = { title = c.title, connector_path = sys.realpath(path) or path,
      client_auth = registered and rec.client_auth or c.client_auth, urls = urls,
      allowed_urls = allowed, fields = plain, values = values }
    local hash = require("connrt.crypto").hex(require("connrt.crypto").sha256(src))
    local diff = {}
    if hash ~= rec.connector_hash then diff[#diff + 1] = "connector source" end
    for _, k in ipairs({ "title", "connector_path", "client_auth", "urls", "allowed_urls", "fields", "values" }) do
      if not same(patch[k], rec[k] or (k == "fields" or k == "values") and {} or nil) then diff[#diff + 1] = k end
    end
    if not same(secret, secrets.fields) then diff[#diff + 1] = "secret fields" end
    if #diff == 0 then return rec, path, diff end
    local new = st:update(rec.id, rec.connector_hash, patch, secret, src)
    return new, path, diff
  end)
  st:close()
  if not ok then error(rec, 0) end
  return rec, used, changed
end

return M
