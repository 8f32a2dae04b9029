-- luacheck: std +busted
-- A command loads what it uses and changes nothing it does not save (issue 15).
-- `connrt redirect-url` only reads the environment: it runs with a module directory
-- (CONNRT_MOD_DIR) that holds none of connrt's shared objects, so loading LMDB, OpenSSL
-- and libsodium or libcurl would fail it; so do --version, help, check and a list with no
-- store. `connrt authorize` saves nothing: it runs with
-- a module directory without LMDB and leaves no store and no key file behind. Real
-- processes; the full authorize flow against a real server is in connect_ways_spec.
local h = require("support.helpers")

describe("what a command loads and creates #integration", function()
  local tmp

  setup(function() tmp = h.tmpdir() end)
  teardown(function() h.rmdir(tmp) end)

  -- A module directory holding copies of the build's modules named in `mods`.
  local function mod_dir(mods)
    local dir = h.tmpdir()
    assert.is_true(os.execute(("mkdir -p %s/connrt"):format(dir)))
    for _, m in ipairs(mods) do
      assert.is_true(os.execute(("cp %s/lib/connrt/%s.so %s/connrt/"):format(h.BUILD, m, dir)))
    end
    return dir
  end

  local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
  end

  it("prints the redirect URL without loading LMDB, OpenSSL, libsodium or libcurl", function()
    local dir = mod_dir({})
    local res = h.connrt({ "redirect-url" }, { env = { CONNRT_MOD_DIR = dir, CONNRT_HOME = tmp .. "/home" } })
    assert.equal(0, res.code, res.stderr)
    assert.equal("http://127.0.0.1:8400/callback\n", res.stdout)
    res = h.connrt({ "redirect-url" }, { env = { CONNRT_MOD_DIR = dir,
      CONNRT_REDIRECT_URL = "http://localhost:9999/cb" } })
    assert.equal(0, res.code, res.stderr)
    assert.equal("http://localhost:9999/cb\n", res.stdout)
    assert.is_false(exists(tmp .. "/home"))
    h.rmdir(dir)
  end)

  it("prints the version and the help, lists no store and checks a connector without any of them", function()
    local dir = mod_dir({})
    local env = { CONNRT_MOD_DIR = dir, CONNRT_HOME = tmp .. "/none" }
    for _, args in ipairs({ { "--version" }, { "help" }, { "help", "run" }, { "list" }, { "list", "--json" },
      { "check", "connectors/github.lua" } }) do
      local res = h.connrt(args, { env = env })
      assert.equal(0, res.code, table.concat(args, " ") .. ": " .. res.stderr)
    end
    assert.is_false(exists(tmp .. "/none"))
    h.rmdir(dir)
  end)

  it("the module directory without a module does fail a command that needs it", function()
    -- the check above could not fail if an empty module directory were not used at all
    local dir = mod_dir({ "crypto", "http" })
    local res = h.connrt({ "list" }, { env = { CONNRT_MOD_DIR = dir, CONNRT_HOME = tmp } })
    if res.code == 0 then -- no store yet: list opens none; make one the listing must open
      h.write(tmp .. "/data.mdb", "")
      res = h.connrt({ "list" }, { env = { CONNRT_MOD_DIR = dir, CONNRT_HOME = tmp } })
    end
    assert.is_not.equal(0, res.code)
    assert.matches("connrt.lmdb", res.stderr, 1, true)
    os.remove(tmp .. "/data.mdb")
    h.rmdir(dir)
  end)

  it("authorize opens no store: no LMDB, and no store directory or key file is left", function()
    local dir = mod_dir({ "crypto", "http" })
    local home, key = tmp .. "/laptop", tmp .. "/laptop.key"
    local res = h.connrt({ "authorize", "examples/local-oidc.lua", "--client-id", "connrt-basic", "--no-browser",
      "--timeout", "1" }, { env = { CONNRT_MOD_DIR = dir, CONNRT_HOME = home, CONNRT_KEY_FILE = key,
      CONNRT_CLIENT_SECRET = "basic-secret", CONNRT_REDIRECT_URL = "http://127.0.0.1:" .. h.free_port() .. "/cb" } })
    assert.equal(4, res.code, res.stderr) -- no sign-in came: the wait timed out
    assert.matches("timed out waiting for the sign-in callback", res.stderr, 1, true)
    assert.is_false(exists(home))
    assert.is_false(exists(key))
    h.rmdir(dir)
  end)
end)
