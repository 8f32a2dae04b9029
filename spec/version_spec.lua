-- luacheck: std +busted
-- connrt's version has one definition, the Makefile's VERSION (issue 15). The C build
-- gets it as CONNRT_VERSION; everything else is made from it, and this spec checks they
-- agree: `connrt --version`, connrt.build, the Lua API's VERSION, the default
-- User-Agent (http_spec checks what is sent), the connector sandbox's connrt.version
-- (Reddit's User-Agent), the man page and connrt.pc that make writes, and that no
-- source file spells the version out again.
local h = require("support.helpers")

local VERSION = h.read(h.ROOT .. "/Makefile"):match("\nVERSION%s*=%s*(%S+)")

describe("the version", function()
  it("is defined in the Makefile", function()
    assert.matches("^%d+%.%d+%.%d+$", VERSION)
  end)

  it("is what the C build, the command line and the Lua API say", function()
    assert.equal(VERSION, require("connrt.build").version)
    assert.equal(VERSION, require("connrt.cli").VERSION)
    assert.equal(VERSION, require("connrt.api").VERSION)
    local res = h.connrt({ "--version" })
    assert.equal(0, res.code, res.stderr)
    assert.equal("connrt " .. VERSION .. " (", res.stdout:sub(1, #VERSION + 9))
  end)

  it("is what a connector sees as connrt.version (Reddit's default User-Agent)", function()
    local c = require("connrt.connector").load(h.ROOT .. "/connectors/reddit.lua")
    assert.equal("linux:connrt:" .. VERSION .. " (by /u/connrt)", c.fields[1].default)
  end)

  it("is filled into the man page and connrt.pc", function()
    assert.matches('\n%.TH CONNRT 1 "[^"]*" "connrt ' .. VERSION:gsub("%.", "%%.") .. '"', h.read(h.BUILD .. "/connrt.1"))
    assert.matches("\nVersion: " .. VERSION:gsub("%.", "%%.") .. "\n", h.read(h.BUILD .. "/connrt.pc"))
    assert.matches("@VERSION@", h.read(h.ROOT .. "/docs/connrt.1"), 1, true)
    assert.matches("@VERSION@", h.read(h.ROOT .. "/connrt.pc.in"), 1, true)
  end)

  it("is spelled out nowhere else in the sources", function()
    local p = assert(io.popen(("cd %s && git ls-files -z | xargs -0 grep -lF -- %s"):format(
      h.shell_quote(h.ROOT), h.shell_quote(VERSION))))
    local found = {}
    for f in p:lines() do
      -- measured results say which version they measured; lock files name packages' versions
      if f ~= "Makefile" and not f:match("^bench/RESULTS%.md$") and not f:match("package%-lock%.json$") then
        found[#found + 1] = f
      end
    end
    p:close()
    assert.same({}, found)
  end)
end)
