--- json.lua - JSON as connrt reads and writes it: the settings of both cjson modules
-- (each keeps its own), made once when connrt's first module loads (log.lua requires
-- this), and the reading of a JSON body a caller gives.
--
--   json.body(text)  the value of a JSON body a caller gives (`connrt request
--                    --json-body`, the proxy's Connrt-Json), or nil and why not
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
  if v == nil then return nil, "not valid JSON" end
  if not finite(v) then return nil, "a number too large for JSON (1e999 and the like)" end
  return v
end

return M
