-- luacheck: std +busted
local connector = require("connrt.connector")

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  assert.equal("connector", e.kind)
  return e.message
end

-- A valid connector as source text; `patch` replaces or adds keys (as Lua source).
local function source(patch)
  local keys = {
    id = '"demo"',
    authorize_url = '"https://auth.example.com/authorize"',
    token_url = '"https://auth.example.com/token"',
    test = '"/me"',
    name = [["{{name}}'s Account"]],
    unique_id = '"{{email}}"',
    allowed_urls = '{ "https://api.example.com/v1" }',
    request = '{ headers = { Authorization = "Bearer {{access_token}}" } }',
  }
  for k, v in pairs(patch or {}) do keys[k] = v or nil end
  local out = { "return {" }
  for k, v in pairs(keys) do
    if v ~= false then out[#out + 1] = ("  %s = %s,"):format(k, v) end
  end
  out[#out + 1] = "}"
  return table.concat(out, "\n")
end

describe("connector", function()
  it("loads a valid connector and fills defaults", function()
    local c = connector.load_source(source(), "demo.lua")
    assert.equal("demo", c.id)
    assert.equal("demo", c.title)
    assert.equal("basic", c.client_auth)
    assert.is_true(c.pkce)
    assert.same({ url = "/me", method = "GET" }, c.test)
    assert.equal(" ", c.scope_separator)
  end)

  it("loads the shipped example", function()
    local c = connector.load("examples/local-oidc.lua")
    assert.equal("local-oidc", c.id)
    assert.equal("server", c.fields[1].key)
  end)

  it("names the file and the line of a syntax error", function()
    local msg = err_of(connector.load_source, "return {\n  id = 'x',\n  token_url = = 1,\n}", "broken.lua")
    assert.matches("broken.lua", msg, 1, true)
    assert.matches("syntax error", msg, 1, true)
    assert.matches("line 3", msg, 1, true)
  end)

  it("names a missing required key", function()
    local msg = err_of(connector.load_source, source({ token_url = false }), "c.lua")
    assert.matches("c.lua: key 'token_url': is required", msg, 1, true)
  end)

  it("names a key with the wrong type and what was expected", function()
    local msg = err_of(connector.load_source, source({ scopes = '"openid email"' }), "c.lua")
    assert.matches("key 'scopes': expected an array, got string", msg, 1, true)
    msg = err_of(connector.load_source, source({ pkce = '"yes"' }), "c.lua")
    assert.matches("key 'pkce': expected a boolean, got string", msg, 1, true)
    msg = err_of(connector.load_source, source({ client_auth = '"header"' }), "c.lua")
    assert.matches("key 'client_auth': expected one of basic, body", msg, 1, true)
  end)

  it("suggests the key an unknown one was meant to be", function()
    local msg = err_of(connector.load_source, source({ token_ur = '"x"' }), "c.lua")
    assert.matches("key 'token_ur': unknown key (did you mean 'token_url'?)", msg, 1, true)
  end)

  it("checks nested keys and names their path", function()
    local msg = err_of(connector.load_source, source({ fields = '{ { key = "env", choices = { 1 } } }' }), "c.lua")
    assert.matches("key 'fields[1].choices[1]': expected a string, got number", msg, 1, true)
    msg = err_of(connector.load_source, source({ fields = '{ { label = "x" } }' }), "c.lua")
    assert.matches("key 'fields[1].key': is required", msg, 1, true)
    msg = err_of(connector.load_source, source({ test = '{ method = "GET" }' }), "c.lua")
    assert.matches("key 'test.url': is required", msg, 1, true)
  end)

  it("refuses a default that breaks its own choices or pattern", function()
    local msg = err_of(connector.load_source,
      source({ fields = '{ { key = "env", choices = { "sandbox", "production" }, default = "prod" } }' }), "c.lua")
    assert.matches("fields[1] (env): default \"prod\" is not one of: sandbox, production", msg, 1, true)
    msg = err_of(connector.load_source, source({ fields = '{ { key = "r", pattern = "[a-z" } }' }), "c.lua")
    assert.matches("key 'fields[1].pattern': not a valid Lua pattern", msg, 1, true)
  end)

  it("refuses a URL template that names something that is not a field", function()
    local msg = err_of(connector.load_source, source({
      fields = '{ { key = "region" } }',
      authorize_url = '"https://{{regoin}}.example.com/authorize"' }), "c.lua")
    assert.matches("authorize_url uses {{regoin}}, which is not a field of this connector (fields: region)", msg, 1, true)
  end)

  it("checks client_id_param, pkce_encoding and redirect_uri (TikTok, eBay), and fills their defaults", function()
    local c = connector.load_source(source(), "demo.lua")
    assert.equal("client_id", c.client_id_param)
    assert.equal("base64url", c.pkce_encoding)
    assert.is_nil(c.redirect_uri)
    local msg = err_of(connector.load_source, source({ client_id_param = '"client key"' }), "c.lua")
    assert.matches("key 'client_id_param': expected a parameter name", msg, 1, true)
    msg = err_of(connector.load_source, source({ pkce_encoding = '"base32"' }), "c.lua")
    assert.matches("key 'pkce_encoding': expected one of base64url, hex, got base32", msg, 1, true)
    msg = err_of(connector.load_source, source({ pkce_encoding = '"hex"', pkce = "false" }), "c.lua")
    assert.matches("key 'pkce_encoding': the connector does not use PKCE (pkce = false)", msg, 1, true)
    msg = err_of(connector.load_source, source({ fields = '{ { key = "runame" } }', redirect_uri = '"{{client_secret}}"' }),
      "c.lua")
    assert.matches("redirect_uri uses {{client_secret}}, which is not a field of this connector (fields: runame)", msg, 1,
      true)
    msg = err_of(connector.load_source, source({ fields = '{ { key = "runame" } }', redirect_uri = '"{{runame}}"',
      auth = '"device_code"', device_url = '"https://auth.example.com/device"' }), "c.lua")
    assert.matches("key 'redirect_uri': only a browser sign-in", msg, 1, true)
  end)

  it("takes issuer_in_response (RFC 9207 2.4) only with an issuer to compare iss with", function()
    local msg = err_of(connector.load_source, source({ issuer_in_response = "true" }), "c.lua")
    assert.matches("issuer_in_response: needs `issuer` (or `discovery`)", msg, 1, true)
    local c = connector.load_source(source({ issuer_in_response = "true", issuer = '"https://auth.example.com"' }), "c.lua")
    assert.is_true(c.issuer_in_response)
  end)

  it("checks callback_fields (Zoho): a declared field with choices, not secret; the reach covers every choice", function()
    local msg = err_of(connector.load_source, source({ callback_fields = '{ dc = "accounts-server" }' }), "c.lua")
    assert.matches("callback_fields.dc: no such field (fields: none)", msg, 1, true)
    msg = err_of(connector.load_source, source({ fields = '{ { key = "dc" } }', callback_fields = '{ dc = "accounts-server" }' }),
      "c.lua")
    assert.matches("callback_fields.dc: the field needs choices", msg, 1, true)
    msg = err_of(connector.load_source, source({ fields = '{ { key = "dc", secret = true, choices = { "a" } } }',
      callback_fields = '{ dc = "accounts-server" }' }), "c.lua")
    assert.matches("callback_fields.dc: a secret field cannot come from a callback", msg, 1, true)
    msg = err_of(connector.load_source, source({ fields = '{ { key = "dc", choices = { "a" } } }',
      callback_fields = '{ dc = 1 }' }), "c.lua")
    assert.matches("key 'callback_fields.dc': expected a string, got number", msg, 1, true)
    -- the shipped Zoho connector: a client is remembered for every data centre's accounts host
    local z = connector.load("connectors/zoho.lua")
    local context = require("connrt.flow.context")
    local fields = { accounts_server = "https://accounts.zoho.com" }
    local ctx = { fields = fields, urls = { token_url = connector.render_url(z, "token_url", fields) },
      allowed_static = { [2] = connector.render_url(z, 2, fields) }, authorize_url = connector.render_url(z, "authorize_url", fields) }
    local reach = context.reach_before(z, ctx)
    for _, o in ipairs({ "https://accounts.zoho.com:443", "https://accounts.zoho.eu:443", "https://accounts.zoho.com.cn:443",
      "https://accounts.zohocloud.ca:443" }) do
      local found = false
      for _, r in ipairs(reach) do if r == o then found = true end end
      assert.is_true(found, o .. " is not in the reach")
    end
    assert.equal(9, #reach)
  end)

  it("checks app_registration (Mastodon): its URL from fields, its form from fields, redirect_uri and scope", function()
    local reg = 'fields = { { key = "instance" } }, app_registration = { url = "https://{{instance}}/api/v1/apps", '
      .. 'form = { client_name = "connrt", redirect_uris = "{{redirect_uri}}", scopes = "{{scope}}" } }'
    local c = connector.load_source(source():gsub("^return {", "return { " .. reg .. ","), "c.lua")
    assert.equal("https://{{instance}}/api/v1/apps", c.app_registration.url)
    local msg = err_of(connector.load_source, source({ fields = '{ { key = "instance" } }',
      app_registration = '{ url = "https://{{access_token}}/apps", form = {} }' }), "c.lua")
    assert.matches("app_registration.url uses {{access_token}}, which is not a field of this connector", msg, 1, true)
    msg = err_of(connector.load_source, source({ fields = '{ { key = "instance" } }',
      app_registration = '{ url = "https://{{instance}}/apps", form = { secret = "{{client_secret}}" } }' }), "c.lua")
    assert.matches("app_registration.form.secret uses {{client_secret}}, which is neither a field", msg, 1, true)
    msg = err_of(connector.load_source, source({ app_registration = '{ form = {} }' }), "c.lua")
    assert.matches("key 'app_registration.url': is required", msg, 1, true)
    msg = err_of(connector.load_source, source({ app_registration = '{ url = "https://a.example.com/apps" }',
      auth = '"client_credentials"' }), "c.lua")
    assert.matches("key 'app_registration': only a browser sign-in", msg, 1, true)
  end)

  it("refuses a revoke_request that puts a token in its URL, or comes with a revoke_url", function()
    local msg = err_of(connector.load_source, source({
      revoke_request = '{ url = "https://api.example.com/revoke?t={{access_token}}" }' }), "c.lua")
    assert.matches("revoke_request puts {{access_token}} in the URL", msg, 1, true)
    msg = err_of(connector.load_source, source({
      revoke_request = '{ url = "https://api.example.com/revoke", query = { t = "{{refresh_token}}" } }' }), "c.lua")
    assert.matches("revoke_request puts {{refresh_token}} in the URL", msg, 1, true)
    msg = err_of(connector.load_source, source({ revoke_url = '"https://auth.example.com/revoke"',
      revoke_request = '{ url = "https://api.example.com/revoke" }' }), "c.lua")
    assert.matches("give revoke_url (RFC 7009) or revoke_request, not both", msg, 1, true)
  end)

  it("refuses a name or unique id made of secrets", function()
    local msg = err_of(connector.load_source, source({ unique_id = '"{{access_token}}"' }), "c.lua")
    assert.matches("unique_id uses {{access_token}}, a secret value", msg, 1, true)
    msg = err_of(connector.load_source, source({ fields = '{ { key = "api_key", secret = true } }',
      name = '"{{api_key}}"' }), "c.lua")
    assert.matches("name uses {{api_key}}, a secret value", msg, 1, true)
  end)

  it("refuses a chunk that does not return a table, or fails while loading", function()
    assert.matches("must return a table, returned string", err_of(connector.load_source, "return 'x'", "c.lua"), 1, true)
    assert.matches("error while loading", err_of(connector.load_source, "error('boom')", "c.lua"), 1, true)
  end)

  it("runs connectors without io, os.execute, require, load or debug", function()
    for _, expr in ipairs({ "io.open('/etc/passwd')", "os.execute('true')", "require('os')",
      "load('return 1')", "debug.getinfo(1)", "dofile('/etc/passwd')", "package.loadlib('x', 'y')",
      "string.dump(print)" }) do
      local msg = err_of(connector.load_source, "local x = " .. expr .. "\n" .. source(), "c.lua")
      assert.matches("error while loading", msg, 1, true)
    end
  end)

  it("stops a connector that never ends", function()
    local msg = err_of(connector.load_source, "while true do end", "loop.lua")
    assert.matches("instruction budget exceeded", msg, 1, true)
  end)

  it("gives connectors connrt's helpers", function()
    local c = connector.load_source(
      "local t = connrt.json.decode('{\"a\":1}')\nlocal id = (t.a == 1 and 'j' or 'k') .. connrt.url.encode(' ')\n"
      .. source({ id = "'x' .. (id == 'j%20' and 'ok' or 'bad')" }), "c.lua")
    assert.equal("xok", c.id)
  end)

  it("runs hooks in the sandbox and names the hook that failed", function()
    local c = connector.load_source(source({ hooks = '{ callback = function(q) return { realm = q.realmId } end,'
      .. ' token_response = function() return io.open("x") end }' }), "h.lua")
    assert.same({ realm = "42" }, connector.call_hook(c, "callback", { realmId = "42" }))
    local msg = err_of(connector.call_hook, c, "token_response", {})
    assert.matches("h.lua: hooks.token_response failed", msg, 1, true)
  end)

  describe("URL rendering", function()
    local c = connector.load_source(source({
      fields = '{ { key = "shop" }, { key = "base" } }',
      authorize_url = '"https://{{shop}}.myshopify.com/admin/oauth/authorize"',
      token_url = '"{{base}}/oauth/token"',
    }), "u.lua")

    it("substitutes fields percent-encoded, so they stay inside their placeholder", function()
      assert.equal("https://acme.myshopify.com/admin/oauth/authorize",
        connector.render_url(c, "authorize_url", { shop = "acme" }))
      for _, evil in ipairs({ "evil.test/", "evil.test?", "evil.test#", "a@evil.test", "evil.test:1" }) do
        local msg = err_of(connector.render_url, c, "authorize_url", { shop = evil })
        assert.matches("invalid URL", msg, 1, true)
      end
    end)

    it("takes a base-URL field at the start of a template as a URL", function()
      assert.equal("https://git.example.org/oauth/token",
        connector.render_url(c, "token_url", { base = "https://git.example.org/" }))
      assert.matches("{{base}}", err_of(connector.render_url, c, "token_url", { base = "not a url" }), 1, true)
      assert.matches("without query", err_of(connector.render_url, c, "token_url",
        { base = "https://git.example.org?x=1" }), 1, true)
      assert.matches("plain http is allowed only for loopback", err_of(connector.render_url, c, "token_url",
        { base = "http://git.example.org" }), 1, true)
    end)

    it("names the missing field value and the key", function()
      local msg = err_of(connector.render_url, c, "authorize_url", {})
      assert.matches("u.lua: authorize_url", msg, 1, true)
      assert.matches("{{shop}}", msg, 1, true)
    end)
  end)
end)

describe("shipped connectors", function()
  local dir = io.popen("ls connectors/*.lua")
  for path in dir:lines() do
    it(path .. " loads and passes validation", function()
      local c = connector.load(path)
      assert.equal(path:match("([^/]+)%.lua$"), c.id)
      for _, a in ipairs(c.allowed_urls) do
        -- or a base URL from a field or the token response, checked when it is rendered
        if not a:match("^https://") then assert.matches("^{{[%w_]+}}/", a .. "/") end
      end
    end)
  end
  dir:close()
end)
