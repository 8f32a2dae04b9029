--- store.lua - stored connections: the one narrow interface the rest of connrt uses.
--
-- This file is the facade: key files, sealing, bindings, the record layout, lookups and
-- errors. Below it a backend moves opaque values (JSON text, sealed bytes) by table and
-- key: lua/connrt/store_lmdb.lua (a directory, the default) or lua/connrt/store_pg.lua
-- (a postgres:// or postgresql:// URL), chosen by where the store is (M.where: --store,
-- CONNRT_STORE, CONNRT_HOME). Nothing above this file knows which one is in use. Every
-- read runs in one read transaction (backend:view) and every change in one short write
-- transaction (backend:modify) that commits or aborts whole, so a crash leaves the old
-- or the new connection, never half of one; no transaction is ever held across network
-- I/O (callers do their I/O first, then call in here).
--
-- Secrets (access, refresh and id tokens, the client secret, secret fields) are sealed
-- with AES-256-GCM under a 32-byte key, bound to the connection id as associated data;
-- the rest of a record is plain JSON so `connrt list` needs no key.
--
-- The plain record decides where and how the sealed credentials are sent (allowed URLs,
-- token and revoke URLs, fields, kept values, client id, the connector's source hash),
-- and anyone who can write the store can change it without the key. So the sealed secrets
-- carry a digest of the record (`bound`: SHA-256 of a canonical encoding of every field
-- but the status fields connrt sets without the key, UNBOUND), checked whenever the
-- secrets are opened: a record changed outside connrt is a store error before anything
-- is sent. The client credentials record binds its client id the same way, and a
-- connector's source is checked against the hash it is stored under before it is loaded.
--
-- Databases: connections (id -> record, plain JSON without secrets, so `list --json`
-- can hand the values out as they are), secrets (id -> the sealed secrets of that
-- connection), accounts (connector NUL unique id -> id),
-- clients (connector -> client id and sealed secret, so credentials are given once),
-- connectors (sha256 of a connector's source -> source), leases (id -> lease), meta.
--
local cjson = require("cjson")
local crypto = require("connrt.lazy")("connrt.crypto") -- `list` needs no OpenSSL
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local log = require("connrt.log")
local origins = require("connrt.origins")
local sys = require("connrt.sys")

local M = {}

-- meta/keycheck: this text sealed under the key, to tell a wrong key at once. Which text
-- also says, authenticated, whether the store's records are bound (Store:upgrade): v1, a
-- store from before the binding; v2, bound. The plain meta/version says the same for
-- tools without the key, and is never trusted: setting it back to "1" cannot make connrt
-- re-bind (and so accept) a record someone changed.
local KEY_CHECK_V1, KEY_CHECK = "connrt key check v1", "connrt key check v2"
local VERSION = "2"
-- the fields of a connection record that connrt changes without the key (Store:mark),
-- left out of its binding; `sealed` is the sealed secrets themselves (inline in old stores)
local UNBOUND = { sealed = true, needs_reconnect = true, last_error = true }

-- Permission bits for the file's group and others (0077: Lua has no octal literals).
local GROUP_OTHER = 63
local function octal(mode) return ("%04o"):format(mode) end
-- The mode of `path` when its group or others may use it, else nil.
local function open_to_others(path)
  local mode = sys.mode(path)
  if mode and mode & GROUP_OTHER ~= 0 then return mode end
end

--- The store's directory: CONNRT_HOME, else $XDG_DATA_HOME/connrt, else ~/.local/share/connrt.
function M.default_home()
  local home = os.getenv("CONNRT_HOME")
  if home and home ~= "" then return home end
  local xdg = os.getenv("XDG_DATA_HOME")
  if xdg and xdg ~= "" then return xdg .. "/connrt" end
  return (os.getenv("HOME") or ".") .. "/.local/share/connrt"
end

--- Set by `--store` on the command line: the store to use instead of CONNRT_STORE.
M.chosen = nil

--- True when `where` names a PostgreSQL store (a postgres:// or postgresql:// URL).
function M.is_url(where)
  return type(where) == "string" and (where:match("^postgres://") or where:match("^postgresql://")) ~= nil
end

-- A store value that holds a postgres:// URL after other text (a blank in front of it)
-- would be taken for a directory and named as one, its password with it: refused, the
-- value not shown.
local function checked(where, from)
  if not M.is_url(where) and (where:find("postgres://", 1, true) or where:find("postgresql://", 1, true)) then
    errors.raise("usage", "%s: a PostgreSQL store's URL must start with postgres:// or postgresql:// (the value has "
      .. "other text before it; not shown, as it may hold a password)", from)
  end
  return where
end

--- The store to use: --store, else CONNRT_STORE, else the directory M.default_home().
function M.where()
  if M.chosen and M.chosen ~= "" then return checked(M.chosen, "--store") end
  local env = os.getenv("CONNRT_STORE")
  if env and env ~= "" then return checked(env, "CONNRT_STORE") end
  return M.default_home()
end

-- The backend module for a store.
local function backend_of(where)
  if M.is_url(where) then return require("connrt.store_pg") end
  return require("connrt.store_lmdb")
end

local function decode_key(text, where)
  text = text:gsub("%s+$", "")
  local raw
  if #text == 64 and text:match("^%x+$") then
    raw = crypto.unhex(text)
  else
    raw = crypto.b64decode(text)
  end
  if not raw or #raw ~= 32 then
    errors.fail("store", "bad_key", "%s: the key must be 32 bytes, as 64 hex digits or base64", where)
  end
  return raw
end

local function fingerprint(label, text) return crypto.hex(crypto.sha256("connrt " .. label .. "\0" .. text)) end

-- What names a PostgreSQL store in a selection: the URL without its secrets
-- (sys.pg_url_secrets: its user, host, database and parameters), the libpq variables that
-- choose a server, a role or a schema, and a fingerprint of its passwords (the URL's and
-- PGPASSWORD).
local function pg_parts(url)
  local bare, secrets = sys.pg_url_secrets(url)
  local parts = { "postgres " .. bare }
  for _, name in ipairs({ "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGOPTIONS", "PGSERVICE",
      "PGSERVICEFILE", "PGSYSCONFDIR", "PGTARGETSESSIONATTRS", "PGPASSFILE" }) do
    local v = os.getenv(name)
    if v and v ~= "" then parts[#parts + 1] = name .. "=" .. v end
  end
  local pw = os.getenv("PGPASSWORD")
  if #secrets > 0 or (pw and pw ~= "") then
    parts[#parts + 1] = "passwords " .. fingerprint("store passwords", table.concat(secrets, "\0") .. "\0" .. (pw or ""))
  end
  return parts
end

-- A selection's text: the store's parts and a fingerprint of the key, percent-encoded (a
-- header's value, and a path may hold any byte).
local function selection_text(parts, key)
  parts[#parts + 1] = "key " .. fingerprint("store key", key)
  return require("connrt.url").encode(table.concat(parts, "; "))
end

--- Which store and key this process would open, as text that names no secret, read from
-- the options and the environment without opening the store: a directory's real path and
-- the identity of the data file it holds now (sys.file_id: a directory replaced by another
-- is another store), or a PostgreSQL URL without its secrets with the libpq variables
-- and a fingerprint of its passwords (pg_parts); and a fingerprint (SHA-256 under a label)
-- of the key load_key would take: CONNRT_KEY's, or the key file's content. nil when it
-- cannot be told (a directory, data file or key file that does not exist, a key that is
-- not one, a mode open to group or others): the store would not open as it is. `connrt
-- request` and `connrt token` hand a call to a running proxy only when this is the text
-- of what the proxy holds open (Store:selection; via_proxy.lua).
function M.selection()
  local where = M.where()
  local parts, home
  if M.is_url(where) then
    parts = pg_parts(where)
    home = M.default_home()
  else
    home = sys.realpath(where)
    if not home then return nil end
    -- (a directory or file open to its group or others: the direct path refuses it, or
    -- narrows it with a notice)
    for _, path in ipairs({ home, home .. "/data.mdb", home .. "/lock.mdb" }) do
      if open_to_others(path) then return nil end
    end
    local id = sys.file_id(home .. "/data.mdb")
    if not id then return nil end
    parts = { "lmdb " .. home .. " " .. id }
  end
  -- (load_key: CONNRT_KEY, then CONNRT_KEY_FILE, then the key file in the home)
  local env, file = os.getenv("CONNRT_KEY"), os.getenv("CONNRT_KEY_FILE")
  local ok, raw
  if env and env ~= "" then
    ok, raw = pcall(decode_key, env, "CONNRT_KEY")
  else
    local path = sys.realpath((file and file ~= "") and file or home .. "/key")
    if not path or open_to_others(path) then return nil end
    local f = io.open(path, "rb")
    local text = f and f:read("a")
    if f then f:close() end
    if not text then return nil end
    ok, raw = pcall(decode_key, text, "key file")
  end
  if not ok then return nil end
  return selection_text(parts, raw)
end

-- The sealing key: CONNRT_KEY, else the key file (CONNRT_KEY_FILE or HOME/key), which is
-- created 0600 with a fresh random key on first use.
local function load_key(home, sealed_before, where, key_file)
  local env = os.getenv("CONNRT_KEY")
  if not key_file and env and env ~= "" then return decode_key(env, "CONNRT_KEY"), "CONNRT_KEY" end
  local path = key_file or os.getenv("CONNRT_KEY_FILE")
  local in_home = not path or path == ""
  if in_home then path = home .. "/key" end
  local f = io.open(path, "rb")
  if not f and sealed_before then
    -- a fresh key would seal nothing that exists: say what is missing, create nothing
    errors.fail("store", "wrong_key", "cannot decrypt: wrong key? The store %s was sealed with a key, and the key file %s is "
      .. "missing (restore it, or set CONNRT_KEY)", where, path)
  end
  if not f then
    if in_home then -- a PostgreSQL store's key file stays on this machine, in CONNRT_HOME
      local ok, err = sys.mkdir(home, 448) -- 0700
      if not ok then errors.fail("store", "io", "%s", err) end
    end
    local ok, err = sys.write_private(path, crypto.hex(crypto.random(32)) .. "\n")
    if not ok then errors.fail("store", "io", "%s", err) end
    f = assert(io.open(path, "rb"))
  end
  local text = f:read("a")
  f:close()
  if not text then errors.fail("store", "io", "key file %s is not a file that can be read", path) end
  -- refused, not repaired: whoever could read it may hold the key already, which only
  -- the owner can judge (and answer with connrt rekey)
  local mode = open_to_others(path)
  if mode then
    errors.fail("store", "unsafe_mode", "key file %s has mode %s: its group or others may read or change the key; chmod 600 %s "
      .. "(and connrt rekey if someone else may have read it)", path, octal(mode), path)
  end
  return decode_key(text, "key file " .. path), "key file " .. path, path
end

-- The key a `connrt rekey` wrote beside the key file before its transaction, when the
-- process died between the commit and the rename: the store is already sealed with it.
local function pending_key(path)
  local f = path and io.open(path .. ".new", "rb")
  if not f then return nil end
  -- refused as the key file itself would be (load_key): whoever could read it may hold it
  local mode = open_to_others(path .. ".new")
  if mode then
    f:close()
    errors.fail("store", "unsafe_mode", "key file %s.new (an interrupted rekey's new key) has mode %s: its group or "
      .. "others may read or change the key; chmod 600 %s.new (and connrt rekey if someone else may have read it)",
      path, octal(mode), path)
  end
  local text = f:read("a")
  f:close()
  local ok, key = pcall(decode_key, text, "key file " .. path .. ".new")
  return ok and key or nil
end

--- False when there is no store at `where` (default M.where()) yet. For a directory:
-- no such directory, or one without data.mdb; anything else there (a file, a damaged
-- store) is left for open to report. A PostgreSQL store is asked on open.
function M.exists(where)
  where = where or M.where()
  return backend_of(where).exists(where)
end

local Store = {}
Store.__index = Store

--- Opens (creating if needed) the store at `where` (default M.where(): a directory, or
-- a postgres:// URL). With opts.keyless, the sealing key is neither loaded nor checked:
-- for `connrt list`, which reads only the plain records (a store's first open always
-- makes its key). With opts.existing (what the caller looks for, as "no connection ID"),
-- a store that does not exist yet raises a notfound error instead of being created.
-- opts.key_file: the key file to use instead of CONNRT_KEY and CONNRT_KEY_FILE.
function M.open(where, opts)
  where = where or M.where()
  local backend = backend_of(where)
  if opts and opts.existing and not backend.exists(where) then
    errors.raise("notfound", "%s: there is no store at %s yet (connrt run CONNECTOR.lua connects one)", opts.existing,
      backend.describe and backend.describe(where) or where)
  end
  local b = backend.open(where, opts)
  local check, version = b:view(function(tx)
    return tx:get("meta", "keycheck"), tx:get("meta", "version") -- nil: the store's first open
  end)
  -- home: the store as messages name it (never a password)
  if opts and opts.keyless and check then return setmetatable({ b = b, home = b.where }, Store) end
  local kok, key, key_source, key_path = pcall(load_key, b.key_dir or M.default_home(), check ~= nil, b.where,
    opts and opts.key_file)
  if not kok then b:close() error(key, 0) end
  local self = setmetatable({ b = b, home = b.where, key = key, key_source = key_source, key_path = key_path }, Store)
  local key_ok, key_err = pcall(self.check_key, self, check)
  if not key_ok then
    -- a rekey that committed but died before renaming its new key into place
    local newer = pending_key(key_path)
    local plain = newer and check and crypto.open(newer, check, "meta/keycheck")
    if not (plain == KEY_CHECK or plain == KEY_CHECK_V1) then
      b:close()
      error(key_err, 0)
    end
    local renamed, rerr = os.rename(key_path .. ".new", key_path)
    if not renamed then b:close() errors.fail("store", "io", "cannot finish an interrupted rekey: %s", rerr) end
    self.key, self.key_check_text = newer, plain
  end
  if check and self.key_check_text == KEY_CHECK_V1 then
    -- a store from before the binding. Binding it is trust on first use, so it is never
    -- done on the way: whoever could write the store could have put an old snapshot
    -- back (an old key check, old unbound secrets, a changed record) to have that
    -- record bound. `connrt store migrate` does it, said plainly (opts.bind_unbound).
    if not (opts and opts.bind_unbound) then
      b:close()
      errors.fail("store", "schema", "the store %s was written by a connrt from before connection records were bound to "
        .. "the key (store version 1): connrt store migrate binds them as they are now. Run it only if nobody else "
        .. "could have written the store since: a record changed before then is bound as found", self.home)
    end
    -- `version` "2" under a v1 key check is a store bound before the key check said so
    local up_ok, up_err = pcall(self.upgrade, self, version == VERSION)
    if not up_ok then b:close() error(up_err, 0) end
    self.bound_now = true
  end
  return self
end

--- Verifies the key against `check`, the value sealed when the store was created; with
-- none (a new store), seals it.
function Store:check_key(check)
  if check then
    local plain = crypto.open(self.key, check, "meta/keycheck")
    if plain ~= KEY_CHECK and plain ~= KEY_CHECK_V1 then
      errors.fail("store", "wrong_key", "cannot decrypt: wrong key? The store %s was sealed with another key than the %s",
        self.home, self.key_source)
    end
    self.key_check_text = plain
    return
  end
  self.b:modify(function(txn)
    if not txn:get("meta", "keycheck") then
      txn:put("meta", "keycheck", crypto.seal(self.key, KEY_CHECK, "meta/keycheck"))
      txn:put("meta", "version", VERSION)
    end
  end)
end

function Store:close()
  if self.b then self.b:close(); self.b = nil end
end

--- The text M.selection gives in a process that would open what this handle holds open:
-- its directory's real path and the identity of the data file it has open (not the one
-- the path names now), or its PostgreSQL URL and the libpq variables, and the key it holds
-- (after a Store:reload_key, the new one). nil when it cannot be told. A command's
-- Connrt-Store equals this only when the command, going direct, would open the same
-- data with the same key (connrt proxy).
function Store:selection()
  if not (self.key and self.b) then return nil end
  local parts
  if self.b.kind == "postgres" then
    parts = pg_parts(self.b.url)
  else
    local home, id = sys.realpath(self.b.where), self.b.env and self.b.env:file_id()
    if not (home and id) then return nil end
    parts = { "lmdb " .. home .. " " .. id }
  end
  return selection_text(parts, self.key)
end

--- The key file the store's key came from, or nil when it came from CONNRT_KEY.
function Store:key_file()
  return self.key_path
end

--- After a `connrt rekey` by another process (the store's key check no longer opens with
-- the key this handle holds): reads the key again from the key file it came from (or
-- the rekey's `.new` beside it, when that rekey died before renaming it into place) and
-- keeps it if the store opens with it. Returns true when the key was replaced; false
-- when the handle's key still opens the store, or the key file holds no other key that
-- does (the key check itself may be what was damaged: the caller's own error stands).
-- Raises a store error (wrong_key) when the key came from CONNRT_KEY, which a running
-- process cannot learn anew. For long-running users of one handle (connrt proxy).
function Store:reload_key()
  local check = self.b:view(function(txn) return txn:get("meta", "keycheck") end)
  local function opens(key)
    local plain = key and check and crypto.open(key, check, "meta/keycheck")
    return plain == KEY_CHECK or plain == KEY_CHECK_V1
  end
  if not check or opens(self.key) then return false end
  if not self.key_path then
    errors.fail("store", "wrong_key", "the store %s no longer opens with the CONNRT_KEY this process started with: it "
      .. "was rekeyed (connrt rekey: start it again with the new key), or its key check was damaged", self.home)
  end
  local key = load_key(nil, true, self.home, self.key_path)
  if key == self.key or not opens(key) then key = pending_key(self.key_path) end
  if key == self.key or not opens(key) then return false end
  self.key = key
  return true
end

--- True when `key` is the key the store is sealed with.
function Store:sealed_with(key)
  return key == self.key
end

--- Which backend this store uses ("lmdb" or "postgres"), for `connrt store` only.
function Store:kind()
  return self.b.kind
end

local function account_key(connector, unique_id)
  return connector .. "\0" .. unique_id
end

local function seal(self, secrets, aad)
  return crypto.b64encode(crypto.seal(self.key, cjson.encode(secrets), aad))
end

-- The plaintext of a sealed value (base64), or a store error naming `what` (and `note`).
local function open_sealed(self, blob, aad, what, note)
  local raw = crypto.b64decode(blob or "")
  local plain = raw and crypto.open(self.key, raw, aad)
  if not plain then
    errors.fail("store", "damaged", "cannot decrypt %s: wrong key or damaged data%s", what, note or "")
  end
  return plain
end

local function unseal(self, blob, aad, what)
  return cjson.decode(open_sealed(self, blob, aad, what))
end

-- A canonical encoding of a decoded JSON value: keys sorted, every string length-prefixed,
-- numbers as JSON keeps them (cjson reads every number as a float and writes 14
-- significant digits, so a record and the same record read back encode alike).
local function canonical(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = "s" .. #v .. ":" .. v
  elseif t == "number" then
    out[#out + 1] = ("n%.14g;"):format(v)
  elseif t == "boolean" then
    out[#out + 1] = v and "T" or "F"
  elseif t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    -- an array's keys are numbers, an object's strings: the tag keeps them apart
    local function tag(k) return (type(k) == "number" and ("n%.14g;"):format(k) or ("s" .. #k .. ":" .. k)) end
    for i, k in ipairs(keys) do keys[i] = { tag(k), k } end
    table.sort(keys, function(a, b) return a[1] < b[1] end)
    out[#out + 1] = "{" .. #keys .. ";"
    for _, k in ipairs(keys) do
      out[#out + 1] = k[1]
      canonical(v[k[2]], out)
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = "N" -- cjson.null
  end
end

-- The binding of a connection record: SHA-256 (hex) of every field but UNBOUND.
local function binding(rec)
  local out = { "connrt connection binding v1\n" }
  local keys = {}
  for k in pairs(rec) do if not UNBOUND[k] then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    out[#out + 1] = "s" .. #k .. ":" .. k
    canonical(rec[k], out)
  end
  return crypto.hex(crypto.sha256(table.concat(out)))
end

-- Writes a record: its plain part to connections, and `secrets` sealed with the
-- binding of that plain part (as stored: the JSON text read back) to secrets. With
-- `where` (what gave the connection: a token endpoint), a connection larger than
-- limits.RECORD_BYTES is refused as that provider's error. Returns the sealed blob.
local function put_record(self, txn, rec, secrets, where)
  rec.sealed = nil
  local text = cjson.encode(rec)
  local bound = {}
  for k, v in pairs(secrets) do bound[k] = v end
  bound.bound = binding(cjson.decode(text))
  local sealed = seal(self, bound, "connection/" .. rec.id)
  if where and #text + #sealed > limits.RECORD_BYTES then
    errors.fail("provider", "too_big", "%s: the connection would keep %d bytes (its record and sealed secrets), more than the "
      .. "%d bytes connrt keeps for one; nothing was stored", where, #text + #sealed, limits.RECORD_BYTES)
  end
  txn:put("connections", rec.id, text)
  txn:put("secrets", rec.id, sealed)
  rec.sealed = sealed
  return sealed
end

-- The secrets of `rec` (a record as read from the store) sealed in `blob`, checked
-- against the record's binding: a record changed outside connrt (or sealed secrets moved
-- from another version of it) is a store error that names the connection.
local function open_bound(self, rec, blob)
  local secrets = unseal(self, blob, "connection/" .. rec.id, "connection " .. rec.id)
  local bound = secrets.bound
  secrets.bound = nil
  if bound ~= binding(rec) then
    errors.fail("store", "damaged", "connection %s: its record in the store %s does not match its sealed secrets: a field that "
      .. "decides where its credentials go was changed outside connrt, so connrt will not use it (restore the store "
      .. "from a backup, or delete the connection and connect again)", rec.id, self.home)
  end
  return secrets
end

local function decode_record(value, id)
  local ok, rec = pcall(cjson.decode, value)
  if not ok or type(rec) ~= "table" then
    errors.fail("store", "damaged", "connection %s: damaged record in the store", id)
  end
  return rec
end

-- One value, read in its own read transaction.
local function read(self, db, key)
  return self.b:view(function(tx) return tx:get(db, key) end)
end

--- The store's generation: a number that moves whenever anything in the store is written
-- (by any process), or nil where the backend cannot say without a query (PostgreSQL). A
-- long-lived holder of a record (connrt proxy) reads it again only when the generation
-- differs from the one Store:get gave with the record: equal means nothing was written
-- since that read. (It may move a moment before a read can see the write: compare it
-- with what Store:get returned, never with an earlier Store:generation.)
function Store:generation()
  return self.b.generation and self.b:generation() or nil
end

--- The generation a read made now sees (nil on PostgreSQL): every read made after it sees
-- this one's writes or later ones, so a result built from several reads is as of at least
-- this generation.
function Store:snapshot()
  return self.b:view(function(txn) return txn.id and txn:id() or nil end)
end

-- Longer than any id or connector id a store holds (an LMDB key has at most 511 bytes,
-- the accounts index's key a connector id and more): looked up, such a name would only be
-- a store error.
local MAX_REF = 400

--- Reads a connection record by id (secrets still sealed), or nil; and the generation it
-- was read at (the read's snapshot; nil on PostgreSQL).
function Store:get(id)
  if type(id) ~= "string" or id == "" or #id > MAX_REF then return nil end
  local v, sealed, at = self.b:view(function(txn)
    local text = txn:get("connections", id)
    return text, text and txn:get("secrets", id), txn.id and txn:id() or nil
  end)
  if not v then return nil, at end
  local rec = decode_record(v, id)
  if rec.id ~= id then errors.fail("store", "damaged", "connection %s: damaged record in the store (it says it is %s)", id, tostring(rec.id)) end
  rec.sealed = rec.sealed or sealed -- stores written before the split keep it inline
  return rec, at
end

-- The records of connector `connector`'s connections, in id order (Store:ids_of says
-- how they are found), each read once.
local function connector_records(self, connector)
  local candidates = {}
  if self.b.ids_of then
    candidates = self.b:ids_of(connector)
  else
    for i, kv in ipairs(self.b:view(function(txn) return txn:list("accounts", account_key(connector, "")) end)) do
      candidates[i] = kv[2]
    end
  end
  local recs, seen = {}, {}
  for _, id in ipairs(candidates) do
    if type(id) == "string" and not seen[id] then
      seen[id] = true
      local rec = self:get(id) -- (nil if deleted since)
      if rec and rec.connector == connector then recs[#recs + 1] = rec end
    end
  end
  table.sort(recs, function(a, b) return a.id < b.id end)
  return recs
end

--- Finds a connection by its id, or by its connector's id where that connector has
-- exactly one connection. Raises a notfound error that says what exists otherwise.
function Store:find(ref)
  if ref == "" then errors.raise("usage", "the connection id is empty (connrt list shows them)") end
  if #ref > MAX_REF then errors.raise("notfound", "no connection %s... (connrt list shows them)", ref:sub(1, 40)) end
  local rec = self:get(ref)
  if rec then return rec end
  local recs = connector_records(self, ref)
  if #recs > 1 then
    local ids = {}
    for i, r in ipairs(recs) do ids[i] = r.id end
    errors.fail("usage", "ambiguous", "%s has %d connections; name one by id: %s", ref, #ids, table.concat(ids, ", "))
  end
  if recs[1] then return recs[1] end
  errors.raise("notfound", "no connection %s (connrt list shows them)", ref)
end

--- The ids of connector `connector`'s connections, in id order. The candidates come from
-- an index (PostgreSQL: one query on the connector column's index; LMDB: the accounts
-- table's keys that start with the connector's id and a NUL, a pass over that
-- connector's accounts alone); neither is bound to the key (save_in), so an id counts
-- only where its record, whose connector the binding covers, names this connector: one
-- who can write the store without the key cannot make a connector's name lead to another
-- connector's connection (they can hide one from the index: the name then means fewer).
function Store:ids_of(connector)
  local ids = {}
  for i, rec in ipairs(connector_records(self, connector)) do ids[i] = rec.id end
  return ids
end

--- The secrets of a record read from the store, unsealed and checked against the
-- record (see open_bound).
function Store:secrets(rec)
  return open_bound(self, rec, rec.sealed or read(self, "secrets", rec.id))
end

--- The connection records as stored (JSON text, no secrets), in id order: what
-- `connrt list --json` prints without decoding 100,000 records to encode them again.
-- Each is passed to fn(text) in turn (a backend may read them a page at a time).
function Store:each_raw(fn)
  self.b:each("connections", function(_, text) fn(text) end)
end

--- All connection records (without their sealed secrets), in id order.
function Store:list()
  local out = {}
  self.b:each("connections", function(id, text) out[#out + 1] = decode_record(text, id) end)
  return out
end

--- The client credentials given for a connector earlier, when `reach` (where this
-- connector would send them: origins.reach) is within the origins they were given for;
-- else nil and why not. The client id is in clear beside the sealed secret, and sealed
-- with it (and the origins) too: a client id changed outside connrt is a store error.
-- Returns { client_id, client_secret, origins }.
function Store:client(connector, reach)
  local v = read(self, "clients", connector)
  if not v then return nil end
  local c = cjson.decode(v)
  local s = unseal(self, c.sealed, "client/" .. connector, "the client secret of " .. connector)
  if s.client_id ~= c.client_id then
    errors.fail("store", "damaged", "the client credentials remembered for %s in the store %s do not match their sealed client "
      .. "id: they were changed outside connrt (give --client-id and the client secret again)", connector, self.home)
  end
  local outside = origins.outside(reach, s.origins)
  if #outside > 0 then
    return nil, ("the client remembered for %s was given for %s, and this connector would send it to %s"):format(
      connector, #(s.origins or {}) > 0 and table.concat(s.origins, ", ") or "endpoints connrt did not record",
      table.concat(outside, ", "))
  end
  return { client_id = c.client_id, client_secret = s.client_secret, origins = s.origins, client_auth = s.client_auth }
end

--- The source of connection `rec`'s connector, stored under its SHA-256 (the record's
-- bound connector_hash), checked against that hash before anyone loads it. Raises a
-- store error naming the connection when it is missing or was changed.
function Store:connector_source(rec)
  local src = read(self, "connectors", rec.connector_hash or "")
  if not src then
    errors.fail("store", "damaged", "connection %s: its connector's source is missing from the store", rec.id)
  end
  if crypto.hex(crypto.sha256(src)) ~= rec.connector_hash then
    errors.fail("store", "damaged", "connection %s: its connector's source in the store %s is not the one it was connected with "
      .. "(changed outside connrt); nothing was sent", rec.id, self.home)
  end
  return src
end

local function new_id(connector)
  return connector .. "-" .. crypto.hex(crypto.random(4))
end

-- The origins a connection sends anything to (origins.reach), as one text.
local function origins_of(rec)
  return table.concat(origins.reach(rec.urls, rec.allowed_urls), " ")
end

-- Remembers client credentials under `key` (a connector's id, or "registered ISSUER" for
-- a client registered at that authorization server): the id in clear and, sealed with
-- it, the secret, the origins it was given for and how it authenticates (client_auth).
local function put_client(self, txn, key, client)
  txn:put("clients", key, cjson.encode({
    client_id = client.client_id,
    sealed = seal(self, { client_id = client.client_id, client_secret = client.client_secret,
      origins = client.origins, client_auth = client.client_auth }, "client/" .. key),
  }))
end

--- Remembers client credentials under `key` in a write transaction of their own: a
-- client registered at an authorization server (RFC 7591) is kept as soon as it exists,
-- so a connect that fails later does not register another next time.
function Store:save_client(key, client)
  self.b:modify(function(txn) put_client(self, txn, key, client) end)
end

-- Saves one connection inside the write transaction `txn` (see Store:save).
local function save_in(self, txn, rec, secrets, source, client, now, where, opts)
  local hash = crypto.hex(crypto.sha256(source))
  local akey = account_key(rec.connector, rec.unique_id)
  local existing_id = txn:get("accounts", akey)
  local updated = false
  if existing_id then
    local text = txn:get("connections", existing_id)
    if text then
      local old = decode_record(text, existing_id)
      -- the accounts index is not bound: what it points at must be this account, whole
      open_bound(self, old, old.sealed or txn:get("secrets", existing_id))
      if old.connector ~= rec.connector or old.unique_id ~= rec.unique_id then
        errors.fail("store", "damaged", "the store %s's account index points %s's account %s at connection %s, which is another "
          .. "account: it was changed outside connrt; nothing was saved", self.home, rec.connector, rec.unique_id,
          existing_id)
      end
      -- a connector that only shares the id of the one this connection was made with
      -- (another's file, or a stranger's) does not silently take the connection over
      local before, after = origins_of(old), origins_of(rec)
      if before ~= after and not (opts and opts.replace) then
        errors.fail("usage", "already_connected", "%s's account %s is connected already (%s) through %s; this connector would send it to %s "
          .. "instead. Nothing was saved: run again with --replace to replace that connection, or `connrt delete %s` "
          .. "first", rec.connector, rec.unique_id, existing_id, before, after, existing_id)
      end
      rec.id = existing_id
      rec.created_at = old.created_at
      updated = true
    end
  end
  if not updated then
    repeat rec.id = new_id(rec.connector) until not txn:get("connections", rec.id)
    rec.created_at = now
  end
  rec.updated_at = now
  rec.connector_hash = hash
  put_record(self, txn, rec, secrets, where)
  txn:put("accounts", akey, rec.id)
  txn:put("connectors", hash, source)
  if client then put_client(self, txn, rec.connector, client) end
  return rec.id, updated
end

--- Saves a connection: `rec` (plain metadata, with connector and unique_id), `secrets`
-- (sealed here), the connector's source, and the client credentials to remember. One
-- write transaction: connecting the same account (same connector and unique id) again
-- updates that connection, keeping its id. `where` names what gave the connection (the
-- token endpoint) in the error for one that is too large. Returns the id and whether it
-- was an update.
function Store:save(rec, secrets, source, client, where, opts)
  return self.b:modify(function(txn)
    return save_in(self, txn, rec, secrets, source, client, os.time(), where, opts)
  end)
end

--- Saves many connections in one write transaction (imports, benchmarks): `items` is an
-- array of { rec, secrets, source, client }. All are saved or none. Returns the ids.
function Store:save_all(items)
  local now = os.time()
  return self.b:modify(function(txn)
    local ids = {}
    for i, it in ipairs(items) do ids[i] = save_in(self, txn, it[1], it[2], it[3], it[4], now) end
    return ids
  end)
end

-- Changes connection `id` in one write transaction: the record is read, its secrets
-- unsealed and checked against its binding, `change(rec, secrets, txn)` edits them (or
-- raises, and nothing changes), and they are bound again as they now are and committed
-- (`where` names what grew a record too large). A deleted connection is a notfound
-- error. Returns the record and secrets.
-- With `fence` ({owner, token}), only while that lease is held (see save_tokens).
local function rewrite(self, id, where, change, fence)
  return self.b:modify(function(txn)
    if fence and not self.b:holds(txn, id, fence.owner, fence.token) then
      errors.fail("store", "fenced", "connection %s: the refresh lease was taken over by another process while "
        .. "this one refreshed; its tokens were not written", id)
    end
    local v = txn:get("connections", id)
    if not v then errors.raise("notfound", "connection %s was deleted", id) end
    local rec = decode_record(v, id)
    local secrets = open_bound(self, rec, rec.sealed or txn:get("secrets", id))
    change(rec, secrets, txn)
    put_record(self, txn, rec, secrets, where)
    return rec, secrets
  end)
end

--- Saves refreshed tokens in one write transaction: the new access token, the new
-- refresh token when the provider rotated it (else the old one is kept), the expiry.
-- The record must still match its binding, and is bound again as it now is. `where`
-- names the refresh endpoint in the error for a connection grown too large. With
-- `fence` ({owner, token}: what acquire_lease gave), the tokens are written only if that
-- lease is still held, in the same transaction: a refresher that stalled past its lease
-- while another took it over cannot overwrite the newer tokens; it gets a store error
-- with reason "fenced" and nothing changes. Returns the new record and secrets.
function Store:save_tokens(id, tok, where, fence)
  return rewrite(self, id, where or ("connection " .. id), function(rec, secrets)
    secrets.access_token = tok.access_token
    if tok.refresh_token then secrets.refresh_token = tok.refresh_token end
    if tok.id_token then secrets.id_token = tok.id_token end
    rec.expires_at, rec.issued_at = tok.expires_at, tok.issued_at
    if tok.token_type then rec.token_type = tok.token_type end
    if tok.scope then rec.scope = tok.scope end
    rec.has_refresh_token = secrets.refresh_token ~= nil
    rec.needs_reconnect, rec.last_error = nil, nil
    rec.refreshed_at = os.time()
  end, fence)
end

--- Moves a connection to another connector source (`connrt update`), in one write
-- transaction: the record fields in `patch` (field -> value) and the secret fields
-- (`secret_fields`, nil for none) are replaced, `source` is stored under its hash, and
-- the record is bound again as it now is. The record must still match its binding and
-- still be connected with the source `hash` it was read with: a connect or an update
-- in between is a store error, and nothing changes. Tokens stay as they are. Returns
-- the new record.
function Store:update(id, hash, patch, secret_fields, source)
  return (rewrite(self, id, "connection " .. id, function(rec, secrets, txn)
    if rec.connector_hash ~= hash then
      errors.fail("store", "conflict", "connection %s was changed by another process while it was being updated; nothing was "
        .. "changed: run connrt update again", id)
    end
    for k, x in pairs(patch) do rec[k] = x end
    secrets.fields = secret_fields
    rec.connector_hash = crypto.hex(crypto.sha256(source))
    -- a record from before issued_at told its token's lifetime by when it was last written
    -- (connection.margin): keep that known now that updated_at moves
    if rec.issued_at == nil and rec.expires_at then rec.issued_at = rec.refreshed_at or rec.updated_at end
    rec.updated_at = os.time()
    txn:put("connectors", rec.connector_hash, source)
  end))
end

--- Sets status fields (UNBOUND: needs_reconnect, last_error) on a connection record, in
-- one write transaction and without the key; any other field is bound to the sealed
-- secrets and changes only with them. With `fence` ({owner, token}), only while that
-- lease is held: a refresher whose lease was taken over (its refresh token refused
-- because the new holder had rotated it) marks nothing (store error, reason fenced).
function Store:mark(id, patch, fence)
  for k in pairs(patch) do
    if not UNBOUND[k] or k == "sealed" then error("store: mark cannot change " .. tostring(k) .. ", a bound field", 2) end
  end
  self.b:modify(function(txn)
    if fence and not self.b:holds(txn, id, fence.owner, fence.token) then
      errors.fail("store", "fenced", "connection %s: the refresh lease was taken over by another process while "
        .. "refreshing; its state stays as that process left it", id)
    end
    local v = txn:get("connections", id)
    if not v then return end
    local rec = decode_record(v, id)
    for k, x in pairs(patch) do
      -- a provider's error text, kept to show: cut, so it cannot grow the record
      if type(x) == "string" and #x > limits.LAST_ERROR_BYTES then x = log.clip(x, limits.LAST_ERROR_BYTES) .. "..." end
      rec[k] = x
    end
    txn:put("connections", id, cjson.encode(rec))
  end)
end

--- Deletes a connection. Returns true when it existed.
function Store:delete(id)
  return self.b:modify(function(txn)
    local v = txn:get("connections", id)
    if not v then return false end
    local rec = decode_record(v, id)
    txn:del("connections", id)
    txn:del("secrets", id)
    if txn:get("accounts", account_key(rec.connector, rec.unique_id)) == id then
      txn:del("accounts", account_key(rec.connector, rec.unique_id))
    end
    txn:del("leases", id)
    return true
  end)
end

--- Re-seals every secret in the store (connections, client secrets, the key check) under
-- `new_key`, in one write transaction: all of them move to the new key or none does.
-- Returns the number of connections and clients re-sealed.
function Store:rekey(new_key)
  local n = self.b:modify(function(txn)
    local count = 0
    local function reseal(blob, aad, what)
      local plain = open_sealed(self, blob, aad, what, "; nothing was changed")
      return crypto.b64encode(crypto.seal(new_key, plain, aad))
    end
    -- the key check first: a backend that locks what it reads keeps other writers out
    txn:get("meta", "keycheck")
    for _, kv in ipairs(txn:list("connections")) do
      local id = kv[1]
      local rec = decode_record(kv[2], id)
      -- the plaintext, its binding included, moves to the new key unchanged
      local sealed = reseal(rec.sealed or txn:get("secrets", id), "connection/" .. id, "connection " .. id)
      if rec.sealed then -- inline in a store written before the split
        rec.sealed = nil
        txn:put("connections", id, cjson.encode(rec))
      end
      txn:put("secrets", id, sealed)
      count = count + 1
    end
    for _, kv in ipairs(txn:list("clients")) do
      local c = cjson.decode(kv[2])
      c.sealed = reseal(c.sealed, "client/" .. kv[1], "the client secret of " .. kv[1])
      txn:put("clients", kv[1], cjson.encode(c))
      count = count + 1
    end
    txn:put("meta", "keycheck", crypto.seal(new_key, KEY_CHECK, "meta/keycheck"))
    return count
  end)
  self.key = new_key
  return n
end

--- Binds the records of a store written before bindings existed (meta version 1), in
-- one write transaction on the first open that has the key: each connection's secrets
-- are sealed again with the binding of its record as it is now, each remembered client
-- secret with its client id, and the version is set, after which a record without a
-- binding is refused like a changed one. This is trust on first use, said plainly: a
-- record changed before this open cannot be told from the original (nothing bound it),
-- so it is bound as found; one whose secrets do not open is left as it is, and fails
-- when used. Records are not accepted unbound "until the next write": a connection whose
-- token never expires may never be written again.
function Store:upgrade(bound_already)
  self.b:modify(function(txn)
    local check = txn:get("meta", "keycheck")
    if check and crypto.open(self.key, check, "meta/keycheck") == KEY_CHECK then return end
    for _, kv in ipairs(bound_already and {} or txn:list("connections")) do
      local id = kv[1]
      local rec = decode_record(kv[2], id)
      local ok, secrets = pcall(unseal, self, rec.sealed or txn:get("secrets", id), "connection/" .. id,
        "connection " .. id)
      if ok and type(secrets) == "table" and secrets.bound == nil then put_record(self, txn, rec, secrets) end
    end
    for _, kv in ipairs(txn:list("clients")) do
      local c = cjson.decode(kv[2])
      local ok, s = pcall(unseal, self, c.sealed, "client/" .. kv[1], "the client secret of " .. kv[1])
      if ok and type(s) == "table" and s.client_id == nil then
        s.client_id = c.client_id
        c.sealed = seal(self, s, "client/" .. kv[1])
        txn:put("clients", kv[1], cjson.encode(c))
      end
    end
    txn:put("meta", "version", VERSION)
    txn:put("meta", "keycheck", crypto.seal(self.key, KEY_CHECK, "meta/keycheck"))
  end)
  self.key_check_text = KEY_CHECK
end

M.decode_key = decode_key

--- Brings the schema of the store at `where` (default M.where()) up to date: for
-- PostgreSQL, the forward migrations (which every open runs too); an LMDB store has
-- none. Returns the backend's kind and the versions before and after (nil for LMDB).
function M.migrate(where)
  where = where or M.where()
  local b = backend_of(where).open(where)
  local before, after
  if b.migrate then
    local ok, x, y = pcall(b.migrate, b) -- open migrated already: this reports the version
    if not ok then b:close() error(x, 0) end
    before, after = x, y
  end
  local kind, name = b.kind, b.where
  local keyed = b:view(function(tx) return tx:get("meta", "keycheck") end) ~= nil
  b:close()
  if keyed then
    -- a store from before bindings is bound here, and only here (M.open)
    local st = M.open(where, { bind_unbound = true })
    local bound = st.bound_now
    st:close()
    return kind, name, before, after, bound
  end
  return kind, name, before, after
end

--- Copies every connection, client and connector source of this store into `dst`
-- (another Store), read in one read transaction and written in one write transaction
-- on `dst`: all of them or none. Sealed values move as they are when both stores use the
-- same key, else are opened here and sealed under dst's key (what they say, bindings
-- included, is unchanged). An account `dst` holds under another id is refused (nothing
-- is written). Copying again changes nothing. Returns the numbers of connections and
-- clients copied.
function Store:copy_to(dst)
  local conns, clients, sources = self.b:view(function(tx)
    local list = tx:list("connections")
    for _, kv in ipairs(list) do kv[3] = tx:get("secrets", kv[1]) end
    return list, tx:list("clients"), tx:list("connectors")
  end)
  local same = self.key == dst.key
  local function move(blob, aad, what)
    if same then return blob end
    return crypto.b64encode(crypto.seal(dst.key, open_sealed(self, blob, aad, what, "; nothing was copied"), aad))
  end
  dst.b:modify(function(tx)
    for _, kv in ipairs(sources) do tx:put("connectors", kv[1], kv[2]) end
    for _, kv in ipairs(conns) do
      local id = kv[1]
      local rec = decode_record(kv[2], id)
      local sealed = move(rec.sealed or kv[3], "connection/" .. id, "connection " .. id)
      local text = kv[2]
      if rec.sealed then -- inline in a store written before the split
        rec.sealed = nil
        text = cjson.encode(rec)
      end
      local akey = account_key(rec.connector, rec.unique_id)
      local other = tx:get("accounts", akey)
      if other and other ~= id then
        errors.raise("usage", "%s's account %s is in %s already as connection %s (not %s); nothing was copied: delete "
          .. "one of them first", rec.connector, rec.unique_id, dst.home, other, id)
      end
      tx:put("connections", id, text)
      tx:put("secrets", id, sealed)
      tx:put("accounts", akey, id)
    end
    for _, kv in ipairs(clients) do
      local c = cjson.decode(kv[2])
      c.sealed = move(c.sealed, "client/" .. kv[1], "the client secret of " .. kv[1])
      tx:put("clients", kv[1], cjson.encode(c))
    end
  end)
  return #conns, #clients
end

--- Takes the lease on a connection for `ttl` seconds for `owner` (single flight across
-- processes and hosts: the holder refreshes, the others wait and re-read). Returns the
-- fencing token to give save_tokens, or false and the current holder's lease. On LMDB a
-- lease whose holder process has died (same machine and PID namespace) is taken over at
-- once; otherwise a lease is taken over only once it has expired (by the database's
-- clock on PostgreSQL).
function Store:acquire_lease(id, owner, ttl)
  return self.b:acquire_lease(id, owner, ttl)
end

--- Gives a lease back if `owner` still holds it.
function Store:release_lease(id, owner)
  self.b:release_lease(id, owner)
end

return M
