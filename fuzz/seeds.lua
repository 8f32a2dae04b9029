--- fuzz/seeds.lua - writes the fuzz harnesses' seed corpora: lua5.4 fuzz/seeds.lua DIR
--
-- From the spec fixtures (spec/fixtures/providers/*.json: token, refresh, exchange and
-- error responses), from the string literals of the specs and connectors (URLs, allowed
-- URLs, templates, callback queries, raw requests), and a few hand-written hostile
-- inputs. Each corpus is DIR/NAME/, one file per input, rewritten on every run.
local cjson = require("cjson")

local dir = assert(arg[1], "usage: lua5.4 fuzz/seeds.lua DIR")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function ls(pattern)
  local out = {}
  local p = io.popen("ls " .. pattern .. " 2>/dev/null")
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local corpora = { listener = {}, callback = {}, template = {}, url = {}, token = {} }
local seen = {}
local function add(name, s)
  local key = name .. "\0" .. s
  if seen[key] then return end
  seen[key] = true
  table.insert(corpora[name], s)
end

-- every string literal of a Lua source, evaluated (escapes and all)
local function literals(src)
  local out, i = {}, 1
  while true do
    local s = src:find("[\"']", i)
    if not s then break end
    local q, j = src:sub(s, s), s + 1
    while j <= #src do
      local c = src:sub(j, j)
      if c == "\\" then j = j + 2
      elseif c == q or c == "\n" then break
      else j = j + 1 end
    end
    if src:sub(j, j) == q then
      local f = load("return " .. src:sub(s, j))
      local ok, v = pcall(f or error)
      if ok and type(v) == "string" then out[#out + 1] = v end
    end
    i = j + 1
  end
  return out
end

-- token responses: "STATUS CONTENT-TYPE\nBODY", as fuzz/token.lua reads them
local JSON = "application/json"
local function token(status, ctype, body) add("token", status .. " " .. ctype .. "\n" .. body) end
local function json_body(v)
  return (cjson.encode(v):gsub('"%$([%u_]+)"', function(n) return '"' .. n:lower() .. '-value"' end))
end
for _, path in ipairs(ls("spec/fixtures/providers/*.json")) do
  local doc = cjson.decode(read(path))
  local t = doc.token
  if t then
    if t.body then token(200, JSON, json_body(t.body)) end
    if t.form then
      local parts = {}
      for k, v in pairs(t.form) do parts[#parts + 1] = k .. "=" .. tostring(v):gsub("^%$", "") end
      table.sort(parts)
      token(200, "application/x-www-form-urlencoded", table.concat(parts, "&"))
    end
    if t.error then token(t.error.status or 400, JSON, json_body(t.error.body)) end
  end
  for _, k in ipairs({ "refresh", "exchange" }) do
    if doc[k] and doc[k].body then token(200, JSON, json_body(doc[k].body)) end
  end
end
token(200, "text/plain", "access_token=a&expires_in=3600&scope=x+y")
token(200, "", '{"access_token":"a","expires_in":"60","scope":["a","b"],"error":null}')
token(502, "text/html; charset=utf-8", "<html><title>Bad Gateway</title></html>")
token(200, JSON, '{"access_token":"a","expires_in":1e300,"token_type":{}}')
token(200, JSON, '{"access_token":"a","expires_in":NaN,"refresh_token":null,"id_token":7}')
token(400, JSON, '{"error":{"message":"expired","type":"OAuthException","code":100}}')
token(200, "application/x-www-form-urlencoded", "access_token=%00%ZZ&expires_in=-1&&=&error_description=+")

-- strings from the specs and connectors
local sources = ls("spec/*.lua")
for _, p in ipairs(ls("connectors/*.lua")) do sources[#sources + 1] = p end
for _, p in ipairs(ls("examples/*.lua")) do sources[#sources + 1] = p end
local urls = {}
for _, path in ipairs(sources) do
  for _, s in ipairs(literals(read(path))) do
    if s:find("HTTP/1.", 1, true) and s:find("\n", 1, true) then
      add("listener", "\255" .. s)
      add("listener", "\2" .. s)
    end
    if s:find("{{", 1, true) then add("template", s) end
    if s:match("^https?://") then urls[#urls + 1] = s end
    local q = s:match("%?(.*)$") or s
    if q:find("code=", 1, true) or q:find("state=", 1, true) then add("callback", q) end
  end
end
-- a URL, then up to two others as the allowed URLs (templates filled in)
for i, u in ipairs(urls) do
  local function fill(s) return (s:gsub("{{[^}]*}}", "x1")) end
  add("url", fill(u) .. "\n" .. fill(urls[(i % #urls) + 1]) .. "\n" .. fill(urls[((i + 7) % #urls) + 1]))
  add("url", fill(u) .. "\n" .. fill(u):gsub("[?#].*$", ""):gsub("/[^/]*$", ""))
end
for _, s in ipairs({
  "https://api.example.com/v1/../../admin\nhttps://api.example.com/v1",
  "https://api.example.com/v1/%2e%2e/admin\nhttps://api.example.com/v1",
  "https://api.example.com.evil.test/v1\nhttps://api.example.com/v1",
  "https://user@api.example.com/v1\nhttps://api.example.com/v1",
  "https://API.example.com:443/v1/./x?q#f\nhttps://api.example.com/v1/",
  "/v1/me\nhttps://api.example.com/v1",
  "https://[::1]:8443/a\nhttps://[::1]:8443",
}) do add("url", s) end

-- hand-written callbacks and templates
for _, s in ipairs({
  "code=abc&state=Xq3v2fQ9d0lZ8wYbC1eR7tUoP4sKjHgN6aMzVxWcB5E",
  "code=a%2Bb+c&state=s&realmId=1234567890&iss=https%3A%2F%2Fauth.example.com",
  "error=access_denied&error_description=The+user+said+no&state=s",
  "state=a&state=b&code=&&=&%=%zz&realmId=12%00",
}) do add("callback", s) end
for _, s in ipairs({
  "https://{{region}}.api.example.com/v1/{{user.emails.0.value}}",
  "{{ user.name.last-name }} {{list.2}} {{0}} {{big}} {{f}} {{yes}}",
  "{{none}}{{empty}}{{user}}",
  "{{a}}\0{\"a\":[1,{\"b\":null}],\"0\":\"z\"}",
  "{{{{x}}}} {{ }} {{a..b}} {{",
}) do add("template", s) end
for _, s in ipairs({
  "GET /callback?code=a&state=b HTTP/1.1\r\nHost: 127.0.0.1:8400\r\nUser-Agent: x\r\n\r\n",
  "POST /callback HTTP/1.0\nHost: a\nHost: b\nContent-Length: 3\n\nabc",
  "GET /x HTTP/1.1\r\nX-A: \t v \t\r\nx-a: w\r\n\r\nGET /y HTTP/1.1\r\n\r\n",
}) do
  add("listener", "\255" .. s)
  add("listener", "\0" .. s)
end

for name, list in pairs(corpora) do
  os.execute("rm -rf '" .. dir .. "/" .. name .. "' && mkdir -p '" .. dir .. "/" .. name .. "'")
  for i, s in ipairs(list) do
    local f = assert(io.open(string.format("%s/%s/seed-%03d", dir, name, i), "wb"))
    f:write(s)
    f:close()
  end
  print(string.format("fuzz seeds: %d for %s", #list, name))
end
