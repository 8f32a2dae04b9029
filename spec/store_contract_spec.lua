-- luacheck: std +busted
-- The store's contract (lua/connrt/store.lua over each backend): the same cases run on
-- LMDB (a directory) and on PostgreSQL (a real server started by spec/support/postgres.lua,
-- a postgres:// URL): saving connections sealed and one per account, finding them,
-- refreshed tokens, marks, deleting, client credentials, many in one transaction, the
-- key check, rekey, leases with a fencing token, a fenced write refused, listing.
local crypto = require("connrt.crypto")
local h = require("support.helpers")
local postgres = require("support.postgres")
local store = require("connrt.store")
local sys = require("connrt.sys")

local KEY = crypto.hex(crypto.random(32))

local function record(unique_id, connector)
  return { connector = connector or "demo", unique_id = unique_id, name = unique_id .. "'s Account", fields = {},
    allowed_urls = { "https://api.example.com/" } }
end

local opts_of = {} -- key (hex) -> store.open's options with a key file holding it

-- Runs fn(opts) with store.open's options for `key`.
local function with_key(key, fn)
  if not opts_of[key] then
    local dir = h.tmpdir()
    assert(sys.write_private(dir .. "/key", key .. "\n"))
    opts_of[key] = { key_file = dir .. "/key" }
  end
  fn(opts_of[key])
end

local backends = {
  { name = "LMDB", new = function()
      local dir = h.tmpdir()
      return dir, function() h.rmdir(dir) end
    end },
  { name = "PostgreSQL", new = function(ctx)
      -- each case its own database on the one server
      ctx.n = (ctx.n or 0) + 1
      local db = "contract" .. ctx.n
      ctx.server.psql(("CREATE DATABASE %s OWNER %s;"):format(db, ctx.server.role), "postgres")
      local url = ctx.server.url:gsub("/[^/]*$", "/" .. db)
      return url, function() end
    end },
}

for _, backend in ipairs(backends) do
  describe("store contract on " .. backend.name .. " #integration #postgres", function()
    local ctx = {}
    local where, cleanup, st

    setup(function()
      if backend.name == "PostgreSQL" then
        assert(postgres.available(), "PostgreSQL 15 is not installed (make deps installs postgresql-15)")
        ctx.server = postgres.start()
      end
      ctx.home = h.tmpdir() -- CONNRT_HOME: where a PostgreSQL store's key file would go
    end)
    teardown(function()
      if ctx.server then ctx.server.destroy() end
      h.rmdir(ctx.home)
    end)
    before_each(function()
      where, cleanup = backend.new(ctx)
      with_key(KEY, function(o) st = store.open(where, o) end)
    end)
    after_each(function()
      if st then st:close() end
      cleanup()
    end)

    local function reopen()
      st:close()
      with_key(KEY, function(o) st = store.open(where, o) end)
    end

    it("seals secrets bound to the connection and keeps one connection per account", function()
      local id, updated = st:save(record("a@example.com"), { access_token = "at-1", refresh_token = "rt-1" }, "src")
      assert.is_false(updated)
      assert.matches("^demo%-%x+$", id)
      reopen()
      local id2, updated2 = st:save(record("a@example.com"), { access_token = "at-2" }, "src")
      assert.equal(id, id2)
      assert.is_true(updated2)
      assert.equal("at-2", st:secrets(st:get(id)).access_token)
      assert.equal(1, #st:list())
      local rec = st:get(id)
      rec.id = "demo-other"
      assert.has_error(function() st:secrets(rec) end)
    end)

    it("keeps account ids that are not UTF-8 and finds by connector", function()
      local odd = "caf\233\0\255@example.com"
      local id = st:save(record(odd), { access_token = "x" }, "src")
      assert.equal(id, st:find("demo").id)
      assert.equal(odd, st:get(id).unique_id)
      assert.equal(id, (st:save(record(odd), { access_token = "y" }, "src")))
      local id2 = st:save(record("b@example.com"), { access_token = "y" }, "src")
      local other = st:save(record("c@example.com", "other"), { access_token = "z" }, "src")
      assert.equal(other, st:find("other").id)
      local ids = { id, id2 }
      table.sort(ids)
      assert.same(ids, st:ids_of("demo"))
      assert.same({ other }, st:ids_of("other"))
      assert.same({}, st:ids_of("nope"))
      local ok, e = pcall(st.find, st, "demo")
      assert.is_false(ok)
      assert.equal("ambiguous", e.reason)
      assert.equal("demo has 2 connections; name one by id: " .. table.concat(ids, ", "), e.message)
      ok, e = pcall(st.find, st, "nope")
      assert.is_false(ok)
      assert.equal("notfound", e.kind)
    end)

    it("never lets an index written without the key lead a connector's name to another connector's connection",
      function()
      local mine = st:save(record("alice"), { access_token = "mine" }, "src")
      local theirs = st:save(record("mallory", "evil"), { access_token = "theirs" }, "src")
      -- what one who can write the store but has no key can do to the index
      if backend.name == "PostgreSQL" then
        st.b:q("UPDATE connrt_connections SET connector = 'demo' WHERE id = $1", theirs)
      else
        st.b:modify(function(txn)
          txn:put("accounts", "demo\0zz", theirs)
          txn:put("accounts", "demo\0gone", "demo-0000dead")
        end)
      end
      assert.same({ mine }, st:ids_of("demo"))
      assert.equal(mine, st:find("demo").id)
      -- and its record's connector changed too: the binding refuses the record
      st.b:modify(function(txn)
        local text = txn:get("connections", theirs):gsub('"connector":"evil"', '"connector":"demo"')
        txn:put("connections", theirs, text)
      end)
      st:delete(mine)
      local ok, err = pcall(function()
        local rec = st:find("demo")
        return st:secrets(rec)
      end)
      assert.is_false(ok)
      assert.equal("damaged", err.reason)
    end)

    if backend.name == "PostgreSQL" then
      it("goes on after its database connection was cut: a read at once, a write after failing once", function()
        local id = st:save(record("a@example.com"), { access_token = "at-1" }, "src")
        local db = where:match("/([^/?]+)$")
        local function cut()
          return tonumber(ctx.server.psql(("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            .. "WHERE datname = '%s' AND pid <> pg_backend_pid()"):format(db), "postgres"))
        end
        assert.equal(1, cut())
        assert.equal(id, st:get(id).id)
        assert.equal(1, cut())
        -- a write is not made again on its own (its outcome could be unknown): it fails,
        -- having written nothing, and the next one connects again
        local ok, err = pcall(st.mark, st, id, { last_error = "x" })
        assert.is_false(ok)
        assert.equal("store", err.kind)
        assert.equal("unavailable", err.reason)
        assert.is_nil(st:get(id).last_error)
        st:mark(id, { last_error = "y" })
        assert.equal("y", st:get(id).last_error)
        -- a lease (a statement outside a transaction) likewise
        assert.equal(1, cut())
        assert.has_error(function() st:acquire_lease(id, "me", 5) end)
        assert.is_truthy(st:acquire_lease(id, "me", 5))
      end)
    end

    it("saves refreshed tokens, keeping or rotating the refresh token, and clears the reconnect mark", function()
      local id = st:save(record("a@example.com"), { access_token = "at-1", refresh_token = "rt-1" }, "src")
      st:mark(id, { needs_reconnect = true, last_error = "invalid_grant" })
      assert.is_true(st:get(id).needs_reconnect)
      local rec, secrets = st:save_tokens(id, { access_token = "at-2", expires_at = 100 })
      assert.equal("rt-1", secrets.refresh_token)
      assert.equal(100, rec.expires_at)
      assert.is_nil(st:get(id).needs_reconnect)
      st:save_tokens(id, { access_token = "at-3", refresh_token = "rt-2" })
      reopen()
      local s = st:secrets(st:get(id))
      assert.same({ "at-3", "rt-2" }, { s.access_token, s.refresh_token })
    end)

    it("gives a lease to one owner at a time, with a fencing token that only grows", function()
      local id = st:save(record("a@example.com"), { access_token = "x" }, "src")
      local t1 = st:acquire_lease(id, "one", 30)
      assert.is_number(t1)
      local got, holder = st:acquire_lease(id, "two", 30)
      assert.is_false(got)
      assert.equal("one", holder.owner)
      assert.is_true(holder.expires > sys.time() + 20)
      st:release_lease(id, "two") -- not the holder: nothing happens
      assert.is_false((st:acquire_lease(id, "two", 30)))
      st:release_lease(id, "one")
      local t2 = st:acquire_lease(id, "two", 0.2)
      assert.is_number(t2)
      sys.sleep(0.3)
      local t3 = st:acquire_lease(id, "three", 30)
      assert.is_number(t3)
      assert.is_true(t3 > t2, ("token %s after %s"):format(t3, t2))
    end)

    it("takes over a lease longer than any connrt takes (planted: it would stall every refresh)", function()
      local id = st:save(record("a@example.com"), { access_token = "x" }, "src", nil)
      assert.is_number(st:acquire_lease(id, "planted", 3540))
      assert.is_number(st:acquire_lease(id, "honest", 30))
      local got, holder = st:acquire_lease(id, "third", 30)
      assert.is_false(got)
      assert.equal("honest", holder.owner)
    end)

    it("refuses a fenced write once the lease was taken over, and keeps the newer tokens", function()
      local id = st:save(record("a@example.com"), { access_token = "at-1", refresh_token = "rt-1" }, "src")
      local stale = st:acquire_lease(id, "slow", 0.2)
      sys.sleep(0.3) -- the slow refresher's lease expires while it is away
      local fresh = st:acquire_lease(id, "fast", 30)
      assert.is_number(fresh)
      st:save_tokens(id, { access_token = "at-fast", refresh_token = "rt-fast" }, nil, { owner = "fast", token = fresh })
      st:release_lease(id, "fast")
      local ok, e = pcall(st.save_tokens, st, id, { access_token = "at-slow", refresh_token = "rt-slow" }, nil,
        { owner = "slow", token = stale })
      assert.is_false(ok)
      assert.same({ "store", "fenced" }, { e.kind, e.reason })
      local s = st:secrets(st:get(id))
      assert.same({ "at-fast", "rt-fast" }, { s.access_token, s.refresh_token })
      -- a holder whose lease expired but was not taken over may still write
      local own = st:acquire_lease(id, "alone", 0.1)
      sys.sleep(0.2)
      st:save_tokens(id, { access_token = "at-alone" }, nil, { owner = "alone", token = own })
      assert.equal("at-alone", st:secrets(st:get(id)).access_token)
    end)

    it("remembers client credentials sealed", function()
      st:save(record("a@example.com"), { access_token = "x" }, "src", { client_id = "cid", client_secret = "csecret",
        origins = { "https://api.example.com" } })
      reopen()
      assert.same({ client_id = "cid", client_secret = "csecret", origins = { "https://api.example.com" } },
        st:client("demo", { "https://api.example.com" }))
      assert.is_nil(st:client("other"))
    end)

    it("deletes a connection, its account index and its lease", function()
      local id = st:save(record("a@example.com"), { access_token = "x" }, "src")
      assert.is_number(st:acquire_lease(id, "one", 30))
      assert.is_true(st:delete(id))
      assert.is_false(st:delete(id))
      assert.is_nil(st:get(id))
      local id2 = st:save(record("a@example.com"), { access_token = "y" }, "src")
      assert.not_equal(id, id2)
      assert.is_number(st:acquire_lease(id2, "two", 30))
    end)

    it("saves many connections in one transaction, all or none", function()
      local items = {}
      for i = 1, 50 do items[i] = { record("u" .. i .. "@example.com"), { access_token = "t" .. i }, "src" } end
      local ids = st:save_all(items)
      assert.equal(50, #ids)
      items = { { record("new@example.com"), { access_token = "n" }, "src" },
        { record("big@example.com"), setmetatable({}, { __index = function() error("boom") end }), "src" } }
      items[2][1].unique_id = nil -- a record that cannot be saved
      assert.has_error(function() st:save_all(items) end)
      assert.equal(50, #st:list())
      local n, listed = 0, {}
      st:each_raw(function(text) n = n + 1 listed[#listed + 1] = text end)
      assert.equal(50, n)
      assert.matches('"unique_id":"u', listed[1], 1, true)
    end)

    it("refuses another key and changes nothing; rekey moves every secret to a new key", function()
      local id = st:save(record("a@example.com"), { access_token = "at" }, "src", { client_id = "cid",
        client_secret = "cs", origins = {} })
      st:close()
      st = nil
      local other = crypto.hex(crypto.random(32))
      with_key(other, function(o)
        local ok, e = pcall(store.open, where, o)
        assert.is_false(ok)
        assert.equal("store", e.kind)
        assert.matches("cannot decrypt: wrong key?", e.message, 1, true)
      end)
      with_key(KEY, function(o) st = store.open(where, o) end)
      assert.equal(2, st:rekey(crypto.unhex(other)))
      st:close()
      st = nil
      with_key(other, function(o) st = store.open(where, o) end)
      assert.equal("at", st:secrets(st:get(id)).access_token)
      assert.equal("cs", st:client("demo", {}).client_secret)
    end)
  end)
end
