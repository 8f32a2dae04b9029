-- luacheck: std +busted
-- Connector hooks on their documented shapes and on malformed ones: each malformed
-- answer fails with a message that names the connector, the hook and what is wrong.
-- Also the runtime pieces the quirks need: allowed URLs from token values, JSON token
-- request bodies.
local cjson = require("cjson")
local connector = require("connrt.connector")
local code = require("connrt.flow.code")
local lookup = require("connrt.flow.lookup")
local oauth = require("connrt.oauth")
local connection = require("connrt.connection")

local BASE = [[
  id = "demo", authorize_url = "https://auth.example.com/authorize", token_url = "https://auth.example.com/token",
  test = "/me", name = "{{name}}", unique_id = "{{id}}", allowed_urls = { "https://api.example.com" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
]]

local function load(extra)
  return connector.load_source("return {" .. BASE .. (extra or "") .. "}", "demo.lua")
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  assert.is_table(e, tostring(e))
  return e.message, e.kind
end

local function raw(status, body, ctype)
  return { status = status, body = body, header = { ["content-type"] = ctype or "application/json" } }
end

describe("hooks.token_response", function()
  local function with(hook) return load("values = { \"team\" }, hooks = { token_response = " .. hook .. " },") end

  it("takes the documented table, nested values included", function()
    local c = with([[function(r)
      local d = connrt.json.decode(r.body)
      return { access_token = d.inner.token, expires_in = "3600", values = { team = d.team } }
    end]])
    local tok = oauth.fetch_token(c, nil, "token endpoint", raw(200, '{"inner":{"token":"t-1"},"team":"T1"}'))
    assert.equal("t-1", tok.access_token)
    assert.equal(3600, tok.expires_in)
    assert.equal("T1", tok.values.team)
  end)

  it("passes the provider's error on when it returns nil and a message", function()
    local c = with([[function(r) return nil, connrt.json.decode(r.body).error end]])
    local msg, kind = err_of(oauth.fetch_token, c, nil, "token endpoint", raw(200, '{"ok":false,"error":"invalid_code"}'))
    assert.equal("provider", kind)
    assert.matches("token endpoint answered 200: invalid_code", msg, 1, true)
  end)

  it("refuses a result that is not a table", function()
    local msg = err_of(oauth.fetch_token, with([[function() return "t-1" end]]), nil, "token endpoint", raw(200, "{}"))
    assert.matches("through hooks.token_response): expected a token table, got string", msg, 1, true)
  end)

  it("refuses a table without access_token", function()
    local msg = err_of(oauth.fetch_token, with([[function() return { token = "x" } end]]), nil, "token endpoint", raw(200, "{}"))
    assert.matches("the response has no access_token", msg, 1, true)
  end)

  it("refuses an access_token of the wrong type", function()
    local msg = err_of(oauth.fetch_token, with([[function() return { access_token = 42 } end]]), nil, "t", raw(200, "{}"))
    assert.matches("access_token is a number, not a string", msg, 1, true)
  end)

  it("refuses an expires_in that is not a number of seconds", function()
    local msg = err_of(oauth.fetch_token, with([[function() return { access_token = "a", expires_in = "soon" } end]]),
      nil, "t", raw(200, "{}"))
    assert.matches("expires_in is not a number of seconds: soon", msg, 1, true)
  end)

  it("names the hook when it raises an error", function()
    local msg, kind = err_of(oauth.fetch_token, with([[function(r) return r.nope.x end]]), nil, "t", raw(200, "{}"))
    assert.equal("connector", kind)
    assert.matches("demo.lua: hooks.token_response failed:", msg, 1, true)
  end)

  it("is told which grant it answers (raw.grant): given, or the token request's grant_type", function()
    local c = with([[function(r) return { access_token = "t-" .. tostring(r.grant) } end]])
    assert.equal("t-refresh_token", oauth.fetch_token(c, nil, "t", raw(200, "{}"), "refresh_token").access_token)
    local req = oauth.token_request(c, "https://auth.example.com/token", { fields = {}, client_id = "id", client_secret = "s" },
      { { "grant_type", "client_credentials" } })
    assert.equal("client_credentials", req.grant)
    assert.equal("t-client_credentials", oauth.fetch_token(c, req, "t", raw(200, "{}")).access_token)
  end)

  it("without a hook: a token without expires_in, and one with expires_in as a string", function()
    local c = load([[values = { "instance_url" },]])
    assert.is_nil(oauth.fetch_token(c, nil, "t", raw(200, '{"access_token":"a","instance_url":"https://x.example.com"}')).expires_at)
    local tok = oauth.fetch_token(c, nil, "t", raw(200, '{"access_token":"a","expires_in":"60"}'))
    assert.equal(60, tok.expires_in)
    assert.equal("https://x.example.com",
      oauth.fetch_token(c, nil, "t", raw(200, '{"access_token":"a","instance_url":"https://x.example.com"}')).values.instance_url)
  end)

  it("without a hook: a form-encoded answer (GitHub without Accept: application/json)", function()
    local tok = oauth.fetch_token(load(), nil, "t",
      raw(200, "access_token=gho_abc&scope=read%3Auser&token_type=bearer", "application/x-www-form-urlencoded"))
    assert.equal("gho_abc", tok.access_token)
    assert.equal("read:user", tok.scope)
    local msg = err_of(oauth.fetch_token, load(), nil, "t",
      raw(200, "error=bad_verification_code&error_description=The+code+passed+is+incorrect", "application/x-www-form-urlencoded"))
    assert.matches("answered 200: bad_verification_code: The code passed is incorrect", msg, 1, true)
  end)
end)

describe("hooks.callback", function()
  local function with(hook) return load("values = { \"realm_id\", \"realm\" }, hooks = { callback = " .. hook .. " },") end

  it("keeps the values it returns (QuickBooks realmId)", function()
    local c = with([[function(q) return { realm_id = q.realmId } end]])
    assert.same({ realm_id = "4620816365031227050" }, code.callback_values(c, { code = "c", realmId = "4620816365031227050" }))
  end)

  it("keeps nothing when it returns nil, or without the hook", function()
    assert.same({}, code.callback_values(with("function() end"), { code = "c" }))
    assert.same({}, code.callback_values(load(), { code = "c" }))
  end)

  it("refuses a result that is not a table", function()
    local msg = err_of(code.callback_values, with([[function(q) return q.realmId end]]), { realmId = "1" })
    assert.matches("demo.lua: hooks.callback must return a table of values, returned string", msg, 1, true)
  end)

  it("refuses values that are tables or unnamed", function()
    local msg = err_of(code.callback_values, with([[function(q) return { realm = { q.realmId } } end]]), { realmId = "1" })
    assert.matches("hooks.callback: value realm is a table, not a string, number or boolean", msg, 1, true)
    msg = err_of(code.callback_values, with([[function(q) return { q.realmId } end]]), { realmId = "1" })
    assert.matches("hooks.callback must return values by name, got a number key", msg, 1, true)
  end)

  it("names the hook when it raises an error", function()
    local msg = err_of(code.callback_values, with([[function() error("no realmId") end]]), {})
    assert.matches("hooks.callback failed: .*no realmId", msg)
  end)

  it("fails the connect (not the connector) when it returns nil and a message", function()
    local msg, kind = err_of(code.callback_values,
      with([[function(q) if not q.realmId then return nil, "no realmId: choose a company" end end]]), { code = "c" })
    assert.equal("connect", kind)
    assert.equal("demo.lua: hooks.callback: no realmId: choose a company; nothing was saved", msg)
  end)
end)

describe("hooks.expired", function()
  local function with(hook) return load("hooks = { expired = " .. hook .. " },") end
  local resp = { status = 200, header = {}, body = '{"ok":false,"error":"token_expired"}' }

  it("says whether a 200 answer means the token expired (Slack)", function()
    local c = with([[function(r) return connrt.json.decode(r.body).error == "token_expired" end]])
    assert.is_true(connection.expired_by_hook(c, resp))
    assert.is_false(connection.expired_by_hook(c, { status = 200, header = {}, body = '{"ok":true}' }))
  end)

  it("refuses an answer that is not a boolean", function()
    local msg = err_of(connection.expired_by_hook, with([[function(r) return r.body end]]), resp)
    assert.matches("demo.lua: hooks.expired must return true or false, returned string", msg, 1, true)
  end)

  it("names the hook when it raises an error", function()
    local msg = err_of(connection.expired_by_hook, with([[function(r) return r.missing.x end]]), resp)
    assert.matches("hooks.expired failed", msg, 1, true)
  end)
end)

describe("hooks.lookup", function()
  local function with(hook, extra)
    return load((extra or "values = { \"seen\", \"saw_at\", \"n\", \"ok\", \"tenants\" },")
      .. "hooks = { lookup = " .. hook .. " },")
  end
  local scope = { { access_token = "at-1" }, {}, { instance = "x" } }

  it("returns values, and sees the values known so far but never the token", function()
    local c = with([[function(api)
      return { seen = api.values.instance, saw_at = tostring(api.values.access_token), n = 3, ok = true }
    end]])
    assert.same({ seen = "x", saw_at = "nil", n = 3, ok = true }, lookup.run(c, scope, { "https://api.example.com" }))
  end)

  it("fails with the hook's message when it returns nil", function()
    local msg, kind = err_of(lookup.run, with([[function() return nil, "no tenant granted" end]]), scope, {})
    assert.equal("provider", kind)
    assert.matches("demo.lua: hooks.lookup failed: no tenant granted; nothing was saved", msg, 1, true)
  end)

  it("refuses malformed results", function()
    local msg = err_of(lookup.run, with([[function() return "t-1" end]]), scope, {})
    assert.matches("hooks.lookup must return a table of values, returned string", msg, 1, true)
    msg = err_of(lookup.run, with([[function() return { tenants = {} } end]]), scope, {})
    assert.matches("hooks.lookup: value tenants is a table, not a string, number or boolean", msg, 1, true)
  end)

  it("may only send requests to the allowed URLs", function()
    local msg, kind = err_of(lookup.run, with([[function(api) return api.get("https://evil.example.net/x") end]]),
      scope, { "https://api.example.com" })
    assert.equal("refused", kind)
    assert.matches("hooks.lookup: https://evil.example.net/x is refused", msg, 1, true)
  end)

  it("reads only: a write is refused before it is sent, unless the connector declares its method #integration", function()
    local h = require("support.helpers")
    local api = h.start_upstream()
    local ok, e = pcall(function()
      local hook = ([[function(api)
        local r = api.request({ method = "post", url = "%s/api/keys", json = { key = "ssh-ed25519 AAAA attacker" } })
        return { n = r.status }
      end]]):format(api.base)
      for _, m in ipairs({ "post", "PUT", "DELETE", "PATCH" }) do
        local msg, kind = err_of(lookup.run, with((hook:gsub('"post"', '"' .. m .. '"'))), scope, { api.base .. "/api" })
        assert.equal("connector", kind)
        assert.matches("hooks.lookup: api.request " .. m:upper() .. " is refused: a lookup only reads (GET, HEAD)", msg, 1, true)
      end
      assert.same({}, api.log()) -- nothing reached the API
      -- GET and HEAD go; a declared POST (a GraphQL read) goes too
      assert.same({ n = 200 }, lookup.run(with(([[function(api)
        api.request({ method = "HEAD", url = "%s/api/me" })
        return { n = api.get("%s/api/me").status } end]]):format(api.base, api.base)), scope, { api.base .. "/api" }))
      assert.same({ n = 200 }, lookup.run(with(hook, 'values = { "n" }, lookup_methods = { "POST" },'), scope,
        { api.base .. "/api" }))
      local seen = {}
      for _, r in ipairs(api.log()) do seen[#seen + 1] = r.method end
      assert.same({ "HEAD", "GET", "POST" }, seen)
    end)
    api.stop()
    assert(ok, e)
  end)

  it("needs a url for a request", function()
    local msg = err_of(lookup.run, with([[function(api) return api.request({ method = "GET" }) end]]), scope,
      { "https://api.example.com" })
    assert.matches("hooks.lookup: api.request needs a url", msg, 1, true)
  end)
end)

describe("allowed URLs from token values", function()
  local c = load([[values = { "instance_url" }, allowed_urls = { "{{instance_url}}/services" },]])

  it("renders a declared value that is an https URL", function()
    assert.equal("https://na1.my.salesforce.com/services",
      connector.render_allowed(c, 1, { {}, { instance_url = "https://na1.my.salesforce.com/" } }))
    assert.equal("http://127.0.0.1:9/services", connector.render_allowed(c, 1, { {}, { instance_url = "http://127.0.0.1:9" } }))
  end)

  it("refuses a value that is plain http to a public host, not a URL, or carries a query", function()
    local msg = err_of(connector.render_allowed, c, 1, { {}, { instance_url = "http://na1.my.salesforce.com" } })
    assert.matches("plain http is allowed only for loopback hosts", msg, 1, true)
    msg = err_of(connector.render_allowed, c, 1, { {}, { instance_url = "na1.my.salesforce.com" } })
    assert.matches("{{instance_url}} from the provider: invalid URL", msg, 1, true)
    msg = err_of(connector.render_allowed, c, 1, { {}, { instance_url = "https://evil.example?x=" } })
    assert.matches("must be a base URL without query, fragment or userinfo", msg, 1, true)
    msg = err_of(connector.render_allowed, c, 1, { {}, {} })
    assert.matches("{{instance_url}} names a value that does not exist", msg, 1, true)
  end)

  it("must be declared in `values` (or be a field)", function()
    local msg = err_of(load, [[allowed_urls = { "{{api_domain}}/api" },]])
    assert.matches("allowed_urls[1] uses {{api_domain}}, which is neither a field", msg, 1, true)
    assert.is_false(connector.allowed_url_static(c, 1))
  end)
end)

describe("token_headers", function()
  local ctx = { fields = { agent = "acme/1.0" }, client_id = "id", client_secret = "s" }
  local function headers_of(req)
    local out = {}
    for _, hd in ipairs(req.headers) do out[hd[1]] = hd[2] end
    return out
  end

  it("adds the connector's headers to token requests, beside Accept: application/json", function()
    local c = load([[fields = { { key = "agent" } }, token_headers = { ["User-Agent"] = "{{agent}} ({{client_id}})" },]])
    local hs = headers_of(oauth.token_request(c, "https://auth.example.com/token", ctx, { { "grant_type", "refresh_token" } }))
    assert.equal("acme/1.0 (id)", hs["User-Agent"])
    assert.equal("application/json", hs.Accept)
    assert.matches("^Basic ", hs.Authorization)
  end)

  it("may replace Accept, not Authorization or Content-Type, and names fields only", function()
    local c = load([[token_headers = { Accept = "application/vnd.acme+json" },]])
    assert.equal("application/vnd.acme+json", headers_of(oauth.token_request(c, "https://auth.example.com/token", ctx,
      { { "grant_type", "refresh_token" } })).Accept)
    local msg, kind = err_of(load, [[token_headers = { authorization = "x" },]])
    assert.equal("connector", kind)
    assert.matches("token_headers.authorization: connrt sets this header itself", msg, 1, true)
    msg = err_of(load, [[token_headers = { ["X-Token"] = "{{access_token}}" },]])
    assert.matches("token_headers.X-Token uses {{access_token}}, which is neither a field", msg, 1, true)
  end)
end)

describe("test.ok", function()
  it("takes JSON paths to strings, numbers or booleans", function()
    local c = load([[test = { url = "/me", ok = { ok = true, ["data.status"] = "active", code = 0 } },]])
    assert.same({ ok = true, ["data.status"] = "active", code = 0 }, c.test.ok)
    local msg = err_of(load, [[test = { url = "/me", ok = { ok = { true } } },]])
    assert.matches("key 'test.ok.ok': expected a string, got table", msg, 1, true)
    msg = err_of(load, [[test = { url = "/me", ok = { ["a..b"] = true } },]])
    assert.matches("test.ok: invalid placeholder {{a..b}}", msg, 1, true)
  end)
end)

describe("token_request_format", function()
  it("sends the token request as a JSON object when it is json (Notion, Atlassian)", function()
    local c = load([[token_request_format = "json", client_auth = "body",]])
    local req = oauth.token_request(c, "https://auth.example.com/token", { fields = {}, client_id = "id", client_secret = "s" },
      { { "grant_type", "authorization_code" }, { "code", "c1" } })
    assert.same({ grant_type = "authorization_code", code = "c1", client_id = "id", client_secret = "s" }, cjson.decode(req.body))
    local ctype
    for _, hd in ipairs(req.headers) do if hd[1] == "Content-Type" then ctype = hd[2] end end
    assert.equal("application/json", ctype)
  end)

  it("sends a form by default", function()
    local req = oauth.token_request(load(), "https://auth.example.com/token", { fields = {}, client_id = "id", client_secret = "s" },
      { { "grant_type", "authorization_code" }, { "code", "c1" } })
    assert.equal("grant_type=authorization_code&code=c1", req.body)
  end)

  it("takes only form or json", function()
    local msg = err_of(load, [[token_request_format = "xml",]])
    assert.matches("token_request_format': expected one of form, json, got xml", msg, 1, true)
  end)
end)
