--- fuzz/callback.lua - harness for the callback's query parser: url.form_decode, which
-- The flow (flow/code.lua) runs on the query of the request the listener caught (and of a pasted
-- address), then hooks.callback of a connector that reads it (connectors/quickbooks.lua).
--
-- Input: the query string. The decoded map and list must hold strings only, the map the
-- first value of each name, and encoding the list again must decode to the same list;
-- the state check flow/browser.lua makes must hold only for the very state; the hook must keep a
-- value or refuse with a connector error.
local connector = require("connrt.connector")
local errors = require("connrt.errors")
local code = require("connrt.flow.code")
local url = require("connrt.url")

local function check(cond, fmt, ...)
  if not cond then error(string.format(fmt, ...), 2) end
end

local STATE = "Xq3v2fQ9d0lZ8wYbC1eR7tUoP4sKjHgN6aMzVxWcB5E" -- 43 characters of base64url, as oauth.new_state
local quickbooks = connector.load(_G.FUZZ_ROOT .. "/connectors/quickbooks.lua")

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i][1] ~= b[i][1] or a[i][2] ~= b[i][2] then return false end
  end
  return true
end

return function(data)
  local map, list = url.form_decode(data)
  check(type(map) == "table" and type(list) == "table", "form_decode gave no map and list")
  local first = {}
  for _, p in ipairs(list) do
    check(type(p[1]) == "string" and type(p[2]) == "string", "a name or value that is not a string")
    if first[p[1]] == nil then first[p[1]] = p[2] end
  end
  for k, v in pairs(map) do
    check(type(k) == "string" and first[k] == v, "map[%q] is not the first value", tostring(k))
  end
  for k in pairs(first) do check(map[k] ~= nil, "map lacks %q", k) end
  local _, again = url.form_decode(url.form_encode(list))
  check(same_list(list, again), "%q: encoding the decoded pairs again decodes to other pairs", data)

  -- flow/browser.lua's await_callback: the callback is taken when q.state == state
  if map.state == STATE then
    local found = false
    for part in data:gmatch("[^&]+") do
      local k, v = part:match("^([^=]*)=?(.*)$")
      if url.decode(k, true) == "state" and url.decode(v, true) == STATE then found = true break end
    end
    check(found, "%q carries the state without a state=STATE pair", data)
  end

  local ok, v = pcall(code.callback_values, quickbooks, map)
  if ok then
    check(type(v) == "table" and type(v.realm_id) == "string" and v.realm_id:match("^%d+$"),
      "hooks.callback kept %s", tostring(v and v.realm_id))
  else
    check(errors.is(v) and v.kind == "connector", "not a connector error: %s", tostring(v))
  end
end
