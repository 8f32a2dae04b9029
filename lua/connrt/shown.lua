--- shown.lua - what `connrt request` prints of an upstream's answer, redacted where the
-- secrets are known.
--
-- Directly, that is the command's own process. Through CONNRT_PROXY it is the proxy's
-- worker: it renders the command's standard output with these same functions and sends
-- it whole (proxy.lua, Connrt-Shown), and the command prints it as it came
-- (via_proxy.lua). The command's process knows no secret, so it must transform nothing
-- after the redactor ran: decoding and encoding again, or lowercasing, can each bring a
-- secret back (a number written 7351986.4e1 encoded as the secret's digits, a name
-- lowercased into the secret). One source for both paths, so their output is the same.
--
--   shown.headers(list)       {lines, map} of an answer's header lines ({name, value}):
--                             "Name: value" lines, and each lowercased name to its values
--                             joined with ", " in order; each redacted whole
--   shown.stdout(resp, form)  the command's standard output for `form`:
--                               "json"     {"status", "headers", "body"} on one line
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

-- A decoded JSON value with every secret hidden before it is encoded again: strings and
-- keys redacted, and a number whose encoding spells a secret shown as "[redacted]" (the
-- output stays JSON; 7351986.4e1 would be encoded as the digits of a key 73519864).
local function hide(v, encode)
  local t = type(v)
  if t == "string" then return log.redact(v) end
  if t == "number" then
    local s = encode(v)
    return log.redact(s) == s and v or "[redacted]"
  end
  if t ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    out[type(k) == "string" and log.redact(k) or k] = hide(x, encode)
  end
  return setmetatable(out, getmetatable(v))
end

function M.stdout(resp, form)
  if form == "json" then
    local cjson = require("cjson")
    local body = resp.json
    if body == nil then body = resp.body end
    local doc = { status = resp.status, headers = M.headers(resp.header_list).map, body = hide(body, cjson.encode) }
    -- the whole line redacted again and escaped, as every line connrt prints (log.out)
    return log.shown_line(cjson.encode(doc)) .. "\n"
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
