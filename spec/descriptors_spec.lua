-- luacheck: std +busted
-- The descriptors a program connrt starts gets (issue 13, rv13 F4): the browser
-- (CONNRT_BROWSER, sys.spawn_detached) only 0, 1 and 2, never data.mdb (read-write) nor
-- libcurl's sockets to the provider; `connrt exec` (execvpe) and `connrt exec --mask`
-- (a piped child) none connrt opened itself, and those connrt was started with as any
-- program would. Each program lists its own /proc/self/fd with `ls` (whose directory
-- descriptor is the one it opens itself).
local h = require("support.helpers")
local prov = require("support.provider")

describe("descriptors of the programs connrt starts #integration", function()
  local p, tmp
  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
  end)
  teardown(function()
    p.stop()
    h.rmdir(tmp)
  end)

  -- {fd number = target} from `ls -l /proc/self/fd` output, without ls's own directory
  local function fds(listing)
    local out = {}
    for fd, target in listing:gmatch("(%d+) %-> ([^\n]+)") do
      if not target:match("^/proc/%d+/fd$") then out[tonumber(fd)] = target end
    end
    return out
  end

  local function above_2(t)
    local out = {}
    for fd, target in pairs(t) do if fd > 2 then out[#out + 1] = fd .. " -> " .. target end end
    table.sort(out)
    return out
  end

  it("gives the browser standard input, output and error only", function()
    local list = tmp .. "/browser-fds"
    local browser = tmp .. "/browser.sh"
    -- lists what it inherited (exec: no shell descriptor in between), then signs in
    h.write(browser, ("#!/bin/sh\n(exec ls -l /proc/self/fd > %s)\nexec %s script %s/spec/support/browser.lua \"$@\"\n")
      :format(h.shell_quote(list), h.shell_quote(h.CONNRT), h.shell_quote(h.ROOT)))
    os.execute("chmod +x " .. h.shell_quote(browser))
    local home = h.tmpdir()
    local path = tmp .. "/c.lua"
    h.write(path, prov.connector())
    local env = prov.env(home, { CONNRT_BROWSER = browser })
    local res = h.connrt({ "run", path, "--field", "server=" .. p.origin, "--client-id", prov.CLIENT_ID, "--json",
      "--timeout", "20" }, { env = env })
    h.rmdir(home)
    assert.equal(0, res.code, res.stderr)
    local got = fds(assert(h.read(list)))
    assert.truthy(got[0] and got[1] and got[2])
    assert.same({}, above_2(got))
  end)

  describe("connrt exec", function()
    local home, id
    setup(function()
      local path = tmp .. "/e.lua"
      h.write(path, prov.connector())
      home, id = prov.connect(p, path)
    end)
    teardown(function() h.rmdir(home) end)

    -- `ls -l /proc/self/fd` started with fd 7 open on /dev/null, through `connrt exec ID
    -- [--mask] --` (the token refreshed first: a margin above its lifetime, so libcurl's
    -- connection to the provider is open then) or, with direct, as it is; returns the
    -- exit status, the output and the descriptors above 2 it lists
    local function ls_fds(direct, mask)
      local out = tmp .. "/exec-out"
      local args = {}
      if not direct then
        args = { h.CONNRT, "exec", id }
        if mask then args[#args + 1] = "--mask" end
        args[#args + 1] = "--"
      end
      for _, a in ipairs({ "ls", "-l", "/proc/self/fd" }) do args[#args + 1] = a end
      for i, a in ipairs(args) do args[i] = h.shell_quote(a) end
      local _, _, code = os.execute(("env CONNRT_HOME=%s CONNRT_REFRESH_MARGIN=7200 %s 7</dev/null </dev/null >%s 2>&1")
        :format(h.shell_quote(home), table.concat(args, " "), h.shell_quote(out)))
      local text = h.read(out) or ""
      return code, text, above_2(fds(text))
    end

    for _, mask in ipairs({ false, true }) do
      it((mask and "--mask" or "without --mask") .. " passes on what it was started with, nothing of its own", function()
        local _, _, inherited = ls_fds(true)
        assert.truthy(inherited[1]) -- 7 -> /dev/null at least
        local code, text, got = ls_fds(false, mask)
        assert.equal(0, code, text)
        assert.same(inherited, got)
      end)
    end
  end)
end)
