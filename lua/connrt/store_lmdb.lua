--- store_lmdb.lua - the embedded backend of the store (lua/connrt/store.lua): an LMDB
-- environment in one directory (the connrt.lmdb C module, src/api/store.c).
--
-- A backend moves opaque values (JSON text, sealed bytes as base64) by table and key
-- and knows nothing of records, sealing or bindings. Every read runs in one read
-- transaction (view) and every change in one write transaction (modify) that commits
-- or aborts whole, so a crash leaves the old or the new value, never half of one.
--
-- Tables: connections, secrets, accounts (connector NUL unique id -> id), clients,
-- connectors, leases, meta. Leases: id -> {owner, token, expires, pid, pidns, start}
-- (JSON); token grows with each acquire, so a write fenced by (owner, token) fails once
-- anyone else has taken the lease, even after it expired.
local cjson = require("cjson")
local errors = require("connrt.errors")
local lmdb = require("connrt.lazy")("connrt.lmdb") -- `list` without a store needs no LMDB
local log = require("connrt.log")
local sys = require("connrt.sys")

local M = {}

local DBS = { "connections", "secrets", "accounts", "clients", "connectors", "leases", "meta" }

-- Permission bits for the file's group and others (0077: Lua has no octal literals).
local GROUP_OTHER = 63
local function octal(mode) return ("%04o"):format(mode) end
M.GROUP_OTHER, M.octal = GROUP_OTHER, octal

--- False when there is no store in `home` yet: no such directory, or a directory without
-- data.mdb. Anything else there (a file, a damaged store) is left for open to report.
function M.exists(home)
  local f = io.open(home .. "/data.mdb", "rb")
  if f then f:close() return true end
  local d = io.open(home .. "/", "rb") -- opens a directory, fails on anything else
  if d then d:close() return false end
  return sys.mode(home) ~= nil
end

-- The store's directory and files must be the owner's alone. A directory with group or
-- other permissions is refused: it may be one connrt did not create (CONNRT_HOME set to
-- a shared or system directory), whose mode is not ours to change. data.mdb and lock.mdb
-- are connrt's own files, so group or other bits there are removed (0600) with a notice
-- on standard error: the directory, checked first, already keeps others out.
local function guard_modes(home)
  local d = io.open(home .. "/", "rb") -- opens a directory only: anything else is lmdb.open's to report
  if not d then return end
  d:close()
  local mode = sys.mode(home)
  if mode and mode & GROUP_OTHER ~= 0 then
    errors.fail("store", "unsafe_mode", "the store directory %s has mode %s: its group or others may reach the store; chmod 700 %s",
      home, octal(mode), home)
  end
  for _, name in ipairs({ "data.mdb", "lock.mdb" }) do
    local path = home .. "/" .. name
    local m = sys.mode(path)
    if m and m & GROUP_OTHER ~= 0 then
      local ok, err = sys.chmod(path, 384) -- 0600
      if not ok then errors.fail("store", "unsafe_mode", "%s has mode %s, open to its group or others, and %s", path, octal(m),
        err) end
      log.err("connrt: %s had mode %s, open to its group or others: set to 0600", path, octal(m))
    end
  end
end

local Backend = {}
Backend.__index = Backend

--- Opens (creating if needed) the LMDB store in the directory `home`.
function M.open(home)
  local ok, err = sys.mkdir(home, 448) -- 0700
  if not ok then errors.fail("store", "io", "%s", err) end
  guard_modes(home)
  local env, oerr, why = lmdb.open(home, DBS, {})
  if not env then errors.fail("store", why or "io", "%s", oerr) end
  -- where: the store as messages name it; key_dir: where its key file lives by default
  return setmetatable({ env = env, where = home, key_dir = home, kind = "lmdb" }, Backend)
end

function Backend:close()
  if self.env then self.env:close(); self.env = nil end
end

local function run(self, write, fn)
  local txn <close> = self.env:begin(write)
  local r = table.pack(fn(txn))
  if write then txn:commit() else txn:abort() end
  return r
end

--- The store's generation: the id of its last committed write transaction (anyone's).
-- Unchanged means nothing was written since; no transaction is begun.
function Backend:generation()
  return self.env:last_txnid()
end

--- Runs fn(tx) in one read transaction; tx:get(table, key), tx:list(table) -> array of
-- {key, value} in key order. Returns what fn returns.
function Backend:view(fn)
  local r = run(self, false, fn)
  return table.unpack(r, 1, r.n)
end

--- Runs fn(tx) in one write transaction, committed when fn returns and aborted when it
-- raises; tx also has put(table, key, value) and del(table, key).
function Backend:modify(fn)
  local r = run(self, true, fn)
  return table.unpack(r, 1, r.n)
end

--- Every value of `table`, in key order, each passed to fn(key, value), in one read
-- transaction.
function Backend:each(tbl, fn)
  local rows = self:view(function(tx) return tx:list(tbl) end)
  for _, kv in ipairs(rows) do fn(kv[1], kv[2]) end
end

-- When process `pid` started (clock ticks after boot, from /proc/PID/stat), or nil when
-- it no longer runs (or is a zombie): with its pid, it names one process for good.
local function process_start(pid)
  local f = io.open(("/proc/%d/stat"):format(pid), "r")
  if not f then return nil end
  local stat = f:read("a") or ""
  f:close()
  local fields = {}
  for x in (stat:match("^.*%)%s+(.*)$") or ""):gmatch("%S+") do fields[#fields + 1] = x end
  if fields[1] == nil or fields[1] == "Z" or fields[1] == "X" then return nil end
  return fields[20] -- field 22 of the line; the first two (pid and name) are cut off
end

-- This process, as a lease records its holder: pid, PID namespace and start time.
local holder
local function this_holder()
  if not holder then
    local pid = sys.getpid()
    holder = { pid = pid, pidns = sys.pidns(), start = process_start(pid) }
  end
  return holder
end

-- True when a lease's holder is known to be dead: a process of this machine and PID
-- namespace that no longer runs (killed, crashed). Otherwise only its expiry frees it.
local function holder_gone(lease)
  local me = this_holder()
  if not (lease.pid and lease.start and lease.pidns and me.pidns and lease.pidns == me.pidns) then return false end
  local pid = math.tointeger(lease.pid)
  return pid ~= nil and process_start(pid) ~= lease.start
end

-- A lease record as connrt writes it, or nil for anything else. Leases are plain and
-- unsealed: a hint between processes that expires on its own, not a secret nor a
-- decision about where credentials go. One that is not what connrt writes (damaged, or
-- written by hand with other types) holds nothing and is replaced: the worst it can
-- cause is one refresh more, where refusing would stop every refresh of the connection.
-- A lease that ends more than `ttl` or limits.LEASE_TTL_MAX seconds (the longest lease
-- connrt takes, one second of clock skew more) from `now` is not one connrt wrote
-- either: a planted hour-long lease naming a live process would stall every refresh
-- for that hour.
local function read_lease(v, now, ttl)
  local lease = v and require("cjson.safe").decode(v)
  if type(lease) ~= "table" or type(lease.owner) ~= "string" or math.type(lease.expires) == nil
      or lease.expires ~= lease.expires or lease.expires > now + math.max(ttl, require("connrt.limits").LEASE_TTL_MAX) + 1 then
    return nil
  end
  for _, k in ipairs({ "pid", "start", "pidns" }) do
    if lease[k] ~= nil and type(lease[k]) ~= "number" and type(lease[k]) ~= "string" then lease[k] = nil end
  end
  lease.token = math.tointeger(lease.token) -- cjson reads every number as a float
  return lease
end

--- Takes the lease on `id` for `ttl` seconds for `owner`. A lease whose holder process
-- has died (same machine and PID namespace) is taken over at once; any other only once
-- it has expired. Returns the fencing token (an integer), or false and the holder's lease.
function Backend:acquire_lease(id, owner, ttl)
  local now = sys.time()
  return self:modify(function(txn)
    local lease = read_lease(txn:get("leases", id), now, ttl)
    if lease and lease.expires > now and lease.owner ~= owner and not holder_gone(lease) then
      return false, lease
    end
    local token = (lease and lease.token or 0) + 1
    local me = this_holder()
    txn:put("leases", id, cjson.encode({ owner = owner, token = token, expires = now + ttl, pid = me.pid,
      pidns = me.pidns, start = me.start }))
    return token
  end)
end

--- True when `owner` still holds the lease on `id` with `token` (inside modify's tx):
-- nobody has taken it since, whether or not it has expired.
function Backend.holds(_, txn, id, owner, token)
  local lease = read_lease(txn:get("leases", id), sys.time(), math.huge)
  return lease ~= nil and lease.owner == owner and lease.token == token
end

--- Gives a lease back if `owner` still holds it.
function Backend:release_lease(id, owner)
  self:modify(function(txn)
    local lease = read_lease(txn:get("leases", id), sys.time(), math.huge)
    if lease and lease.owner == owner then txn:del("leases", id) end
  end)
end

return M
