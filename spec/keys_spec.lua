-- luacheck: std +busted
-- The sealing key (issue 7): a wrong or missing key is refused with a clear message and
-- changes nothing; `connrt rekey` re-seals every secret under a new key in one
-- transaction, from a key file or from CONNRT_KEY, and an interrupted rekey is finished
-- by the next open. Real processes, a real store, a real upstream.
local cjson = require("cjson")
local crypto = require("connrt.crypto")
local h = require("support.helpers")
local lmdb = require("connrt.lmdb")

local API_KEY = "key-0b5d7c1e9a"

describe("keys and connrt rekey #integration", function()
  local api, tmp, connector

  local function env(home, extra)
    local e = { CONNRT_HOME = home }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  -- A store with one connection (an API key sealed) and a remembered client secret.
  local function new_store(extra_env)
    local home = h.tmpdir()
    local res = h.connrt({ "run", connector, "--json" }, { env = env(home, extra_env) })
    assert.equal(0, res.code, res.stderr)
    return home, cjson.decode(res.stdout).id
  end

  local function works(home, id, extra_env)
    local res = h.connrt({ "request", id, "/keyed/me" }, { env = env(home, extra_env) })
    return res.code == 0, res
  end

  setup(function()
    tmp = h.tmpdir()
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    connector = tmp .. "/keyed.lua"
    h.write(connector, h.keyed_connector(api.base))
  end)

  teardown(function()
    if api then api.stop() end
    h.rmdir(tmp)
  end)

  local FIELD = { CONNRT_FIELD_API_KEY = API_KEY }

  describe("a wrong or missing key", function()
    it("a wrong CONNRT_KEY: cannot decrypt, exit 8, store unchanged", function()
      local home, id = new_store(FIELD)
      local before = h.snapshot(home)
      local res = h.connrt({ "token", id }, { env = env(home, { CONNRT_KEY = crypto.hex(crypto.random(32)) }) })
      assert.equal(8, res.code)
      assert.matches("cannot decrypt: wrong key? The store " .. home .. " was sealed with another key than the "
        .. "CONNRT_KEY", res.stderr, 1, true)
      assert.same(before, h.snapshot(home))
    end)

    it("a missing key file: says so and creates no new key", function()
      local home, id = new_store(FIELD)
      local key = h.read(home .. "/key")
      os.remove(home .. "/key")
      local before = h.snapshot(home)
      local res = h.connrt({ "request", id, "/keyed/me" }, { env = env(home) })
      assert.equal(8, res.code)
      assert.matches("the key file " .. home .. "/key is missing", res.stderr, 1, true)
      assert.same(before, h.snapshot(home))
      assert.is_nil(h.read(home .. "/key"))
      -- restored, it works again
      h.write(home .. "/key", key)
      os.execute("chmod 600 " .. h.shell_quote(home .. "/key"))
      assert.is_true((works(home, id)))
    end)

    it("a key that is not 32 bytes: names where it came from", function()
      local home = new_store(FIELD)
      local before = h.snapshot(home)
      local res = h.connrt({ "token", "keyed" }, { env = env(home, { CONNRT_KEY = "abcd" }) })
      assert.equal(8, res.code)
      assert.matches("CONNRT_KEY: the key must be 32 bytes, as 64 hex digits or base64", res.stderr, 1, true)
      assert.same(before, h.snapshot(home))
    end)
  end)

  describe("connrt rekey", function()
    it("re-seals under a fresh key in the key file; the old key no longer opens it", function()
      local home, id = new_store(FIELD)
      local old = h.read(home .. "/key")
      local res = h.connrt({ "rekey" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.matches("re-sealed 1 secret record(s) under a fresh random key; the key file " .. home .. "/key holds it now",
        res.stderr, 1, true)
      local new = h.read(home .. "/key")
      assert.are_not.equal(old, new)
      assert.matches("^%x+\n$", new)
      assert.is_nil(h.read(home .. "/key.new"))
      assert.is_true((works(home, id)))
      res = h.connrt({ "token", id }, { env = env(home, { CONNRT_KEY = old:gsub("%s+$", "") }) })
      assert.equal(8, res.code)
      assert.matches("cannot decrypt: wrong key?", res.stderr, 1, true)
      assert.is_nil(h.store_bytes(home):find(API_KEY, 1, true))
    end)

    it("with CONNRT_KEY: needs the new key, then only the new key opens it", function()
      local old = crypto.hex(crypto.random(32))
      local home, id = new_store({ CONNRT_KEY = old, CONNRT_FIELD_API_KEY = API_KEY })
      local before = h.snapshot(home)
      local res = h.connrt({ "rekey" }, { env = env(home, { CONNRT_KEY = old }) })
      assert.equal(2, res.code)
      assert.matches("the store's key comes from CONNRT_KEY: give the new one with --new-key-file FILE or "
        .. "CONNRT_NEW_KEY", res.stderr, 1, true)
      assert.same(before, h.snapshot(home))

      local new = crypto.b64encode(crypto.random(32))
      res = h.connrt({ "rekey" }, { env = env(home, { CONNRT_KEY = old, CONNRT_NEW_KEY = new }) })
      assert.equal(0, res.code, res.stderr)
      assert.matches("set CONNRT_KEY to it from now on", res.stderr, 1, true)
      assert.is_nil(res.stderr:find(new, 1, true))
      assert.is_true((works(home, id, { CONNRT_KEY = new })))
      assert.is_false((works(home, id, { CONNRT_KEY = old })))

      -- and from a file
      local file = tmp .. "/next.key"
      local next_key = crypto.hex(crypto.random(32))
      h.write(file, next_key .. "\n")
      res = h.connrt({ "rekey", "--new-key-file", file }, { env = env(home, { CONNRT_KEY = new }) })
      assert.equal(0, res.code, res.stderr)
      assert.is_true((works(home, id, { CONNRT_KEY = next_key })))
    end)

    it("re-seals remembered client secrets too", function()
      local home = h.tmpdir()
      local st = require("connrt.store").open(home)
      st:save({ connector = "c", unique_id = "u", name = "n" }, { access_token = "at-12345678" }, "return {}",
        { client_id = "cid", client_secret = "cs-87654321" })
      st:close()
      local res = h.connrt({ "rekey" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.matches("re-sealed 2 secret record(s)", res.stderr, 1, true)
      st = require("connrt.store").open(home)
      assert.equal("cs-87654321", st:client("c").client_secret)
      assert.equal("at-12345678", st:secrets(st:list()[1]).access_token)
      st:close()
    end)

    it("refuses a bad new key, the same key, and a damaged record, changing nothing", function()
      local home = new_store(FIELD)
      local before = h.snapshot(home)
      local file = tmp .. "/bad.key"
      h.write(file, "not a key\n")
      local res = h.connrt({ "rekey", "--new-key-file", file }, { env = env(home) })
      assert.equal(8, res.code)
      assert.matches("--new-key-file " .. file .. ": the key must be 32 bytes", res.stderr, 1, true)
      res = h.connrt({ "rekey", "--new-key-file", tmp .. "/missing.key" }, { env = env(home) })
      assert.equal(2, res.code)
      assert.matches("--new-key-file: " .. tmp .. "/missing.key: No such file or directory", res.stderr, 1, true)
      res = h.connrt({ "rekey", "--new-key-file", home .. "/key" }, { env = env(home) })
      assert.equal(2, res.code)
      assert.matches("the new key is the one the store is sealed with already", res.stderr, 1, true)
      assert.same(before, h.snapshot(home))

      -- a second connection whose sealed secrets are damaged: none is re-sealed
      local st = require("connrt.store").open(home)
      local id2 = st:save({ connector = "c", unique_id = "u2", name = "n" }, { access_token = "at-22222222" }, "return {}")
      st:close()
      local env_ = assert(lmdb.open(home, { "connections", "secrets", "accounts", "clients", "connectors", "leases", "meta" }, {}))
      do
        local txn <close> = env_:begin(true)
        txn:put("secrets", id2, crypto.b64encode(crypto.random(60)))
        txn:commit()
      end
      env_:close()
      before = h.snapshot(home)
      local key = h.read(home .. "/key")
      res = h.connrt({ "rekey" }, { env = env(home) })
      assert.equal(8, res.code)
      assert.matches("cannot decrypt connection " .. id2 .. ": wrong key or damaged data; nothing was changed",
        res.stderr, 1, true)
      assert.same(before, h.snapshot(home))
      assert.equal(key, h.read(home .. "/key"))
      assert.is_nil(h.read(home .. "/key.new"))
    end)

    -- What `connrt rekey` does up to its commit (the new key beside the old, the store
    -- re-sealed), as if killed there; returns the new key.
    local function rekey_killed_before_rename(home)
      local new_key = crypto.random(32)
      assert(require("connrt.sys").write_private(home .. "/key.new", crypto.hex(new_key) .. "\n"))
      local st = require("connrt.store").open(home)
      st:rekey(new_key)
      st:close()
      return new_key
    end

    it("finishes a rekey that died between its commit and the key file's rename", function()
      local home, id = new_store(FIELD)
      local new_key = rekey_killed_before_rename(home)
      -- (killed here) the next command finds the pending key, checks it and renames it
      assert.is_true((works(home, id)))
      assert.equal(crypto.hex(new_key) .. "\n", h.read(home .. "/key"))
      assert.is_nil(h.read(home .. "/key.new"))
    end)

    it("refuses an interrupted rekey's key.new that its group or others may read, renaming nothing", function()
      local home, id = new_store(FIELD)
      local new_key = rekey_killed_before_rename(home)
      local sys = require("connrt.sys")
      assert(sys.chmod(home .. "/key.new", tonumber("644", 8)))
      local ok, res = works(home, id)
      assert.is_false(ok)
      assert.equal(8, res.code)
      assert.matches("key.new (an interrupted rekey's new key) has mode 0644", res.stderr, 1, true)
      assert.is_truthy(h.read(home .. "/key.new"))
      assert.are_not.equal(crypto.hex(new_key) .. "\n", h.read(home .. "/key"))
      -- made private again, it is taken up
      assert(sys.chmod(home .. "/key.new", tonumber("600", 8)))
      assert.is_true((works(home, id)))
      assert.is_nil(h.read(home .. "/key.new"))
    end)

    it("ignores a key.new left by a rekey that failed before its commit", function()
      local home, id = new_store(FIELD)
      local key = h.read(home .. "/key")
      local sys = require("connrt.sys")
      assert(sys.write_private(home .. "/key.new", crypto.hex(crypto.random(32)) .. "\n"))
      assert.is_true((works(home, id)))
      assert.equal(key, h.read(home .. "/key"))
      local res = h.connrt({ "rekey" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.is_nil(h.read(home .. "/key.new"))
      assert.is_true((works(home, id)))
    end)
  end)
end)
