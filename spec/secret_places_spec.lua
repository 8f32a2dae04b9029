-- luacheck: std +busted
-- Where a secret value may be rendered (issue 13, review rv13 F1, F2, F8, F12, M4): a
-- field declared `secret = true`, a token or the client secret goes only into the
-- requests that need it (request, test, token_params, token_headers, revoke_request,
-- exchange_request); a connector that names one in a URL key, allowed_urls,
-- authorize_params, redirect_uri, app_registration, discovery or resource is refused when
-- it loads (`connrt run`, exit 3, nothing sent) and by `connrt check` (exit 3, naming the
-- key and the placeholder). app_registration.url must be within the connection's reach;
-- a field named like a secret must say whether it is one; the protocol parameters connrt
-- sets are not the connector's; hooks.lookup never sees a secret field. Real processes:
-- `connrt check`, `connrt run` against the loopback provider of spec/support.
local cjson = require("cjson")
local h = require("support.helpers")
local prov = require("support.provider")

local BASE = {
  'id = "sp", title = "SP"',
  'authorize_url = "https://auth.example.com/authorize"',
  'token_url = "https://auth.example.com/token"',
  'test = "/me"',
  'name = "{{name}}"',
  'unique_id = "{{id}}"',
  'allowed_urls = { "https://api.example.com/v1" }',
  'request = { headers = { Authorization = "Bearer {{access_token}}", ["X-Key"] = "{{pat}}" } }',
}

-- Connector source: BASE with `over` (a key's Lua source, keyed by the key; false drops
-- it) and a secret field `pat` plus `fields` (more field declarations).
local function source(over, fields)
  local parts = { "fields = { { key = \"pat\", secret = true }, " .. (fields or "") .. " }" }
  for _, line in ipairs(BASE) do
    local key = line:match("^(%w+)")
    if over[key] == nil then parts[#parts + 1] = line end
  end
  for k, v in pairs(over) do if v then parts[#parts + 1] = k .. " = " .. v end end
  return "return {\n  " .. table.concat(parts, ",\n  ") .. ",\n}\n"
end

describe("secret values: where they may be rendered", function()
  local tmp
  setup(function() tmp = h.tmpdir() end)
  teardown(function() h.rmdir(tmp) end)

  local n = 0
  local function file(src)
    n = n + 1
    local path = ("%s/c%d.lua"):format(tmp, n)
    h.write(path, src)
    return path
  end

  -- `connrt check` exits 3 naming `key` and `text`; loading it (`connrt run`) exits 3
  -- with the same reason before anything is sent.
  local function refused(src, key, text)
    local path = file(src)
    local res = h.connrt({ "check", path })
    assert.equal(3, res.code, res.stdout .. res.stderr)
    assert.matches(path .. ": " .. key .. ": ", res.stdout .. res.stderr, 1, true)
    assert.matches(text, res.stdout .. res.stderr, 1, true)
    local home = h.tmpdir()
    local run = h.connrt({ "run", path, "--field", "pat=PAT-SECRET-1", "--client-id", "cid", "--json", "--timeout", "5" },
      { env = prov.env(home) })
    h.rmdir(home)
    assert.equal(3, run.code, run.stderr)
    assert.matches(text, run.stderr, 1, true)
    assert.is_nil(run.stderr:find("PAT-SECRET-1", 1, true))
    assert.is_nil(run.stderr:find("Traceback", 1, true))
  end

  it("passes a secret field in the API's request, test query, token_params and token_headers", function()
    local res = h.connrt({ "check", file(source({
      token_params = '{ audience = "{{pat}}" }', token_headers = '{ ["X-Pat"] = "{{pat}}" }',
      test = '{ url = "/me", query = { key = "{{pat}}" } }',
      revoke_request = '{ method = "POST", url = "https://auth.example.com/revoke", form = { t = "{{access_token}}", '
        .. 'k = "{{pat}}", s = "{{client_secret}}" } }' })) })
    assert.equal(0, res.code, res.stdout .. res.stderr)
  end)

  for _, case in ipairs({
    { "authorize_params", '{ leak = "{{pat}}" }', "authorize_params.leak" },
    { "authorize_params", '{ leak = "x-{{fields.pat}}" }', "authorize_params.leak" },
    { "redirect_uri", '"{{pat}}"', "redirect_uri" },
    { "authorize_url", '"https://auth.example.com/{{pat}}/authorize"', "authorize_url" },
    { "token_url", '"https://auth.example.com/{{pat}}/token"', "token_url" },
    { "discovery", '"https://auth.example.com/{{pat}}"', "discovery" },
    { "resource", '"https://api.example.com/{{pat}}"', "resource" },
    { "issuer", '"https://auth.example.com/{{pat}}"', "issuer" },
    { "allowed_urls", '{ "https://api.example.com/v1", "https://api.example.com/{{pat}}" }', "allowed_urls[2]" },
    { "app_registration", '{ url = "https://auth.example.com/apps", form = { k = "{{pat}}" } }', "app_registration.form.k" },
  }) do
    it("refuses a secret field in " .. case[3], function()
      refused(source({ [case[1]] = case[2] }), case[3], case[3] .. " uses {{")
      refused(source({ [case[1]] = case[2] }), case[3], "a secret value")
    end)
  end

  it("refuses an app_registration.url outside the connection's reach", function()
    refused(source({ app_registration = '{ url = "https://evil.example.net/apps", form = { name = "x" } }' }),
      "app_registration.url", "sends to https://evil.example.net:443, which is not within the connection's reach")
  end)

  it("refuses a field named like a secret that does not say it is one; secret = false says it is not", function()
    for _, name in ipairs({ "password", "api_key", "token", "client_secret", "session_cookie" }) do
      refused(source({}, ('{ key = "%s" }'):format(name)), "fields[2]",
        ("field %s looks secret: declare secret = true"):format(name))
    end
    local res = h.connrt({ "check", file(source({}, '{ key = "auth_host", secret = false }')) })
    assert.equal(0, res.code, res.stdout .. res.stderr)
  end)

  it("refuses the protocol parameters connrt sets in authorize_params, token_params and client_id_param", function()
    for _, p in ipairs({ "state", "code_challenge", "code_challenge_method", "response_type", "redirect_uri",
        "client_id", "scope", "request", "request_uri" }) do
      refused(source({ authorize_params = ('{ %s = "x" }'):format(p) }), "authorize_params." .. p,
        "connrt sets the parameter " .. p .. " itself")
    end
    for _, p in ipairs({ "code_verifier", "grant_type", "code", "refresh_token", "client_secret", "client_id" }) do
      refused(source({ token_params = ('{ %s = "x" }'):format(p) }), "token_params." .. p,
        "connrt sets the parameter " .. p .. " itself")
    end
    refused(source({ client_id_param = '"state"' }), "client_id_param", "state is a parameter connrt sets itself")
    refused(source({ client_id_param = '"client_key"', authorize_params = '{ client_key = "x" }' }),
      "authorize_params.client_key", "connrt sets the parameter client_key itself")
  end)

  it("--param may not set them either (one list): exit 2 before the browser opens", function()
    local path = file(source({}))
    for _, p in ipairs({ "state", "code_challenge_method", "grant_type", "code_verifier", "client_secret", "request_uri" }) do
      local home = h.tmpdir()
      local res = h.connrt({ "run", path, "--field", "pat=x", "--client-id", "cid", "--param", p .. "=x", "--timeout", "5" },
        { env = prov.env(home, { CONNRT_BROWSER = "false" }) })
      h.rmdir(home)
      assert.equal(2, res.code, res.stderr)
      assert.matches("--param " .. p .. ": connrt sets this parameter itself", res.stderr, 1, true)
    end
  end)

  it("refuses {{client.client_secret}}, which no request can render (check and revoke agree)", function()
    refused(source({ revoke_request = '{ method = "POST", url = "https://auth.example.com/revoke", '
      .. 'form = { s = "{{client.client_secret}}" } }' }), "revoke_request.form.s", "`client` is not a namespace")
  end)
end)

describe("hooks.lookup and secret fields #integration", function()
  local p, tmp
  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
  end)
  teardown(function()
    if p then p.stop() end
    h.rmdir(tmp)
  end)

  it("api.values holds the fields that are not secret, never a secret field", function()
    local path = tmp .. "/lookup.lua"
    h.write(path, prov.connector([[
      hooks = { lookup = function(api)
        local keys = {}
        for k in pairs(api.values) do keys[#keys + 1] = k end
        table.sort(keys)
        return { region = table.concat(keys, "+") .. "|" .. tostring(api.values.pat):reverse() }
      end },
      ]]):gsub('fields = {', 'fields = { { key = "pat", secret = true },', 1))
    local home = h.tmpdir()
    local res = prov.run(p, path, home, { "--field", "pat=PAT-SECRET-42" })
    assert.equal(0, res.code, res.stderr)
    local id = cjson.decode(res.stdout).id
    local rec = cjson.decode(h.connrt({ "show", id, "--json" }, { env = { CONNRT_HOME = home } }).stdout)
    h.rmdir(home)
    local keys, pat = rec.values.region:match("^(.*)|(.*)$")
    assert.equal("lin", pat) -- tostring(nil) reversed
    assert.matches("+server+", "+" .. keys .. "+", 1, true)
    assert.matches("+tenant+", "+" .. keys .. "+", 1, true)
    assert.is_nil(("+" .. keys .. "+"):find("+pat+", 1, true))
  end)
end)
