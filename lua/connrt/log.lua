--- log.lua - everything connrt prints goes through here, so secrets never leave in clear.
--
-- The flow registers every secret value it handles (tokens, codes, client secrets,
-- secret fields) with `log.secret`; every line written to standard output or error has
-- each registered value replaced by "[redacted]", in every spelling a server or a
-- program may echo it in (see below). The single exception is `log.raw`, which `connrt
-- token` uses to print the one token it was asked for. Lines are then cleaned of control
-- characters (text.escape_controls): much of what connrt prints comes from providers.
--
-- `--verbose` (or CONNRT_VERBOSE=1) turns on `log.trace`: request.lua writes every HTTP
-- exchange there, with credential headers and secret-named parameters replaced before
-- the line is even built, and the registered values redacted as on every other line.
--
-- Spellings. A secret is found in the text as it is and in four decodings of the text:
-- percent-decoded (%2B and %2b alike, whatever an encoder left unencoded; up to three
-- times over, %25252B), form-decoded ('+' for a space, then percent), JSON-unescaped (\/, \", \uXXXX of any character,
-- surrogate pairs), JSON-unescaped then percent- or form-decoded (a form body quoted
-- in a JSON error), and percent- or form-decoded then JSON-unescaped (JSON in a URL's
-- query, PHP's urlencode(json_encode(...))); a hit in a decoding hides the escapes it
-- came from. Base64 hides a
-- secret inside a longer text (HTTP Basic's base64(id ":" secret)) at one of three byte
-- alignments: for each, the characters that depend on the secret's bytes alone (its
-- "core") are registered, in the standard and the URL-safe alphabet, for the secret
-- and for its percent- and form-encoded forms (RFC 6749 client authentication encodes
-- before it joins), so an echoed Authorization header is hidden though connrt never
-- registered that header. A core shorter than 6 characters (36 bits: the 4-byte minimum
-- of a raw secret, in base64) is left out: it would match random base64 text.
--
-- Redacting is linear in the text for a given set of secrets: each spelling is found
-- with a plain search (textscan.find_all, in C), the hits are merged, and the text is
-- rebuilt once.
local text = require("connrt.text")
local find_all = require("connrt.textscan").find_all

-- JSON as connrt reads and writes it, in every use of cjson (json.lua)
require("connrt.json")

local M = {}

local env_verbose = os.getenv("CONNRT_VERBOSE")
M.verbose = env_verbose ~= nil and env_verbose ~= "" and env_verbose ~= "0"

local secrets = {}  -- value -> true
local spellings     -- every spelling of every secret (a list), built on first use after a change
local breaks        -- the lines of the secrets that hold a newline (see M.line_cut), built with it

--- Registers a secret value; values shorter than 4 bytes are too common to hide.
function M.secret(value)
  if type(value) == "string" and #value >= 4 and not secrets[value] then
    secrets[value] = true
    spellings = nil
    -- a value read from a file may carry newlines around it that a program strips before
    -- it prints the value (and a leading one would make every line a possible first line
    -- of the secret, see M.line_cut)
    -- (found from each end: "(.-)[\r\n]*$" is quadratic in a run of inner newlines)
    local first, last = value:find("[^\r\n]"), value:match(".*()[^\r\n]")
    local core = first and value:sub(first, last) or ""
    if core ~= value then M.secret(core) end
  end
  return value
end

-- ---- spellings of a secret ----

local MIN_CORE = 6
local B64 = {}
for i, c in ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"):gmatch("()(.)") do B64[i - 1] = c end
local TO_URL = { ["+"] = "-", ["/"] = "_" }

-- Standard base64 with padding: connrt.crypto's when the command has loaded it (OpenSSL
-- is not worth loading to print a line), else in Lua.
local function b64(s)
  local crypto = package.loaded["connrt.crypto"]
  if crypto then return crypto.b64encode(s) end
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = B64[n >> 18] .. B64[(n >> 12) & 63] .. (b and B64[(n >> 6) & 63] or "=") .. (c and B64[n & 63] or "=")
  end
  return table.concat(out)
end

-- The characters of base64(k unknown bytes .. s .. more) that depend on s alone (those
-- whose 6 bits all fall within s's bytes), in the standard alphabet.
local function b64_core(s, k)
  local enc = b64(("\0"):rep(k) .. s)
  local first = (8 * k + 5) // 6                -- ceil(8k / 6)
  local last = (8 * (k + #s)) // 6 - 1
  return enc:sub(first + 1, last + 1)
end

-- percent-encoding of all but RFC 3986's unreserved characters (as url.encode), with '+'
-- for a space when `form`
local function pct(s, form)
  return (s:gsub("[^%w%-%._~]", function(c)
    if form and c == " " then return "+" end
    return ("%%%02X"):format(c:byte())
  end))
end

-- `s` and the forms a server that confuses Latin-1 and UTF-8 turns it into, when it has
-- bytes beyond ASCII: its bytes read as Latin-1 or as Windows-1252 and written as UTF-8
-- (UTF-8 double encoded: "pÃ¤ss", escaped \u00c3\u00a4 by a JSON writer, "GroÃŸ"; a
-- Latin-1 secret in UTF-8) and, when each character fits in a byte, written in Latin-1
-- ("p\xe4ss"; %E4 percent-encoded). The other spellings are built from each.
-- Windows-1252's characters for the bytes 0x80-0x9F (what most servers that "read
-- Latin-1" use, as WHATWG's "latin1" does); the five it leaves undefined stay C1 codes.
local CP1252 = { [0x80] = 0x20AC, [0x82] = 0x201A, [0x83] = 0x0192, [0x84] = 0x201E, [0x85] = 0x2026,
  [0x86] = 0x2020, [0x87] = 0x2021, [0x88] = 0x02C6, [0x89] = 0x2030, [0x8A] = 0x0160, [0x8B] = 0x2039,
  [0x8C] = 0x0152, [0x8E] = 0x017D, [0x91] = 0x2018, [0x92] = 0x2019, [0x93] = 0x201C, [0x94] = 0x201D,
  [0x95] = 0x2022, [0x96] = 0x2013, [0x97] = 0x2014, [0x98] = 0x02DC, [0x99] = 0x2122, [0x9A] = 0x0161,
  [0x9B] = 0x203A, [0x9C] = 0x0153, [0x9E] = 0x017E, [0x9F] = 0x0178 }
local CP1252_BYTE = {}
for b, cp in pairs(CP1252) do CP1252_BYTE[cp] = b end

local function charset_forms(s)
  if not s:find("[\128-\255]") then return { s } end
  local forms, seen = { s }, { [s] = true }
  -- a form shorter than a secret may be (4 bytes) would hide ordinary text
  local function add(f)
    if #f >= 4 and not seen[f] then seen[f] = true; forms[#forms + 1] = f end
  end
  add((s:gsub("[\128-\255]", function(c) return utf8.char(c:byte()) end)))
  add((s:gsub("[\128-\255]", function(c) return utf8.char(CP1252[c:byte()] or c:byte()) end)))
  if utf8.len(s) then
    -- in Latin-1, and in Windows-1252 (which has 0x80-0x9F for characters such as the
    -- euro sign), when each character has a byte there
    for _, table_of in ipairs({ {}, CP1252_BYTE }) do
      local bytes, fits = {}, true
      for _, cp in utf8.codes(s) do
        local b = table_of[cp] or (cp <= 255 and not (table_of == CP1252_BYTE and cp >= 0x80 and cp <= 0x9F) and cp)
        if not b then fits = false break end
        bytes[#bytes + 1] = string.char(b)
      end
      if fits then add(table.concat(bytes)) end
    end
  end
  return forms
end

local function build_spellings(min)
  local list, seen = {}, {}
  local function add(v)
    if not seen[v] then seen[v] = true; list[#list + 1] = v end
  end
  local function add_b64(v)
    add(v)
    add((v:gsub("[+/]", TO_URL))) -- the URL-safe alphabet
  end
  local all = {}
  for secret in pairs(secrets) do
    if #secret >= (min or 0) then
      for _, s in ipairs(charset_forms(secret)) do all[#all + 1] = s end
    end
  end
  for _, s in ipairs(all) do
    add(s)
    local forms, p, f = { s }, pct(s), pct(s, true)
    if p ~= s then forms[#forms + 1] = p end
    if f ~= p then forms[#forms + 1] = f end
    for _, form in ipairs(forms) do
      for k = 0, 2 do
        local core = b64_core(form, k)
        if #core >= MIN_CORE then add_b64(core) end
      end
    end
    local whole = b64(s)
    add_b64(whole)                    -- the secret alone, padded
    add_b64(text.rstrip(whole, "="))  -- and without padding
  end
  return list
end

-- The lines of the secrets that hold a newline, for M.line_cut: a line of text that ends
-- with a first line (`first`), or is one of the lines between (`inner`), may be followed
-- by the rest of a secret. `lengths` lists their lengths, `longest` is the longest such
-- secret.
local function build_breaks()
  local b = { first = {}, inner = {}, lengths = {}, longest = 0 }
  local seen = {}
  local function length(n)
    if not seen[n] then seen[n] = true; b.lengths[#b.lengths + 1] = n end
  end
  for s in pairs(secrets) do
    if s:find("\n", 1, true) then
      local lines = {}
      for l in (s .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
      -- an empty first line would match every line: M.secret registered the value without
      -- its leading newlines too, and only a newline goes out ahead of that
      if lines[1] ~= "" then b.first[lines[1]] = true; length(#lines[1]) end
      -- the last line is followed by no newline of the secret
      for i = 2, #lines - 1 do b.inner[lines[i]] = true; length(#lines[i]) end
      if #s > b.longest then b.longest = #s end
    end
  end
  return b
end

-- ---- decodings of the text, and the way back to its positions ----

-- Decodes `s` with gsub(pattern, fn); `fn(...)` (the pattern's captures after its first,
-- a position capture) returns the decoded escape, the length of the escape in `s` and
-- text to keep after it (what the pattern took beyond the escape), or nil to leave the
-- match as it is. Returns the decoded text and a map: for each escape, where it is in
-- the decoded text (vpos..vend) and in `s` (opos..oend).
local function decode(s, pattern, fn)
  local map = { vpos = {}, vend = {}, opos = {}, oend = {} }
  local shift, n = 0, 0
  local out = s:gsub(pattern, function(pos, ...)
    local dec, len, keep = fn(...)
    if not dec then return nil end
    n = n + 1
    map.vpos[n], map.vend[n] = pos + shift, pos + shift + #dec - 1
    map.opos[n], map.oend[n] = pos, pos + len - 1
    shift = shift + #dec - len
    return dec .. (keep or "")
  end)
  if n == 0 then return nil end
  return out, map
end

-- The position in the text a map decoded of position `v` of the decoded text; within an
-- escape, its first byte (or its last, for the end of a hit).
local function back(map, v, last)
  local vpos = map.vpos
  local lo, hi, i = 1, #vpos, 0
  while lo <= hi do
    local mid = (lo + hi) // 2
    if vpos[mid] <= v then i, lo = mid, mid + 1 else hi = mid - 1 end
  end
  if i == 0 then return v end
  local vend = map.vend[i]
  if v <= vend then return last and map.oend[i] or map.opos[i] end
  return v - vend + map.oend[i]
end

local function unhex(h) return string.char(tonumber(h, 16)), 3 end
local function percent(s) return decode(s, "()%%(%x%x)", unhex) end

local JSON_SIMPLE = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function json_pair(hi, lo)
  local cp = 0x10000 + ((tonumber(hi, 16) - 0xD800) << 10) + (tonumber(lo, 16) - 0xDC00)
  return utf8.char(cp), 12
end

local function json_escape(c, hex)
  if c == "u" then
    if #hex < 4 then return nil end
    return utf8.char(tonumber(hex, 16)), 6
  end
  local d = JSON_SIMPLE[c]
  if d then return d, 2, hex end
  return nil
end

-- Percent-decodings stacked on one another that are searched: a URL carried in a query
-- parameter of another URL (a redirect_uri, a `next=`) is encoded once more, so a secret
-- in it comes as %252B, and once more again inside a third.
local PERCENT_LAYERS = 3
-- The length of a secret that text kept in clear is refused for (M.holds's `strong`).
local STRONG = 8
-- How many times longer than a value its spelling in a text can be: each byte
-- percent-encoded PERCENT_LAYERS times over (three bytes for one each time), each of
-- those JSON-escaped (\u00XX: six).
local ENCODED = math.tointeger(3 ^ PERCENT_LAYERS) * 6

-- What a terminal does not show of a text, each a pattern for decode whose one capture
-- is all of it: a CSI sequence (ESC [ parameters, intermediates, final byte: colours,
-- erasing), an OSC one (ESC ] ... ended by BEL or ESC \), and a character (one UTF-8
-- sequence) a backspace follows, which the next one strikes over. Each is linear: a
-- match attempt scans a run of bytes none of which can start the next attempt.
local TERMINAL = { "()(\27%[[0-?]*[ -/]*[@-~])", "()(\27%][^\7\27]*\7)", "()(\27%][^\7\27]*\27\\)",
  "()([%z\1-\127\194-\244][\128-\191]*\b)" }
local function removed(m) return "", #m end

-- The decoded views of `s` worth searching: each {text, maps (innermost first)}.
local function views(s)
  local out = { { s } }
  local function with(parent_maps, t, map)
    if not t then return end
    local maps = { table.unpack(parent_maps) }
    maps[#maps + 1] = map
    out[#out + 1] = { t, maps }
    return t, maps
  end
  -- `t` JSON-unescaped (\uD83D\uDE00 pairs, then each escape), as a view of its own; the
  -- view and its maps, or nil when nothing was unescaped
  local function unescaped(t, parent_maps)
    local maps = { table.unpack(parent_maps) }
    local t1, map1 = decode(t, "()\\u([dD][89aAbB]%x%x)\\u([dD][c-fC-F]%x%x)", json_pair)
    if t1 then maps[#maps + 1] = map1 else t1 = t end
    local t2, map2 = decode(t1, "()\\(.)(%x?%x?%x?%x?)", json_escape)
    if t2 then maps[#maps + 1] = map2; t1 = t2 end
    if #maps == #parent_maps then return nil end
    out[#out + 1] = { t1, maps }
    return t1, maps
  end
  -- `t` percent-decoded, and that decoded again while escapes remain (each layer is one
  -- linear pass and one search more, and happens only where the last one left a '%'); a
  -- layer that holds a backslash JSON-unescaped too (JSON carried in a URL's query, PHP's
  -- urlencode(json_encode(...)): "%5Cu002d")
  local function percent_layers(t, maps, layer)
    while layer <= PERCENT_LAYERS and t and t:find("%", 1, true) do
      t, maps = with(maps, percent(t))
      if t and t:find("\\", 1, true) then unescaped(t, maps) end
      layer = layer + 1
    end
  end
  local function plus_and_percent(base, maps)
    percent_layers(base, maps, 1)
    if base:find("+", 1, true) then
      -- '+' to ' ' keeps every position; percent-decoding then maps back
      local spaced = base:gsub("+", " ")
      local t, map = percent(spaced)
      if t then
        local t1, maps1 = with(maps, t, map)
        if t1:find("\\", 1, true) then unescaped(t1, maps1) end
        percent_layers(t1, maps1, 2)
      else
        out[#out + 1] = { spaced, maps }
      end
    end
  end
  plus_and_percent(s, {})
  if s:find("\\", 1, true) then
    local t, maps = unescaped(s, {})
    if t then plus_and_percent(t, maps) end
  end
  -- `s` as a terminal shows it: without the escape sequences (colours, OSC hyperlinks) and
  -- the characters a backspace strikes over (grep --color, man's bold) that a program put
  -- inside a secret
  if s:find("[\27\b]") then
    local t, maps = s, {}
    for _, pattern in ipairs(TERMINAL) do
      if t:find("[\27\b]") then
        local d, map = decode(t, pattern, removed)
        if d then t, maps = d, { table.unpack(maps) }; maps[#maps + 1] = map end
      end
    end
    if #maps > 0 then out[#out + 1] = { t, maps } end
  end
  return out
end

-- The spellings and the breaks of the registered secrets, and their span (M.span).
local function build()
  if spellings then return end
  spellings, breaks = build_spellings(), build_breaks()
  -- the spellings of the secrets of 8 bytes or more: what text kept in clear is refused
  -- for (a 4-digit PIN is in one id of a thousand; redacting it there is cheap, failing a
  -- connect for it is not)
  breaks.strong = build_spellings(STRONG)
  for secret in pairs(secrets) do
    if #secret < STRONG then breaks.short = true end
  end
  local longest = 0
  for _, sp in ipairs(spellings) do
    if #sp > longest then longest = #sp end
  end
  breaks.span = longest * ENCODED
  -- the longest secret that holds a newline, encoded as a spelling may be (M.line_cut)
  breaks.encoded = breaks.longest * ENCODED
  breaks.within = {}
end

--- True when a spelling of a registered secret is made of the characters of Lua class
-- `class` alone ("%d.eE+%- "): only then can M.redact find one in a text made of them (a
-- text without '%' or '\\' has no view but itself and itself with '+' read as ' ').
function M.spelled_within(class)
  build()
  local known = breaks.within[class]
  if known == nil then
    known = false
    for _, sp in ipairs(spellings) do
      if not sp:find("[^" .. class .. "]") then known = true break end
    end
    breaks.within[class] = known
  end
  return known
end

-- Where the known secrets are in `s`, in any spelling: merged ranges {a, b}, in order.
-- (`list`: other spellings to look for, breaks.strong.)
local function ranges(s, list)
  if not next(secrets) then return {} end
  build()
  list = list or spellings
  -- hits as start << 28 | length - 1 (a hit spans far less than 256 MB): sorting the
  -- numbers sorts by start without a comparison function
  local hits = {}
  for _, view in ipairs(views(s)) do
    local t, maps = view[1], view[2]
    local found = find_all(t, list) -- a1, b1, a2, b2, ...
    for k = 1, #found, 2 do
      local a, b = found[k], found[k + 1]
      if maps then
        for m = #maps, 1, -1 do a, b = back(maps[m], a), back(maps[m], b, true) end
      end
      hits[#hits + 1] = (a << 28) | (b - a)
    end
  end
  table.sort(hits)
  local out, mask = {}, (1 << 28) - 1
  for _, h in ipairs(hits) do
    local a = h >> 28
    local b = a + (h & mask)
    local last = out[#out]
    if last and a <= last[2] + 1 then
      if b > last[2] then last[2] = b end
    else
      out[#out + 1] = { a, b }
    end
  end
  return out
end

--- `line` as connrt prints it: redacted, its control characters and broken UTF-8
-- escaped (text.escape_controls), then redacted again, for escaping makes a spelling
-- too: a secret "pässwörd1" an upstream echoed in Latin-1 bytes becomes p\u00e4ssw\u00f6rd1,
-- which a JSON reader takes back to the secret.
function M.shown_line(line)
  return M.redact(text.escape_controls(M.redact(line)))
end

--- True when M.redact would hide something in `s`: the same search, without the ranges
-- (a text without '%', '+' or '\\' is its only view).
-- With `strong`, only of the secrets of 8 bytes or more (breaks.strong).
function M.holds(s, strong)
  if not next(secrets) then return false end
  build()
  local list = strong and breaks.strong or spellings
  if #list == 0 then return false end
  if not s:find("[%%+\\]") then return #find_all(s, list) > 0 end
  return #ranges(s, list) > 0
end

--- Returns `text` with every spelling of every registered secret replaced by
-- "[redacted]"; a secret inside a longer one, or overlapping it, is hidden with it.
function M.redact(s)
  s = tostring(s)
  local rs = ranges(s)
  if #rs == 0 then return s end
  local out, pos = {}, 1
  for _, r in ipairs(rs) do
    out[#out + 1] = s:sub(pos, r[1] - 1)
    out[#out + 1] = "[redacted]"
    pos = r[2] + 1
  end
  out[#out + 1] = s:sub(pos)
  return table.concat(out)
end

--- A position near `at` where `s` can be cut in two without cutting a known secret (in
-- any spelling M.redact knows) that `s` holds whole: redacting the two parts apart then
-- hides what redacting `s` would. Where `at` falls inside the secrets' text, the cut
-- goes before it, or after it when it starts `s` (so a cut always makes progress, and a
-- caller that passes on the first part never holds more than `at` plus one secret). (A
-- secret only begun at the end of `s` is the caller's to keep back: cut far enough from
-- the end.)
function M.safe_cut(s, at)
  local rs = ranges(s)
  for i = #rs, 1, -1 do
    local r = rs[i]
    if r[1] <= at and at < r[2] then
      if r[1] > 1 then at = r[1] - 1 else at = r[2] end
      break
    end
  end
  return at
end

--- True when `s`, as connrt prints it (its control characters and broken UTF-8
-- escaped), spells a registered secret: text kept in clear (a connection's name, its
-- unique id, kept values) is printed later by commands that know no secret (`connrt
-- list`), so it must hold none, in no spelling its printing makes either.
-- (Also as JSON writes it, `/` as `\/`: the --json lines, `connrt list --json`.)
-- (And as a table cell of `connrt list`, each unprintable character a "?": format.clean.)
function M.shows_secret(s, strong)
  if M.holds(s, strong) then return true end
  local json = require("cjson").encode(s)
  return M.holds(text.escape_controls(s), strong) or M.holds(json, strong)
    or M.holds(text.escape_controls(json), strong) or M.holds(require("connrt.format").clean(s), strong)
end

-- What a number's spellings are made of (json.number_spellings, and '+' read as ' ').
M.NUMBER_CHARS = "%d.eE+%- "

--- True when a run of `s` that a reader takes for a number (json.reader_number) is a
-- secret of digits in one of its spellings.
function M.number_in_text(s, strong)
  if not M.spelled_within(M.NUMBER_CHARS) then return false end
  local json = require("connrt.json")
  return M.any_number_run(s, function(run)
    local x, exact = json.reader_number(run)
    return x and (exact and (M.holds(exact, strong) or (strong and secrets[exact])) or M.value_shows_secret(x, strong))
  end)
end

--- True when fn(run) is true for a run a reader may take for a number (json.any_number_run)
-- of `s` as it is, or percent-decoded (up to PERCENT_LAYERS times), as a reader of a
-- URL's query gets it (1.2345678e%2B7): for M.number_in_text and shown.lua's checks.
function M.any_number_run(s, fn)
  local json = require("connrt.json")
  if json.any_number_run(s, fn) then return true end
  local t = s
  for _ = 1, PERCENT_LAYERS do
    if not t:find("%", 1, true) then return false end
    t = percent(t)
    if not t then return false end
    if json.any_number_run(t, fn) then return true end
  end
  return false
end

-- True when a word of `s` (a run between blanks and punctuation, or of letters and
-- digits) is a registered secret shorter than STRONG bytes: a PIN kept as an account id
-- or in "t-735198", where a search inside words would find one in every long id.
local function short_word(s)
  if not next(secrets) then return false end
  build()
  if not breaks.short then return false end
  for _, words in ipairs({ "[^%s\"',;:/?&=()%[%]{}<>]+", "[%w]+" }) do
    for w in s:gmatch(words) do
      if #w < STRONG and secrets[w] then return true end
    end
  end
  return false
end

--- True when value `v` (a string, or a number in any of its spellings) spells a secret as
-- M.shows_secret says: a value kept in clear is printed as JSON, a number as digits.
-- (`strong`: of the secrets of 8 bytes or more in any spelling, and the shorter ones as
-- whole words (short_word), for text a connect or a refresh is refused for, M.holds.)
function M.value_shows_secret(v, strong)
  if type(v) == "string" then
    return M.shows_secret(v, strong) or M.number_in_text(v, strong) or (strong and short_word(v)) or false
  end
  if math.type(v) == nil then return false end
  for _, sp in ipairs(require("connrt.json").number_spellings(v)) do
    if M.holds(sp, strong) or (strong and short_word(sp)) then return true end
  end
  return false
end

-- Whether text shows a secret as kept text may (M.kept, M.clip): in a way it may be
-- printed (M.shows_secret), or as a number a reader takes from it (M.number_in_text).
local function kept_shows(t)
  return M.shows_secret(t) or M.number_in_text(t)
end

-- The words a text may have for M.kept to hide them one by one.
local KEPT_WORDS = 64

--- `s` as text kept or handed on to be printed by a process that knows no secret (a
-- connection's name or last_error, `connrt list`; a proxy's error, which `connrt
-- request` prints): redacted when that shows no secret (M.shows_secret) in any way it
-- may be printed, nor a secret of digits as a number a reader takes from it
-- (M.number_in_text); else as connrt prints it (M.shown_line: its escapes too are
-- redacted) when that shows none; else that with each word that shows one hidden, when
-- the rest shows none and it has at most KEPT_WORDS words; else "[redacted]" whole.
function M.kept(s)
  local t = M.redact(s)
  if not kept_shows(t) then return t end
  t = M.shown_line(s)
  if not kept_shows(t) then return t end
  -- each blank-separated word of that which shows a secret hidden, so the rest of a
  -- message stays (a provider's text quoted in it); whole when it still shows one
  -- (spelled across words), or when it has more than KEPT_WORDS words (each word is one
  -- search for every spelling: a message has a few dozen, a provider's body thousands)
  local _, n = t:gsub("%S+", "")
  if n > KEPT_WORDS then return "[redacted]" end
  local words = t:gsub("%S+", function(w) if kept_shows(w) then return "[redacted]" end end)
  if not kept_shows(words) then return words end
  return "[redacted]"
end

--- `s` cut to about `n` bytes for a message (a provider's text shown in part): `s` as it
-- is when it is no longer than `n`; else the start of its kept form (M.kept), cut after
-- its secrets were hidden, so an echoed token is never cut one byte short into text the
-- redactor no longer knows, and not inside a "[redacted]" or a UTF-8 character.
function M.clip(s, n)
  if #s <= n then return s end
  -- the kept form of a start of `s` long enough that a secret it ends in the middle of
  -- (whose spelling the redactor cannot know there) lies past the cut: hidden spellings
  -- make the kept form shorter than the text, so the start doubles until its kept form
  -- reaches that far (escapes: up to six bytes a byte), or is all of `s`
  local need, w, t = n + 6 * M.span(), n + M.span()
  while true do
    t = M.kept(s:sub(1, w))
    -- (a start that shows a secret however it is kept: so does all of it)
    if t == "[redacted]" then return t end
    if #t >= need or w >= #s then break end
    w = w * 2
  end
  if #t <= n then return t end
  local cut = n
  -- not inside a "[redacted]" that runs past the cut
  local from = math.max(1, n - 9)
  local at = t:find("[redacted]", from, true)
  while at and at <= n do
    if at + 9 > n then cut = at - 1 break end
    at = t:find("[redacted]", at + 1, true)
  end
  -- nor inside a UTF-8 character (a continuation byte after the cut)
  for _ = 1, 3 do
    local b = t:byte(cut + 1)
    if cut > 0 and b and b >= 0x80 and b < 0xC0 then cut = cut - 1 end
  end
  -- and what the cut leaves must show none either (0x461D2F80 cut to 0x461D2F8)
  local out = t:sub(1, cut)
  if kept_shows(out) then return "[redacted]" end
  return out
end

--- `s` cut to about `n` bytes as it is (a hook's part of a large body, which the hook
-- reads unredacted), never inside a spelling of a registered secret that it holds whole
-- (M.safe_cut): the cut goes before the secret (after it, when `s` begins with it).
function M.cut(s, n)
  if #s <= n then return s end
  return s:sub(1, M.safe_cut(s:sub(1, n + M.span()), n))
end

--- The most bytes one spelling of a registered secret can take in a text (0 when there
-- is none): the longest spelling, ENCODED times over. A caller that cuts a text
-- anywhere keeps this much of its end back, so a secret only begun there goes on whole
-- with what follows.
function M.span()
  build()
  return breaks.span
end

-- The start of the line of `s` that ends at its newline at `at` (1 when no newline comes
-- before it): searched backwards in windows that double, so the cost is linear in the
-- line's length, not in all that `s` holds before it.
local function line_start(s, at)
  local w = 256
  while true do
    local from = math.max(1, at - w)
    local nl = s:sub(from, at - 1):match("^.*()\n")
    if nl then return from + nl end
    if from == 1 then return 1 end
    w = w * 2
  end
end

-- Whether the line of `s` that ends at its newline at `at` may be a line of a secret that
-- goes on after that newline, and whether it is so only in a decoded view. Only the
-- secret as it is holds a newline, but a program may write it a line at a time with each
-- line encoded (percent, JSON) and its own newlines between: so the line is compared in
-- every view M.redact searches. A view ending with a first line, or equal to a line
-- between, may go on: a set lookup for each length of such a line per view, after views
-- of the line alone (linear in its length).
local function may_go_on(s, at)
  local from = line_start(s, at)
  local decoded = false
  for _, view in ipairs(views(s:sub(from, at - 1))) do
    local t = view[1]
    local hit = breaks.inner[t]
    for _, n in ipairs(breaks.lengths) do
      if hit then break end
      hit = n <= #t and breaks.first[t:sub(-n)]
    end
    if hit then
      if not view[2] then return true, false end -- the raw view: the narrowest hold
      decoded = true
    end
  end
  return decoded, decoded
end

--- Where `s` can be cut at or before its newline at `at` for the first part to be passed
-- on at once: `at` unless a secret that holds a newline may still be going on past it,
-- else far enough back that such a secret, begun before, is kept whole for the rest (at
-- a newline where there is one near, never inside a secret `s` holds whole). 0: nothing
-- can go. Where the line matched only in a decoded view, the rest of the secret may come
-- encoded: the hold is then the longest such secret encoded (bounded as M.span is).
function M.line_cut(s, at)
  build()
  if #breaks.lengths == 0 then return at end
  local goes_on, decoded = may_go_on(s, at)
  if not goes_on then return at end
  local hold = decoded and breaks.encoded or breaks.longest
  local cut = at - hold
  if cut < 1 then return 0 end
  -- the last newline within one more (unencoded) secret's length: looking further would
  -- cost more than the text it could pass on
  local from = math.max(1, cut - breaks.longest)
  local nl = s:sub(from, cut):match("^.*()\n")
  return M.safe_cut(s, nl and from + nl - 1 or cut)
end

--- Where the text of a stream that has ended can be cut so that what follows is the
-- beginning of a secret: a proper prefix of at least 4 bytes (the shortest secret) of a
-- spelling, in any view M.redact searches, running to the end of `s`, or to an escape
-- begun there and cut short. Returns how many bytes go as they are (redacted): #s when
-- `s` ends in no secret's beginning; the caller replaces the rest with "[redacted]" (no
-- more text will come to complete the secret, and M.redact matches only whole ones).
-- Runs once per stream end: for each view and spelling, only the positions within a
-- spelling's length of the end that hold its first byte are compared (plain find), so
-- the cost is the spellings' total length times such candidates, besides the views
-- (linear in `s`).
function M.tail_cut(s)
  if not next(secrets) or s == "" then return #s end
  build()
  local best = #s + 1
  local function search(u)
    for _, view in ipairs(views(u)) do
      local t, maps = view[1], view[2]
      for _, sp in ipairs(spellings) do
        -- (a value with newlines around it is registered without them too: its beginning
        -- is found without taking the newline before it)
        local first = sp:sub(1, 1)
        if first == "\n" or first == "\r" then goto next_spelling end
        -- a start v leaves #t - v + 1 bytes: at least 4, fewer than #sp
        local v = math.max(1, #t - #sp + 2)
        while v <= #t - 3 do
          v = t:find(first, v, true)
          if not v or v > #t - 3 then break end
          if t:sub(v) == sp:sub(1, #t - v + 1) then
            local a = v
            if maps then
              for m = #maps, 1, -1 do a = back(maps[m], a) end
            end
            if a < best then best = a end
            break -- the earliest start of this spelling in this view
          end
          v = v + 1
        end
        ::next_spelling::
      end
    end
  end
  search(s)
  -- an escape cut short at the end (%2, \u00) is decoded in no view: search without it
  local last = s:sub(-6)
  local partial = last:match("()%%%x?$") or last:match("()\\u%x?%x?%x?$") or last:match("()\\$")
  if partial then
    partial = #s - #last + partial
    if partial > 1 then search(s:sub(1, partial - 1)) end
  end
  if best > #s then return #s end
  -- never inside a secret `s` holds whole: the part before the cut is redacted alone
  for _, r in ipairs(ranges(s)) do
    if r[1] < best and best <= r[2] then best = r[1] end
  end
  return best - 1
end

-- A line as printed: redacted, then with every control character escaped, its own
-- newline the only one (a provider's name or error text can move no cursor, clear no
-- screen and start no line that looks like connrt's).
local function printable(fmt, ...)
  local line = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  return M.shown_line(line)
end

--- Writes a line to standard error. A text of several lines is printed with one call
-- per line: a newline inside a line is escaped like any control character. The line and
-- its newline go in one write (standard error is unbuffered): lines of processes that
-- share it (connrt proxy's workers) never interleave within a line.
function M.err(fmt, ...)
  io.stderr:write(printable(fmt, ...) .. "\n")
end

--- Writes a line to standard output (see M.err).
function M.out(fmt, ...)
  io.stdout:write(printable(fmt, ...), "\n")
end

--- True when a parameter, JSON key or header of this name carries a secret: tokens,
-- codes, verifiers, secrets, passwords, keys, assertions, credentials and cookies
-- (token_type and expires_in are not).
function M.secret_name(name)
  local n = tostring(name):lower()
  if n:match("_type$") or n:match("expires") or n == "code_challenge" or n == "code_challenge_method" then
    return false
  end
  for _, word in ipairs({ "token", "secret", "passw", "code", "verifier", "assertion", "key", "auth",
      "cookie", "credential", "session", "signature" }) do
    if n:find(word, 1, true) then return true end
  end
  return n == "sig"
end

--- Writes a trace line to standard error when verbose (redacted and escaped like every
-- line).
function M.trace(fmt, ...)
  if not M.verbose then return end
  io.stderr:write(printable(fmt, ...) .. "\n")
end

--- Writes bytes to standard output as they are (already shown: redacted, escaped), and
-- flushes them. What was asked for and could not be written (a full disk, a closed
-- standard output) is the command's failure, not a success that printed nothing.
function M.write(bytes)
  local ok, err = io.stdout:write(bytes)
  if ok then ok, err = io.stdout:flush() end
  if not ok then require("connrt.errors").raise("failed", "cannot write to standard output: %s", tostring(err)) end
end

--- Writes bytes to standard output as they are, unredacted: only for values the user
-- asked for (a token, the line of connrt authorize).
M.raw = M.write

return M
