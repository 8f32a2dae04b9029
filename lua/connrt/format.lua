--- format.lua - words and tables for people: relative times ("in 42 min", "expired 5
-- min ago") and aligned columns that measure text as a terminal shows it (UTF-8, wide
-- and combining characters), with control characters made harmless.
--
--   format.ago(t, now)              "5 min ago", "in 3 h", "just now"; "never" for nil
--   format.expiry(expires_at, now)  "in 42 min", "expired 5 min ago"; "unknown" for nil
--   format.utc(t)                   "2024-05-01T12:00:00Z"; "never" for nil
--   format.value(v)                 a kept value as text: 8726400, not 8726400.0
--   format.table(rows)              rows[1] is the header; returns the lines joined by
--                                   "\n" (no trailing newline, no trailing spaces)
--   format.width(s), format.clean(s)
--
-- `now` defaults to os.time(); all times are seconds since the epoch.
local text_of = require("connrt.text")

local M = {}

-- Whole units, rounded down: a token that expires in 59 min 59 s is "in 59 min", never
-- more time than there is.
local function span(d)
  d = math.floor(math.abs(d))
  if d < 60 then return ("%d s"):format(d) end
  if d < 3600 then return ("%d min"):format(d // 60) end
  if d < 48 * 3600 then return ("%d h"):format(d // 3600) end
  local days = d // 86400
  return ("%d %s"):format(days, days == 1 and "day" or "days")
end

--- A time relative to `now`: "in 5 min" (future), "5 min ago" (past), "just now"
-- (within a second), "never" (nil).
function M.ago(t, now)
  if t == nil then return "never" end
  local d = t - (now or os.time())
  if math.abs(d) < 1 then return "just now" end
  if d > 0 then return "in " .. span(d) end
  return span(d) .. " ago"
end

--- A token's expiry relative to `now`: "in 42 min", "expired 5 min ago", "expired just
-- now" (at the very second), "unknown" (nil: the provider did not say; the token may
-- still end at any time).
function M.expiry(expires_at, now)
  if expires_at == nil then return "unknown" end
  local d = expires_at - (now or os.time())
  if d >= 1 then return "in " .. span(d) end
  if d > -1 then return "expired just now" end
  return "expired " .. span(d) .. " ago"
end

--- An absolute time in UTC, ISO 8601: "2024-05-01T12:00:00Z"; "never" for nil.
function M.utc(t)
  if t == nil then return "never" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

--- A value kept with a connection, as text. JSON has one number type, so a kept integer
-- comes back from the store as a float: it is written as the integer it is (the way
-- templates and --json write it), not "8726400.0".
function M.value(v)
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  return tostring(v)
end

--- A value a provider answered with, as a message shows it: JSON-like, cut short
-- (cjson's null, a light userdata, is "null").
function M.shown(v)
  if v == nil or type(v) == "userdata" then return "null" end
  if type(v) == "string" then return ("%q"):format(require("connrt.log").clip(v, 80)) end
  if type(v) == "table" then return "an object or array" end
  return M.value(v)
end

-- Code point ranges a terminal shows two columns wide (East Asian wide and fullwidth,
-- emoji), and ranges it shows zero wide (combining marks, zero-width characters).
local WIDE = {
  { 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF },
  { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF },
  { 0xFE30, 0xFE4F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F },
  { 0x1F900, 0x1F9FF }, { 0x20000, 0x2FFFD }, { 0x30000, 0x3FFFD },
}
local ZERO = {
  { 0x0300, 0x036F }, { 0x0483, 0x0489 }, { 0x0591, 0x05BD }, { 0x0610, 0x061A },
  { 0x064B, 0x065F }, { 0x200B, 0x200F }, { 0x202A, 0x202E }, { 0x2060, 0x2064 },
  { 0x20D0, 0x20FF }, { 0xFE00, 0xFE0F }, { 0xFE20, 0xFE2F }, { 0xFEFF, 0xFEFF },
}

local function within(cp, ranges)
  for _, r in ipairs(ranges) do
    if cp >= r[1] and cp <= r[2] then return true end
  end
  return false
end

--- Text made safe to print in a table: control characters (C0, DEL, C1: newlines,
-- escape sequences), bidi controls and line separators become "?", and so does every byte that is not valid UTF-8. Values
-- such as account names come from the provider and must not move the cursor or
-- restyle the terminal.
function M.clean(s)
  s = tostring(s == nil and "" or s)
  -- valid UTF-8 without C0, DEL or a lead byte of C1 (checked in C): nothing to change
  if utf8.len(s) and not s:find("[%z\1-\31\127\194-\244]") then return s end
  local out, i = {}, 1
  while i <= #s do
    local b = s:byte(i)
    -- the length a lead byte announces; utf8.len then rejects overlong forms,
    -- surrogates, code points past U+10FFFF and missing continuation bytes
    local n = (b < 0x80 and 1) or (b >= 0xC2 and b <= 0xDF and 2) or (b >= 0xE0 and b <= 0xEF and 3)
      or (b >= 0xF0 and b <= 0xF4 and 4) or 0
    local ch = n > 0 and s:sub(i, i + n - 1) or nil
    if ch and (#ch ~= n or not utf8.len(ch)) then ch = nil end
    if not ch then
      out[#out + 1] = "?"
      i = i + 1
    else
      local cp = utf8.codepoint(ch)
      -- and every character text.escape_controls makes visible (text.invisible)
      if text_of.invisible(cp) then
        ch = "?"
      end
      out[#out + 1] = ch
      i = i + n
    end
  end
  return table.concat(out)
end

-- The columns of text format.clean returned: ASCII is one column a byte; below U+0300
-- no character is wide or zero wide.
local function width_clean(s)
  if not s:find("[\128-\255]") then return #s end
  local w = 0
  for _, cp in utf8.codes(s) do
    if cp < 0x300 then
      w = w + 1
    elseif not within(cp, ZERO) then
      w = w + (within(cp, WIDE) and 2 or 1)
    end
  end
  return w
end

--- The number of terminal columns `s` takes (after format.clean).
function M.width(s)
  return width_clean(M.clean(s))
end

--- Rows as aligned columns. `rows[1]` is the header; a cell is any value (nil is
-- empty); rows may be shorter than the header. Columns are separated by two spaces;
-- the last column is not padded. Returns the lines joined by "\n", without a final
-- newline, so `log.out("%s", format.table(rows))` prints it.
function M.table(rows)
  local widths, cells, cell_widths, ncol = {}, {}, {}, 0
  for r, row in ipairs(rows) do
    ncol = math.max(ncol, #row)
    cells[r], cell_widths[r] = {}, {}
  end
  for r, row in ipairs(rows) do
    for c = 1, ncol do
      local text = M.clean(row[c])
      cells[r][c] = text
      cell_widths[r][c] = width_clean(text)
      widths[c] = math.max(widths[c] or 0, cell_widths[r][c])
    end
  end
  local lines = {}
  for r = 1, #rows do
    local parts = {}
    for c = 1, ncol do
      local text = cells[r][c]
      parts[c] = c < ncol and (text .. string.rep(" ", widths[c] - cell_widths[r][c])) or text
    end
    lines[r] = text_of.rstrip(table.concat(parts, "  "), "%s") -- linear, unlike gsub("%s+$")
  end
  return table.concat(lines, "\n")
end

--- A connection's status as list, show and the proxy's health answer give it: "needs
-- reconnect" when a refresh was refused, "expired" when the token is past its expiry and
-- cannot be refreshed, else "ok".
function M.status(rec)
  if rec.needs_reconnect then return "needs reconnect" end
  if rec.expires_at and rec.expires_at <= os.time() and not rec.has_refresh_token then return "expired" end
  return "ok"
end

return M
