-- Throughput from a Lua pipeline: N GETs through one connection, one process.
-- usage: connrt script bench/throughput.lua CONNECTION URL N   (prints {"seconds": S})
local id, target, n = arg[1], arg[2], tonumber(arg[3])
local sys = require("connrt.sys")
local conn = connrt.connection(id)
conn:get(target) -- warm: connection opened, token checked
local t0 = sys.monotime()
for _ = 1, n do
  local r = conn:get(target)
  if r.status ~= 200 then error("status " .. r.status) end
end
print(('{"seconds": %.6f}'):format(sys.monotime() - t0))
return 0
