--- shown.lua - what `connrt request` prints of an upstream's answer, redacted where the
-- secrets are known.
--
-- Directly, that is the command's own process. Through CONNRT_PROXY it is the proxy's
-- worker: it renders the command's standard output with these same functions and sends
-- it whole (proxy.lua, Connrt-Shown), and the command prints it as it came
-- (via_proxy.lua). The command's process knows no secret, so it must transform nothing
-- after the redactor ran: decoding and encoding again, or lowercasing, can each bring a
-- secret back (a number written 7351986.4e1 encoded as the secret's digits, a name
-- lowercased into the secret). One source for both paths, so their output is the same
-- (but for the secrets of other connections a proxy worker knows, and for the order of
-- the keys of a body written again from cjson's reading, which follows Lua's tables:
-- only a body that is not RFC 8259 JSON).
--
--   shown.headers(list)       {lines, map} of an answer's header lines ({name, value}):
--                             "Name: value" lines, and each lowercased name to its values
--                             joined with ", " in order; each redacted whole
--   shown.stdout(resp, form)  the command's standard output for `form`:
--                               "json"     {"status", "headers", "body"} on one line (a
--                                          JSON body as it came, each token that spells
--                                          a secret hidden)
--                               "include"  "HTTP 200", the header lines, a blank line,
--                                          then the body
--                               "body"     the body
--                             resp: {status, header_list, body, json} (Connection:request's)
--   shown.FORMS               the forms, by name
--   shown.MAX_GROWTH          how many times larger than its body an answer's output can be
local log = require("connrt.log")

local M = {}

M.FORMS = { json = true, include = true, body = true }

-- A body of n bytes shown as a JSON string takes at most 6n bytes (\u001b for each
-- byte), and redacting replaces a secret of at least 4 bytes (log.lua) by the 10 of
-- "[redacted]": 15 times its size, and a little for the head.
M.MAX_GROWTH = 16

function M.headers(list)
  local lines, names, joined = {}, {}, {}
  for i, h in ipairs(list) do
    lines[i] = log.redact(h.name .. ": " .. h.value)
    -- redacted before it is lowercased (a key with capitals in a name), and after (below)
    local name = log.redact(h.name):lower()
    if not joined[name] then
      joined[name] = {}
      names[#names + 1] = name
    end
    local values = joined[name]
    values[#values + 1] = log.redact(h.value)
  end
  -- joined, then redacted whole: a key split across two lines of one name is hidden;
  -- each name's values are joined once (linear in the head, however many lines it has)
  local map = {}
  for _, name in ipairs(names) do map[log.redact(name)] = log.redact(table.concat(joined[name], ", ")) end
  return { lines = lines, map = map }
end

-- What a number's spellings are made of (log.NUMBER_CHARS), and how many tokens of a
-- body are checked between two turns of a proxy worker's others.
local NUMBER_CHARS = log.NUMBER_CHARS
local PAUSE_EVERY = 4096

-- The checks of one JSON body, for --json (M.stdout): which of its numbers and strings
-- spell a secret. A number is looked at only when a secret has a spelling a number can
-- hold (a secret of digits); the strings only when the text holds a backslash or a
-- secret somewhere: without a backslash each string is its text, and the redactor's views
-- of a text (percent, '+') decode each part of it as they would decode that part alone,
-- so a search of the whole text finds what a search of each string would. Every
-- PAUSE_EVERY values, a proxy worker's other requests get their turn: sys.sleep(0) yields
-- there, and does nothing anywhere else; a secret registered meanwhile is another
-- connection's (the request's own were known before it was sent).
local function checks(text)
  local json = require("connrt.json")
  local numeric = log.spelled_within(NUMBER_CHARS)
  local strings_clean = not text:find("\\", 1, true) and not log.holds(text)
  local sleep, values = require("connrt.sys").sleep, 0
  -- what was found of each exact value and each run of a string already looked at (a
  -- body repeats its numbers), forgotten when the secrets may have changed
  local known, runs_known = {}, {}
  local c = {}
  function c.turn()
    values = values + 1
    if values % PAUSE_EVERY == 0 then
      sleep(0)
      numeric = log.spelled_within(NUMBER_CHARS)
      known, runs_known = {}, {}
    end
  end
  -- number `x` (its exact value `exact` in plain digits, when the text's spelling is
  -- known) spells a secret: at that value, or in a spelling a JSON writer gives it
  function c.number(x, exact)
    if not numeric then return false end
    local key = exact or ("%.17g"):format(x)
    if known[key] == nil then known[key] = (exact ~= nil and log.holds(exact)) or log.value_shows_secret(x) end
    return known[key]
  end
  -- string `v` (decoded) spells a secret: in the redactor's views, or, in any run of it
  -- a reader may take for a number (the whole string, a number in JSON inside it, or in
  -- a sentence; as it is or percent-decoded: log.any_number_run), as a number does
  function c.string(v)
    if not strings_clean and log.holds(v) then return true end
    if not numeric then return false end
    return log.any_number_run(v, function(run)
      c.turn()
      if runs_known[run] == nil then
        local x, exact = json.reader_number(run)
        runs_known[run] = x ~= nil and c.number(x, exact)
      end
      return runs_known[run]
    end)
  end
  return c
end

-- String `v`, which spells a secret (checks' c.string), redacted; "[redacted]" when
-- the redactor finds nothing to hide in it (it spells the secret as a number).
local function hidden_string(v)
  local hidden = log.redact(v)
  return hidden ~= v and hidden or "[redacted]"
end

-- A decoded JSON value with every secret hidden before it is encoded again: strings and
-- keys redacted, and a number one of whose spellings is a secret shown as "[redacted]"
-- (the output stays JSON; 7351986.4e1 is the number 73519864, the digits of a key).
local function hide(x, c)
  local t = type(x)
  if t == "string" then
    c.turn()
    if not c.string(x) then return x end
    return hidden_string(x)
  end
  if t == "number" then
    c.turn()
    return c.number(x) and "[redacted]" or x
  end
  if t ~= "table" then return x end
  local out = {}
  for k, y in pairs(x) do
    out[type(k) == "string" and hide(k, c) or k] = hide(y, c)
  end
  return setmetatable(out, getmetatable(x))
end

-- A map of strings as a JSON object, its keys in order (the same output each time).
local function sorted_object(map, encode)
  local names, out = {}, {}
  for k in pairs(map) do names[#names + 1] = k end
  table.sort(names)
  for i, k in ipairs(names) do out[i] = encode(k) .. ":" .. encode(map[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end

function M.stdout(resp, form)
  if form == "json" then
    local cjson = require("cjson")
    local body, body_text = resp.json, nil
    if body == nil then body = resp.body end
    -- a JSON body goes out as it came, its blanks dropped and each token that spells a
    -- secret written again hidden: a number one of whose spellings is a secret as the
    -- string "[redacted]", a string as itself redacted (or as "[redacted]" when it spells
    -- a secret as a number, or as JSON inside it). cjson would write every number again
    -- to 14 digits, the keys in any order and only the last value of a key given twice, so
    -- each token is checked as the text spells it: each number at its exact value and as
    -- a reader of doubles gets it (a double holds 17 digits). A body that is not JSON as
    -- RFC 8259 writes it, or holds a number too long to write out, is written again from
    -- cjson's reading, with every secret hidden (hide); one that still spells a secret
    -- across its values (a secret "1,2" in [1,2]) is shown as "[redacted]" whole, so the
    -- line stays JSON.
    local c = checks(resp.body or "")
    if resp.json ~= nil then
      local json = require("connrt.json")
      local decode = require("cjson.safe").decode
      body_text = json.minified(resp.body, function(tok)
        c.turn()
        local exact = json.number_value(tok)
        if exact == nil then return false end
        return not c.number(tonumber(tok), exact) or '"[redacted]"'
      end, function(str)
        c.turn()
        local v = decode(str)
        if type(v) ~= "string" then return false end
        if not c.string(v) then return true end
        return cjson.encode(hidden_string(v))
      end)
    end
    body_text = body_text or cjson.encode(hide(body, c))
    if log.shows_secret(body_text) then body_text = '"[redacted]"' end
    local line = ('{"status":%d,"headers":%s,"body":%s}'):format(resp.status,
      sorted_object(M.headers(resp.header_list).map, cjson.encode), body_text)
    -- the whole line redacted again and escaped, as every line connrt prints (log.out)
    return log.shown_line(line) .. "\n"
  end
  local body = log.redact(resp.body)
  if form ~= "include" then return body end
  local out = { ("HTTP %d\r\n"):format(resp.status) }
  -- a header line as a terminal can show it: an upstream's control characters escaped
  for _, line in ipairs(M.headers(resp.header_list).lines) do
    out[#out + 1] = log.shown_line(line) .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body
  return table.concat(out)
end

return M
