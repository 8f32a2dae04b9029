--- fuzz/template.lua - harness for the template engine (lua/connrt/template.lua).
--
-- Input: a template, optionally followed by a NUL byte and a JSON object that becomes the
-- first layer of the scope (before fixed layers of fields, token values and a test API
-- answer). Parsing, listing the variables and rendering (plain, and percent-encoded as URL
-- templates are) must give strings or a connector error; a template without "{{" renders
-- as itself, and one whose placeholders all name strings renders as its literal parts and
-- those strings in order.
local cjson = require("cjson.safe")
local errors = require("connrt.errors")
local template = require("connrt.template")
local url = require("connrt.url")

local function check(cond, fmt, ...)
  if not cond then error(string.format(fmt, ...), 2) end
end

local FIXED = {
  { client_id = "cid", region = "eu", base = "https://api.example.com", n = 3, f = 2.5, big = 2 ^ 60,
    yes = true, none = cjson.null },
  { access_token = "at-1", token_type = "bearer", expires_in = 3600, scope = "read write" },
  { user = { email = "a@example.com", id = 42, emails = { { value = "b@example.com" }, cjson.null },
    name = { first = "Ada", ["last-name"] = "L" } }, list = { 1, 2, 3 }, empty = {}, ["0"] = "zero" },
}

-- connrt's parse cache keeps every template it saw; a fuzzer's inputs would fill it
local cache
for i = 1, math.huge do
  local name, value = debug.getupvalue(template.parse, i)
  if not name then break end
  if name == "parsed" then cache = value end
end
assert(type(cache) == "table", "template.parse has no upvalue 'parsed'")

local function connector_error(ok, res)
  if ok then return false end
  check(errors.is(res), "not a connrt error: %s", tostring(res))
  check(res.kind == "connector", "a %s error: %s", res.kind, res.message)
  return true
end

return function(data)
  for k in pairs(cache) do cache[k] = nil end
  local text, json = data:match("^([^%z]*)%z(.*)$")
  local scope = FIXED
  if text then
    local layer = cjson.decode(json)
    if type(layer) == "table" then scope = { layer, FIXED[1], FIXED[2], FIXED[3] } end
  else
    text = data
  end

  local ok, parts = pcall(template.parse, text, "fuzz.template")
  if connector_error(ok, parts) then return end
  local vars = template.variables(text, "fuzz.template")
  local literal, all_strings = {}, true
  for _, p in ipairs(parts) do
    if type(p) == "string" then
      check(p ~= "", "an empty literal part")
      literal[#literal + 1] = p
    else
      check(type(p.path) == "string" and type(p.segs) == "table" and #p.segs > 0, "a malformed placeholder")
      local v = template.lookup(scope, p.segs)
      if type(v) ~= "string" then all_strings = false end
      literal[#literal + 1] = v
    end
  end
  check(template.has_placeholders(text) == (text:find("{{", 1, true) ~= nil), "has_placeholders")
  if #vars == 0 then check(table.concat(literal) == text, "%q without placeholders has other parts", text) end

  local ok2, out = pcall(template.render, text, scope, "fuzz.template")
  if not connector_error(ok2, out) then
    check(type(out) == "string", "render gave a %s", type(out))
    if #vars == 0 then check(out == text, "%q renders as %q", text, out) end
    if all_strings then check(out == table.concat(literal), "%q renders as %q", text, out) end
  end
  local ok3, enc = pcall(template.render, text, scope, "fuzz.template", function(v, _, at_start)
    return at_start and v or url.encode(v)
  end)
  if not connector_error(ok3, enc) then check(type(enc) == "string", "render gave a %s", type(enc)) end
end
