--- store_pg.lua - the shared backend of the store (lua/connrt/store.lua): a PostgreSQL
-- database, reached through libpq (connrt.pg, src/api/pg.c, loaded only for a
-- postgres:// or postgresql:// store), for a fleet of hosts using the same connections.
--
-- Like store_lmdb.lua it moves opaque values by table and key and knows nothing of
-- records, sealing or bindings. Tables (the prefix keeps them apart from anything else
-- in the database):
--   connrt_schema       (version)                     one row: the schema version
--   connrt_connections  (id, connector, unique_id, record)  the plain record (JSON),
--                       unique on (connector, unique_id): that is the accounts index
--   connrt_secrets      (id, sealed bytea)            the sealed secrets of a connection
--   connrt_clients      (connector, client_id, doc)   remembered client credentials
--   connrt_connectors   (hash, source)                connector sources by SHA-256
--   connrt_leases       (id, owner, token, expires)   refresh leases (never deleted by a
--                       release, so the fencing token only grows)
--   connrt_meta         (key, value)                  the key check, the record version
-- JSON documents and provider-given text are bytea (a provider's name for an account
-- need not be UTF-8); convert_from(record, 'UTF8')::jsonb queries them.
--
-- Transactions: view runs a REPEATABLE READ READ ONLY transaction; modify a READ
-- COMMITTED one in which every read of a connection, lease, client or meta row locks
-- it (FOR UPDATE), so a read-modify-write is never lost to a concurrent one. Lease
-- expiry is the database's clock (now()), never a client's. No transaction is ever
-- open across a call to a provider: the facade's callers do their I/O outside.
--
-- Failures are store errors with a reason from what connrt.pg gives (unavailable for
-- unreachable and tls, auth, locked, schema, damaged, else io), naming the store by
-- host, port and database, never the password.
local errors = require("connrt.errors")
local lazy = require("connrt.lazy")
local log = require("connrt.log")
local sys = require("connrt.sys")
local urlcodec = require("connrt.url")
local crypto = lazy("connrt.crypto")
local cjson = lazy("cjson")

local M = {}

--- The newest schema this connrt knows, and the statements that bring a database from
-- version i-1 to i (forward only; each runs in one transaction with the version bump).
M.SCHEMA = 1
local MIGRATIONS = {
  [1] = {
    [[CREATE TABLE connrt_connections (id text PRIMARY KEY, connector text NOT NULL, unique_id bytea NOT NULL,
        record bytea NOT NULL)]],
    [[CREATE UNIQUE INDEX connrt_connections_account ON connrt_connections (connector, unique_id)]],
    [[CREATE TABLE connrt_secrets (id text PRIMARY KEY, sealed bytea NOT NULL)]],
    [[CREATE TABLE connrt_clients (connector text PRIMARY KEY, client_id text, doc bytea NOT NULL)]],
    [[CREATE TABLE connrt_connectors (hash text PRIMARY KEY, source bytea NOT NULL)]],
    [[CREATE TABLE connrt_leases (id text PRIMARY KEY, owner text NOT NULL, token bigint NOT NULL,
        expires timestamptz NOT NULL)]],
    [[CREATE TABLE connrt_meta (key text PRIMARY KEY, value bytea NOT NULL)]],
  },
}
-- one advisory lock number for migrations: processes opening a new store at once
-- migrate it one after the other
local MIGRATION_LOCK = 7307216801

--- The store as messages name it: scheme, host part and database only, never the user,
-- password or parameters ("postgres://127.0.0.1:5432/connrt"), found by the one rule of
-- src/api/sys.c (sys.pg_url_where: only a plain URL, which reads one way, has its host
-- and database named); host and port from PGHOST and PGPORT when the URL leaves them
-- out.
function M.describe(url)
  local scheme, authority, db, misread = sys.pg_url_where(url)
  if not scheme then return "postgres://" end
  -- (a URL that is not plain may be read several ways: its host part may hold a
  -- password's pieces)
  if misread then return scheme .. "://(host not shown: the URL is not plain)" end
  if authority == "" then
    authority = (os.getenv("PGHOST") or "localhost") .. (os.getenv("PGPORT") and (":" .. os.getenv("PGPORT")) or "")
  end
  return ("%s://%s%s"):format(scheme, authority, db ~= "" and "/" .. db or "")
end

-- connrt.pg's reasons as the store's (errors.lua)
local REASONS = { unreachable = "unavailable", tls = "unavailable", auth = "auth", locked = "locked",
  schema = "schema", damaged = "damaged" }

local function fail(where, msg, reason)
  errors.fail("store", REASONS[reason] or "io", "the PostgreSQL store %s: %s", where, (tostring(msg):gsub("%s+$", "")))
end

local Backend = {}
Backend.__index = Backend

-- The result of conn:exec or conn:fetch; a failure is a store error with the reason
-- libpq gave.
local function checked(self, r, msg, reason)
  if r == nil then
    self.broken = reason == "unreachable"
    fail(self.where, msg, reason)
  end
  self.answered = self.answered + 1
  return r
end

-- Connects again once the connection was found lost (self.broken: the server restarted
-- or failed over, or something cut an idle connection), so a long-running process
-- (connrt proxy, a program on the Lua API or the C library) goes on once the database is
-- back instead of failing until it is restarted.
local function reconnect(self)
  if self.conn then self.conn:close() end
  self.conn = nil
  local conn, msg, reason = require("connrt.pg").connect(self.url)
  if not conn then fail(self.where, msg, reason) end
  self.conn, self.broken = conn, false
end

-- A statement outside a transaction (a lease's) on a connection found lost: a new one.
local function ready(self)
  if (self.broken or not self.conn) and not self.in_tx then reconnect(self) end
  return self.conn
end

-- Runs one statement.
function Backend:q(sql, ...) return checked(self, ready(self):exec(sql, ...)) end

-- Like q, with the rows in binary (conn:fetch): bytea comes as it is, not in hex.
function Backend:fetch(sql, ...) return checked(self, ready(self):fetch(sql, ...)) end

-- A connection made by exists() just before, kept for the open that follows it with
-- the schema version it read (so `connrt list` or `connrt token` connects once and asks
-- once).
local spare = {}

-- The store's password (the URL's, as written and decoded, and PGPASSWORD) is a secret
-- like connrt's own: log.secret, so no line connrt prints and no `connrt exec --mask`
-- output shows it in any spelling. Children never get it (src/api/sys.c).
local function know_secrets(url)
  local _, secrets = sys.pg_url_secrets(url)
  for _, s in ipairs(secrets) do
    log.secret(s)
    log.secret(urlcodec.decode(s))
  end
  log.secret(os.getenv("PGPASSWORD"))
end

local function connect(url)
  know_secrets(url)
  if select(4, sys.pg_url_where(url)) then
    -- libpq would read pieces of the password as host, port or database, and name them
    errors.fail("usage", "bad_argument", "the PostgreSQL store %s: the URL can be read more than one way (a raw "
      .. "'/', '@', '?' or '#' in its user, password or database, a port that is not a number, a parameter without "
      .. "'='): percent-encode those characters (%%2F, %%40, %%3F, %%23), or give the password in PGPASSWORD or "
      .. "~/.pgpass", M.describe(url))
  end
  if spare[url] then
    local s = spare[url]
    spare[url] = nil
    return s.conn, s.version
  end
  local pg = require("connrt.pg")
  local conn, msg, reason = pg.connect(url)
  if not conn then fail(M.describe(url), msg, reason) end
  return conn
end

-- The schema version and whether the key check is there, in one round trip; nil and
-- false in a database without connrt's tables.
local PROBE = [[SELECT (SELECT max(version) FROM connrt_schema) AS v,
  EXISTS (SELECT 1 FROM connrt_meta WHERE key = 'keycheck') AS k]]

local function probe(conn, where)
  local r, msg, reason = conn:exec(PROBE)
  if r == nil and reason == "schema" then return nil, false end -- no tables yet: a new database
  if r == nil then fail(where, msg, reason) end
  return r[1].v or 0, r[1].k
end

local function schema_version(self)
  local v = probe(self.conn, self.where)
  return v or 0
end

--- Brings the database's schema to M.SCHEMA (forward migrations, each in one
-- transaction, under an advisory lock). A schema newer than this connrt knows is
-- refused (reason "schema"): an older binary must not write a layout it does not know.
-- Returns the version before and after.
function Backend:migrate(known)
  local before = known or schema_version(self)
  if before == M.SCHEMA then return before, before end
  if before > M.SCHEMA then
    errors.fail("store", "schema", "the PostgreSQL store %s has schema version %d, newer than the %d this "
      .. "connrt knows: upgrade connrt on this host (nothing was changed)", self.where, before, M.SCHEMA)
  end
  self:q("BEGIN")
  local ok, err = pcall(function()
    self:q("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    self:q("CREATE TABLE IF NOT EXISTS connrt_schema (version integer NOT NULL)")
    local v = self:q("SELECT max(version) AS v FROM connrt_schema")[1].v or 0
    if v > M.SCHEMA then
      errors.fail("store", "schema", "the PostgreSQL store %s has schema version %d, newer than the %d this "
        .. "connrt knows: upgrade connrt on this host (nothing was changed)", self.where, v, M.SCHEMA)
    end
    for i = v + 1, M.SCHEMA do
      for _, sql in ipairs(MIGRATIONS[i]) do self:q(sql) end
      self:q("DELETE FROM connrt_schema")
      self:q("INSERT INTO connrt_schema (version) VALUES ($1)", i)
    end
  end)
  if not ok then
    if not self.broken then self.conn:exec("ROLLBACK") end
    error(err, 0)
  end
  self:q("COMMIT")
  return before, M.SCHEMA
end

--- True when the database holds a connrt store (its meta table has the key check).
function M.exists(url)
  local conn = connect(url)
  local ok, version, keycheck = pcall(probe, conn, M.describe(url))
  if not ok then
    conn:close()
    error(version, 0)
  end
  spare[url] = { conn = conn, version = version or 0 }
  return keycheck
end

--- Opens the store in the database `url`, migrating its schema forward first (see
-- migrate).
function M.open(url)
  local conn, version = connect(url)
  local self = setmetatable({ conn = conn, url = url, where = M.describe(url), kind = "postgres", answered = 0 },
    Backend)
  local ok, err = pcall(self.migrate, self, version)
  if not ok then
    conn:close()
    error(err, 0)
  end
  return self
end

function Backend:close()
  if self.conn then self.conn:close(); self.conn = nil end
end

local Tx = {}
Tx.__index = Tx

local function bytea(s) return require("connrt.pg").bytea(s) end

local function split_account(key)
  local connector, unique_id = key:match("^([^%z]*)%z(.*)$")
  return connector or key, unique_id or ""
end

local LOCK = " FOR UPDATE"

function Tx:get(tbl, key)
  local b, lock = self.b, self.write and LOCK or ""
  local r
  if tbl == "connections" then
    r = b:fetch("SELECT record AS v FROM connrt_connections WHERE id = $1" .. lock, key)
  elseif tbl == "secrets" then
    r = b:fetch("SELECT sealed AS v FROM connrt_secrets WHERE id = $1" .. lock, key)
    return r[1] and crypto.b64encode(r[1].v) or nil
  elseif tbl == "accounts" then
    local connector, unique_id = split_account(key)
    r = b:q("SELECT id AS v FROM connrt_connections WHERE connector = $1 AND unique_id = $2" .. lock, connector,
      bytea(unique_id))
  elseif tbl == "clients" then
    r = b:fetch("SELECT doc AS v FROM connrt_clients WHERE connector = $1" .. lock, key)
  elseif tbl == "connectors" then
    r = b:fetch("SELECT source AS v FROM connrt_connectors WHERE hash = $1", key)
  elseif tbl == "meta" then
    r = b:fetch("SELECT value AS v FROM connrt_meta WHERE key = $1" .. lock, key)
  elseif tbl == "leases" then
    r = b:q("SELECT owner AS v FROM connrt_leases WHERE id = $1" .. lock, key)
  else
    error("store_pg: no table " .. tostring(tbl), 2)
  end
  return r[1] and r[1].v or nil
end

function Tx:put(tbl, key, value)
  assert(self.write, "store_pg: put outside modify")
  local b = self.b
  if tbl == "connections" then
    local ok, rec = pcall(cjson.decode, value)
    if not ok or type(rec) ~= "table" then error("store_pg: a connection record that is not JSON", 2) end
    b:q([[INSERT INTO connrt_connections (id, connector, unique_id, record) VALUES ($1, $2, $3, $4)
          ON CONFLICT (id) DO UPDATE SET connector = excluded.connector, unique_id = excluded.unique_id,
          record = excluded.record]], key, tostring(rec.connector), bytea(tostring(rec.unique_id)), bytea(value))
  elseif tbl == "secrets" then
    local raw = crypto.b64decode(value)
    if not raw then error("store_pg: sealed secrets that are not base64", 2) end
    b:q([[INSERT INTO connrt_secrets (id, sealed) VALUES ($1, $2)
          ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed]], key, bytea(raw))
  elseif tbl == "accounts" then
    return -- the (connector, unique_id) columns of connrt_connections are the index
  elseif tbl == "clients" then
    local ok, c = pcall(cjson.decode, value)
    b:q([[INSERT INTO connrt_clients (connector, client_id, doc) VALUES ($1, $2, $3)
          ON CONFLICT (connector) DO UPDATE SET client_id = excluded.client_id, doc = excluded.doc]], key,
      ok and type(c) == "table" and type(c.client_id) == "string" and c.client_id or nil, bytea(value))
  elseif tbl == "connectors" then
    b:q("INSERT INTO connrt_connectors (hash, source) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING", key, bytea(value))
  elseif tbl == "meta" then
    b:q([[INSERT INTO connrt_meta (key, value) VALUES ($1, $2)
          ON CONFLICT (key) DO UPDATE SET value = excluded.value]], key, bytea(value))
  else
    error("store_pg: cannot put into " .. tostring(tbl), 2)
  end
end

function Tx:del(tbl, key)
  assert(self.write, "store_pg: del outside modify")
  local b = self.b
  if tbl == "connections" then
    b:q("DELETE FROM connrt_connections WHERE id = $1", key)
  elseif tbl == "secrets" then
    b:q("DELETE FROM connrt_secrets WHERE id = $1", key)
  elseif tbl == "leases" then
    b:q("DELETE FROM connrt_leases WHERE id = $1", key)
  elseif tbl == "clients" then
    b:q("DELETE FROM connrt_clients WHERE connector = $1", key)
  elseif tbl ~= "accounts" then
    error("store_pg: cannot delete from " .. tostring(tbl), 2)
  end
end

local LISTS = {
  connections = "SELECT id AS k, record AS v FROM connrt_connections ORDER BY id",
  clients = "SELECT connector AS k, doc AS v FROM connrt_clients ORDER BY connector",
  connectors = "SELECT hash AS k, source AS v FROM connrt_connectors ORDER BY hash",
}

function Tx:list(tbl)
  local sql = LISTS[tbl] or error("store_pg: cannot list " .. tostring(tbl), 2)
  local out = {}
  for i, row in ipairs(self.b:fetch(sql .. (self.write and LOCK or ""))) do out[i] = { row.k, row.v } end
  return out
end

-- Runs fn(tx) between BEGIN and COMMIT; on an error, rolls back and raises it again.
-- BEGIN is deferred to travel with the first statement (one round trip less), and a
-- read-only transaction's COMMIT is sent without waiting for its answer: the server
-- ends the transaction at once, and the next statement reads the answer.
local function in_transaction(self, begin, write, fn)
  local conn = ready(self)
  conn:defer(begin)
  local tx = setmetatable({ b = self, write = write }, Tx)
  self.in_tx = true
  local r = table.pack(pcall(fn, tx))
  self.in_tx = false
  if not r[1] then
    if not conn:undefer(begin) and not self.broken then conn:exec("ROLLBACK") end
    error(r[2], 0)
  end
  if not conn:undefer(begin) then -- else fn sent nothing: there is no transaction to end
    if write or not conn:send("COMMIT") then self:q("COMMIT") end -- (raises with libpq's message)
  end
  return table.unpack(r, 2, r.n)
end

local READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

-- A read that found the connection lost at its first statement (before anything was
-- read, so fn has done nothing with what it read) is made once more, on a new
-- connection: an idle connection cut by the server costs no request. A write is not made
-- again (its outcome may be unknown): it fails, and the next one reconnects.
function Backend:view(fn)
  local answered = self.answered
  local r = table.pack(pcall(in_transaction, self, READ, false, fn))
  if r[1] then return table.unpack(r, 2, r.n) end
  if self.broken and self.answered == answered then return in_transaction(self, READ, false, fn) end
  error(r[2], 0)
end

function Backend:modify(fn)
  return in_transaction(self, "BEGIN", true, fn)
end

local PAGE = 1000

--- Every value of `tbl` (connections, clients, connectors), in key order, passed to
-- fn(key, value) a page at a time from a cursor: 100,000 connections are never all in
-- memory at once.
function Backend:each(tbl, fn)
  local sql = LISTS[tbl] or error("store_pg: cannot list " .. tostring(tbl), 2)
  self:view(function()
    self:q("DECLARE connrt_each NO SCROLL CURSOR FOR " .. sql)
    while true do
      local rows = self:fetch("FETCH " .. PAGE .. " FROM connrt_each")
      for _, row in ipairs(rows) do fn(row.k, row.v) end
      if #rows < PAGE then break end
    end
  end)
end

--- The ids of connector `connector`'s connections, in id order: one query on the
-- (connector, unique_id) index, not a list of every connection (Store:find).
function Backend:ids_of(connector)
  return self:view(function()
    local ids = {}
    for i, row in ipairs(self:q("SELECT id AS v FROM connrt_connections WHERE connector = $1 ORDER BY id", connector)) do
      ids[i] = row.v
    end
    return ids
  end)
end

--- Takes the lease on `id` for `ttl` seconds for `owner`, by the database's clock: a
-- free, expired or already own lease is taken in one statement (so is one connrt never
-- wrote: endless, or longer than limits.LEASE_TTL_MAX), and its fencing token
-- grows by one. Returns the token, or false and the holder's lease {owner, expires (in
-- seconds from now)}.
function Backend:acquire_lease(id, owner, ttl)
  local r = self:q([[INSERT INTO connrt_leases AS l (id, owner, token, expires)
      VALUES ($1, $2, 1, now() + make_interval(secs => $3))
      ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, token = l.token + 1, expires = excluded.expires
      WHERE l.expires <= now() OR l.owner = excluded.owner OR NOT isfinite(l.expires)
        OR l.expires > now() + make_interval(secs => $4)
      RETURNING token]], id, owner, ttl + 0.0, require("connrt.limits").LEASE_TTL_MAX + 1.0)
  if r[1] then return r[1].token end
  local h = self:q([[SELECT owner, extract(epoch FROM greatest(expires, now()) - now())::float8 AS left FROM connrt_leases
      WHERE id = $1]], id)[1]
  if not h then return self:acquire_lease(id, owner, ttl) end -- deleted in between: try again
  return false, { owner = h.owner, expires = require("connrt.sys").time() + h.left }
end

--- True when `owner` still holds the lease on `id` with `token` (inside modify's tx,
-- which then keeps the lease row locked until it commits, so no one can take it over
-- between this check and the write it guards).
function Backend.holds(_, tx, id, owner, token)
  local r = tx.b:q("SELECT owner, token FROM connrt_leases WHERE id = $1 FOR UPDATE", id)
  return r[1] ~= nil and r[1].owner == owner and r[1].token == token
end

--- Gives a lease back if `owner` still holds it: it expires now; the row and its token stay.
function Backend:release_lease(id, owner)
  self:q("UPDATE connrt_leases SET expires = '-infinity' WHERE id = $1 AND owner = $2", id, owner)
end

return M
