--- proxy.lua - `connrt proxy`: a local HTTP proxy that adds a connection's credentials.
--
-- `METHOD /<connection>/<path>?<query>` is sent as `connrt request` sends it: to the
-- connection's first allowed URL joined with the path (or to the absolute URL of a
-- Connrt-Target header), with the connector's request parameters, the caller's
-- Authorization dropped, through Connection:request, so the allowed URLs (checked on the
-- final URL right before sending, and on every redirect hop), proactive and reactive
-- refresh (a 401, refresh_on, hooks.expired: one refresh and one retry, the body being
-- held) and the store's lease (single flight with every other process) are the ones
-- every other use of the connection has. A refusal is a 403 with a JSON error; nothing
-- is sent. The connection is the store's as it is now: a worker keeps it open across
-- requests but reads its record again before each one whenever anything was written to
-- the store since it last did (Worker:connection: one read transaction, nothing held
-- after it; on LMDB, the store's generation says whether a write happened, without a
-- transaction) and follows any rewrite in place (new allowed URLs,
-- tokens another process saved, a new connector source; Connection:follow), and a
-- deleted one is a 404. A CLI `connrt update` or `connrt delete` needs no SIGHUP.
--
-- Design: a master process and N worker processes (--workers, default one per CPU,
-- M.default_workers) that share the listening socket. Each worker is a whole connrt: its
-- own Lua state, its own store handle (LMDB is opened once per process, after the fork; a
-- PostgreSQL store is one connection per process), its own HTTP client. Inside a worker,
-- src/api/httpd.c's libevent loop runs each request's handler (Worker:handle) in a
-- coroutine of its own, and every upstream request that handler makes (Connection:request -> request.send ->
-- src/api/http.c) is a transfer on libcurl's multi interface driven by the same loop: the
-- coroutine yields until its answer comes and the loop serves other requests meanwhile.
-- So a worker has many requests in flight, a slow upstream delays no other request, and
-- Lua code still never runs concurrently within a Lua state (one coroutine runs at a time,
-- each until it waits for the network): no locks, and connector hooks run as they do in a
-- CLI process (a hook's sandbox is a Lua state of its own, whose requests block, as
-- everywhere outside the proxy). Nothing holds a store transaction or a query across a
-- wait: every store call is synchronous and made between two network waits. Upstream
-- connections and TLS sessions are kept and reused across the worker's transfers (the
-- multi handle's connection cache; TLS sessions and DNS shared through a CURLSH).
--
-- Refreshes: the store's lease keeps other processes out; among a worker's coroutines,
-- the first that needs a connection refreshed does it and the others wait for its result
-- (Worker:connection: a wait list per connection), so one refresh is spent and no
-- coroutine waits in the lease's sleep loop for another of its own process. Worker 1
-- also refreshes, in the background (its tick, a coroutine too), every served token that
-- will enter the refresh margin soon, so requests do not wait for a refresh in the normal
-- case. Waiting for another process's refresh (the lease's loop) sleeps in the
-- coroutine: run_worker makes sys.sleep yield to the loop within a task.
--
-- Bodies: a request's body is held whole (up to --max-body, 413 above, from evhttp:
-- httpd reports each answer evhttp writes itself, Worker:refused logs and counts it),
-- which is what lets a request be sent again after a refresh. An answer is streamed to
-- the client as it arrives once it is final, unless its length is given and small (http.c
-- STREAM_WHOLE: sent in one reply once it has come) (not a status the connection refreshes on,
-- not a redirect that is followed, not for a connector with hooks.expired, which reads
-- every answer; these are held whole, up to the HTTP client's 64 MiB): the transfer
-- pauses while the client has STREAM_HIGH bytes not yet taken (httpd.c), and a body over
-- --max-response (M.MAX_RESPONSE) cuts the client's connection mid-answer and is logged
-- and counted as an error (class "error"), as is an answer whose client left before it
-- was handed over (httpd.c client_gone): a request is logged and counted once its answer
-- has gone, when httpd calls the handler's done(why). The upstream request is
-- `abortable`: httpd stops it when its client leaves while it waits (never a refresh). `connrt request` through the proxy
-- (Connrt-Cli) gets its answer whole, rendered as that command prints it and redacted
-- (shown.lua).
--
-- The master opens no store: it relays SIGTERM (stop accepting, finish what is in
-- flight) and SIGHUP (forget the open connections) to the workers and starts a worker
-- again if one dies. Metrics: each worker counts its own and copies them to its slot of
-- shared memory at most every PUBLISH_EVERY seconds (its tick publishes what a request
-- left unpublished), where whichever worker answers /_connrt/metrics sums them. Series
-- are per served connection (every other request, for another name or none, is
-- "unknown"); a worker whose series outgrow its slot folds them into "other" and says so
-- (Worker:publish), never silently stale.
--
-- Access: a unix socket (default) is created 0600 in a 0700 directory; a TCP listener
-- (--listen) requires the proxy key in a Connrt-Key header on every request (401
-- otherwise, nothing sent): 32 random bytes in hex, written 0600 to a file at start
-- (--key-file) and never printed or logged.
local cjson = require("cjson")
local errors = require("connrt.errors")
local log = require("connrt.log")
local sys = require("connrt.sys")
local txt = require("connrt.text")
local shown = require("connrt.shown")

local M = {}

-- The CPUs a cgroup's quota allows this process (a container started with --cpus=N:
-- cgroup v2's cpu.max, v1's cpu.cfs_quota_us over cpu.cfs_period_us, the smallest of its
-- cgroup and their parents), rounded up; nil without a quota. `root` (a directory
-- standing for /, for a spec's fixture) defaults to /.
function M.cgroup_cpus(root)
  root = root or ""
  local function read(path)
    local f = io.open(root .. path, "r")
    if not f then return nil end
    local text = f:read("a")
    f:close()
    return text
  end
  local best
  local function quota(q, period)
    q, period = tonumber(q), tonumber(period)
    if q and period and q > 0 and period > 0 then
      local n = math.ceil(q / period)
      if not best or n < best then best = n end
    end
  end
  for line in (read("/proc/self/cgroup") or ""):gmatch("[^\n]+") do
    local id, controllers, path = line:match("^(%d+):([^:]*):(/.*)$")
    local v2 = id == "0" and controllers == ""
    local v1 = not v2 and ("," .. (controllers or "") .. ","):find(",cpu,", 1, true)
    while path and (v1 or v2) do
      local dir = path == "/" and "" or path
      if v2 then
        local q, period = (read("/sys/fs/cgroup" .. dir .. "/cpu.max") or ""):match("^(%d+)%s+(%d+)")
        quota(q, period)
      else
        quota(read("/sys/fs/cgroup/cpu" .. dir .. "/cpu.cfs_quota_us"),
          read("/sys/fs/cgroup/cpu" .. dir .. "/cpu.cfs_period_us"))
      end
      if path == "/" then break end
      path = path:match("^(.*)/[^/]*$")
      if path == "" then path = "/" end
    end
  end
  return best
end

-- The default number of workers: one per CPU the proxy may use (nginx's "auto": its
-- affinity mask, and a cgroup's CPU quota where one is set), at least 2 (a worker that
-- dies leaves one serving while the master starts it again), at most 64. More workers
-- than CPUs only contend for them: on 2 CPUs, 2 workers served 1.12x the keep-alive
-- requests a second of 8, p99 15 ms against 24 (bench/RESULTS.md, section 8). A
-- worker serves many requests at once either way; each holds its own store handle (on
-- PostgreSQL, a connection of its own).
function M.default_workers()
  local n = sys.cpus()
  local quota = M.cgroup_cpus()
  if quota and quota < n then n = quota end
  return math.min(math.max(n, 2), 64)
end
M.MAX_BODY = 10 * 1024 * 1024      -- request bodies: more gets 413 (evhttp)
M.MAX_RESPONSE = 1024 * 1024 * 1024 -- a streamed response body: more cuts the client's connection
M.IDLE = 60                        -- seconds a client may stay silent
M.UPSTREAM_TIMEOUT = 60            -- seconds an upstream may take
M.METRICS_SLOT = 64 * 1024
M.UNKNOWN = "unknown" -- the metrics label of requests for a connection the proxy does not serve
M.OTHER = "other"     -- every connection's label in a worker whose metrics outgrew METRICS_SLOT
M.PUBLISH_EVERY = 0.1 -- seconds: a worker copies its metrics to shared memory at most this often
M.BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 }

-- Headers that are the proxy's business, not the upstream's (hop-by-hop, RFC 9110
-- 7.6.1; routing and framing, which connrt's HTTP client sets; the caller's
-- credentials, replaced by the connection's; the proxy's own). Content coding is the
-- proxy's too: its HTTP client asks for every coding it can undo and undoes it, so the
-- caller's Accept-Encoding is not passed on and the body it gets is the decoded one,
-- without the upstream's Content-Encoding (a gzip body sent on as plain text under
-- "Content-Encoding: gzip" broke every client that asked for gzip: Node's fetch does).
local DROP_REQUEST = txt.PROXY_DROPPED
local DROP_RESPONSE = txt.hop_by_hop_and({ "proxy-authenticate", "content-length", "content-encoding" })
-- Connrt-* is the proxy's own: a caller's (Connrt-Key, Connrt-Target, ...) never goes
-- upstream, and an upstream's never reaches the caller, where a Connrt-Error would pass
-- for one of the proxy's refusals (and set `connrt request`'s message and exit status).
local function own(name) return name:find("^connrt%-") ~= nil end

-- The HTTP status each kind of error answers with.
local STATUS = { refused = 403, notfound = 404, usage = 400, network = 502, provider = 502, connector = 502,
  store = 500, failed = 502, connect = 502 }

-- An answer of the proxy's own (never the upstream's): a JSON error, and its kind in a
-- Connrt-Error header, which `connrt request` through CONNRT_PROXY turns into connrt's
-- exit status. The message is redacted here, where the secrets are known; the command
-- prints it knowing none, escaping its control characters and broken UTF-8 (in its
-- --json error line, of the message as JSON writes it), which could spell an upstream's
-- Latin-1 echo of a key as the \u00e4 escapes a JSON reader takes back to the key, or
-- (JSON writes "/" as "\/") spell a key that holds "\/". So the message goes in its
-- kept form (errors.kept_message, as the direct path prints it): redacted when no way of
-- printing it shows a secret; else already shown (escaped and redacted); else what its
-- reason means.
local function json_error(status, kind, message, extra)
  local reason = (extra or {}).reason or errors.default_reason[kind]
  local doc = { error = kind, message = errors.kept_message(reason, message) }
  for k, v in pairs(extra or {}) do doc[k] = v end
  return status, { { "Content-Type", "application/json" }, { "Connrt-Error", kind } }, cjson.encode(doc) .. "\n"
end

-- The answer to a request that failed with `err` (an error object, or a bug's message);
-- `answered`: an upstream had answered part of it (a redirect hop, a 401 before a
-- refresh), so it went out. A worker at its open file limit (clients holding
-- connections) answers 503: a failure to open something before anything was sent (the
-- connector's sandbox, the store, an upstream connection) failed for that, not for what
-- its message says; sys.out_of_descriptors asks right after it. Any other failure is
-- what it says: one after the request went upstream is never an invitation to send it
-- again.
local function failure(err, answered)
  local opening = not answered and (not errors.is(err) or err.kind == "store" or err.kind == "connector"
    or (err.kind == "network" and err.reason == "unreachable"))
  if opening and sys.out_of_descriptors() then
    local status, headers, body = json_error(503, "failed", "the proxy reached its open file limit (ulimit -n) and "
      .. "could not open what this request needs; try again once fewer clients are connected, or raise the limit",
      { reason = "out_of_descriptors" })
    headers[#headers + 1] = { "Retry-After", "1" }
    return status, headers, body
  end
  if errors.is(err) then
    local status, headers, body = json_error(err.reason == "timeout" and 504 or STATUS[err.kind] or 502, err.kind,
      err.message, { reason = err.reason })
    -- an upstream's answer connrt request could not print (forward): its status and URL,
    -- which the command prints before the error, as the direct path does
    if err.shown then
      headers[#headers + 1] = { "Connrt-Shown-Status", tostring(err.shown.status) }
      headers[#headers + 1] = { "Connrt-Shown-Url", err.shown.url }
    end
    return status, headers, body
  end
  log.err("connrt proxy: internal error: %s", tostring(err))
  return json_error(500, "internal", "internal error in the proxy")
end

-- The answer to a command (Connrt-Store) whose store or key is not the one this worker
-- holds open (Worker:holds): it goes direct, to what it names.
local function other_store()
  return json_error(400, "usage", "this proxy serves another store or key than the command's (--store, "
    .. "CONNRT_STORE, CONNRT_HOME, CONNRT_KEY, CONNRT_KEY_FILE; or its files were replaced since it opened them)",
    { reason = "other_store" })
end

-- True when `err`, a failure of a command's call (Connrt-Store), says the key this
-- worker holds no longer opens its store (rekeyed under the CONNRT_KEY it started with:
-- Store:reload_key). That key is the command's (Worker:holds), so the command cannot open
-- the store with it either, and sends nothing: it goes direct (other_store) and says so
-- as it does without the proxy.
local function no_longer_opens(h, err)
  return h["connrt-store"] ~= nil and errors.is(err) and err.kind == "store" and err.reason == "wrong_key"
end

local NONE = {}

-- The names the Connection header(s) list as hop-by-hop too: names[i] is the i-th
-- header's name in lower case, value(i) its value.
local function connection_tokens(names, value)
  local set = NONE
  for i, n in ipairs(names) do
    if n == "connection" then
      if set == NONE then set = {} end
      for t in value(i):gmatch("[^,%s]+") do set[t:lower()] = true end
    end
  end
  return set
end

-- Equal strings, in time that does not depend on where they differ (CRYPTO_memcmp).
local function same(a, b)
  return type(a) == "string" and require("connrt.crypto").equal(a, b)
end

-- ---- metrics: each worker's own, published to its shared-memory slot ----

local function new_metrics()
  local b = {}
  for i = 1, #M.BUCKETS + 1 do b[i] = 0 end
  return { requests = {}, refreshes = {}, refresh_failures = {}, buckets = b, sum = 0, count = 0 }
end

local function count(t, k, n) t[k] = (t[k] or 0) + (n or 1) end

local function observe(m, seconds)
  for i, le in ipairs(M.BUCKETS) do
    if seconds <= le then m.buckets[i] = m.buckets[i] + 1 end
  end
  m.buckets[#M.BUCKETS + 1] = m.buckets[#M.BUCKETS + 1] + 1
  m.sum, m.count = m.sum + seconds, m.count + 1
end

local function label(v) return (tostring(v):gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" })) end

--- The Prometheus text of the workers' metrics (an array of tables as new_metrics makes).
function M.prometheus(all)
  local total = new_metrics()
  for _, m in ipairs(all) do
    for k, v in pairs(m.requests or {}) do count(total.requests, k, v) end
    for k, v in pairs(m.refreshes or {}) do count(total.refreshes, k, v) end
    for k, v in pairs(m.refresh_failures or {}) do count(total.refresh_failures, k, v) end
    for i, v in ipairs(m.buckets or {}) do total.buckets[i] = total.buckets[i] + v end
    total.sum, total.count = total.sum + (m.sum or 0), total.count + (m.count or 0)
  end
  local out = {}
  local function sorted(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    table.sort(ks)
    return ks
  end
  out[#out + 1] = "# HELP connrt_proxy_requests_total Requests answered, by connection and status class (error: a "
    .. "streamed answer cut short)."
  out[#out + 1] = "# TYPE connrt_proxy_requests_total counter"
  for _, k in ipairs(sorted(total.requests)) do
    local conn, class = k:match("^(.*)\t(.*)$")
    out[#out + 1] = ('connrt_proxy_requests_total{connection="%s",class="%s"} %d'):format(label(conn), class,
      total.requests[k])
  end
  for _, what in ipairs({ { "refreshes", "Token refreshes the proxy spent." },
      { "refresh_failures", "Token refreshes that failed." } }) do
    out[#out + 1] = ("# HELP connrt_proxy_%s_total %s"):format(what[1], what[2])
    out[#out + 1] = ("# TYPE connrt_proxy_%s_total counter"):format(what[1])
    for _, k in ipairs(sorted(total[what[1]])) do
      out[#out + 1] = ('connrt_proxy_%s_total{connection="%s"} %d'):format(what[1], label(k), total[what[1]][k])
    end
  end
  local folded = 0
  for _, m in ipairs(all) do if m.folded then folded = folded + 1 end end
  out[#out + 1] = '# HELP connrt_proxy_metrics_folded Workers whose per-connection series outgrew their shared memory: '
    .. 'they count every connection under connection="' .. M.OTHER .. '".'
  out[#out + 1] = "# TYPE connrt_proxy_metrics_folded gauge"
  out[#out + 1] = ("connrt_proxy_metrics_folded %d"):format(folded)
  out[#out + 1] = "# HELP connrt_proxy_upstream_seconds Time from a request's arrival to its answer from upstream."
  out[#out + 1] = "# TYPE connrt_proxy_upstream_seconds histogram"
  for i, le in ipairs(M.BUCKETS) do
    out[#out + 1] = ('connrt_proxy_upstream_seconds_bucket{le="%s"} %d'):format(tostring(le), total.buckets[i])
  end
  out[#out + 1] = ('connrt_proxy_upstream_seconds_bucket{le="+Inf"} %d'):format(total.buckets[#M.BUCKETS + 1])
  out[#out + 1] = ("connrt_proxy_upstream_seconds_sum %.6f"):format(total.sum)
  out[#out + 1] = ("connrt_proxy_upstream_seconds_count %d"):format(total.count)
  return table.concat(out, "\n") .. "\n"
end

-- ---- a worker ----

local Worker = {}
Worker.__index = Worker

--- A worker's state: worker `index` of cfg.workers, its metrics slot in `shm` (run_worker
-- makes one in each forked worker; the specs, one to look at).
function M.new_worker(index, cfg, shm)
  return setmetatable({ index = index, cfg = cfg, shm = shm, conns = {}, aliases = {}, metrics = new_metrics() },
    Worker)
end

function Worker:store()
  if not self.st then self.st = require("connrt.store").open(nil, { existing = "no connections" }) end
  return self.st
end

-- Forgets the open connection `conn` under every name it was kept by.
function Worker:forget(conn)
  for k, c in pairs(self.conns) do
    if c == conn then self.conns[k] = nil end
  end
end

-- The served connection `ref` (an id, or a connector id with one connection), open and
-- kept for the next requests, and brought to the store's state first: its record is
-- read again on every call after any write to the store (Store:generation; on PostgreSQL,
-- on every call; one read transaction, nothing held after it), and when it
-- was rewritten by anyone (`connrt update`, new tokens from another process's refresh,
-- a reconnect) the open connection follows it in place (Connection:follow), so what is
-- sent next is decided by the store's allowed URLs and tokens; a deleted one is
-- forgotten and is a notfound error. In place: a coroutine waiting for this worker's
-- refresh of it (the wait list below) keeps waiting on the same object. A store that
-- another process rekeyed since this worker read the key (`connrt rekey`) is taken up
-- with the new key, read again from the key file (Worker:after_rekey), and the lookup made
-- once more.
function Worker:connection(ref)
  return self:after_rekey(self.lookup, self, ref)
end

-- fn(...), made once more when it failed with a store error that came of a `connrt
-- rekey` since this worker read its key, once the key was read again (Store:reload_key;
-- it raises where the new key cannot be had, as under CONNRT_KEY).
function Worker:after_rekey(fn, ...)
  local r = table.pack(pcall(fn, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  local err = r[2]
  if errors.is(err) and err.kind == "store" and self.st ~= nil and self.st:reload_key() then return fn(...) end
  error(err, 0)
end

-- True when `selection` (a command's Connrt-Store: store.selection) names the store and
-- key this worker holds open (Store:selection): the same directory and data file, or
-- PostgreSQL URL and variables, and the same key. When the key differs, a `connrt rekey`
-- since this worker read its key is taken up first (Store:reload_key: only a key that
-- opens the store is). Anything else (a key file or store directory replaced by other
-- means, another store chosen) is not this worker's: the command goes direct, to what it
-- names.
function Worker:holds(selection)
  local ok, mine = pcall(function() return self:store():selection() end)
  if ok and mine == selection then return true end
  if not (ok and mine) then return false end
  local rok, replaced = pcall(self.st.reload_key, self.st)
  return rok and replaced and self.st:selection() == selection or false
end

function Worker:lookup(ref)
  local st = self:store()
  local cached = self.conns[ref]
  local alias = self.aliases[ref]
  if alias ~= nil and (not alias or alias ~= st:generation()) then
    -- a connector's id naming its one connection: what it names is asked again once the
    -- store was written since the name was looked up (on PostgreSQL, every time): a
    -- second connection of that connector makes it ambiguous, as for the CLI
    self.aliases[ref], self.conns[ref], cached = nil, nil, nil
  end
  if cached then
    -- nothing written to the store since the read the record came from (LMDB says so
    -- without a transaction): the connection is as the store has it
    local now = st:generation()
    if now and now == rawget(cached, "_generation") then return cached end
    local rec, at = st:get(cached.rec.id)
    if rec then
      cached:follow(rec)
      -- only once it followed: a record it could not take (a changed key, a broken
      -- binding) is read, and refused, again on the next request
      rawset(cached, "_generation", at)
      return cached
    end
    self:forget(cached) -- deleted (or reconnected under a new id: found again below)
  end
  local at = st:snapshot() -- before the reads of find: they see this write or later ones
  local rec = st:find(ref)
  if self.cfg.served and not self.cfg.served[rec.id] then
    errors.fail("notfound", "not_served", "connection %s is not served by this proxy (--connection)", rec.id)
  end
  -- the record found is the one opened (never a second lookup of the name, which a write
  -- in between could answer with another connection)
  local conn = self.conns[rec.id]
  if conn then
    conn:follow(rec) -- open under its id already: the name was a connector's id
  else
    conn = self:open(rec)
  end
  if rec.id ~= ref then self.conns[ref], self.aliases[ref] = conn, at or false end
  return conn
end

-- Opens the connection of `rec` (a record just read) for this worker's requests, kept
-- under its id.
function Worker:open(rec)
  local st = self:store()
  local conn = require("connrt.connection").from_record(st, rec)
  -- single flight of refresh among this worker's coroutines: the store's lease keeps other
  -- processes out, but two coroutines of this one must not both refresh nor wait for each
  -- other in the lease's sleep loop (which would stop the loop that must finish the
  -- refresh); so a second one waits here, in coroutine.yield(), for the first's result
  local refresh, waiting = conn.refresh, nil
  rawset(conn, "refresh", function(c, seen)
    local httpd = require("connrt.httpd") -- (here: a worker's lookups need no server)
    seen = seen or c.secrets.access_token
    while waiting and httpd.in_task() do
      waiting[#waiting + 1] = coroutine.running()
      coroutine.yield()
      if c.secrets.access_token ~= seen and not c:expiring(0) then return c.secrets.access_token end
    end
    if waiting then return refresh(c, seen) end
    local mine = {}
    waiting = mine
    local ok, tok = pcall(refresh, c, seen)
    waiting = nil
    for _, co in ipairs(mine) do httpd.wake(co) end
    if not ok then error(tok, 0) end
    return tok
  end)
  -- count the refreshes this worker spends (the grant itself: a refresh another process
  -- made first is not one)
  local grant = conn.refresh_grant
  local metrics = self.metrics
  rawset(conn, "refresh_grant", function(c)
    local ok, tok, where = pcall(grant, c)
    count(ok and metrics.refreshes or metrics.refresh_failures, metrics.folded and M.OTHER or c.rec.id)
    if not ok then error(tok, 0) end
    return tok, where
  end)
  -- and again before each redirect hop and each retry of a request (Connection:request)
  local function recheck(c)
    local now = st:get(c.rec.id)
    if not now then errors.raise("notfound", "connection %s was deleted", c.rec.id) end
    c:follow(now)
  end
  rawset(conn, "recheck", function(c) self:after_rekey(recheck, c) end)
  self.conns[rec.id] = conn
  return conn
end

-- Counts one answered request of connection `id` (a served one, or M.UNKNOWN) in the
-- status class `class`.
function Worker:count_request(id, class)
  count(self.metrics.requests, (self.metrics.folded and M.OTHER or id) .. "\t" .. class)
end

-- Why evhttp answers a request itself, before the handler sees it (httpd on_output).
local REFUSED = {
  [400] = "a malformed request line or head, or a head over its limit",
  [413] = "a body over --max-body, or broken chunked framing",
  [408] = "no whole request within --idle seconds of its first byte: closed, nothing answered",
  [417] = "an Expect header other than 100-continue",
  [501] = "a method the proxy does not serve",
}

-- `n` requests evhttp answered itself with `status` (httpd's on_refused): neither their
-- method nor their path is known, so they are logged with "-" for both, and counted
-- for no connection (M.UNKNOWN).
function Worker:refused(status, n)
  local why = REFUSED[status] or "refused by the HTTP server"
  for _ = 1, n do
    self:count_request(M.UNKNOWN, (status // 100) .. "xx")
    log.err("connrt proxy: - - %d refused: %s", status, why)
  end
  self:publish()
end

-- Folds this worker's per-connection series into one, M.OTHER, for good: what it counts
-- from now on is counted there too, so its metrics keep a size that fits the slot.
local function fold(m)
  local requests, refreshes, failures = {}, {}, {}
  for k, v in pairs(m.requests) do count(requests, M.OTHER .. "\t" .. k:match("\t(.*)$"), v) end
  for _, v in pairs(m.refreshes) do count(refreshes, M.OTHER, v) end
  for _, v in pairs(m.refresh_failures) do count(failures, M.OTHER, v) end
  m.requests, m.refreshes, m.refresh_failures, m.folded = requests, refreshes, failures, true
end

-- Copies this worker's metrics to its shared-memory slot, for whichever worker answers
-- /_connrt/metrics: at most every PUBLISH_EVERY seconds (a request in between marks them
-- unpublished, and the worker's tick publishes them), or now with `now`. Metrics that
-- outgrow the slot (series for more connections than fit in METRICS_SLOT) are folded
-- into one series and the worker says so once in its log and in
-- connrt_proxy_metrics_folded: never silently stale.
function Worker:publish(now)
  if not self.shm then return end
  local t = sys.monotime()
  if not now and self.published and t - self.published < M.PUBLISH_EVERY then
    self.unpublished = true
    return
  end
  self.published, self.unpublished = t, false
  local text = cjson.encode(self.metrics)
  if #text > M.METRICS_SLOT then
    fold(self.metrics)
    log.err("connrt proxy: worker %d: its metrics outgrew their %d bytes of shared memory; its requests and refreshes "
      .. "are counted under connection=\"%s\" from now on", self.index, M.METRICS_SLOT, M.OTHER)
    text = cjson.encode(self.metrics)
  end
  self.shm:put(self.index, text)
end

-- A worker started in the slot of one that died takes up the counts that one last
-- published there, so the sums /_connrt/metrics gives never go down (a counter that
-- falls reads as a reset to Prometheus). A slot that holds nothing whole (never written,
-- or its writer died in the middle) gives nothing to take up.
function Worker:adopt_metrics()
  local ok, m = pcall(cjson.decode, self.shm and self.shm:get(self.index) or "")
  if not ok or type(m) ~= "table" then return end
  local fresh = new_metrics()
  for k, v in pairs(fresh) do
    if type(m[k]) ~= type(v) then return end
  end
  if #m.buckets ~= #fresh.buckets then return end
  -- (cjson gives numbers back as floats: counts become integers again)
  for _, k in ipairs({ "requests", "refreshes", "refresh_failures" }) do
    for name, n in pairs(m[k]) do
      local i = math.tointeger(n)
      if type(name) ~= "string" or not i or i < 0 then return end
      fresh[k][name] = i
    end
  end
  for i, n in ipairs(m.buckets) do
    fresh.buckets[i] = math.tointeger(n)
    if not fresh.buckets[i] then return end
  end
  fresh.count, fresh.sum = math.tointeger(m.count), m.sum
  if not fresh.count then return end
  fresh.folded = m.folded == true or nil
  self.metrics = fresh
end

-- SIGHUP: forget every open connection; the next request reads the store again.
function Worker:reload()
  self.conns, self.aliases = {}, {}
  -- and the key, if the store was rekeyed (an error here is the next request's to say)
  if self.st then pcall(self.st.reload_key, self.st) end
  log.err("connrt proxy: worker %d re-read the connection list", self.index)
end

-- The served records, as the store has them now.
function Worker:served_records()
  local out = {}
  for _, rec in ipairs(self:store():list()) do
    if not self.cfg.served or self.cfg.served[rec.id] then out[#out + 1] = rec end
  end
  return out
end

-- Background refresh (worker 1, every second): a token that enters the request path's
-- refresh margin within the next quarter of its lifetime (at most a minute; or
-- --refresh-ahead seconds, at most half its lifetime before expiry with the margin) is
-- refreshed now, through the lease like any refresh.
function Worker:refresh_ahead()
  local ok, recs = pcall(self.served_records, self)
  if not ok then return end
  local connection = require("connrt.connection")
  for _, rec in ipairs(recs) do
    if rec.expires_at and not rec.needs_reconnect and (rec.has_refresh_token or rec.auth == "client_credentials") then
      local margin = connection.margin(rec)
      local issued = rec.issued_at or rec.refreshed_at or rec.updated_at or os.time()
      local lifetime = math.max(0, rec.expires_at - issued)
      -- --refresh-ahead, never so far ahead that a token just refreshed is due again
      -- (at most half its lifetime before expiry, the margin included)
      local ahead = self.cfg.refresh_ahead and math.min(self.cfg.refresh_ahead, math.max(0, lifetime / 2 - margin))
        or math.min(60, lifetime / 4)
      if rec.expires_at - os.time() <= margin + ahead then
        local got, conn = pcall(self.connection, self, rec.id)
        if got then
          conn:reload()
          if conn:expiring(margin + ahead) then
            local done, err = pcall(conn.refresh, conn)
            if not done then log.err("connrt proxy: background refresh of %s failed: %s", rec.id, tostring(err)) end
          end
        end
      end
    end
  end
end

-- Every worker's tick (every PUBLISH_EVERY seconds): publishes what was counted since
-- the last copy; worker 1's also refreshes ahead, once a second.
function Worker:tick()
  if self.unpublished then self:publish(true) end
  if self.index ~= 1 then return end
  local t = sys.monotime()
  if self.ahead_at and t - self.ahead_at < 1 then return end
  self.ahead_at = t
  self:refresh_ahead()
  if self.unpublished then self:publish(true) end
end

-- The modules a request may load on first use (connrt.lazy, a require inside a function):
-- each is a file to open, and a worker at its descriptor limit could not.
M.REQUEST_PATH = { "cjson.safe", "connrt.format", "connrt.crypto", "connrt.connection", "connrt.connector",
  "connrt.sandbox", "connrt.schema", "connrt.template", "connrt.request", "connrt.http", "connrt.oauth",
  "connrt.autoconf", "connrt.discovery", "connrt.registration", "connrt.origins", "connrt.url" }

--- Before the first client is accepted: the store opened and the request path's modules
-- loaded, while there are descriptors to do it with. Clients holding connections up to
-- the worker's limit (httpd then pauses accepting) must not leave it unable to answer
-- once they go; a connection that closed while waiting to be accepted still takes a
-- descriptor for a moment when it is. A store that fails to open here is each request's
-- store error, as it would be later.
function Worker:warm()
  for _, name in ipairs(M.REQUEST_PATH) do require(name) end
  local ok, err = pcall(self.store, self)
  if not ok then log.err("connrt proxy: worker %d: %s", self.index, tostring(errors.is(err) and err.message or err)) end
end

function Worker:health()
  local list = {}
  for _, rec in ipairs(self:served_records()) do
    list[#list + 1] = { id = rec.id, connector = rec.connector, name = rec.name, status = require("connrt.format").status(rec),
      expires_at = rec.expires_at and os.date("!%Y-%m-%dT%H:%M:%SZ", rec.expires_at) or nil }
  end
  return 200, { { "Content-Type", "application/json" } }, cjson.encode({ status = "ok", connections = list }) .. "\n"
end

function Worker:metrics_text()
  local all = {}
  for i = 1, self.cfg.workers do
    local text = self.shm and self.shm:get(i)
    local doc = text and require("cjson.safe").decode(text)
    if i == self.index then doc = self.metrics end
    if type(doc) == "table" then all[#all + 1] = doc end
  end
  return 200, { { "Content-Type", "text/plain; version=0.0.4" } }, M.prometheus(all)
end

-- Sends one request through a connection; returns status, headers, body.
function Worker:forward(req, ref, rest)
  -- Connrt-Cli asks for what `connrt request` does without the proxy (its timeout, its
  -- answer held whole, a connection that needs reconnecting still used): only on the unix
  -- socket, whose clients may run `connrt request` themselves; a TCP client keeps to the
  -- proxy's own limits
  if req.h["connrt-cli"] and not req.unix then
    errors.raise("usage", "Connrt-Cli is for `connrt request` through the proxy's unix socket (CONNRT_PROXY)")
  end
  local conn = self:connection(ref)
  -- (`connrt request` sends it as it does without the proxy, with the token it has)
  if conn.rec.needs_reconnect and not req.h["connrt-cli"] then
    local path = conn.rec.connector_path or conn.rec.connector
    return json_error(503, "needs_reconnect", ("connection %s needs reconnecting: run `connrt run %s` again for this "
      .. "account"):format(conn:id(), path), { connection = conn:id(), reconnect = "connrt run " .. path })
  end
  -- the proxy's own controls are given once: with two, which one is read would decide
  local given = {}
  for _, n in ipairs(req.names) do given[n] = (given[n] or 0) + 1 end
  for _, name in ipairs({ "Connrt-Target", "Connrt-Json", "Connrt-Cli" }) do
    local times = given[name:lower()] or 0
    if times > 1 then errors.raise("usage", "%s given %d times: give one", name, times) end
  end
  local target = req.h["connrt-target"]
  if target then
    if rest ~= "" and rest ~= "/" then
      errors.raise("usage", "give the URL either in Connrt-Target or in the path after /%s/, not both", ref)
    end
  else
    target = rest == "" and "/" or rest
  end
  local names, list = req.names, req.headers
  local hop = connection_tokens(names, function(i) return list[i][2] end)
  local headers = {}
  for i, h in ipairs(list) do
    local n = names[i]
    if not DROP_REQUEST[n] and not hop[n] and not own(n) then headers[#headers + 1] = h end
  end
  -- an empty body that was declared is sent declared (Content-Length: 0), as the direct
  -- path sends `-d ''`
  local body, json, json_text = req.body, nil, nil
  if body == nil and (req.h["content-length"] or req.h["transfer-encoding"]) then body = "" end
  -- a body sent without a Content-Type goes on without one: libcurl would call it a form
  -- (a blank value stops libcurl adding its own and is not sent)
  if body and not req.h["content-type"] then headers[#headers + 1] = { "Content-Type", "" } end
  -- `connrt request --json-body` through the proxy: the body is JSON for
  -- Connection:request to merge the connector's body parameters into, as it does there
  if req.h["connrt-json"] and req.h["connrt-json"] ~= "1" then errors.raise("usage", "Connrt-Json: expected 1") end
  if req.h["connrt-json"] then
    local why
    json, why = require("connrt.json").body(body or "")
    if json == nil then errors.raise("usage", "--json-body: %s", why) end
    body, json_text = nil, body
  end
  -- connrt request's answer (Connrt-Cli: the form it prints) is kept whole and rendered
  -- here, where the secrets are known; any other final answer streams (request.send says
  -- which answers are final)
  local form = req.h["connrt-cli"]
  if form and not shown.FORMS[form] then errors.raise("usage", "Connrt-Cli: expected json, include or body") end
  -- (`connrt request`'s own timeout, as without the proxy; the proxy's --timeout for the rest)
  local resp = conn:request({ method = req.method, url = target, headers = headers, body = body, json = json,
    json_text = json_text, timeout = not form and self.cfg.upstream_timeout or nil, stream = not form,
    stream_max = self.cfg.max_response,
    abortable = true, progress = req.progress })
  -- for `connrt request`: the command's standard output as the direct path writes it,
  -- redacted (shown.lua: the command knows no secret and transforms nothing), marked as
  -- an upstream's answer by Connrt-Shown; and the URL as the direct path shows it,
  -- redacted (an answer with neither this nor Connrt-Error is the HTTP parser's, written
  -- before anything was sent: via_proxy.lua)
  if form then
    local shown_url = log.redact(target)
    local ok, out = pcall(shown.stdout, resp, form)
    if not ok then
      -- the direct path prints the status line before this failure (a body too large to
      -- decode for --json): the error answer says the status it had (failure)
      if errors.is(out) then out.shown = { status = resp.status, url = shown_url } end
      error(out, 0)
    end
    return resp.status, { { "Connrt-Shown", form }, { "Connrt-Shown-Url", shown_url } }, out, conn:id(), resp.stream
  end
  local out, rlist, rnames = {}, resp.header_list, {}
  -- a name with whitespace before its colon is trimmed (RFC 9112 5.1: a proxy removes it),
  -- so "Transfer-Encoding :" is the hop-by-hop header it is; a name that is still not a
  -- token is no header line to pass on (false)
  for i, x in ipairs(rlist) do
    local n = txt.trim(x.name):lower()
    rnames[i] = txt.is_token(n) and n
  end
  local rhop = connection_tokens(rnames, function(i) return rlist[i].value end)
  for i, x in ipairs(rlist) do
    local n = rnames[i]
    if n and not DROP_RESPONSE[n] and not rhop[n] and not own(n) then
      out[#out + 1] = { txt.trim(x.name), x.value }
    end
  end
  -- a streamed answer keeps the length the upstream gave (a client's progress, a resumed
  -- download) when its body comes as it was sent: not decoded, not chunked; one cut short
  -- closes the connection (httpd), which a client reads against the length
  if resp.stream then
    local length, coded
    for i, n in ipairs(rnames) do
      if n == "content-length" then
        local v = txt.trim(rlist[i].value)
        coded = coded or length ~= nil or not v:match("^%d+$")
        length = v
      elseif n == "content-encoding" or n == "transfer-encoding" then
        coded = true
      end
    end
    if length and not coded then out[#out + 1] = { "Content-Length", length } end
  end
  return resp.status, out, resp.body, conn:id(), resp.stream
end

-- Why a request's framing cannot be trusted, or nil (evhttp took one reading of it, and
-- would read what is left as the next request: RFC 9112 6.1, 6.3, 11.2).
local function framing_problem(method, names, list, body)
  local length, coding
  for i, n in ipairs(names) do
    -- a name evhttp keeps as it came ("Content-Length " with a space before the colon) is
    -- none of the names below to it, and may be one to the upstream or to us (RFC 9112 5.1)
    if not txt.is_token(n) then return "a header name that is not a token" end
    if n == "content-length" then
      local v = txt.trim(list[i][2])
      if not v:match("^%d+$") then return "Content-Length is not a number of bytes" end
      if length and v ~= length then return "Content-Length given twice, with different values" end
      length = v
    elseif n == "transfer-encoding" then
      if coding then return "Transfer-Encoding given twice" end
      coding = txt.trim(list[i][2]):lower()
    end
  end
  if length and coding then return "both Content-Length and Transfer-Encoding" end
  -- evhttp reads a body only as chunked or by its length: any other coding (identity,
  -- gzip, "xchunked") would leave the body to be read as the next request (RFC 9112 6.1)
  if coding and coding ~= "chunked" then return "a Transfer-Encoding other than chunked" end
  -- nor does it read one for HEAD (nor, in other libevent versions, for other methods):
  -- a body that was declared and not read
  local declared = coding or (length and tonumber(length) > 0)
  if declared and method == "HEAD" then return "a HEAD request with a body" end
  if length and tonumber(length) ~= #(body or "") then return "a body that was not read as its Content-Length says" end
end

-- Every request (called by httpd.serve, in a coroutine of its own). Returns status,
-- headers, body, and for a streamed answer the transfer and the function httpd.serve
-- calls once it is sent (or cut).
function Worker:handle(req)
  local started = sys.monotime()
  -- the request's header names in lower case (names[i]), and each header's value by that
  -- name (h[name]: the first of a repeated one), made once
  local names, h = {}, {}
  for i, x in ipairs(req.headers) do
    local n = x[1]:lower()
    names[i] = n
    if h[n] == nil then h[n] = x[2] end
  end
  req.names, req.h = names, h
  local status, headers, body, conn_id, stream, forwarded
  local path = req.target:gsub("[?#].*$", "")
  local framing = framing_problem(req.method, names, req.headers, req.body)
  if framing then
    -- the body evhttp read may not be the one the client meant, nor the rest of the
    -- connection its next request: answered, and the connection closed (RFC 9112 6.3)
    status, headers, body = json_error(400, "usage", framing)
    headers[#headers + 1] = { "Connection", "close" }
  elseif self.cfg.key and not same(h["connrt-key"], self.cfg.key) then
    status, headers, body = json_error(401, "unauthorized", "this proxy needs its key in a Connrt-Key header")
  elseif h["connrt-store"] and not self:holds(h["connrt-store"]) then
    status, headers, body = other_store()
  elseif h["connrt-settings"] and h["connrt-settings"] ~= self.cfg.settings then
    status, headers, body = json_error(400, "usage", "this proxy runs with other settings than the command's (its "
      .. "environment: CONNRT_CA_BUNDLE, proxy variables, sandbox limits, refresh timing, PG* variables)",
      { reason = "other_settings" })
  elseif req.target:sub(1, 1) ~= "/" then
    -- absolute-form (GET http://host/ HTTP/1.1): this is not a forward proxy
    status, headers, body = json_error(400, "usage", "the request target must be a path: /CONNECTION/PATH")
  elseif path == "/_connrt/health" and req.method == "GET" then
    local ok, a, b, c = pcall(self.health, self)
    if ok then status, headers, body = a, b, c else status, headers, body = failure(a) end
  elseif path:match("^/_connrt/token/") and req.method == "GET" and req.unix then
    -- `connrt token` through CONNRT_PROXY: the one answer that is a bare token (a unix
    -- socket only: its owner can read the store anyway)
    local ref = path:match("^/_connrt/token/([%w_.-]+)$")
    local ok, tok = pcall(function()
      if not ref then errors.raise("usage", "no connection in the path") end
      local conn = self:connection(ref)
      conn_id = conn:id()
      return conn:token()
    end)
    if ok then
      status, headers, body = 200, { { "Content-Type", "text/plain" } }, tok .. "\n"
    elseif no_longer_opens(h, tok) then
      status, headers, body = other_store()
    else
      status, headers, body = failure(tok)
    end
    path = "/_connrt/token/" .. (ref or "")
  elseif path == "/_connrt/metrics" and req.method == "GET" then
    self:publish(true)
    status, headers, body = self:metrics_text()
  else
    local ref, rest = req.target:match("^/([%w_.-]+)(.*)$")
    -- /_connrt/ is the proxy's own (an answer above, or none), and a dot segment is no
    -- connection's name: neither is ever looked up in the store or forwarded, whatever
    -- connection or connector might be called so
    if ref == "_connrt" or ref == "." or ref == ".." then ref = nil end
    if not ref or (rest ~= "" and not rest:match("^[/?]")) then
      status, headers, body = json_error(404, "notfound", "no connection in the path: the proxy serves /CONNECTION/PATH")
    else
      if rest:sub(1, 1) == "?" then rest = "/" .. rest end
      req.progress = {}
      local ok, a, b, c, d, e = pcall(self.forward, self, req, ref, rest)
      if ok then
        status, headers, body, conn_id, stream = a, b, c, d, e
      elseif no_longer_opens(h, a) then
        status, headers, body = other_store()
      else
        status, headers, body = failure(a, req.progress.answered)
      end
      -- a series per connection this proxy serves; any other name is one series, so
      -- requests for made-up names cannot grow the metrics
      conn_id = conn_id or (self.conns[ref] and self.conns[ref]:id()) or M.UNKNOWN
      forwarded = true
    end
  end
  if forwarded then observe(self.metrics, sys.monotime() - started) end
  -- counted and logged once the answer has been written (httpd calls this): one that was
  -- cut, or whose client went away before it had all gone, is an error, logged with why;
  -- one line per request, the path without its query (which may carry anything) and with
  -- its spaces encoded (evhttp takes a request line's path up to its last space), so that
  -- the status is always the fourth field. Every request is counted: one that names no
  -- served connection (the proxy's own paths, a missing key) under M.UNKNOWN.
  return status, headers, body, stream, function(why)
    self:count_request(conn_id or M.UNKNOWN, why and "error" or (status // 100) .. "xx")
    self:publish()
    log.err("connrt proxy: %s %s %d %.1fms%s", req.method, path:find(" ", 1, true) and path:gsub(" ", "%%20") or path, status,
      (sys.monotime() - started) * 1000, why and (" cut: " .. why) or "")
  end
end

--- Runs a worker in this (forked) process until SIGTERM; never returns.
local function run_worker(index, cfg, fd, shm)
  sys.default_signals({ "TERM", "INT", "HUP", "CHLD" })
  -- a wait of the Lua layer's (for another process's refresh: the lease's loop; a
  -- Retry-After) made by a request waits in its coroutine, not in the worker's loop
  local httpd_mod, blocking_sleep = require("connrt.httpd"), sys.sleep
  sys.sleep = function(seconds)
    if httpd_mod.in_task() then return httpd_mod.sleep(seconds) end
    return blocking_sleep(seconds)
  end
  local w = M.new_worker(index, cfg, shm)
  w:warm()
  w:adopt_metrics()
  w:publish(true)
  local httpd = require("connrt.httpd")
  local ok, err = pcall(httpd.serve, fd, function(req) return w:handle(req) end, {
    unix = cfg.unix, max_body = cfg.max_body, idle = cfg.idle,
    tick = M.PUBLISH_EVERY, on_tick = function() w:tick() end,
    on_hup = function() w:reload() end,
    on_refused = function(status, n) w:refused(status, n) end,
  })
  if w.st then w.st:close() end
  if not ok then
    log.err("connrt proxy: worker %d: %s", index, tostring(err))
    os.exit(1)
  end
  os.exit(0)
end

local function parse_listen(s)
  local host, port = s:match("^%[([%x:.]+)%]:(%d+)$")
  if not host then host, port = s:match("^([%d.]+):(%d+)$") end
  if not host then host, port = s:match("^(localhost):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port > 65535 then
    errors.raise("usage", "--listen %s: expected HOST:PORT with an IP address (127.0.0.1:8700, [::1]:8700)", s)
  end
  if host == "localhost" then host = "127.0.0.1" end
  return host, port
end

--- The default unix socket: $XDG_RUNTIME_DIR/connrt-proxy.sock, else in the store's
-- directory.
function M.default_socket()
  local run = os.getenv("XDG_RUNTIME_DIR")
  if run and run ~= "" then return run .. "/connrt-proxy.sock" end
  return require("connrt.store").default_home() .. "/proxy.sock"
end

--- `connrt proxy`. opts: listen ("HOST:PORT"), socket, key_file, connections (array of
-- refs), workers, max_body, max_response, idle, upstream_timeout, refresh_ahead. Prints one JSON line on standard
-- output once it listens ({"socket"} or {"listen", "key_file"}); returns the exit status
-- after SIGTERM.
function M.run(opts)
  local httpd = require("connrt.httpd")
  local cfg = { workers = opts.workers or M.default_workers(), max_body = opts.max_body or M.MAX_BODY,
    max_response = opts.max_response or M.MAX_RESPONSE,
    idle = opts.idle or M.IDLE, upstream_timeout = opts.upstream_timeout or M.UPSTREAM_TIMEOUT,
    refresh_ahead = opts.refresh_ahead }
  -- the store must open, and every --connection exist, before anything listens; closed
  -- again before the fork (LMDB is opened once per process, by the workers)
  local store = require("connrt.store")
  local st = store.open(nil, { existing = "no connections to serve" })
  -- the settings a command through CONNRT_PROXY must share with it (Connrt-Settings)
  cfg.settings = require("connrt.via_proxy").settings()
  local ok, err = pcall(function()
    if opts.connections and #opts.connections > 0 then
      cfg.served = {}
      for _, ref in ipairs(opts.connections) do
        local rec = st:find(ref)
        st:secrets(rec) -- the binding: a record changed outside connrt is refused here
        cfg.served[rec.id] = true
      end
    end
  end)
  st:close()
  if not ok then error(err, 0) end
  local fd, where, ready
  if opts.listen then
    local host, port = parse_listen(opts.listen)
    local got, actual, kind = httpd.listen_tcp(host, port)
    if not got then errors.raise(kind or "failed", "%s%s", kind and ("--listen " .. opts.listen .. ": ") or "", actual) end
    fd = got
    where = (host:find(":", 1, true) and ("[%s]:%d") or "%s:%d"):format(host, actual)
    -- a secret like any other: a client that puts it in a path or a header it should not
    -- finds it hidden in the proxy's log lines and answers
    local key = log.secret(require("connrt.crypto").hex(require("connrt.crypto").random(32)))
    local key_file = opts.key_file or (store.default_home() .. "/proxy.key")
    if sys.file_id(key_file) then
      -- a file the proxy did not create is never replaced: a --key-file that names one (a
      -- store's key, anything else) is refused; the default file is a proxy's own from
      -- before (one killed by SIGKILL leaves it), replaced, unless it is the store's key
      local store_key = os.getenv("CONNRT_KEY_FILE")
      store_key = sys.realpath((store_key and store_key ~= "") and store_key or store.default_home() .. "/key")
      if opts.key_file or (store_key and sys.realpath(key_file) == store_key) then
        errors.raise("usage", "the key file %s exists: the proxy writes its key to a new file and replaces no file it "
          .. "did not create (remove it first if it is an old proxy's key)", key_file)
      end
      os.remove(key_file)
    end
    local written, werr = sys.write_private(key_file, key .. "\n")
    if not written then errors.raise("failed", "%s", werr) end
    cfg.key, cfg.key_file, cfg.key_file_id = key, key_file, sys.file_id(key_file)
    ready = { listen = where, key_file = key_file }
  else
    local path = opts.socket or M.default_socket()
    local dir = path:match("^(.*)/[^/]+$")
    if dir and dir ~= "" then sys.mkdir(dir, 448) end
    local got, lerr = httpd.listen_unix(path)
    if not got then errors.raise("failed", "%s", lerr) end
    fd, where, cfg.unix = got, path, true
    ready = { socket = path }
  end
  local shm = httpd.shm(cfg.workers, M.METRICS_SLOT)
  sys.catch_signals({ "TERM", "INT", "HUP", "CHLD" })
  local pids, n = {}, 0
  local function spawn(i)
    local pid, ferr = sys.fork()
    if pid == 0 then run_worker(i, cfg, fd, shm) end
    if not pid then log.err("connrt proxy: %s", ferr) return end
    pids[pid], n = i, n + 1
  end
  for i = 1, cfg.workers do spawn(i) end
  io.stdout:write(cjson.encode(ready), "\n")
  io.stdout:flush()
  log.err("connrt proxy: listening on %s with %d workers", where, cfg.workers)
  local stopping, respawns = false, 0
  while n > 0 do
    sys.sleep(0.05)
    for _, sig in ipairs(sys.caught()) do
      if (sig == "TERM" or sig == "INT") and not stopping then
        stopping = true
        log.err("connrt proxy: stopping: finishing the requests in flight")
        for pid in pairs(pids) do sys.kill(pid, "TERM") end
      elseif sig == "HUP" then
        for pid in pairs(pids) do sys.kill(pid, "HUP") end
      end
    end
    while true do
      local pid, how, code = sys.reap()
      if not pid then break end
      local i = pids[pid]
      if i then
        pids[pid], n = nil, n - 1
        if not stopping then
          log.err("connrt proxy: worker %d ended (%s %d); starting it again", i, how, code)
          respawns = respawns + 1
          if respawns > 100 then
            log.err("connrt proxy: workers keep dying; stopping")
            stopping = true
            for p in pairs(pids) do sys.kill(p, "TERM") end
          else
            spawn(i)
          end
        end
      end
    end
  end
  if cfg.unix then os.remove(where) end
  -- the key file, if it is still the one written at start (never a file put in its place)
  if cfg.key_file and sys.file_id(cfg.key_file) == cfg.key_file_id then
    local f = io.open(cfg.key_file, "rb")
    local text = f and f:read("a")
    if f then f:close() end
    if text == cfg.key .. "\n" then os.remove(cfg.key_file) end
  end
  log.err("connrt proxy: stopped")
  return 0
end

return M
