-- luacheck: std +busted
-- File modes of the key and the store (issue 13, item 6). Every permission bit of the
-- group or others, one at a time and together: on the key file it is refused (exit 8,
-- the path, the mode in octal, a chmod 600 hint); on the store's directory it is refused
-- (chmod 700 hint); on data.mdb and lock.mdb it is removed, with a notice. Only the
-- owner's bits pass (0600, 0400 and 0700 for the key). Real connrt processes, real stores.
local h = require("support.helpers")
local sys = require("connrt.sys")

local BITS = { "040", "020", "010", "004", "002", "001" } -- every group and other bit
local function oct(s) return tonumber(s, 8) end

describe("file modes of the key and the store #integration", function()
  local base, id

  -- A store with one connection (made in this process), copied for each case.
  setup(function()
    base = h.tmpdir()
    local st = require("connrt.store").open(base)
    id = st:save({ connector = "c", unique_id = "u", name = "n" }, { access_token = "at-modes-1234" }, "return {}")
    st:close()
  end)
  teardown(function() h.rmdir(base) end)

  local function copy()
    local dir = h.tmpdir() .. "/home"
    assert(os.execute(("cp -a %s %s"):format(h.shell_quote(base), h.shell_quote(dir))))
    return dir
  end

  local function token(home, env)
    local e = { CONNRT_HOME = home }
    for k, v in pairs(env or {}) do e[k] = v end
    return h.connrt({ "token", id }, { env = e })
  end

  describe("the key file", function()
    local modes = {}
    for _, b in ipairs(BITS) do modes[#modes + 1] = ("%04o"):format(oct("600") | oct(b)) end
    for _, m in ipairs({ "0640", "0660", "0620", "0602", "0644", "0666", "0777", "0704" }) do
      modes[#modes + 1] = m
    end
    for _, m in ipairs(modes) do
      it(m .. " is refused with the path, the mode and a chmod 600 hint, and nothing changes", function()
        local home = copy()
        assert(sys.chmod(home .. "/key", oct(m)))
        local before = h.snapshot(home)
        local res = token(home)
        assert.equal(8, res.code, res.stderr)
        assert.matches("key file " .. home .. "/key has mode " .. m .. ": its group or others may read or change the "
          .. "key; chmod 600 " .. home .. "/key", res.stderr, 1, true)
        assert.equal("", res.stdout)
        assert.same(before, h.snapshot(home))
        assert.equal(oct(m), sys.mode(home .. "/key"))
        h.rmdir(home:match("^(/tmp/[^/]+)"))
      end)
    end

    it("also when it is named by CONNRT_KEY_FILE", function()
      local home = copy()
      local other = h.tmpdir() .. "/k"
      assert(os.execute(("cp %s/key %s"):format(home, other)))
      os.remove(home .. "/key")
      assert(sys.chmod(other, oct("640")))
      local res = token(home, { CONNRT_KEY_FILE = other })
      assert.equal(8, res.code, res.stderr)
      assert.matches("key file " .. other .. " has mode 0640", res.stderr, 1, true)
      h.rmdir(home:match("^(/tmp/[^/]+)"))
      h.rmdir(other:match("^(/tmp/[^/]+)"))
    end)

    for _, m in ipairs({ "0600", "0400", "0700" }) do
      it(m .. " (the owner's bits only) is used", function()
        local home = copy()
        assert(sys.chmod(home .. "/key", oct(m)))
        local res = token(home)
        assert.equal(0, res.code, res.stderr)
        assert.equal("at-modes-1234\n", res.stdout)
        h.rmdir(home:match("^(/tmp/[^/]+)"))
      end)
    end
  end)

  describe("the store's directory", function()
    for _, b in ipairs(BITS) do
      local m = ("%04o"):format(oct("700") | oct(b))
      it(m .. " is refused with the path, the mode and a chmod 700 hint, by every command", function()
        local home = copy()
        assert(sys.chmod(home, oct(m)))
        local before = h.snapshot(home)
        for _, args in ipairs({ { "token", id }, { "list" }, { "show", id } }) do
          local res = h.connrt(args, { env = { CONNRT_HOME = home } })
          assert.equal(8, res.code, res.stderr)
          assert.matches("the store directory " .. home .. " has mode " .. m .. ": its group or others may reach "
            .. "the store; chmod 700 " .. home, res.stderr, 1, true)
          assert.equal("", res.stdout)
        end
        assert.same(before, h.snapshot(home))
        assert.equal(oct(m), sys.mode(home)) -- not ours to change
        h.rmdir(home:match("^(/tmp/[^/]+)"))
      end)
    end

    it("0777, a directory made by someone else, is refused too", function()
      local home = copy()
      assert(sys.chmod(home, oct("777")))
      local res = token(home)
      assert.equal(8, res.code, res.stderr)
      assert.matches("has mode 0777", res.stderr, 1, true)
      h.rmdir(home:match("^(/tmp/[^/]+)"))
    end)

    it("a new one is created 0700", function()
      local home = h.tmpdir() .. "/a/b"
      local st = require("connrt.store").open(home)
      st:close()
      assert.equal(oct("700"), sys.mode(home))
      assert.equal(oct("600"), sys.mode(home .. "/data.mdb"))
      assert.equal(oct("600"), sys.mode(home .. "/key"))
      h.rmdir(home:match("^(/tmp/[^/]+)"))
    end)
  end)

  describe("the store's files", function()
    for _, name in ipairs({ "data.mdb", "lock.mdb" }) do
      local modes = {}
      for _, b in ipairs(BITS) do modes[#modes + 1] = ("%04o"):format(oct("600") | oct(b)) end
      modes[#modes + 1] = "0666"
      for _, m in ipairs(modes) do
        it(name .. " at " .. m .. " is set to 0600 with a notice, and the command works", function()
          local home = copy()
          assert(sys.chmod(home .. "/" .. name, oct(m)))
          local res = token(home)
          assert.equal(0, res.code, res.stderr)
          assert.equal("at-modes-1234\n", res.stdout)
          assert.equal("connrt: " .. home .. "/" .. name .. " had mode " .. m .. ", open to its group or others: set "
            .. "to 0600\n", res.stderr)
          assert.equal(oct("600"), sys.mode(home .. "/" .. name))
          -- once is enough: the next command says nothing
          res = token(home)
          assert.equal(0, res.code, res.stderr)
          assert.equal("", res.stderr)
          h.rmdir(home:match("^(/tmp/[^/]+)"))
        end)
      end
    end

    it("repaired by connrt list too, which needs no key", function()
      local home = copy()
      assert(sys.chmod(home .. "/data.mdb", oct("644")))
      local res = h.connrt({ "list" }, { env = { CONNRT_HOME = home } })
      assert.equal(0, res.code, res.stderr)
      assert.matches("had mode 0644", res.stderr, 1, true)
      assert.equal(oct("600"), sys.mode(home .. "/data.mdb"))
      h.rmdir(home:match("^(/tmp/[^/]+)"))
    end)
  end)
end)
