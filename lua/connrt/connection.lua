--- connection.lua - a stored connection in use: requests with its credentials, tokens
-- kept fresh, refresh single-flight across processes, revoke.
--
-- Requests go only to the connection's allowed URLs (checked on the parsed URL before
-- anything is sent, and again on every redirect hop). Tokens are refreshed proactively
-- (within a margin of expiry) and reactively (a 401, or what the connector names), once
-- per request. A refresh takes the connection's lease first, re-reads the store and only
-- spends the refresh token when no other process has refreshed meanwhile; the new tokens
-- are saved in one write transaction before they are used. No transaction is held
-- across network I/O: the lease is what gives single flight.
local cjson = require("cjson.safe")
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local log = require("connrt.log")
local sys = require("connrt.sys")

-- what a fresh token does not need (the connector's loader and schema, OAuth, HTTP):
-- loaded on first use, so `connrt token` reads the store, unseals and prints
local lazy = require("connrt.lazy")
local connector = lazy("connrt.connector")
local oauth = lazy("connrt.oauth")
local request = lazy("connrt.request")
local template = lazy("connrt.template")
local url = lazy("connrt.url")

local M = {}

-- seconds before expiry a request refreshes first (CONNRT_REFRESH_MARGIN overrides)
M.REFRESH_MARGIN = tonumber(os.getenv("CONNRT_REFRESH_MARGIN") or "") or 60
M.LEASE_TTL = 30        -- seconds a refresher may hold the lease before others take over

--- The lease's time to live in seconds: CONNRT_LEASE_TTL (a number > 0), else LEASE_TTL.
function M.lease_ttl()
  local v = os.getenv("CONNRT_LEASE_TTL")
  if v and v ~= "" then
    local n = tonumber(v)
    if not n or n <= 0 or n ~= n or n > limits.LEASE_TTL_MAX then
      errors.raise("usage", "CONNRT_LEASE_TTL: %q is not a number of seconds greater than 0 and at most %d", v,
        limits.LEASE_TTL_MAX)
    end
    return n
  end
  return M.LEASE_TTL
end
                        -- (at once if it died on this machine: Store:acquire_lease)

-- The command that connects this connection's account again: `connrt run` with its
-- connector, or `connrt connect` with the URL of a protected resource it was made for.
local function again(rec)
  local path = rec.connector_path or rec.connector
  if type(path) == "string" and path:match("^https?://") then return "connrt connect " .. path end
  return "connrt run " .. path
end

local Connection = {}
-- self.c, the connection's connector, is loaded from its stored source when first used
Connection.__index = function(self, k)
  if k ~= "c" then return Connection[k] end
  local rec = self.rec
  local src = rawget(self, "source") or self.st:connector_source(rec) -- checked against the record's bound hash
  local c = connector.load_source(src, rec.connector_path or rec.connector)
  -- how the client authenticates is the connection's: a registered client's (RFC 7591)
  -- is what the server registered, not the connector's default
  c.client_auth = rec.client_auth or c.client_auth
  rawset(self, "c", c)
  return c
end

local function register_secrets(secrets)
  log.secret(secrets.access_token)
  log.secret(secrets.refresh_token)
  log.secret(secrets.id_token)
  log.secret(secrets.client_secret)
  for _, v in pairs(secrets.fields or {}) do log.secret(v) end
end

--- Opens the connection `ref` (an id, or a connector id with one connection) from the
-- store `st`. The record is checked against its sealed binding, and its connector's
-- source against the record's hash, here: before anything is sent or printed (`connrt
-- token` loads no connector, but a changed one still fails it).
function M.open(st, ref)
  return M.from_record(st, st:find(ref))
end

--- Opens the connection of `rec`, a record just read from `st` (Store:get, Store:find),
-- without looking its name up again.
function M.from_record(st, rec)
  local self = setmetatable({ st = st, rec = rec }, Connection)
  self.secrets = st:secrets(rec)
  self.source = st:connector_source(rec)
  register_secrets(self.secrets)
  return self
end

function Connection:id() return self.rec.id end

-- The template scope of this connection's requests. Built again only when the record
-- or the secrets were replaced (a reload or a refresh assigns new tables; neither is
-- changed in place), so a pipeline's requests share one.
function Connection:scope()
  local cached = rawget(self, "_scope")
  if cached and cached.rec == self.rec and cached.secrets == self.secrets then return cached.scope end
  local fields = {}
  for k, v in pairs(self.rec.fields or {}) do fields[k] = v end
  for k, v in pairs(self.secrets.fields or {}) do fields[k] = v end
  local token = { access_token = self.secrets.access_token, token_type = self.rec.token_type,
    scope = self.rec.scope }
  -- client_id too: some APIs want it on every request (Twitch's and Etsy's Client-Id)
  local scope = template.scope({ token = token, client = { client_id = self.rec.client_id }, fields = fields,
    values = self.rec.values or {} })
  rawset(self, "_scope", { rec = self.rec, secrets = self.secrets, scope = scope })
  return scope
end

-- The connector's request parameters rendered with this connection's scope
-- (request.render_parameters), kept while the scope and the connector stay.
function Connection:rendered()
  local scope, c = self:scope(), self.c
  local cached = rawget(self, "_rendered")
  if cached and cached.scope == scope and cached.c == c then return cached.rendered end
  local rendered = request.render_parameters(c.request, scope, c.path .. ": request",
    { secret_var = function(v) return connector.secret_var(c, v) end })
  rawset(self, "_rendered", { scope = scope, c = c, rendered = rendered })
  return rendered
end

--- The seconds before a token's expiry at which it is refreshed first: REFRESH_MARGIN,
-- but never more than half the token's lifetime (from when connrt got it, issued_at, to
-- its expiry). With a fixed margin, a token that lives less than the margin would be
-- "expiring" from the moment it arrives, and every process would refresh it again; with
-- half its lifetime, a freshly refreshed token is used, so single flight holds for any
-- lifetime. Records written before issued_at existed use when they were last written.
function M.margin(rec)
  local issued = rec.issued_at or rec.refreshed_at or rec.updated_at
  if rec.expires_at and issued and rec.expires_at >= issued then
    return math.min(M.REFRESH_MARGIN, (rec.expires_at - issued) / 2)
  end
  return M.REFRESH_MARGIN
end

--- True when the token expires within `margin` seconds (default M.margin(record)).
function Connection:expiring(margin)
  local exp = self.rec.expires_at
  return exp ~= nil and exp - os.time() <= (margin or M.margin(self.rec))
end

-- Re-reads the record and secrets from the store.
function Connection:reload()
  local rec = self.st:get(self.rec.id)
  if not rec then errors.raise("notfound", "connection %s was deleted", self.rec.id) end
  self:follow(rec, true)
end

--- Brings this open connection to `rec`, its record as the store has it now (Store:get):
-- when the record was rewritten (new tokens, `connrt update`: its sealed secrets change
-- with every rewrite) the secrets are unsealed and checked against it again, and a new
-- connector source is loaded when first used; a change of its status fields alone
-- (needs_reconnect, last_error) takes the record. Nothing is done when nothing changed,
-- so a long-lived holder (the proxy) can call it before each use. `always` unseals
-- anyway. Changes the object in place: whoever holds it sees the store's state.
function Connection:follow(rec, always)
  local old = self.rec
  if always or rec.sealed ~= old.sealed or rec.connector_hash ~= old.connector_hash then
    local secrets = self.st:secrets(rec) -- checked against the record's binding
    if rec.connector_hash ~= old.connector_hash then
      rawset(self, "source", self.st:connector_source(rec)) -- checked against the record's hash
      rawset(self, "c", nil)
    end
    self.rec, self.secrets = rec, secrets
    register_secrets(secrets)
  elseif rec.needs_reconnect ~= old.needs_reconnect or rec.last_error ~= old.last_error then
    self.rec = rec
  end
  return self
end

--- True when a new access token can be had without the user: with a refresh token, or
-- by the client credentials grant again.
function Connection:can_refresh()
  return self.secrets.refresh_token ~= nil or self.rec.auth == "client_credentials"
end

-- The refresh grant itself: network I/O, no lock held but the lease. Client credentials
-- connections fetch a new token the way they got the first one. Returns the token and
-- what answered it ("refresh at URL").
function Connection:refresh_grant()
  local rec, c = self.rec, self.c
  local target = rec.urls.refresh_url or rec.urls.token_url
  local grant = { { "grant_type", "refresh_token" }, { "refresh_token", self.secrets.refresh_token } }
  if rec.auth == "client_credentials" then
    target = rec.urls.token_url
    grant = { { "grant_type", "client_credentials" } }
    if #c.scopes > 0 then grant[2] = { "scope", table.concat(c.scopes, c.scope_separator) } end
  end
  local rediscovered = false
  local function fetch()
    local req = oauth.token_request(c, target, { fields = rec.fields or {}, client_id = rec.client_id,
      client_secret = self.secrets.client_secret }, grant)
    local sent, raw = pcall(request.send, req, "refresh at " .. target)
    -- an endpoint error of a connection made by discovery: the metadata may say where the
    -- token endpoint went (autoconf.rediscover), and the refresh is tried there once
    local gone = sent and require("connrt.autoconf").GONE[raw.status]
    if rec.discovery and not rediscovered and (gone or (not sent and errors.is(raw) and raw.kind == "network")) then
      rediscovered = true
      local moved = require("connrt.autoconf").rediscover(self, target)
      if moved then
        target, rec = moved, self.rec
        return fetch()
      end
    end
    if not sent then error(raw, 0) end
    return oauth.fetch_token(c, req, "refresh at " .. target, raw)
  end
  local ok, tok = pcall(fetch)
  if not ok then
    if errors.is(tok) and tok.reason == "invalid_grant" then
      -- fenced during a refresh: the lease may have gone to a process that rotated the
      -- refresh token this one just had refused; then its tokens stand, not this mark
      self.st:mark(rec.id, { needs_reconnect = true, last_error = errors.kept_message("needs_reconnect", tok.message) },
        rawget(self, "_fence"))
      errors.fail("provider", "needs_reconnect", "%s; connection %s needs reconnecting: run `%s` again for this account",
        tok.message, rec.id, again(rec))
    end
    error(tok, 0)
  end
  return tok, "refresh at " .. target
end

--- Refreshes the access token, single-flight across processes. `seen` is the access
-- token the caller found stale: if another process has already replaced it, that result
-- is used and no refresh is spent.
function Connection:refresh(seen)
  if not self:can_refresh() then
    -- nothing went to the provider, so not a provider's error (exit 5): a plain failure
    errors.fail("failed", "no_refresh", "connection %s has no refresh token, so nothing was sent: connect again with %s "
      .. "to renew its access token", self.rec.id, again(self.rec))
  end
  seen = seen or self.secrets.access_token
  -- unique across hosts sharing a store: pid, this object, and random bytes
  local crypto = require("connrt.crypto")
  local owner = ("%d-%s-%s"):format(sys.getpid(), tostring(self):match("0x%x+") or "", crypto.hex(crypto.random(6)))
  local ttl = M.lease_ttl()
  local waited = 0
  while true do
    local token = self.st:acquire_lease(self.rec.id, owner, ttl)
    if token then
      local fenced = false
      local ok, err = pcall(function()
        self:reload()
        if self.secrets.access_token ~= seen and not self:expiring(0) then return end -- someone else did it
        local fence = { owner = owner, token = token }
        rawset(self, "_fence", fence)
        local gok, tok, where = pcall(self.refresh_grant, self)
        rawset(self, "_fence", nil)
        if not gok then
          if errors.is(tok) and tok.reason == "fenced" then fenced = true return end
          error(tok, 0)
        end
        -- written only if the lease is still ours (no one took it over while we were
        -- away at the provider): else the newer tokens stay and are read below
        -- (the new tokens may be text the record keeps in clear: then they are not kept)
        -- (and its scope and token type, which save_tokens writes)
        require("connrt.flow.record").check_clear(setmetatable({ scope = tok.scope or self.rec.scope,
          token_type = tok.token_type or self.rec.token_type }, { __index = self.rec }), where)
        local sok, res, secrets = pcall(self.st.save_tokens, self.st, self.rec.id, tok, where, fence)
        if not sok then
          if errors.is(res) and res.reason == "fenced" then fenced = true return end
          error(res, 0)
        end
        self.rec, self.secrets = res, secrets
        register_secrets(self.secrets)
      end)
      self.st:release_lease(self.rec.id, owner)
      if not ok then error(err, 0) end
      if not fenced then return self.secrets.access_token end
      log.trace("connection %s: the refresh lease was taken over while refreshing; using the newer tokens", self.rec.id)
    end
    -- another process refreshes: wait for its result, then look
    sys.sleep(0.05)
    waited = waited + 0.05
    self:reload()
    if self.secrets.access_token ~= seen and not self:expiring(0) then return self.secrets.access_token end
    if waited > ttl + 5 then
      errors.fail("failed", "refresh_wait", "connection %s: gave up waiting for another process's refresh", self.rec.id)
    end
  end
end

--- A valid access token, refreshed first when it is about to expire.
function Connection:token()
  if self:expiring() and self:can_refresh() then self:refresh() end
  if not self.secrets.access_token then
    errors.raise("usage", "connection %s connects with fields (%s), not a token", self.rec.id, self.rec.connector)
  end
  return self.secrets.access_token
end

-- Seconds to wait for a Retry-After header value (seconds or an HTTP date), or nil.
function M.retry_after(value)
  if not value then return nil end
  local n = tonumber(value)
  if n then return math.max(0, n) end
  local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
  local d, mon, y, hh, mm, ss = value:match("^%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT$")
  if not d or not months[mon] then return nil end
  local t = os.time({ year = tonumber(y), month = months[mon], day = tonumber(d), hour = tonumber(hh),
    min = tonumber(mm), sec = tonumber(ss), isdst = false })
  -- os.time reads the table as local time: correct by the local offset
  local now = os.time()
  local offset = os.time(os.date("!*t", now)) - now
  return math.max(0, t - offset - now)
end

--- Asks hooks.expired whether a response {status, header, body} says the token has
-- expired. The hook gets {status, headers, body} and must return a boolean (or nil).
function M.expired_by_hook(c, resp)
  local v = connector.call_hook(c, "expired", connector.hook_response(resp))
  if v ~= nil and type(v) ~= "boolean" then
    errors.raise("connector", "%s: hooks.expired must return true or false, returned %s", c.path, type(v))
  end
  return v == true
end

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

--- Resolves and checks a request URL against the allowed URLs; returns it.
function Connection:target(u)
  return request.allowed_target(self.rec.allowed_urls, u, "refused %s: %s (allowed: %s); nothing was sent")
end

-- The statuses that mean "the token has expired" for this connection's connector.
local function refresh_statuses(self)
  local set = rawget(self, "_refresh_on")
  if not set then
    set = {}
    for _, s in ipairs(self.c.refresh_on or { 401 }) do set[s] = true end
    rawset(self, "_refresh_on", set)
  end
  return set
end

--- Sends a request through the connection. `req`: method, url (relative to the first
-- allowed URL, or absolute under one), headers (array of {name, value}), body, json
-- (a value sent as a JSON body; json_text, the JSON text it was read from, sent as it is
-- when the connector adds no body value), retries (429/503/connection errors; default 0),
-- max_wait (seconds to wait in all; default 60), on_wait (function(seconds, why)),
-- stream, stream_max and abortable (`connrt proxy`: the final answer's body may stream,
-- and the transfer may stop when the proxy's client goes; see request.send). Returns
-- {status, headers, header, body, json, stream}.
function Connection:request(req)
  local method = req.method or "GET"
  -- the caller's method and headers go into the request line and header lines as given:
  -- each must be one token or line (a pipeline's or a C program's mistake, not a bug)
  if type(method) ~= "string" or not require("connrt.text").is_token(method) then
    errors.raise("usage", 'request method "%s" is not an HTTP method name', require("connrt.text").escape_controls(
      tostring(method)))
  end
  method = method:upper()
  if (req.body or req.json ~= nil) and (method == "GET" or method == "HEAD") then
    -- libcurl cannot send one: the caller's mistake, said before anything is sent
    errors.raise("usage", "a %s request cannot have a body (give another method, such as POST)", method)
  end
  local target, parsed = self:target(req.url)
  local headers = {}
  for _, h in ipairs(req.headers or {}) do
    request.check_header(h[1], h[2], "usage", "request header")
    headers[#headers + 1] = h
  end
  local body, json, json_text = req.body, req.json, req.json_text
  if self:expiring() and self:can_refresh() then self:refresh() end
  local refresh_on = refresh_statuses(self)
  local refreshed = false
  local retries, waited = req.retries or 0, 0
  local max_wait = req.max_wait or 60
  local what = method .. " " .. url.without_query(target)
  -- a long-running user (the proxy) reads the connection again from the store before
  -- every attempt after the first and before every redirect hop (rawset recheck: raises
  -- when it is gone), so a change made meanwhile decides where the next hop may go
  local recheck = rawget(self, "recheck")
  local attempt = 0
  while true do
    attempt = attempt + 1
    if recheck and attempt > 1 then
      recheck(self)
      target, parsed = self:target(req.url)
    end
    local full = request.with_parameters(self.c.request, self:scope(),
      { method = method, url = target, headers = headers, body = body, json = json, json_text = json_text },
      self.c.path .. ": request",
      { rendered = self:rendered() })
    full.follow, full.allowed, full.timeout = 5, self.rec.allowed_urls, req.timeout
    if recheck then
      full.before_hop = function()
        recheck(self)
        return self.rec.allowed_urls
      end
    end
    if req.stream and not self.c.hooks.expired then
      -- `connrt proxy`: the answer may stream unless this loop may act on it (hooks.expired
      -- reads every answer's body, so then nothing streams)
      local hold = {}
      for s in pairs(refresh_on) do hold[#hold + 1] = s end
      if retries > 0 then hold[#hold + 1], hold[#hold + 2] = 429, 503 end
      full.stream, full.hold, full.stream_max = true, hold, req.stream_max
    end
    -- `connrt proxy`: the upstream request (not a refresh) stops if its client goes away
    full.abortable = req.abortable
    -- req.progress.answered: an upstream has answered a hop or an attempt of this request
    -- (so it went out), whatever fails after (`connrt proxy` never then says "try again")
    local progress = req.progress
    if progress then
      local inner = full.before_hop
      full.before_hop = function()
        progress.answered = true
        if inner then return inner() end
        return full.allowed
      end
    end
    -- the token this attempt carries: a refresh after its 401 is not needed when another
    -- request of this process has replaced it meanwhile (connrt proxy's coroutines)
    local sent_with = self.secrets.access_token
    -- the connector's query parameters may have changed the URL, not where it goes
    full.origin = parsed
    local ok, resp = pcall(request.send, full, what)
    if ok and progress then progress.answered = true end
    if ok and resp.status < 200 then
      -- an interim status as the final answer (a 101 to a request that asked for no
      -- upgrade: connrt never asks for one) is no answer to this request (RFC 9110 15.2.2)
      errors.fail("network", "protocol", "%s answered %d, which is not an answer to this request", what, resp.status)
    end
    if not ok then
      if errors.is(resp) and resp.kind == "network" and IDEMPOTENT[method] and retries > 0 then
        local delay = math.min(1, max_wait - waited)
        if delay <= 0 then error(resp, 0) end
        retries = retries - 1
        waited = waited + delay
        if req.on_wait then req.on_wait(delay, resp.message) end
        sys.sleep(delay)
      else
        error(resp, 0)
      end
    else
      local expired, by_hook = refresh_on[resp.status], false
      if not expired and self.c.hooks.expired then
        expired = M.expired_by_hook(self.c, resp)
        by_hook = expired
      end
      if expired and not refreshed and self:can_refresh() then
        refreshed = true
        self:refresh(sent_with)
      elseif expired and (by_hook or (not refreshed and self.rec.auth ~= "fields")) then
        self:refused(resp, what, by_hook, refreshed)
      elseif (resp.status == 429 or resp.status == 503) and retries > 0 then
        local delay = M.retry_after(resp.header["retry-after"]) or 1
        if waited + delay > max_wait then return M.finish(resp) end
        retries = retries - 1
        waited = waited + delay
        if req.on_wait then req.on_wait(delay, ("%d %s"):format(resp.status, "Retry-After")) end
        sys.sleep(delay)
      else
        return M.finish(resp)
      end
    end
  end
end

-- An answer the connector says means "token expired" (a refresh_on status, or
-- hooks.expired) that no refresh can mend: without a refresh token the connection is
-- marked as needing reconnection, as a refused refresh marks it; after a refresh, an
-- answer hooks.expired still calls expired is an error too (its status may be 200, and
-- must not pass for a success). Raises a provider error.
function Connection:refused(resp, what, by_hook, refreshed)
  local detail = request.error_detail(resp.body)
  local answered = ("%s answered %d%s"):format(what, resp.status, detail and (" (" .. detail .. ")") or "")
  if refreshed then
    errors.raise("provider", "%s: hooks.expired says the token is still not valid after a refresh", answered)
  end
  local rec = self.rec
  local why = by_hook and "hooks.expired" or ("refresh_on: " .. resp.status)
  local msg = ("%s: token expired (%s) and cannot be refreshed: connect again with %s"):format(answered,
    why, again(rec))
  self.st:mark(rec.id, { needs_reconnect = true, last_error = errors.kept_message("needs_reconnect", msg) })
  errors.fail("provider", "needs_reconnect", "%s; connection %s is marked as needing reconnection", msg, rec.id)
end

-- `json` is decoded on first use: a pipeline that only looks at the status (or the C
-- library, which hands out the body) does not pay for parsing.
local LAZY_JSON = { __index = function(resp, key)
  if key ~= "json" then return nil end
  local ctype = (resp.headers["content-type"] or ""):lower()
  if not ctype:find("json", 1, true) then return nil end
  limits.check_json_size(resp.body, url.without_query(resp.url or "the API"))
  local doc = cjson.decode(resp.body)
  rawset(resp, "json", doc)
  return doc
end }

--- The response as callers see it: status, headers (a map, lowercased names),
-- header_list (array of {name, value} in arrival order), body, and json (the decoded
-- body, when it is JSON, decoded when first read).
function M.finish(resp)
  return setmetatable({ status = resp.status, headers = resp.header, header_list = resp.headers,
    body = resp.body, url = resp.url, stream = resp.stream }, LAZY_JSON)
end

local function verb(method)
  return function(self, u, opts)
    local req = {}
    for k, v in pairs(opts or {}) do req[k] = v end
    req.method, req.url = method, u
    return self:request(req)
  end
end

--- Shorthands: conn:get(url, opts), :post, :put, :patch, :delete (opts as in request).
Connection.get, Connection.post, Connection.put = verb("GET"), verb("POST"), verb("PUT")
Connection.patch, Connection.delete = verb("PATCH"), verb("DELETE")

--- A connection as shown: everything but the sealed secrets.
function M.public(rec)
  return {
    id = rec.id, connector = rec.connector, title = rec.title, name = rec.name, auth = rec.auth,
    unique_id = rec.unique_id, fields = rec.fields, values = rec.values,
    client_id = rec.client_id, allowed_urls = rec.allowed_urls, scope = rec.scope,
    token_type = rec.token_type, expires_at = rec.expires_at,
    has_refresh_token = rec.has_refresh_token, needs_reconnect = rec.needs_reconnect,
    last_error = rec.last_error, created_at = rec.created_at, updated_at = rec.updated_at,
    refreshed_at = rec.refreshed_at, discovery = rec.discovery, resource = rec.resource,
  }
end

--- This connection, without secrets.
function Connection:info()
  return M.public(self.rec)
end

-- Revokes through the connector's revoke_request, for providers whose revocation is not
-- RFC 7009 (GitHub's DELETE of the grant, Dropbox's token/revoke, Stripe's deauthorize):
-- the request is rendered with the tokens, the client's credentials, the fields and the
-- kept values, sent once, and must answer 2xx. Returns { "authorization" }.
function Connection:revoke_by_request()
  local c, rec, r = self.c, self.rec, self.c.revoke_request
  local scope = self:scope()
  local req = request.from_template(r, template.scope({
    token = { access_token = self.secrets.access_token, refresh_token = self.secrets.refresh_token,
      token_type = rec.token_type, scope = rec.scope },
    client = { client_id = rec.client_id, client_secret = self.secrets.client_secret },
    fields = scope.ns.fields, values = scope.ns.values }), c.path .. ": revoke_request",
    require("connrt.origins").reach(rec.urls, rec.allowed_urls))
  local method, shown = req.method, url.without_query(req.url)
  local resp = request.send(req, "revoke " .. method .. " " .. shown)
  if resp.status < 200 or resp.status > 299 then
    errors.raise("provider", "revoke %s %s answered %d", method, shown, resp.status)
  end
  return { "authorization" }
end

--- Revokes the connection's tokens at the connector's revoke URL (RFC 7009): the refresh
-- token first (which revokes the grant at most servers), then the access token.
-- Returns the list of token types revoked.
function Connection:revoke()
  if self.c.revoke_request then return self:revoke_by_request() end
  local target = self.rec.urls.revoke_url
  if not target then errors.raise("usage", "%s has no revoke_url: use connrt delete to forget it locally", self.rec.connector) end
  local done = {}
  for _, kind in ipairs({ "refresh_token", "access_token" }) do
    local tok = self.secrets[kind]
    if tok then
      local req = oauth.token_request(self.c, target, { fields = self.rec.fields or {}, client_id = self.rec.client_id,
        client_secret = self.secrets.client_secret }, { { "token", tok }, { "token_type_hint", kind } })
      local resp = request.send(req, "revoke at " .. target)
      if resp.status ~= 200 then
        errors.raise("provider", "revoke at %s answered %d for the %s", target, resp.status, kind:gsub("_", " "))
      end
      done[#done + 1] = kind
    end
  end
  return done
end

return M
