-- Runs a piece of Lua in a child lua5.4 under two bounds that only catch a hang, never
-- time a result (make test holds no timed assertions):
--   * an instruction budget proportional to the input (PER_BYTE instructions per byte,
--     debug.sethook's count hook): deterministic, and it catches work in Lua that grows
--     faster than the input;
--   * a CPU-time limit (ulimit -t, CPU_SECONDS): work inside C is invisible to the
--     instruction count (a Lua pattern backtracks inside one string.find call, a string
--     rebuilt per hit is one concatenation), so a parser that is quadratic or cubic there
--     runs into this limit instead of hanging the suite.
-- The child has the runtime's Lua layer and the build's C core (connrt.so) on its paths.
local h = require("support.helpers")

local M = { CPU_SECONDS = 20, PER_BYTE = 200 }

local CHILD = [==[
package.path = %q .. "/lua/?.lua;" .. %q .. "/spec/?.lua;" .. package.path
package.cpath = %q .. "/?.so;" .. package.cpath
MB = 1024 * 1024
local exceeded = false
local function case()
%s
end
debug.sethook(function()
  exceeded = true
  error("instruction budget exceeded", 2)
end, "", %d)
local ok, err = pcall(case)
debug.sethook()
local result = io.open(%q, "w")
if exceeded then result:write("over the instruction budget") result:close() os.exit(3) end
if not ok then result:write("error: ", tostring(type(err) == "table" and err.message or err)) result:close() os.exit(2) end
result:write("done")
result:close()
]==]

--- Runs `code` (the body of a function; MB is 1048576) on input of about `size` bytes.
-- Returns {ok = true} when it finished within both bounds, else {ok = false, why}.
function M.run(code, size)
  local dir = h.tmpdir()
  local budget = math.max(1000000, math.floor(M.PER_BYTE * size))
  h.write(dir .. "/case.lua", CHILD:format(h.ROOT, h.ROOT, h.BUILD, code, budget, dir .. "/result"))
  -- what the case prints (log lines of a megabyte) goes nowhere; the result to a file
  local cmd = ("ulimit -t %d; cd %s && exec %s %s/case.lua >/dev/null 2>%s/err </dev/null"):format(
    M.CPU_SECONDS, h.shell_quote(h.ROOT), h.LUA, dir, dir)
  local _, _, status = os.execute("sh -c " .. h.shell_quote(cmd))
  local out = h.read(dir .. "/result") or ""
  local err = (h.read(dir .. "/err") or ""):sub(1, 2000)
  h.rmdir(dir)
  if out == "done" and status == 0 then return { ok = true } end
  local why = out ~= "" and out or ("exit " .. tostring(status) ..
    ((status == 152 or status == 137) and (" (killed at the CPU limit of " .. M.CPU_SECONDS .. " s)") or ""))
  return { ok = false, why = why .. (err ~= "" and ("\nstderr: " .. err) or "") }
end

return M
