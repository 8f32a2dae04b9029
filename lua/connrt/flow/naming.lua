--- flow/naming.lua - a new connection's name and unique id, rendered from the
-- connector's `name` and `unique_id` templates with the test API's answer. The unique
-- id tells accounts apart (a second connect of the same account updates the first), so
-- an empty one fails the connect; both are bounded, and hold no secret.
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local log = require("connrt.log")
local template = require("connrt.template")

local M = {}

--- The name and unique id in `scope` (template.scope with the test API's answer).
function M.render(c, scope)
  local name = template.render(c.name, scope, c.path .. ": name")
  local unique_id = template.render(c.unique_id, scope, c.path .. ": unique_id")
  if unique_id == "" then
    errors.raise("provider", "%s: unique_id rendered empty; cannot tell accounts apart", c.path)
  end
  -- both are kept in clear and printed by commands that know no secret (connrt list): a
  -- name that spells one (a test API that echoes a key) is kept as connrt would show it,
  -- redacted; a unique id that does fails the connect (redacted, two accounts could
  -- become one)
  if #unique_id <= limits.UNIQUE_ID_BYTES and log.value_shows_secret(unique_id, true) then
    errors.fail("provider", "bad_answer", "%s: unique_id rendered from the test API's answer carries a secret of the "
      .. "connection, and it would be kept in clear; nothing was saved", c.path)
  end
  for _, p in ipairs({ { "name", name, limits.NAME_BYTES }, { "unique_id", unique_id, limits.UNIQUE_ID_BYTES } }) do
    if #p[2] > p[3] then
      errors.fail("provider", "too_big", "%s: %s rendered %d bytes (from the test API's answer), more than the %d bytes connrt "
        .. "keeps; nothing was saved", c.path, p[1], #p[2], p[3])
    end
  end
  -- (kept once it is known to be small)
  return log.kept(name), unique_id
end

return M
