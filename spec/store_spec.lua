-- luacheck: std +busted
-- connrt.lmdb (src/api/store.c): LMDB environments and transactions on a fresh
-- directory, checked from this process and from a second one.
local store = require "connrt.lmdb"
local sys = require "connrt.sys"

local DBS = { "alpha", "beta" }
local DIR_MODE, FILE_MODE = tonumber("700", 8), tonumber("600", 8)

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function all_bytes()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  return table.concat(t)
end

-- Runs a Lua chunk in a second lua5.4 process with this build's modules; returns its output.
local function in_other_process(code)
  local cpath = (os.getenv("CONNRT_BUILD") or (os.getenv("PWD") .. "/build")) .. "/?.so"
  local chunk = ("package.cpath = %q; %s"):format(cpath, code)
  local lua = os.getenv("CONNRT_SPEC_LUA") or "lua5.4" -- see spec/support/helpers.lua
  local p = assert(io.popen(lua .. " -e " .. shell_quote(chunk) .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  assert(ok, "the second process failed: " .. out)
  return out
end

describe("connrt.lmdb", function()
  local base, dir, env

  before_each(function()
    base = os.tmpname()
    os.remove(base)
    dir = base .. "/nested/store"
    local err
    env, err = store.open(dir, DBS, { map_size = 16 * 1024 * 1024 })
    assert(env, err)
  end)

  after_each(function()
    if env then env:close() end
    if base:match("^/tmp/") then os.execute("rm -rf " .. shell_quote(base)) end
  end)

  -- The value of key in db, read in a fresh read transaction.
  local function committed(db, key)
    local txn <close> = env:begin(false)
    return txn:get(db, key)
  end

  it("creates the directory and its parents 0700 and the data files 0600", function()
    assert.equal(dir, env:path())
    assert.equal(DIR_MODE, sys.mode(base))
    assert.equal(DIR_MODE, sys.mode(base .. "/nested"))
    assert.equal(DIR_MODE, sys.mode(dir))
    assert.equal(FILE_MODE, sys.mode(dir .. "/data.mdb"))
    assert.equal(FILE_MODE, sys.mode(dir .. "/lock.mdb"))
  end)

  it("keeps the mode of an existing directory", function()
    local other = base .. "/existing"
    assert(sys.mkdir(other, DIR_MODE))
    assert(sys.chmod(other, tonumber("750", 8)))
    local e = assert(store.open(other, { "x" }))
    e:close()
    assert.equal(tonumber("750", 8), sys.mode(other))
  end)

  it("fails to open with a message naming the path", function()
    local file = base .. "/file"
    local f = assert(io.open(file, "wb"))
    f:close()
    local e, err = store.open(file .. "/store", DBS)
    assert.is_nil(e)
    assert.equal("cannot open store " .. file .. "/store: Not a directory", err)
  end)

  it("round-trips binary keys and values", function()
    local value = string.rep(all_bytes(), 64)
    local txn <close> = env:begin(true)
    txn:put("alpha", "k\0ey", value)
    txn:put("alpha", "empty", "")
    txn:put("beta", "k\0ey", "other db")
    assert.equal(value, txn:get("alpha", "k\0ey")) -- a write transaction sees its own writes
    txn:commit()
    assert.equal(value, committed("alpha", "k\0ey"))
    assert.equal("", committed("alpha", "empty"))
    assert.equal("other db", committed("beta", "k\0ey"))
    assert.is_nil(committed("alpha", "k"))
    assert.is_nil(committed("beta", "empty"))
  end)

  it("lists the keys with a prefix, in key order", function()
    local keys = { "user:b", "user:a", "user:c\255", "user:c", "user", "use", "other", "zz" }
    do
      local txn <close> = env:begin(true)
      for _, k in ipairs(keys) do txn:put("alpha", k, "v-" .. k) end
      txn:commit()
    end
    local txn <close> = env:begin(false)
    local function check(prefix, rows)
      local want = {}
      for _, k in ipairs(keys) do
        if k:sub(1, #(prefix or "")) == (prefix or "") then want[#want + 1] = k end
      end
      table.sort(want) -- byte order, as LMDB's
      assert.equal(#want, #rows)
      for i, row in ipairs(rows) do
        assert.equal(want[i], row[1])
        assert.equal("v-" .. want[i], row[2])
      end
      return rows
    end
    assert.equal(4, #check("user:", txn:list("alpha", "user:")))
    assert.equal("user:a", txn:list("alpha", "user:")[1][1])
    assert.equal(#keys, #check(nil, txn:list("alpha")))
    assert.equal(#keys, #check("", txn:list("alpha", "")))
    assert.same({}, txn:list("alpha", "zzz"))
    assert.same({}, txn:list("alpha", "a"))
    assert.same({}, txn:list("beta"))
  end)

  it("deletes, telling whether the key existed", function()
    do
      local txn <close> = env:begin(true)
      txn:put("alpha", "k", "v")
      txn:commit()
    end
    local txn <close> = env:begin(true)
    assert.is_true(txn:del("alpha", "k"))
    assert.is_false(txn:del("alpha", "k"))
    assert.is_false(txn:del("beta", "k"))
    txn:commit()
    assert.is_nil(committed("alpha", "k"))
  end)

  it("discards an aborted transaction", function()
    local txn = env:begin(true)
    txn:put("alpha", "k", "v")
    txn:abort()
    assert.is_nil(committed("alpha", "k"))
  end)

  it("aborts a <close> write transaction left by a Lua error, whole", function()
    local ok, err = pcall(function()
      local txn <close> = env:begin(true)
      txn:put("alpha", "a", "1")
      txn:put("beta", "b", "2")
      error("boom")
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("boom", 1, true))
    assert.is_nil(committed("alpha", "a"))
    assert.is_nil(committed("beta", "b"))
    -- the write lock was released: another write transaction can begin and commit
    local txn <close> = env:begin(true)
    txn:put("alpha", "a", "3")
    txn:commit()
    assert.equal("3", committed("alpha", "a"))
  end)

  it("shows a read transaction committed data only, as of its start", function()
    local before = env:begin(false)
    local w = env:begin(true)
    w:put("alpha", "k", "new")
    assert.is_nil(committed("alpha", "k")) -- not committed yet
    w:commit()
    assert.is_nil(before:get("alpha", "k")) -- its snapshot predates the commit
    before:abort()
    assert.equal("new", committed("alpha", "k"))
  end)

  it("keeps committed data across a reopen", function()
    do
      local txn <close> = env:begin(true)
      txn:put("beta", "persist", "yes")
      txn:commit()
    end
    env:close()
    env = assert(store.open(dir, DBS))
    assert.equal("yes", committed("beta", "persist"))
  end)

  it("raises on any use of a transaction after commit or abort, but not on <close>", function()
    local txn <close> = env:begin(true)
    txn:put("alpha", "k", "v")
    txn:commit()
    for _, use in ipairs({
      function() txn:get("alpha", "k") end,
      function() txn:put("alpha", "k", "w") end,
      function() txn:del("alpha", "k") end,
      function() txn:list("alpha") end,
      function() txn:commit() end,
      function() txn:abort() end,
    }) do
      assert.error_matches(use, "store: transaction already ended", nil, true)
    end
    local r = env:begin(false)
    r:abort()
    assert.error_matches(function() r:get("alpha", "k") end, "store: transaction already ended", nil, true)
    assert.equal("v", committed("alpha", "k"))
  end)

  it("raises on an unknown database and on writes in a read-only transaction", function()
    local txn <close> = env:begin(false)
    assert.error_matches(function() txn:get("gamma", "k") end, "store: unknown database gamma", nil, true)
    assert.error_matches(function() txn:list("gamma") end, "store: unknown database gamma", nil, true)
    assert.error_matches(function() txn:put("alpha", "k", "v") end, "read%-only")
    assert.error_matches(function() txn:del("alpha", "k") end, "read%-only")
  end)

  it("raises on a full map, naming the database, and the transaction aborts", function()
    env:close()
    env = assert(store.open(base .. "/small", DBS, { map_size = 256 * 1024 }))
    local chunk = string.rep("x", 64 * 1024)
    local ok, err = pcall(function()
      local txn <close> = env:begin(true)
      for i = 1, 100 do txn:put("beta", "k" .. i, chunk) end
      txn:commit()
    end)
    assert.is_false(ok)
    assert.same({ "store", "full" }, { err.kind, err.reason })
    assert.truthy(err.message:find("beta", 1, true))
    assert.truthy(tostring(err):find("MDB_MAP_FULL", 1, true))
    assert.is_nil(committed("beta", "k1"))
  end)

  it("refuses a second write transaction at once instead of deadlocking, and closing under a transaction", function()
    local w <close> = env:begin(true)
    assert.error_matches(function() env:begin(true) end, "already open")
    assert.error_matches(function() env:close() end, "still open")
    w:abort()
    env:close()
    env:close()
    assert.error_matches(function() env:begin(false) end, "closed")
    env = nil
  end)

  it("shares committed data with a second process, both ways", function()
    do
      local txn <close> = env:begin(true)
      txn:put("alpha", "from parent", "p\0value")
      txn:put("alpha", "uncommitted", "never")
      txn:commit()
    end
    local w <close> = env:begin(true)
    w:put("alpha", "uncommitted", "changed")
    w:abort()
    local out = in_other_process(([[
      local store = require "connrt.lmdb"
      local env = assert(store.open(%q, { "alpha", "beta" }))
      local r = env:begin(false)
      io.write(string.format("%%q|%%q", r:get("alpha", "from parent"), r:get("alpha", "uncommitted")))
      r:abort()
      local txn = env:begin(true)
      txn:put("beta", "from child", tostring(require("connrt.sys").getpid()))
      txn:commit()
      env:close()
    ]]):format(dir))
    assert.equal(("%q|%q"):format("p\0value", "never"), out)
    local child_pid = tonumber(committed("beta", "from child"))
    assert.is_truthy(child_pid)
    assert.not_equal(sys.getpid(), child_pid)
  end)

  it("moves its last_txnid with every committed write, its own or another process's, and with nothing else", function()
    local g0 = env:last_txnid()
    assert.is_true(math.type(g0) == "integer")
    committed("alpha", "nothing")
    local r <close> = env:begin(false)
    r:abort()
    local w <close> = env:begin(true)
    w:put("alpha", "aborted", "x")
    w:abort()
    assert.equal(g0, env:last_txnid()) -- reads and an aborted write leave it
    do
      local txn <close> = env:begin(true)
      txn:put("alpha", "k", "v")
      txn:commit()
    end
    local g1 = env:last_txnid()
    assert.is_true(g1 > g0)
    in_other_process(([[
      local env = assert(require("connrt.lmdb").open(%q, { "alpha", "beta" }))
      local txn = env:begin(true)
      txn:put("beta", "k", "from another process")
      txn:commit()
      env:close()
    ]]):format(dir))
    assert.is_true(env:last_txnid() > g1) -- seen here without a transaction
    -- a read transaction's id is the last commit it sees: equal to last_txnid when
    -- nothing was committed since it began, smaller once something was
    local r2 <close> = env:begin(false)
    assert.equal(env:last_txnid(), r2:id())
    do
      local txn <close> = env:begin(true)
      txn:put("alpha", "k", "v2")
      txn:commit()
    end
    assert.is_true(env:last_txnid() > r2:id())
  end)
end)
