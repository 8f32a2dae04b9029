-- luacheck: std +busted
-- `make install` with PREFIX and DESTDIR: what lands where, that the installed binary
-- finds its Lua layer, and that a C program builds against the installed library with
-- nothing but pkg-config.
local h = require("support.helpers")

describe("make install", function()
  local dest, log

  setup(function()
    dest = h.tmpdir()
    log = dest .. "/install.log"
    local ok = os.execute(("make --no-print-directory install DESTDIR=%s PREFIX=/usr >%s 2>&1"):format(dest, log))
    assert.is_true(ok, h.read(log))
  end)
  teardown(function() h.rmdir(dest) end)

  it("installs the binary, the Lua layer, the libraries, the header and connrt.pc", function()
    for _, f in ipairs({ "/usr/bin/connrt", "/usr/share/connrt/lua/connrt/cli.lua", "/usr/lib/libconnrt.a",
      "/usr/lib/libconnrt.so.0", "/usr/lib/libconnrt.so", "/usr/include/connrt.h",
      "/usr/lib/pkgconfig/connrt.pc", "/usr/lib/lua/5.4/connrt.so", "/usr/lib/connrt/connrt/http.so",
      "/usr/lib/connrt/connrt/crypto.so", "/usr/lib/connrt/connrt/lmdb.so" }) do
      assert.is_string(h.read(dest .. f), f .. " is missing")
    end
    assert.matches("prefix=/usr\n", h.read(dest .. "/usr/lib/pkgconfig/connrt.pc"), 1, true)
  end)

  it("bakes the installed Lua directory into the binary", function()
    assert.truthy(h.read(dest .. "/usr/bin/connrt"):find("/usr/share/connrt/lua", 1, true))
    local p = io.popen(("CONNRT_LUA_DIR=%s/usr/share/connrt/lua %s/usr/bin/connrt --version"):format(dest, dest))
    local out = p:read("a")
    assert.is_true((p:close()))
    assert.matches("^connrt %d+%.%d+%.%d+", out)
  end)

  it("bakes the installed module directory into the binary, which loads them from there", function()
    assert.truthy(h.read(dest .. "/usr/bin/connrt"):find("/usr/lib/connrt", 1, true))
    -- rekey opens (and here creates) a store, which needs connrt.lmdb and connrt.crypto
    local home = h.tmpdir()
    local p = io.popen(("CONNRT_HOME=%s CONNRT_MOD_DIR=%s/usr/lib/connrt CONNRT_LUA_DIR=%s/usr/share/connrt/lua "
      .. "%s/usr/bin/connrt rekey 2>&1"):format(home, dest, dest, dest))
    local out = p:read("a")
    assert.is_true((p:close()), out)
    -- and names the file it could not load
    p = io.popen(("CONNRT_HOME=%s CONNRT_MOD_DIR=%s/nowhere CONNRT_LUA_DIR=%s/usr/share/connrt/lua "
      .. "%s/usr/bin/connrt rekey 2>&1"):format(home, dest, dest, dest))
    out = p:read("a")
    h.rmdir(home)
    assert.is_falsy((p:close()))
    assert.matches("cannot load " .. dest .. "/nowhere/connrt/", out, 1, true)
  end)

  it("builds and runs a C program against the installed library through pkg-config", function()
    local env = ("PKG_CONFIG_SYSROOT_DIR=%s PKG_CONFIG_PATH=%s/usr/lib/pkgconfig"):format(dest, dest)
    local cmd = ("%s; cc -o %s/prog examples/pipeline.c $(%s pkg-config --cflags --libs connrt) >>%s 2>&1"):format(
      "true", dest, env, log)
    assert.is_true(os.execute(cmd), h.read(log))
    local home = h.tmpdir()
    local p = io.popen(("LD_LIBRARY_PATH=%s/usr/lib CONNRT_LUA_DIR=%s/usr/share/connrt/lua CONNRT_HOME=%s %s/prog nothing --token 2>&1")
      :format(dest, dest, home, dest))
    local out = p:read("a")
    local _, _, code = p:close()
    h.rmdir(home)
    assert.equal(9, code) -- CONNRT_ENOTFOUND: it ran, opened the store and looked
    assert.matches("no connection nothing", out, 1, true)
  end)
end)
