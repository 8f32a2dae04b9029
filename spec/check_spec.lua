-- luacheck: std +busted
-- `connrt check`: every shipped connector passes it (this is how `make test` runs it over
-- connectors/), and broken connectors get one finding per problem, each naming the file,
-- the key and a hint, with a non-zero exit.
local h = require("support.helpers")
local check = require("connrt.check")

local GOOD = {
  id = '"demo"',
  authorize_url = '"https://auth.example.com/authorize"',
  token_url = '"https://auth.example.com/token"',
  test = '"/me"',
  name = [["{{name}}'s Account"]],
  unique_id = '"{{id}}"',
  allowed_urls = '{ "https://api.example.com/v1" }',
  request = '{ headers = { Authorization = "Bearer {{access_token}}" } }',
}

-- Connector source from GOOD with `patch` (key -> Lua source, or false to drop the key).
local function source(patch)
  local keys = {}
  for k, v in pairs(GOOD) do keys[k] = v end
  for k, v in pairs(patch or {}) do keys[k] = v or nil end
  local names = {}
  for k in pairs(keys) do names[#names + 1] = k end
  table.sort(names)
  local parts = {}
  for _, k in ipairs(names) do parts[#parts + 1] = ("  %s = %s,"):format(k, keys[k]) end
  return "return {\n" .. table.concat(parts, "\n") .. "\n}\n"
end

local function lines(src)
  local out = {}
  for _, f in ipairs(check.check_source(src, "x.lua")) do out[#out + 1] = check.format("x.lua", f) end
  return out
end

describe("connrt check", function()
  it("passes every shipped connector without a finding", function()
    local files = {}
    local p = io.popen("ls connectors/*.lua")
    for f in p:lines() do files[#files + 1] = f end
    p:close()
    assert.is_true(#files >= 68, "expected the 68 shipped connectors")
    local args = { "check" }
    for _, f in ipairs(files) do args[#args + 1] = f end
    local res = h.connrt(args)
    assert.equal(0, res.code, res.stdout .. res.stderr)
    assert.equal("", res.stdout)
    assert.matches(("%d file(s), 0 error(s), 0 warning(s)"):format(#files), res.stderr, 1, true)
  end)

  it("passes a good connector", function()
    assert.same({}, lines(source()))
  end)

  it("passes namespaced names, which say which layer they mean", function()
    assert.same({}, lines(source({
      fields = '{ { key = "site", pattern = "[%w-]+" } }', values = '{ "id", "team_id" }',
      name = '"{{test.name}} at {{fields.site}} ({{values.team_id}})"', unique_id = '"{{fields.site}}/{{test.id}}/{{values.id}}"',
      allowed_urls = '{ "https://{{fields.site}}.example.com/v1" }',
      request = '{ headers = { Authorization = "Bearer {{token.access_token}}", ["X-Team"] = "{{values.team_id}}", '
        .. '["Client-Id"] = "{{client_id}}" } }',
    })))
  end)

  local CASES = {
    { "a missing name", { name = false },
      "x.lua: name: is required (hint: add a name template, e.g. name = \"{{login}}'s Account\")" },
    { "a missing unique id", { unique_id = false },
      'x.lua: unique_id: is required (hint: add a unique id template from the test API, e.g. unique_id = "{{id}}")' },
    { "a constant unique id", { unique_id = '"me"' },
      "x.lua: unique_id: is a constant: every account would get the same id (hint: use a value from the test API, e.g. {{id}})" },
    { "a key the authorization code flow needs", { token_url = false },
      'x.lua: token_url: is required for auth = "authorization_code" (hint: add token_url, or set auth to the way the app connects)' },
    { "a key the device flow needs", { auth = '"device_code"' },
      'x.lua: device_url: is required for auth = "device_code" (hint: add device_url, or set auth to the way the app connects)' },
    { "a typo in a key", { scopez = '{ "a" }' },
      "x.lua: scopez: unknown key (did you mean 'scopes'?) (hint: rename it to scopes)" },
    { "plain http to a public host", { token_url = '"http://auth.example.com/token"' },
      "x.lua: token_url: http://auth.example.com/token uses plain http (hint: use https: plain http is only for "
        .. "loopback hosts (127.0.0.1, localhost, [::1]))" },
    { "a URL that does not parse", { authorize_url = '"auth.example.com/authorize"' },
      'x.lua: authorize_url: invalid URL "auth.example.com/authorize": ' },
    { "a template naming an unknown value in a request header",
      { request = '{ headers = { Authorization = "Bearer {{acces_token}}" } }' },
      "x.lua: request.headers.Authorization: {{acces_token}} names a value that does not exist here (hint: use one of: "
        .. "access_token, client_id, expires_in, scope, token_type; declare a value the token response or a hook provides in `values`)" },
    { "a URL naming a value that is not a field", { token_url = '"https://{{tenant}}.example.com/token"' },
      "x.lua: token_url: {{tenant}} names a value that does not exist here (hint: use one of: none)" },
    { "a test API outside the allowed URLs", { test = '"https://other.example.com/me"' },
      'x.lua: test: the test API https://other.example.com/me is not under any allowed URL (hint: add its base URL to '
        .. 'allowed_urls, or make test relative to the first allowed URL ("/me"))' },
    { "a field in a host name without a pattern",
      { fields = '{ { key = "shop", required = true } }', allowed_urls = '{ "https://{{shop}}.example.com/api" }' },
      "x.lua: allowed_urls[1]: warning: field shop is part of the host name but has no pattern or choices" },
    { "a secret-looking literal", { request = '{ headers = { Authorization = "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc" } }' },
      "x.lua: request.headers.Authorization: warning: the literal value looks like a secret (it starts with sk_) (hint: "
        .. "secrets belong in a secret field ({{api_key}}) or the token ({{access_token}}), not in the script)" },
    { "a long random literal", { request = '{ query = { key = "a8Fk29dLq03ZpX7mN4vB6cR1tY5wE0uJ" } }' },
      "x.lua: request.query.key: warning: the literal value looks like a secret (it is a long random-looking string)" },
    { "a secret in the name", { name = '"{{access_token}}"' },
      "x.lua: name: name uses {{access_token}}, a secret value: names and unique ids are stored in clear" },
    { "a Lua error", { id = "nil .. 1" }, "x.lua: (file): error while loading" },
    -- short names that more than one layer could answer (issue 14, item 6)
    { "a kept value in the name, which hides the test API's field of that name (Slack's team_id)",
      { values = '{ "team_id" }', unique_id = '"{{team_id}}"' },
      "x.lua: unique_id: warning: {{team_id}} is a kept value, looked up before the test API's answer, whose own "
        .. "team_id it would hide (hint: write {{values.team_id}} to say so, or {{test.team_id}} for the test API's)" },
    { "a field in the unique id", { fields = '{ { key = "site" } }', unique_id = '"{{site}}/{{id}}"' },
      "x.lua: unique_id: warning: {{site}} is a field, looked up before the test API's answer" },
    { "a path through a field, which can only mean the test API's answer",
      { fields = '{ { key = "shop" } }', name = '"{{shop.name}}"' },
      "x.lua: name: warning: {{shop.name}}: shop is a field, a single value without members, so this can only mean "
        .. "the test API's answer (hint: write {{test.shop.name}})" },
    { "a kept value named like the token's", { values = '{ "scope" }' },
      "x.lua: values[1]: warning: scope is also a name of the token, which {{scope}} finds first (hint: rename it, or "
        .. "write {{values.scope}} wherever it is meant)" },
    { "a namespaced name that does not exist", { name = '"{{values.nope}}"' },
      "x.lua: name: {{values.nope}} names a value that does not exist here" },
    { "the test API's answer where it is not known",
      { request = '{ headers = { Authorization = "Bearer {{access_token}}", ["X-Id"] = "{{test.id}}" } }' },
      "x.lua: request.headers.X-Id: {{test.id}} names a value that does not exist here (hint: the test API's answer "
        .. "is known in name and unique_id only)" },
  }
  for _, case in ipairs(CASES) do
    it("finds " .. case[1], function()
      local src = source(case[2])
      local found = lines(src)
      local hit = false
      for _, l in ipairs(found) do
        if l:sub(1, #case[3]) == case[3] then hit = true end
      end
      assert.is_true(hit, "expected a finding starting with\n  " .. case[3] .. "\ngot:\n  " .. table.concat(found, "\n  "))
    end)
  end

  it("a Lua error is reported even on load", function()
    local found = lines("return {")
    assert.equal(1, #found)
    assert.matches("^x%.lua: %(file%): syntax error", found[1])
  end)

  it("exits non-zero on errors, zero on warnings only, and prints each finding", function()
    local dir = h.tmpdir()
    h.write(dir .. "/bad.lua", source({ name = false, token_url = '"http://auth.example.com/token"' }))
    h.write(dir .. "/warn.lua", source({ request = '{ headers = { ["X-Key"] = "sk_live_4eC39HqLyjWDarjtT1zdp7dc" } }' }))
    local res = h.connrt({ "check", dir .. "/bad.lua" })
    assert.equal(3, res.code)
    assert.matches(dir .. "/bad.lua: name: is required", res.stdout, 1, true)
    assert.matches(dir .. "/bad.lua: token_url: http://auth.example.com/token uses plain http", res.stdout, 1, true)
    assert.matches("1 file(s), 2 error(s), 0 warning(s)", res.stderr, 1, true)
    res = h.connrt({ "check", dir .. "/warn.lua" })
    assert.equal(0, res.code, res.stderr)
    assert.matches("warning: the literal value looks like a secret", res.stdout, 1, true)
    res = h.connrt({ "check" })
    assert.equal(2, res.code)
    h.rmdir(dir)
  end)

  it("takes the loader's problems from the loader's one validation, each at its key (connector.problems)", function()
    -- problems the lint has no check of its own for: the key comes with the problem, not
    -- from its message (token_headers.Authorization: and values: read as "(file)" before)
    local src = source({ token_headers = '{ Authorization = "x" }' })
    assert.same({ "x.lua: token_headers.Authorization: token_headers.Authorization: connrt sets this header itself "
      .. "(client_auth and token_request_format say how) (hint: see docs/connectors.md for this key)" }, lines(src))
    src = source({ fields = '{ { key = "site", default = "a b", pattern = "%w+" } }',
      values = '{ "site" }', token_headers = '{ Authorization = "x" }' })
    local found = lines(src)
    assert.equal(2, #found, table.concat(found, "\n"))
    assert.matches("^x%.lua: fields%[1%]: fields%[1%] %(site%): default", found[1])
    assert.matches("^x%.lua: values: values: 'site' is also a field", found[2])
    -- the loader raises the first of them, with the same text
    local ok, e = pcall(require("connrt.connector").load_source, src, "x.lua")
    assert.is_false(ok)
    assert.matches("^x%.lua: fields%[1%] %(site%): default", e.message)
  end)
end)
