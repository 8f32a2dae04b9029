--- template.lua - the `{{name}}` template engine of connectors.
--
-- A template is text with placeholders `{{path}}`, where a path is names joined by dots
-- (`user.email`) and numeric segments index JSON arrays from 0 (`emails.0.value`).
-- Values come from a scope: an ordered list of tables looked up first to last (the short
-- form, `{{id}}`), or, when the path starts with a namespace (`{{test.id}}`,
-- `{{values.id}}`, `{{fields.region}}`, `{{token.scope}}`), from that one layer alone, so
-- a kept value cannot hide the test API's field of the same name. A placeholder whose
-- value does not exist is an error naming the variable and the connector key the
-- template came from; it never becomes an empty string.
local NULL = require("cjson").null

local M = {}

local PATH = "^[%a_][%w_%-]*$"

local function fail(where, fmt, ...)
  require("connrt.errors").fail_at("connector", "invalid_connector", where, nil, fmt, ...)
end

--- Splits a template into literal strings and placeholder paths. Cached per text.
-- Plain finds only: each '{{' is matched with the first '}}' after it, so a connector's
-- text of any shape is read once (a pattern like "{{(.-)}}" rescans to the end from
-- every unclosed '{{' and is quadratic).
local parsed = {}
function M.parse(text, where)
  local hit = parsed[text]
  if hit then return hit end
  local trim = require("connrt.text").trim
  local parts, i = {}, 1
  while true do
    local s = text:find("{{", i, true)
    if not s then break end
    local e = text:find("}}", s + 2, true)
    if not e then fail(where or "template", "'{{' without a matching '}}' in %q", text) end
    if s > i then parts[#parts + 1] = text:sub(i, s - 1) end
    local inner = text:sub(s + 2, e - 1)
    local path = trim(inner)
    local segs = {}
    for seg in (path .. "."):gmatch("([^.]*)%.") do
      if not (seg:match(PATH) or seg:match("^%d+$")) then
        fail(where or "template", "invalid placeholder {{%s}} in %q", inner, text)
      end
      segs[#segs + 1] = seg
    end
    parts[#parts + 1] = { path = path, segs = segs }
    i = e + 2
  end
  if i <= #text then parts[#parts + 1] = text:sub(i) end
  parsed[text] = parts
  return parts
end

--- The text with each placeholder replaced by a space, in one pass; a '{{' without a
-- '}}' after it stays as it is.
function M.literal(text)
  local out, i = {}, 1
  while true do
    local s = text:find("{{", i, true)
    local e = s and text:find("}}", s + 2, true)
    if not e then break end
    out[#out + 1] = text:sub(i, s - 1)
    out[#out + 1] = " "
    i = e + 2
  end
  out[#out + 1] = text:sub(i)
  return table.concat(out)
end

--- The placeholder paths of a template, in order.
function M.variables(text, where)
  local vars = {}
  for _, p in ipairs(M.parse(text, where)) do
    if type(p) == "table" then vars[#vars + 1] = p.path end
  end
  return vars
end

--- True when the text has at least one placeholder.
function M.has_placeholders(text)
  return type(text) == "string" and text:find("{{", 1, true) ~= nil
end

-- A numeric segment indexes an array from 0; in anything else it is a key like any other.
local function step(value, seg)
  if type(value) ~= "table" then return nil end
  if value[1] ~= nil and seg:find("^%d+$") then return value[tonumber(seg) + 1] end
  return value[seg]
end

-- The layers of a scope, in the order the short form looks them up, and which of them
-- have a namespace. `client` holds client_id (and, for revoke and exchange requests,
-- client_secret), which have no namespace of their own.
local LAYERS = { "token", "client", "fields", "values", "test" }
M.NAMESPACES = { token = true, fields = true, values = true, test = true }
local WHAT = { token = "the token", fields = "the fields", values = "the kept values",
  test = "the test API's answer" }

--- A scope from named layers (`token`, `client`, `fields`, `values`, `test`; each a
-- table or nil): an array in lookup order, with `ns` mapping each namespace given to
-- its layer. A namespace not given is not known where the scope is used (`{{test.X}}`
-- outside name and unique_id).
function M.scope(layers)
  local out, ns, names = {}, {}, {}
  for _, name in ipairs(LAYERS) do
    local l = layers[name]
    if l ~= nil then
      out[#out + 1] = l
      names[#out] = name
      if M.NAMESPACES[name] then ns[name] = l end
    end
  end
  out.ns, out.names = ns, names
  return out
end

--- The name of the layer (`token`, `client`, `fields`, ...) a placeholder path is found
-- in, by the rules M.lookup follows; nil when it is in none or the scope was not made
-- by M.scope.
function M.layer_of(scope, path)
  local segs = {}
  for seg in path:gmatch("[^.]+") do segs[#segs + 1] = seg end
  local names = scope.names
  if not names then return nil end
  if scope.ns and segs[2] ~= nil and M.NAMESPACES[segs[1]] then
    return M.lookup(scope, segs) ~= nil and segs[1] or nil
  end
  for i = 1, #scope do
    if M.lookup({ scope[i] }, segs) ~= nil then return names[i] end
  end
  return nil
end

--- The namespace and the name a placeholder path starts with: "fields.region" ->
-- "fields", "region"; "user.email" -> nil, "user" (the short form). A namespace alone
-- (`{{token}}`, a field of that name) is the short form too.
function M.split(path)
  local first, second = path:match("^([^.]+)%.([^.]+)")
  if first and M.NAMESPACES[first] then return first, second end
  return nil, path:match("^[^.]+")
end

--- Looks a path up in a scope (array of tables, first match wins; a namespaced path in
-- its namespace's layer alone, when the scope has namespaces). Returns the value or nil.
function M.lookup(scope, segs)
  local ns = scope.ns
  if ns and segs[2] ~= nil and M.NAMESPACES[segs[1]] then
    local v = ns[segs[1]]
    for i = 2, #segs do
      v = step(v, segs[i])
      if v == nil then return nil end
    end
    if v == NULL then return nil end
    return v
  end
  local single = segs[2] == nil and segs[1]
  for i = 1, #scope do
    local v = scope[i]
    if v == nil then break end -- as ipairs would
    if single then
      -- one name ({{access_token}}), the usual case: a plain field of the layer
      v = step(v, single)
    else
      for _, seg in ipairs(segs) do
        v = step(v, seg)
        if v == nil then break end
      end
    end
    if v ~= nil and v ~= NULL then return v end
  end
  return nil
end

local function scalar(v, path, where)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
      return string.format("%d", v)
    end
    return tostring(v)
  end
  if t == "boolean" then return tostring(v) end
  fail(where, "{{%s}} is %s, not a single value", path, t == "table" and "an object or array" or t)
end

-- The names a placeholder could have used here: those of the namespace it names, or of
-- every layer for the short form.
local function known_names(scope, segs)
  local layers = scope
  local space = scope.ns and segs[2] ~= nil and M.NAMESPACES[segs[1]] and segs[1]
  if space then
    if scope.ns[space] == nil then return nil, space end
    layers = { scope.ns[space] }
  end
  local names, seen = {}, {}
  for _, layer in ipairs(layers) do
    for k in pairs(layer) do
      if type(k) == "string" and not seen[k] then seen[k] = true; names[#names + 1] = k end
    end
  end
  table.sort(names)
  return table.concat(names, ", "), space
end

--- Renders a template. `scope` is an array of tables; `where` names the connector key
-- for errors; `encode(value, path, at_start)`, when given, is applied to every
-- substituted value (URLs use percent-encoding so a value cannot change the URL's
-- structure; `at_start` is true for a placeholder that begins the text). `key`, when
-- given, is appended to `where` in errors (built only when there is one).
function M.render(text, scope, where, encode, key)
  local parts = M.parse(text, where)
  local out = {}
  for i = 1, #parts do
    local p = parts[i]
    if type(p) == "string" then
      out[i] = p
    else
      local v = M.lookup(scope, p.segs)
      if v == nil or type(v) ~= "string" then
        local at = key and (where .. "." .. key) or where
        if v == nil then
          local have, space = known_names(scope, p.segs)
          if not have then
            fail(at, "{{%s}} names %s, which is not known here", p.path, WHAT[space])
          end
          fail(at, "{{%s}} names a value that does not exist (%s here: %s)", p.path,
            space and (space .. " names") or "values", have ~= "" and have or "none")
        end
        v = scalar(v, p.path, at)
      end
      if encode then v = encode(v, p.path, i == 1) or v end
      out[i] = v
    end
  end
  return table.concat(out)
end

--- Renders a map of names to templates into an array of {name, value} pairs, sorted by
-- name so requests are built the same way every time. `where` prefixes each key in errors.
function M.render_pairs(map, scope, where, encode)
  if map == nil or next(map) == nil then return {} end
  local names = {}
  for k in pairs(map) do names[#names + 1] = k end
  if #names > 1 then table.sort(names) end
  local out = {}
  for i, k in ipairs(names) do
    out[i] = { k, M.render(tostring(map[k]), scope, where, encode, k) }
  end
  return out
end

--- Renders every string of a (possibly nested) table of templates; keys name `where`.
function M.render_table(t, scope, where, encode)
  local out = {}
  for k, v in pairs(t) do
    local w = where .. "." .. tostring(k)
    if type(v) == "string" then
      out[k] = M.render(v, scope, w, encode)
    elseif type(v) == "table" then
      out[k] = M.render_table(v, scope, w, encode)
    else
      out[k] = v
    end
  end
  return out
end

return M
