-- luacheck: std +busted
-- The Lua store layer (lua/connrt/store.lua) on a real LMDB store: saving connections
-- sealed, one per account, finding them, saving refreshed tokens, leases, keys.
local crypto = require("connrt.crypto")
local h = require("support.helpers")
local store = require("connrt.store")

local function record(unique_id)
  return { connector = "demo", unique_id = unique_id, name = unique_id .. "'s Account", fields = {} }
end

describe("store", function()
  local home, st
  before_each(function()
    home = h.tmpdir()
    st = store.open(home)
  end)
  after_each(function()
    st:close()
    h.rmdir(home)
  end)

  it("seals secrets bound to the connection and keeps one connection per account", function()
    local id, updated = st:save(record("a@example.com"), { access_token = "at-1", refresh_token = "rt-1" }, "src", nil)
    assert.is_false(updated)
    assert.matches("^demo%-%x+$", id)
    local id2, updated2 = st:save(record("a@example.com"), { access_token = "at-2" }, "src", nil)
    assert.equal(id, id2)
    assert.is_true(updated2)
    assert.equal("at-2", st:secrets(st:get(id)).access_token)
    assert.equal(1, #st:list())
    -- a record's sealed secrets do not open under another connection's id
    local rec = st:get(id)
    rec.id = "demo-other"
    assert.has_error(function() st:secrets(rec) end)
  end)

  it("finds a connection by id, or by its connector when it has exactly one", function()
    local id = st:save(record("a@example.com"), { access_token = "x" }, "src", nil)
    assert.equal(id, st:find("demo").id)
    assert.equal(id, st:find(id).id)
    st:save(record("b@example.com"), { access_token = "y" }, "src", nil)
    local ok, e = pcall(st.find, st, "demo")
    assert.is_false(ok)
    assert.matches("demo has 2 connections; name one by id", e.message, 1, true)
    ok, e = pcall(st.find, st, "nope")
    assert.is_false(ok)
    assert.equal("notfound", e.kind)
  end)

  it("keeps the old refresh token when a refresh brings none, and takes a rotated one", function()
    local id = st:save(record("a@example.com"), { access_token = "at-1", refresh_token = "rt-1" }, "src", nil)
    local rec, secrets = st:save_tokens(id, { access_token = "at-2", expires_at = 100 })
    assert.equal("rt-1", secrets.refresh_token)
    assert.equal(100, rec.expires_at)
    rec, secrets = st:save_tokens(id, { access_token = "at-3", refresh_token = "rt-2" })
    assert.equal("rt-2", secrets.refresh_token)
    assert.equal("at-3", st:secrets(st:get(id)).access_token)
    assert.is_nil(rec.expires_at)
  end)

  it("clears the reconnect mark when tokens are saved", function()
    local id = st:save(record("a@example.com"), { access_token = "at-1", refresh_token = "rt-1" }, "src", nil)
    st:mark(id, { needs_reconnect = true, last_error = "invalid_grant" })
    assert.is_true(st:get(id).needs_reconnect)
    st:save_tokens(id, { access_token = "at-2" })
    assert.is_nil(st:get(id).needs_reconnect)
  end)

  it("gives a lease to one owner at a time until it expires or is released", function()
    local id = st:save(record("a@example.com"), { access_token = "x" }, "src", nil)
    assert.is_truthy(st:acquire_lease(id, "one", 30))
    local got, holder = st:acquire_lease(id, "two", 30)
    assert.is_false(got)
    assert.equal("one", holder.owner)
    st:release_lease(id, "two") -- not the holder: nothing happens
    assert.is_false((st:acquire_lease(id, "two", 30)))
    st:release_lease(id, "one")
    assert.is_truthy(st:acquire_lease(id, "two", 0.2))
    require("connrt.sys").sleep(0.3)
    assert.is_truthy(st:acquire_lease(id, "three", 30))
  end)

  it("replaces a lease record connrt did not write (damaged, other types, endless) instead of failing", function()
    local id = st:save(record("a@example.com"), { access_token = "x" }, "src", nil)
    for i, garbage in ipairs({ "not json", "[]", "null", '{"owner": 1, "expires": 1e12}', '{"owner": "x", "expires": "soon"}',
        '{"owner": "x", "expires": 1e999}', '{"owner": "x", "expires": 4e12}', '{"owner": "x"}',
        -- longer than the lease time (30 s here), naming this live process: planted
        ('{"owner": "x", "expires": %d, "pid": %d}'):format(os.time() + 3540, require("connrt.sys").getpid()),
        '{"owner": "x", "expires": 1e12, "pid": {}, "start": [], "pidns": true}' }) do
      local txn = st.b.env:begin(true)
      txn:put("leases", id, garbage)
      txn:commit()
      local ok, got = pcall(st.acquire_lease, st, id, "owner" .. i, 30)
      assert.is_true(ok, garbage .. ": " .. tostring(got))
      assert.is_number(got, garbage)
      st:release_lease(id, "owner" .. i)
      txn = st.b.env:begin(false)
      assert.is_nil(txn:get("leases", id), garbage)
      txn:abort()
    end
    -- a live lease whose holder fields have other types is held by its owner, without an error
    local txn = st.b.env:begin(true)
    txn:put("leases", id, ('{"owner": "x", "expires": %d, "pid": {}, "start": [], "pidns": true}'):format(os.time() + 20))
    txn:commit()
    local ok, got, holder = pcall(st.acquire_lease, st, id, "y", 30)
    assert.is_true(ok, tostring(got))
    assert.is_false(got)
    assert.equal("x", holder.owner)
  end)

  it("remembers client credentials sealed", function()
    st:save(record("a@example.com"), { access_token = "x" }, "src", { client_id = "cid", client_secret = "csecret" })
    assert.same({ client_id = "cid", client_secret = "csecret" }, st:client("demo"))
    assert.is_nil(h.store_bytes(home):find("csecret", 1, true))
  end)

  it("deletes a connection and its account index", function()
    local id = st:save(record("a@example.com"), { access_token = "x" }, "src", nil)
    assert.is_true(st:delete(id))
    assert.is_false(st:delete(id))
    local id2 = st:save(record("a@example.com"), { access_token = "y" }, "src", nil)
    assert.not_equal(id, id2)
  end)

  it("refuses another key with a clear message and changes nothing", function()
    st:save(record("a@example.com"), { access_token = "x" }, "src", nil)
    local before = h.snapshot(home)
    -- a second key file in another place
    local other = h.tmpdir()
    local path = other .. "/key"
    assert(require("connrt.sys").write_private(path, crypto.hex(crypto.random(32))))
    -- (any command that opens the sealed part: list reads only the plain records)
    local cmd = ("CONNRT_HOME=%s CONNRT_KEY_FILE=%s %s show nothing 2>&1"):format(home, path, h.CONNRT)
    local p = io.popen(cmd)
    local out = p:read("a")
    local _, _, code = p:close()
    h.rmdir(other)
    assert.equal(8, code)
    assert.matches("cannot decrypt: wrong key?", out, 1, true)
    assert.same(before, h.snapshot(home))
  end)

  it("refuses a key file others can read", function()
    local other = h.tmpdir()
    local path = other .. "/key"
    assert(require("connrt.sys").write_private(path, crypto.hex(crypto.random(32))))
    require("connrt.sys").chmod(path, 420) -- 0644
    -- a store that exists (list and show create none where there is none)
    require("connrt.store").open(other .. "/h"):close()
    local p = io.popen(("CONNRT_HOME=%s/h CONNRT_KEY_FILE=%s %s show nothing 2>&1"):format(other, path, h.CONNRT))
    local out = p:read("a")
    local _, _, code = p:close()
    h.rmdir(other)
    assert.equal(8, code)
    assert.matches("key file " .. path .. " has mode 0644: its group or others may read or change the key; chmod 600 "
      .. path, out, 1, true)
  end)

  it("refuses a malformed CONNRT_KEY", function()
    local p = io.popen(("CONNRT_HOME=%s CONNRT_KEY=short %s show nothing 2>&1"):format(home, h.CONNRT))
    local out = p:read("a")
    local _, _, code = p:close()
    assert.equal(8, code)
    assert.matches("CONNRT_KEY: the key must be 32 bytes", out, 1, true)
  end)
end)

describe("store:save_all", function()
  it("saves many connections in one transaction, all or none", function()
    local home = h.tmpdir()
    local st = store.open(home)
    local items = {}
    for i = 1, 50 do
      items[i] = { { connector = "demo", unique_id = "u" .. i, name = "n" .. i, fields = {} }, { access_token = "t" .. i }, "src" }
    end
    local ids = st:save_all(items)
    assert.equal(50, #ids)
    assert.equal(50, #st:list())
    assert.equal("t7", st:secrets(st:get(ids[7])).access_token)
    -- a bad item aborts the whole batch
    local bad = { { { connector = "demo", unique_id = "x1", name = "x", fields = {} }, { access_token = "a" }, "src" },
      { { connector = "demo", unique_id = "x2", name = "y", fields = {} }, { access_token = "b" }, nil } }
    assert.has_error(function() st:save_all(bad) end)
    assert.equal(50, #st:list())
    st:close()
    h.rmdir(home)
  end)
end)
