-- A Lua pipeline: run it with `connrt script examples/pipeline.lua CONNECTION [PATH]`.
-- It looks the connection up, calls an API through it (credentials added by connrt,
-- only to the connection's allowed URLs, the token refreshed when needed) and prints
-- what it found. `connrt` is the pipeline API (lua/connrt/api.lua); a plain lua5.4
-- program gets the same with `local connrt = require "connrt"`.
local id, path = arg[1], arg[2] or "/me"
if not id then
  io.stderr:write("usage: connrt script examples/pipeline.lua CONNECTION [PATH]\n")
  return 2
end

local conn = connrt.connection(id)
local info = conn:info()
local r = conn:get(path)
if r.status ~= 200 then
  io.stderr:write(("GET %s answered %d\n"):format(path, r.status))
  return 1
end
print(("%s (%s): %s"):format(info.name, info.connector, r.json and r.json.email or r.body))
return 0
