--- text.lua - operations on text that comes from outside (a provider's answers, the
-- callback's query, a user's files), each linear in the length of its input.
--
-- A Lua pattern with two unbounded repetitions that can match the same characters
-- ("%s*(.-)%s*</title>", "%s+$" searched anywhere) backtracks: a provider that answers
-- with a megabyte of spaces keeps connrt busy for hours. These helpers use plain finds
-- and patterns anchored at one end instead, so the runtime has one place for them.
--
--   text.trim(s)             s without leading and trailing whitespace (%s)
--   text.rstrip(s, set)      s without the trailing characters of `set` (a pattern set's
--                            contents: "/", "\r\n", "%s")
--   text.html_title(body)    the trimmed <title> of an HTML page, or nil
--   text.json_within(s, max) false when the JSON text s has more than max values (its
--                            '[', '{' and ',' outside strings, and escaped quotes, are
--                            counted; at most max + 1 steps, whatever the size)
--   text.escape_controls(s)  control characters (C0, DEL, C1) and the bytes of broken
--                            UTF-8 as visible escapes (\u001b)
--   text.control_char(s, tab_ok)  the name of the first C0 or DEL character in s ("CR",
--                            "LF", "NUL", "ESC", "U+0007"), or nil
--   text.read_file(path)     the whole content of a file, or nil and why not
--   text.header_problem(name, value)  what keeps name and value from being one HTTP
--                            header line, or nil
local printable = require("connrt.textscan").printable

local M = {}

--- `s` without leading and trailing whitespace.
function M.trim(s)
  local first = s:find("%S")
  if not first then return "" end
  -- anchored at `first`: ".*" runs to the end once and steps back to the last non-space
  return s:match("^.*%S", first)
end

--- `s` without the run of characters of `set` at its end ("/" strips trailing slashes).
function M.rstrip(s, set)
  -- anchored: ".*" runs to the end once and steps back to the last character outside set
  return s:match("^.*[^" .. set .. "]") or ""
end

-- How much of a page is searched for its title: the title belongs in <head>, near the
-- start; a title found further in would only decorate an error message.
local TITLE_SCAN = 128 * 1024

--- The text of an HTML page's <title> (any case), trimmed, or nil when there is none.
function M.html_title(body)
  local head = body:sub(1, TITLE_SCAN):lower()
  local _, open_end = head:find("<title>", 1, true)
  if not open_end then return nil end
  local close = head:find("</title>", open_end + 1, true)
  if not close then return nil end
  return M.trim(body:sub(open_end + 1, close - 1))
end

-- \u00HH: how JSON writes a control character, so a line of JSON (cjson leaves C1 and
-- broken UTF-8 as they are) stays JSON, of the same value
local function u_escape(c)
  return ("\\u%04x"):format(c:byte())
end

-- The slow path of escape_controls, for text that is not valid UTF-8: one character at
-- a time, each byte that starts no valid sequence escaped.
local function escape_broken(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    local len = (b < 0x80 and 1) or (b >= 0xC2 and b <= 0xDF and 2) or (b >= 0xE0 and b <= 0xEF and 3)
      or (b >= 0xF0 and b <= 0xF4 and 4) or 0
    local ch = len > 0 and s:sub(i, i + len - 1) or nil
    if ch and (#ch ~= len or not utf8.len(ch)) then ch = nil end
    if ch then
      out[#out + 1] = ch
      i = i + len
    else
      out[#out + 1] = u_escape(s:sub(i, i)) -- the byte as the Latin-1 character it would be
      i = i + 1
    end
  end
  -- the control characters of the now valid text
  return M.escape_controls(table.concat(out))
end

--- True for a code point a terminal would act on or show as nothing: C0 (newline and tab
-- included), DEL, the C1 controls (U+0080-U+009F; a lone 0x9B is CSI to a terminal that
-- reads Latin-1), and the invisible format characters and fillers that reorder, join or
-- hide text: the soft hyphen, the Arabic letter mark, the Mongolian vowel separator, the
-- zero-width characters and the left-to-right and right-to-left marks (U+200B-U+200F),
-- the line and paragraph separators (U+2028, U+2029, which some terminals break lines
-- at), the bidi embeddings and overrides (U+202A-U+202E, which can make a provider's
-- name read backwards), the word joiner and invisible operators, the bidi isolates and
-- deprecated format characters (U+2060-U+206F), the Hangul fillers, the braille blank,
-- the byte order mark, the interlinear annotation characters and the tag characters.
function M.invisible(cp)
  return cp < 0x20 or cp == 0x7F or (cp >= 0x80 and cp < 0xA0) or cp == 0xAD or cp == 0x61C
    or cp == 0x115F or cp == 0x1160 or cp == 0x180E or (cp >= 0x200B and cp <= 0x200F)
    or (cp >= 0x2028 and cp <= 0x202E) or (cp >= 0x2060 and cp <= 0x206F) or cp == 0x2800 or cp == 0x3164
    or cp == 0xFEFF or cp == 0xFFA0 or (cp >= 0xFFF9 and cp <= 0xFFFB) or (cp >= 0xE0000 and cp <= 0xE007F)
end

local function u_escape_char(c)
  local cp = utf8.codepoint(c)
  if not M.invisible(cp) then return nil end
  if cp <= 0xFFFF then return ("\\u%04x"):format(cp) end
  -- beyond the BMP (the tag characters): a surrogate pair, as JSON spells one, so a
  -- line that is JSON stays the same text to a JSON reader
  local v = cp - 0x10000
  return ("\\u%04x\\u%04x"):format(0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
end

--- `s` with every character M.invisible names made visible as \uHHHH, as does every
-- byte of broken UTF-8, so text from a provider cannot move the cursor, clear the
-- screen, ring the bell, start a new line or hide or reorder what a terminal shows.
-- Valid UTF-8 text without them comes back as it is. Linear: one pass per kind of byte.
function M.escape_controls(s)
  if printable(s) then return s end
  if not utf8.len(s) then return escape_broken(s) end
  if not s:find("[%z\1-\31\127\194-\244]") then return s end
  s = s:gsub("[%z\1-\31\127]", u_escape)
  return (s:gsub("[\194-\244][\128-\191]*", u_escape_char))
end

local CONTROL_NAMES = { [0] = "NUL", [9] = "TAB", [10] = "LF", [13] = "CR", [27] = "ESC", [127] = "DEL" }

--- The name of the first C0 control character or DEL in `s` (TAB skipped when `tab_ok`:
-- a header value may hold one), or nil when there is none.
function M.control_char(s, tab_ok)
  local i = s:find(tab_ok and "[%z\1-\8\10-\31\127]" or "[%z\1-\31\127]")
  if not i then return nil end
  local b = s:byte(i)
  return CONTROL_NAMES[b] or ("U+%04X"):format(b)
end

local HEADER_NAME = "^[%w!#$%%&'*+.^_`|~-]+$"

--- True when `s` is an HTTP token (RFC 9110 5.6.2): a header name, a method.
function M.is_token(s)
  return s:match(HEADER_NAME) ~= nil
end

--- The hop-by-hop headers (RFC 9110 7.6.1): they belong to one connection, never to the
-- message a proxy passes on, and connrt never takes them from a connector or a caller.
M.HOP_BY_HOP = { connection = true, ["keep-alive"] = true, ["proxy-connection"] = true, te = true, trailer = true,
  ["transfer-encoding"] = true, upgrade = true }

--- A set of lowercased header names: the hop-by-hop ones and `names` (a list).
function M.hop_by_hop_and(names)
  local set = {}
  for k in pairs(M.HOP_BY_HOP) do set[k] = true end
  for _, k in ipairs(names) do set[k] = true end
  return set
end

--- The request headers `connrt proxy` never passes on (proxy.lua): hop-by-hop, routing
-- and framing (its HTTP client sets them), the caller's credentials (replaced by the
-- connection's), and content coding (its client asks for every coding it can undo).
-- via_proxy.lua sends a `connrt request` carrying one the direct path's way.
M.PROXY_DROPPED = M.hop_by_hop_and({ "proxy-authorization", "proxy-authenticate", "host", "content-length",
  "authorization", "expect", "accept-encoding" })

--- What keeps `name: value` from being one HTTP header line, or nil: a name that is not
-- a token, or a value with a control character but TAB (RFC 9110; CR, LF or NUL would
-- end the header, or the request).
function M.header_problem(name, value)
  if type(name) ~= "string" or not name:match(HEADER_NAME) then
    return '"' .. M.escape_controls(tostring(name)) .. '" is not a header name'
  end
  if type(value) ~= "string" and type(value) ~= "number" then
    return ("the value of header %s is a %s, not a string"):format(name, type(value))
  end
  local bad = M.control_char(tostring(value), true)
  if bad then return ("the value of header %s contains a control character (%s); a header is one line"):format(name, bad) end
  return nil
end

--- The whole content of the file at `path`, or nil and why not ("PATH: No such file or
-- directory", "PATH: Is a directory"). The runtime's one way to read a file a user named.
function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local content, rerr = f:read("a")
  f:close()
  if not content then return nil, path .. ": " .. tostring(rerr) end
  return content
end

--- False when the JSON text `s` has more than `max` values: an upper bound on the
-- tables and strings decoding it makes, counted as its '[', '{' and ',' outside strings
-- (and each escaped quote inside one, a step of the scan). It stops at the first count
-- over max, so it costs at most max + 1 steps of plain finds, whatever the size of s.
function M.json_within(s, max)
  local n, i = 0, 1
  while true do
    local j, _, ch = s:find('([%[{,"])', i)
    if not j then return true end
    if ch == '"' then
      -- to the quote that ends the string: one not escaped by an odd run of backslashes
      local k = j
      while true do
        k = s:find('"', k + 1, true)
        if not k then return true end
        local b = k - 1
        while s:byte(b) == 92 do b = b - 1 end
        if (k - 1 - b) % 2 == 0 then break end
        n = n + 1
        if n > max then return false end
      end
      i = k + 1
    else
      n = n + 1
      if n > max then return false end
      i = j + 1
    end
  end
end

return M
