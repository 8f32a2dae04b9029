--- json.lua - JSON as connrt reads and writes it: the settings of both cjson modules
-- (each keeps its own), made once when connrt's first module loads (log.lua requires
-- this), and the reading of a JSON body a caller gives.
--
--   json.body(text)      the value of a JSON body a caller gives (`connrt request
--                        --json-body`, the proxy's Connrt-Json), or nil and why not
--   json.minified(text [, number_ok [, string_ok]])  JSON text without its blanks, or
--                        nil when it is not JSON as RFC 8259 writes it (or a token fails
--                        its check); a check may give a token to write in its place
--   json.number_value(t) a JSON number's exact value in plain decimal digits
--   json.number_spellings(v)  the ways a number is written (cjson's, the shortest that
--                        reads back, an integer's digits)
--   json.reader_number(r) a run of text as a number readers take it for, or nil
--   json.any_number_run(s, fn)  whether fn(run) is true for a run of `s` a reader may
--                        take for a number
--
-- Written: a number JSON cannot spell (1e999, read as infinity) is written null, as
-- JavaScript's JSON.stringify writes it; and a document read at the decoder's depth
-- (1000) can be written inside one object more (`connrt request --json`'s {"status",
-- "headers", "body"}). Read from providers: as cjson reads by default, NaN and Infinity
-- too (a provider's quirk, bounded where it is used: a device flow's interval). Read from
-- a caller: JSON's own numbers only (not 0x41, which would be sent as 65), each finite.
local M = {}

for _, name in ipairs({ "cjson", "cjson.safe" }) do
  local cjson = require(name)
  cjson.encode_invalid_numbers("null")
  cjson.encode_max_depth(1001)
end

local strict

-- True for a number as JSON writes one (RFC 8259 6): not 0x41, 012, 1., -.5 or +1.
local function json_number(t)
  local rest = t:match("^%-?(.*)$")
  local r = rest:match("^0(.*)$") or rest:match("^[1-9]%d*(.*)$")
  if not r then return false end
  r = r:match("^%.%d+(.*)$") or r
  r = r:match("^[eE][+-]?%d+(.*)$") or r
  return r == ""
end

-- The tokens between strings: structure, true, false, null and numbers, nothing else;
-- each number also passes `number_ok` when one is given (which may give the token to
-- write in its place). Returns the part as written, or nil.
local function plain_part(part, number_ok)
  local out, last = {}, 1
  -- (a loop, not gsub: a check may yield, and gsub is a C call nothing yields across)
  for a, tok, b in part:gmatch("()([^%[%]{}:,]+)()") do
    if tok ~= "true" and tok ~= "false" and tok ~= "null" then
      if not json_number(tok) then return nil end
      local ok = not number_ok or number_ok(tok)
      if not ok then return nil end
      if type(ok) == "string" then
        out[#out + 1] = part:sub(last, a - 1)
        out[#out + 1] = ok
        last = b
      end
    end
  end
  if last == 1 then return part end
  out[#out + 1] = part:sub(last)
  return table.concat(out)
end

--- The exact value of JSON number `t` in plain decimal digits ("7351986.4e1" is
-- "73519864", "-1.50e-2" is "-0.015"), or nil when that would take more than 400
-- characters. No rounding: what a reader with decimal or big-integer numbers gets.
-- Linear in the length of `t`.
function M.number_value(t)
  local sign, int, frac, exp = t:match("^(%-?)(%d+)%.?(%d*)[eE]?([-+]?%d*)$")
  -- an exponent of more than six digits is past what is written out here (and past what
  -- an integer holds: 1e9223372036854775807 would wrap)
  if not int or #exp > 7 then return nil end
  local digits = (int .. frac):gsub("^0+", "")
  local e = (tonumber(exp) or 0) - #frac
  -- trailing zeros dropped: the last digit that is not one, found from the end (".*" runs
  -- to the end once and steps back; an unanchored "0+$" is tried at every position)
  local last = digits:match(".*()[1-9]")
  if not last then return "0" end
  digits, e = digits:sub(1, last), e + (#digits - last)
  if e >= 0 then
    if #digits + e > 400 then return nil end
    return sign .. digits .. ("0"):rep(e)
  end
  if -e > 400 then return nil end
  if -e < #digits then return sign .. digits:sub(1, #digits + e) .. "." .. digits:sub(#digits + e + 1) end
  return sign .. "0." .. ("0"):rep(-e - #digits) .. digits
end

-- The shortest spelling of `v` (finite, not 0) that reads back as it, of `from` digits
-- or more: the correctly rounded one at each length (%.Ng, which drops trailing zeros),
-- else a neighbour of it in its last digit that reads back. (The shortest spelling is
-- the nearest to `v` of those that read back, which need not be the correctly rounded
-- one: at a power of two the gap below is half the gap above, so 2^-24 is
-- 5.960464477539063e-08 in JavaScript and Python, where %.16g gives ...062, which does
-- not read back.) Any 15-digit spelling of a normal number reads back only if it is the
-- correctly rounded one, so such a number starts at 15; a subnormal one, whose precision
-- is lower, at 1 (5e-324).
local function shortest(v, from)
  for digits = from, 17 do
    local g = ("%." .. digits .. "g"):format(v)
    if tonumber(g) == v then return g end
    -- (a neighbour of a normal number's 15 digits never reads back: see above)
    local sign, lead, frac, exp
    if digits > 15 or from < 15 then
      sign, lead, frac, exp = ("%." .. (digits - 1) .. "e"):format(v):match("^(%-?)(%d)%.?(%d*)e([-+]%d+)$")
    end
    local m = lead and math.tointeger(tonumber(lead .. frac))
    for _, d in ipairs({ -1, 1 }) do
      local n = m and tostring(m + d)
      if n and #n == digits then
        local t = ("%s%s%s%se%s"):format(sign, n:sub(1, 1), digits > 1 and "." or "", n:sub(2), exp)
        if tonumber(t) == v then return t end
      end
    end
  end
  return ("%.17g"):format(v)
end

--- A number's spellings as JSON writers and readers write it: cjson's 14 digits, the
-- shortest that reads back as it (as Python's repr and JavaScript write it, 1 to 17
-- digits: shortest above), that also in plain digits (JavaScript's 73519864000000000000
-- for 7.3519864e19), and an integral one's exact digits, however large. A secret of
-- digits kept or shown as a number is one of these. (Not every 17-digit rounding: 19.99
-- would be 19.989999999999998, which no reader prints, and would hide a PIN 9999.)
function M.number_spellings(v)
  local out = { require("cjson").encode(v) }
  if v ~= v or v == math.huge or v == -math.huge then return out end
  local g = v == 0 and "0" or shortest(v, math.abs(v) < 2.2250738585072014e-308 and 1 or 15)
  out[#out + 1] = g
  out[#out + 1] = M.number_value(g) or ""
  if v == math.floor(v) then out[#out + 1] = ("%.0f"):format(v) end
  return out
end

-- The end of the digits (of `class`) at `i` in `s`, and how many there were: one anchored
-- search, which never backtracks.
local function digits_at(s, i, class)
  local _, e = s:find("^" .. class .. "*", i)
  return e, e - i + 1
end

-- The number a reader reads at the start of `b` (no sign): digits, a "." and digits,
-- and an exponent (`exp`: "[eE]" or, in hex, "[pP]"), each scanned once; nil without a
-- digit. Linear: no pattern here can backtrack over a run of digits.
local function number_start(b, class, exp)
  local e, n = digits_at(b, 1, class)
  local i = e + 1
  if b:byte(i) == 46 then
    local e2, n2 = digits_at(b, i + 1, class)
    n, i = n + n2, e2 + 1
  end
  if n == 0 then return nil end
  local _, e3 = b:find("^" .. exp .. "[-+]?%d+", i)
  return b:sub(1, (e3 or i - 1))
end

local RADIX = { x = 16, X = 16, b = 2, B = 2, o = 8, O = 8 }
local RADIX_DIGIT = { [16] = "%x", [2] = "[01]", [8] = "[0-7]" }

--- Run `r` (letters, digits, ".", "_", "+", "-") as a number a common reader takes it
-- for, and its exact value in plain digits (nil when that is not known); nil when it is
-- none. The readers: JSON, and what Python's float() and int(s, 0), JavaScript's
-- Number(), parseFloat() and parseInt(), and C's strtod() accept in ASCII: a leading
-- "+", "_" between digits, leading zeros, ".5", a trailing ".", a number followed by
-- letters, hex (hex floats too), binary and octal up to 64 bits. Not digits of other
-- scripts (Python reads "٧٣"), nor words. Linear in `r`: leading zeros are dropped, a
-- number of more than 400 digits is none, and the scans never backtrack.
function M.reader_number(r)
  local s = r:gsub("^%+", "", 1)
  if s:find("_", 1, true) then s = s:gsub("(%w)_(%w)", "%1%2"):gsub("(%w)_(%w)", "%1%2") end
  local sign = s:byte(1) == 45 and "-" or ""
  local b = sign == "-" and s:sub(2) or s
  local rc = b:match("^0([xXbBoO])")
  if rc then
    local radix = RADIX[rc]
    local rest = b:sub(3):gsub("^0+", "")
    if rest == "" or not rest:find("^" .. RADIX_DIGIT[radix]) and rest:byte(1) ~= 46 then rest = "0" .. rest end
    local t = number_start(rest:sub(1, 401), RADIX_DIGIT[radix], radix == 16 and "[pP]" or "%z")
    if not t or #t > 400 then return nil end
    if radix == 16 and t:find("[.pP]") then
      local x = tonumber(sign .. "0x" .. t)
      if not x then return nil end
      return x, (x == math.floor(x) and math.abs(x) < 2 ^ 63) and ("%.0f"):format(x) or nil
    end
    -- the bits it needs: its first digit's, and each further digit's (t has no leading
    -- zero but for "0" itself)
    local per, lead = radix == 16 and 4 or radix == 8 and 3 or 1, tonumber(t:sub(1, 1), radix)
    if not lead then return nil end
    local bits = (#t - 1) * per
    while lead > 0 do bits, lead = bits + 1, lead >> 1 end
    if bits > 64 then return nil end
    local v = tonumber(t, radix)
    if not v then return nil end
    -- up to 64 bits, unsigned (an integer past 2^63 wraps negative): its digits as those
    -- of q * 10 + r, each exact
    local q = (v >> 1) // 5
    local exact = q > 0 and ("%d%d"):format(q, v - q * 10) or ("%d"):format(v - q * 10)
    local x = v < 0 and (v + 0.0) + 2.0 ^ 64 or v
    if sign == "-" then x, exact = -x, "-" .. exact end
    return x, exact
  end
  b = b:gsub("^0+(%d)", "%1")
  local t = number_start(b, "%d", "[eE]")
  if not t then return nil end
  -- zeros that end a fraction change nothing (7351986.4000...0)
  local mantissa, exponent = t:match("^([^eE]*)(.*)$")
  if mantissa:find(".", 1, true) then mantissa = mantissa:sub(1, mantissa:match(".*()[^0]")) end
  t = mantissa .. exponent
  if #t > 400 then return nil end
  t = sign .. t:gsub("%.$", ""):gsub("^%.", "0.")
  local x = tonumber(t)
  if not x then return nil end
  return x, M.number_value(t)
end

-- The runs of a text a reader may take for a number: with its sign and exponent signs,
-- and without them (the 7351986.4e1 in "x-7351986.4e1-y").
local NUMBER_RUNS = { "[%w._+-]+", "[%w._]+" }

--- True when fn(run) is true for a run of `s` that a reader may take for a number
-- (json.reader_number reads it); each run is handed over once per kind of run, and a run
-- of octal digits after a leading zero once more as C's strtol(s, NULL, 0) and
-- JavaScript's legacy literals read it, in octal ("0430351370" as "0o430351370").
function M.any_number_run(s, fn)
  for _, runs in ipairs(NUMBER_RUNS) do
    for run in s:gmatch(runs) do
      if fn(run) then return true end
      local sign, octal = run:match("^([+-]?)0([0-7]+)$")
      if octal and fn(sign .. "0o" .. octal) then return true end
    end
  end
  return false
end

--- JSON text `s` (which cjson has read) without the blanks between its tokens, or nil
-- when it is not JSON as RFC 8259 writes it: cjson also reads NaN, 0x10, 1., -.5 and
-- control characters inside strings; or when a number token fails `number_ok(token)`
-- or a string token (quotes included) fails `string_ok(token)`, when given. Either may
-- instead return a string: the token written in its place (JSON the caller made), so
-- everything else stays as the text has it (key order, a key given twice, every digit).
-- Linear: each search starts where the last ended.
function M.minified(s, number_ok, string_ok)
  local out, i, n = {}, 1, #s
  while i <= n do
    local j = s:find('[ \t\r\n"]', i)
    local part = plain_part(s:sub(i, (j or n + 1) - 1), number_ok)
    if not part then return nil end
    out[#out + 1] = part
    if not j then break end
    if s:byte(j) == 34 then
      -- a string runs to the first quote that no backslash escapes
      local k = j + 1
      while true do
        local q = s:find('["\\]', k)
        if not q then return nil end
        if s:byte(q) == 92 then
          k = q + 2
        else
          local str = s:sub(j, q)
          if str:find("[%z\1-\31]") then return nil end
          local ok = not string_ok or string_ok(str)
          if not ok then return nil end
          out[#out + 1] = type(ok) == "string" and ok or str
          i = q + 1
          break
        end
      end
    else
      i = s:find("[^ \t\r\n]", j) or n + 1
    end
  end
  return table.concat(out)
end

local function finite(x)
  if type(x) == "number" then return x == x and x ~= math.huge and x ~= -math.huge end
  if type(x) ~= "table" then return true end
  for _, y in pairs(x) do
    if not finite(y) then return false end
  end
  return true
end

function M.body(text)
  if not strict then
    strict = require("cjson.safe").new()
    strict.decode_invalid_numbers(false)
  end
  local v = strict.decode(text)
  -- and in UTF-8, as RFC 8259 8.1 asks (utf8.len refuses surrogates, as CESU-8 writes)
  if v == nil or not M.minified(text) or not utf8.len(text) then return nil, "not valid JSON" end
  if not finite(v) then return nil, "a number too large for JSON (1e999 and the like)" end
  return v
end

return M
