--- flow/fields.lua - the fields way of connecting (auth = "fields": an API key or other
-- credentials the user types in): no token and no grant, so the connect is the shared
-- last steps alone, the test API with the fields deciding whether they are kept.
local finish = require("connrt.flow.finish")

local M = {}

--- Connects `ctx` with its field values alone. Returns what flow/finish.lua does.
function M.run(ctx)
  return finish.run(ctx)
end

return M
