-- luacheck: std +busted
-- Module prefetching (issue 6): `connrt request` loads LMDB, OpenSSL and libcurl on a
-- second thread while it opens the store and loads the connector (src/api/api.c). A
-- module the thread cannot load is loaded again on the main thread, which names the
-- file; a command that fails while the thread still loads exits with its own error.
-- Real processes, a real store, a real upstream; the module directory is changed with
-- CONNRT_MOD_DIR.
local cjson = require("cjson")
local h = require("support.helpers")

local API_KEY = "key-5e1f0c2b"

describe("module prefetching #integration", function()
  local api, tmp, home, id

  setup(function()
    tmp = h.tmpdir()
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    h.write(tmp .. "/keyed.lua", h.keyed_connector(api.base))
    home = h.tmpdir()
    local res = h.connrt({ "run", tmp .. "/keyed.lua", "--json" },
      { env = { CONNRT_HOME = home, CONNRT_FIELD_API_KEY = API_KEY } })
    assert.equal(0, res.code, res.stderr)
    id = cjson.decode(res.stdout).id
  end)

  teardown(function()
    if api then api.stop() end
    h.rmdir(tmp)
    h.rmdir(home)
  end)

  -- A module directory holding copies of the build's modules, all but `missing`.
  local function mod_dir(missing)
    local dir = h.tmpdir()
    assert.is_true(os.execute(("mkdir -p %s/connrt"):format(dir)))
    for _, m in ipairs({ "lmdb", "crypto", "http" }) do
      if m ~= missing then
        assert.is_true(os.execute(("cp %s/lib/connrt/%s.so %s/connrt/"):format(h.BUILD, m, dir)))
      end
    end
    return dir
  end

  it("answers through the prefetched modules, from a module directory of its own", function()
    local dir = mod_dir(nil)
    local before = h.snapshot(home)
    local res = h.connrt({ "request", id, "/keyed/me" }, { env = { CONNRT_HOME = home, CONNRT_MOD_DIR = dir } })
    assert.equal(0, res.code, res.stderr)
    assert.matches("^200 ", res.stderr)
    assert.equal("Key Holder", cjson.decode(res.stdout).name)
    assert.same(before, h.snapshot(home))
    h.rmdir(dir)
  end)

  for _, missing in ipairs({ "lmdb", "crypto", "http" }) do
    it("names the file when the thread could not load " .. missing .. ".so, and changes nothing", function()
      local dir = mod_dir(missing)
      local before, sent = h.snapshot(home), #api.log()
      local res = h.connrt({ "request", id, "/keyed/me" }, { env = { CONNRT_HOME = home, CONNRT_MOD_DIR = dir } })
      assert.is_not.equal(0, res.code)
      assert.matches(("module connrt.%s: cannot load %s/connrt/%s.so"):format(missing, dir, missing), res.stderr, 1, true)
      assert.same(before, h.snapshot(home))
      assert.equal(sent, #api.log()) -- nothing was sent
      h.rmdir(dir)
    end)
  end

  it("exits with its own error when it fails while the thread still loads libcurl", function()
    local res = h.connrt({ "request", "no-such-connection", "/keyed/me" }, { env = { CONNRT_HOME = home } })
    assert.equal(9, res.code, res.stderr)
    assert.matches("no connection", res.stderr, 1, true)
    assert.is_nil(res.stderr:find("internal error", 1, true))
  end)
end)
