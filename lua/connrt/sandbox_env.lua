--- sandbox_env.lua - the globals a connector sees. Runs inside each connector's own Lua
-- state (src/api/sandbox.c), never in the runtime's, and returns the environment table
-- the connector's chunk gets as _ENV.
--
-- What is here: the pure Lua libraries (string with bounded pattern matching and
-- string.rep, table, math, utf8, a few of os's clock functions) and connrt's helpers
-- (json, base64, base64url, url encoding) and connrt.version. What is not: io, os.execute and the rest of os,
-- require, load, dofile, debug, coroutine, collectgarbage, print. setmetatable refuses
-- __gc. The helpers are loaded here, inside the box, so a connector that replaces a
-- function of its own string library changes only what its own helpers do.
--
-- Everything is loaded now, before any connector code runs, and then the box's own means
-- of loading code (require, load, package) and of reaching the system (os.execute, ...)
-- are removed from it altogether: connector code cannot reach them, and nothing it can
-- call uses them.
--
-- Two kinds of library function are Lua here rather than C: table.insert, remove, move
-- and sort, whose C loops run over a length a metatable can make endless without
-- allocating anything (so the memory limit would not stop them; sort's own comparisons
-- call nothing, so neither would the budget's hook, which fires on instructions and on
-- calls), and connrt.json.encode, whose C version (lua-cjson) grows its buffer with
-- malloc, outside the box's memory limit, and exits the process when that fails.
local inner = require("connrt.sandbox.inner")
local b64 = require("connrt.base64")
local url = require("connrt.url")
local cjson = require("cjson.safe")

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- ---- table functions that loop in Lua, under the budget ----

local mtype, maxint = math.type, math.maxinteger

local function len(t, fn)
  if type(t) ~= "table" then error(("bad argument #1 to '%s' (table expected, got %s)"):format(fn, type(t)), 3) end
  return #t
end

local function int_arg(v, n, fn)
  if mtype(v) == "float" and v == math.floor(v) then v = math.tointeger(v) end
  if mtype(v) ~= "integer" then
    error(("bad argument #%d to '%s' (number has no integer representation)"):format(n, fn), 3)
  end
  return v
end

local tbl = copy(table)

function tbl.insert(t, ...)
  local e = len(t, "insert") + 1
  local n = select("#", ...)
  if n == 1 then
    t[e] = ...
    return
  end
  if n ~= 2 then error("wrong number of arguments to 'insert'", 2) end
  local pos, v = ...
  pos = int_arg(pos, 2, "insert")
  if pos < 1 or pos > e then error("bad argument #2 to 'insert' (position out of bounds)", 2) end
  for i = e, pos + 1, -1 do t[i] = t[i - 1] end
  t[pos] = v
end

function tbl.remove(t, pos)
  local size = len(t, "remove")
  if pos == nil then pos = size else pos = int_arg(pos, 2, "remove") end
  if pos ~= size and (pos < 1 or pos - 1 > size) then
    error("bad argument #1 to 'remove' (position out of bounds)", 2)
  end
  local v = t[pos]
  while pos < size do
    t[pos] = t[pos + 1]
    pos = pos + 1
  end
  t[pos] = nil
  return v
end

function tbl.move(a1, f, e, t, a2)
  if a2 == nil then a2 = a1 end
  f, e, t = int_arg(f, 2, "move"), int_arg(e, 3, "move"), int_arg(t, 4, "move")
  if e >= f then
    if not (f > 0 or e < maxint + f) then error("bad argument #3 to 'move' (too many elements to move)", 2) end
    local n = e - f
    if t > maxint - n then error("bad argument #4 to 'move' (destination wrap around)", 2) end
    if t > e or t <= f or a1 ~= a2 then
      for i = 0, n do a2[t + i] = a1[f + i] end
    else
      for i = n, 0, -1 do a2[t + i] = a1[f + i] end
    end
  end
  return a2
end

-- Heapsort: O(n log n) whatever the comparator answers, no recursion; like Lua's sort it
-- reads and writes through t's metamethods and is not stable.
local function less(a, b) return a < b end

local function sift(t, lt, root, last)
  local v = t[root]
  while true do
    local child = 2 * root
    if child > last then break end
    local c = t[child]
    if child < last then
      local d = t[child + 1]
      if lt(c, d) then child, c = child + 1, d end
    end
    if not lt(v, c) then break end
    t[root] = c
    root = child
  end
  t[root] = v
end

function tbl.sort(t, lt)
  local n = len(t, "sort")
  if n <= 1 then return end
  if n >= 0x7fffffff then error("bad argument #1 to 'sort' (array too big)", 2) end
  if lt == nil then
    lt = less
  elseif type(lt) ~= "function" then
    error(("bad argument #2 to 'sort' (function expected, got %s)"):format(type(lt)), 2)
  end
  for i = n // 2, 1, -1 do sift(t, lt, i, n) end
  for last = n, 2, -1 do
    t[1], t[last] = t[last], t[1]
    sift(t, lt, 1, last - 1)
  end
end

-- ---- JSON encoding, in Lua, under the box's limits ----

local NULL = inner.null
local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }
local function escape_char(c) return ESCAPES[c] or ("\\u%04x"):format(c:byte()) end

local function encode_value(v, out, depth)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', escape_char) .. '"'
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      error("Cannot serialise number: must not be NaN or Infinity", 0)
    end
    out[#out + 1] = mtype(v) == "integer" and ("%d"):format(v) or ("%.14g"):format(v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif v == NULL or v == nil then
    out[#out + 1] = "null"
  elseif t == "table" then
    if depth > 1000 then error("Cannot serialise, excessive nesting (1001)", 0) end
    local n, count = #v, 0
    for _ in next, v do count = count + 1 end
    if count > 0 and count == n then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      local first = true
      for k, x in next, v do
        local kt = type(k)
        if kt ~= "string" and kt ~= "number" then
          error("Cannot serialise " .. kt .. ": table key must be a number or string", 0)
        end
        if not first then out[#out + 1] = "," end
        first = false
        encode_value(kt == "number" and (mtype(k) == "integer" and ("%d"):format(k) or ("%.14g"):format(k)) or k,
          out, depth + 1)
        out[#out + 1] = ":"
        encode_value(x, out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("Cannot serialise " .. t .. ": type not supported", 0)
  end
end

-- connrt.json.encode(v) -> text | nil, message (as cjson.safe answers)
local function json_encode(v)
  local out = {}
  local ok, err = pcall(encode_value, v, out, 1)
  if not ok then return nil, err end
  return table.concat(out)
end

local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  pcall = pcall, xpcall = xpcall, rawequal = rawequal, rawget = rawget, rawlen = rawlen,
  rawset = rawset, select = select, setmetatable = inner.setmetatable, getmetatable = getmetatable,
  tonumber = tonumber, tostring = tostring, type = type, _VERSION = _VERSION,
  string = copy(string), table = tbl, math = copy(math), utf8 = copy(utf8),
  os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime },
  connrt = {
    version = inner.version, -- the Makefile's VERSION (Reddit's User-Agent names it)
    json = { decode = cjson.decode, encode = json_encode, null = NULL },
    base64 = { encode = b64.encode, decode = b64.decode },
    base64url = { encode = b64.url_encode, decode = b64.url_decode },
    url = {
      encode = url.encode, decode = url.decode,
      form_encode = url.form_encode, form_decode = url.form_decode,
      parse = url.parse, build = url.build,
    },
  },
}
env._G = env

-- Nothing after this point may load code or reach the system: not the connector, and not
-- any function it can call.
for _, name in ipairs({ "require", "load", "loadfile", "dofile", "package", "collectgarbage", "print", "debug", "io" }) do
  _G[name] = nil
end
-- luacheck: push ignore 122
for _, name in ipairs({ "execute", "exit", "getenv", "remove", "rename", "tmpname", "setlocale" }) do
  os[name] = nil
end
table.insert, table.remove, table.move, table.sort = tbl.insert, tbl.remove, tbl.move, tbl.sort
-- luacheck: pop

return env
