-- luacheck: std +busted
-- C loops of the standard library under the sandbox's bounds (issue 13, item 4): a C
-- function that loops calling only C functions (metamethods, comparators, __index
-- functions) runs no Lua instruction, so a count hook alone never saw it; a C function
-- whose comparisons call nothing (table.sort's own) neither; and one slow call or
-- instruction could put seconds between two checks of the clocks. Each case here hung
-- connrt on main before the hook fired on calls, the CPU-time ticker and the Lua
-- table.sort (src/api/sandbox.c, lua/connrt/sandbox_env.lua): now each ends as a
-- connector error (exit 3) naming the file, with nothing stored. The commands run under
-- a kill timeout, so a regression fails here (killed) instead of stalling the suite; no
-- spec here measures time.
local h = require("support.helpers")

local EXIT_CONNECTOR = 3
local LIMIT = 60 -- seconds before a command that should have been stopped is killed
local BOUNDS = { CONNRT_CONNECTOR_CPU = "1" } -- a small CPU bound keeps the cases short

-- A valid connector's table, as source.
local VALID = [[{
  id = "demo", authorize_url = "https://auth.example.com/a", token_url = "https://auth.example.com/t",
  test = "/me", name = "{{name}}", unique_id = "{{id}}", allowed_urls = { "https://api.example.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}]]

-- The endless loops below: each is one C call of the standard library that loops for ever
-- (or for hours) without running a Lua instruction.
local LOOPS = {
  { "table.concat over a string whose metatable's __index is string.sub (C calling C, allocating nothing)",
    [[local mt = getmetatable("") mt.__index = string.sub mt.__len = 0
      local x = table.concat("", "", 1, math.maxinteger)]] },
  { "table.concat whose __index is table.concat itself",
    [[local t = setmetatable({}, { __len = rawlen, __index = table.concat })
      local x = table.concat(t, "", 1, math.maxinteger)]] },
  { "table.sort over an endless __len with C __index and __newindex (comparisons that call nothing)",
    [[table.sort(setmetatable({}, { __len = function() return 0x7ffffffe end, __index = rawlen, __newindex = rawequal }))]] },
  { "table.sort with a C function as the comparator",
    [[table.sort(setmetatable({}, { __len = function() return 0x7ffffffe end, __index = rawlen, __newindex = rawequal }),
      rawequal)]] },
  { "table.sort of values whose __lt is a C function",
    [[local mt = { __lt = rawequal, __index = getmetatable, __newindex = rawequal, __len = function() return 0x7ffffffe end }
      setmetatable(mt, mt) table.sort(setmetatable({}, mt))]] },
  { "table.sort of a hundred thousand references to one 30 MiB string",
    [[local s = ("a"):rep(30 * 2^20) local t = {} for i = 1, 100000 do t[i] = s end table.sort(t)]] },
  { "table.unpack over a string whose __index is a slow C call (a plain find in 30 MiB)",
    [[local s = ("a"):rep(30 * 2^20) getmetatable("").__index = string.find local x = table.unpack(s, 1, 500000)]] },
  { "string.gsub whose replacement table's __index runs an endless C loop",
    [[local mt = getmetatable("") mt.__index = string.sub mt.__len = 0
      local r = setmetatable({}, { __index = function() return table.concat("", "", 1, math.maxinteger) end })
      local x = string.gsub("abc", "%w", r)]] },
  { "an error object's message built by an endless C loop in a __tostring called by string.format",
    [[local t = setmetatable({}, { __len = rawlen, __index = table.concat })
      local o = setmetatable({}, { __tostring = function() return table.concat(t, "", 1, math.maxinteger) end })
      local x = string.format("%s", o)]] },
  { "the same C loop inside pcall, inside a loop",
    [[local mt = getmetatable("") mt.__index = string.sub mt.__len = 0
      while true do pcall(table.concat, "", "", 1, math.maxinteger) end]] },
}

local function stopped_for_time(out)
  return out:find("instruction budget exceeded", 1, true) ~= nil
    or out:find("CPU time limit of 1 s exceeded", 1, true) ~= nil
end

describe("C loops of the standard library inside the sandbox #integration", function()
  local tmp
  setup(function() tmp = h.tmpdir() end)
  teardown(function() h.rmdir(tmp) end)

  -- `connrt check` and `connrt run` on a connector whose loading does `code`.
  local function both(name, code, env)
    local path = tmp .. "/" .. name .. ".lua"
    h.write(path, code .. "\nreturn " .. VALID)
    local home = h.tmpdir()
    local e = { CONNRT_HOME = home }
    for k, v in pairs(env or {}) do e[k] = v end
    local check = h.connrt({ "check", path }, { env = e, timeout = LIMIT })
    local run = h.connrt({ "run", path, "--client-id", "c", "--no-browser", "--timeout", "1" }, { env = e, timeout = LIMIT })
    local stored = h.read(home .. "/data.mdb")
    h.rmdir(home)
    return check, run, path, stored
  end

  for _, case in ipairs(LOOPS) do
    it("stop at the time bound: " .. case[1], function()
      local check, run, path, stored = both(case[1]:gsub("%W+", "-"):sub(1, 60), case[2], BOUNDS)
      for _, res in ipairs({ check, run }) do
        local out = res.stdout .. res.stderr
        assert.equal(EXIT_CONNECTOR, res.code, out) -- not 137: killed by the spec's timeout
        assert.is_true(stopped_for_time(out), out)
        assert.matches(path, out, 1, true)
        assert.is_nil(out:find("traceback", 1, true))
      end
      assert.is_nil(stored)
    end)
  end

  -- The same class against the memory bound: C loops that build without end.
  local GROW = {
    { "table.concat of a string's suffixes through __index = string.sub",
      [[local mt = getmetatable("") mt.__index = string.sub mt.__len = 0
        local x = table.concat(string.rep("z", 2^20), "", 1, math.maxinteger)]] },
    { "table.concat through a Lua __index returning a 1 MiB string",
      [[local big = ("y"):rep(2^20)
        local x = table.concat(setmetatable({}, { __index = function() return big end }), "", 1, math.maxinteger)]] },
    { "table.unpack of a million values that each hold memory",
      [[local x = { table.unpack(setmetatable({}, { __index = function(_, i) return tostring(i):rep(100) end }), 1, 999000) }]] },
  }
  for _, case in ipairs(GROW) do
    it("stop at the memory bound: " .. case[1], function()
      local check, run, path, stored = both(case[1]:gsub("%W+", "-"):sub(1, 60), case[2])
      for _, res in ipairs({ check, run }) do
        local out = res.stdout .. res.stderr
        assert.equal(EXIT_CONNECTOR, res.code, out)
        assert.matches("memory limit of 64 MiB exceeded", out, 1, true)
        assert.matches(path, out, 1, true)
      end
      assert.is_nil(stored)
    end)
  end

  describe("in a hook", function()
    local api
    local API_KEY = "loops-key-3b0e9a41"
    setup(function() api = h.start_upstream({ ECHO_API_KEY = API_KEY }) end)
    teardown(function() api.stop() end)

    it("stop hooks.expired's C loop in connrt request, and the store is unchanged", function()
      local path = tmp .. "/hookloop.lua"
      local code = [[local mt = getmetatable("") mt.__index = string.sub mt.__len = 0
        local x = table.concat("", "", 1, math.maxinteger)]]
      local hook = ("hooks = { expired = function(r) if r.body:find('\"url\":\"/echo\"', 1, true) then %s end "
        .. "return false end },\n    request = {"):format(code)
      h.write(path, (h.keyed_connector(api.base):gsub("request = {", hook, 1)))
      local home = h.tmpdir()
      local e = { CONNRT_HOME = home, CONNRT_CONNECTOR_CPU = "1" }
      local res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = e, timeout = LIMIT })
      assert.equal(0, res.code, res.stderr)
      local before = h.snapshot(home)
      res = h.connrt({ "request", "keyed", "/echo" }, { env = e, timeout = LIMIT })
      local after = h.snapshot(home)
      h.rmdir(home)
      assert.same(before, after)
      assert.equal(EXIT_CONNECTOR, res.code, res.stderr)
      assert.matches(path .. ": hooks.expired failed", res.stderr, 1, true)
      assert.is_true(stopped_for_time(res.stderr), res.stderr)
    end)
  end)
end)

describe("table.sort inside the sandbox", function()
  local sandbox = require("connrt.sandbox")

  it("sorts as Lua's does, with and without a comparator, and raises its errors", function()
    local box = sandbox.new()
    local ok, got = box:run([[
      local out = {}
      local function show(t) local s = {} for i = 1, #t do s[i] = tostring(t[i]) end return table.concat(s, ",") end
      local seed = 7
      for n = 0, 40 do
        local t = {}
        for i = 1, n do seed = (seed * 1103515245 + 12345) % 2147483648 t[i] = seed % 13 end
        local u = { table.unpack(t) }
        table.sort(t)
        table.sort(u, function(a, b) return a > b end)
        out[#out + 1] = show(t) .. "|" .. show(u)
      end
      out[#out + 1] = tostring(select(2, pcall(table.sort, { 1, "x", 2 })))
      out[#out + 1] = tostring(select(2, pcall(table.sort, { 1, 2 }, 3)))
      out[#out + 1] = tostring(pcall(table.sort, { 1 }, 3))
      return table.concat(out, "\n")
    ]], "sort.lua")
    box:close()
    assert.is_true(ok, got)
    local out = {}
    local seed = 7
    for n = 0, 40 do
      local t = {}
      for i = 1, n do seed = (seed * 1103515245 + 12345) % 2147483648 t[i] = seed % 13 end
      local u = { table.unpack(t) }
      table.sort(t)
      table.sort(u, function(a, b) return a > b end)
      local function show(x) local s = {} for i = 1, #x do s[i] = tostring(x[i]) end return table.concat(s, ",") end
      out[#out + 1] = show(t) .. "|" .. show(u)
    end
    local lines = {}
    for line in (got .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
    for i = 1, #out do assert.equal(out[i], lines[i]) end
    assert.matches("attempt to compare", lines[#out + 1], 1, true)
    assert.matches("bad argument #2 to 'sort' (function expected, got number)", lines[#out + 2], 1, true)
    assert.equal("true", lines[#out + 3]) -- one element: no comparator is checked, as in Lua's
  end)
end)
