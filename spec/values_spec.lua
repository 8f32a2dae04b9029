-- luacheck: std +busted
-- What a token response carries beside the token is not kept in clear (issue 13, item
-- 5): a connection keeps only the values its connector declares in `values`; a declared
-- name that looks secret is refused when the connector loads (exit 3) and by `connrt
-- check`; a hook (callback, lookup, token_response) that returns a secret-looking or an
-- undeclared value fails the connect (exit 3), and a kept value that carries a token
-- fails it too. Nothing is saved then. Real connects through the shipped Intercom
-- connector and its stand-in, and through the loopback provider of spec/support.
local cjson = require("cjson")
local h = require("support.helpers")
local prov = require("support.provider")

-- Every secret-looking name (log.secret_name's words) a connector might declare.
local SECRET_LOOKING = { "token", "session_token", "api_key", "password", "client_secret", "signature",
  "auth_code", "cookie", "credentials", "private_key", "sig", "access_token", "refresh_token", "secret" }

-- Everything connrt shows of a store, and its files' bytes.
local function shown(home)
  local env = { env = { CONNRT_HOME = home } }
  local list = h.connrt({ "list", "--json" }, env)
  local id = cjson.decode(list.stdout)[1].id
  return list.stdout .. h.connrt({ "show", id, "--json" }, env).stdout .. h.connrt({ "show", id }, env).stdout
    .. h.store_bytes(home), id
end

describe("values kept from a token response #integration", function()
  local p, tmp

  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
  end)
  teardown(function()
    if p then p.stop() end
    h.rmdir(tmp)
  end)

  local function connector(name, extra)
    local path = tmp .. "/" .. name .. ".lua"
    h.write(path, prov.connector(extra))
    return path
  end

  it("Intercom: its `token` (the access token again) is neither kept nor shown", function()
    local s = h.start_node("spec/support/standin.mjs", "spec/fixtures/providers/intercom.json")
    local origin = cjson.decode(s.line).origin
    local home = h.tmpdir()
    local ok, err = pcall(function()
      local src = h.read("connectors/intercom.lua"):gsub("https://{{api_host}}", origin)
        :gsub("https://[%w%.%-]+%.%a+", origin)
      local path = tmp .. "/intercom.lua"
      h.write(path, src)
      local res = h.connrt({ "run", path, "--json", "--timeout", "20" }, { env = prov.env(home, {
        CONNRT_CLIENT_ID = "cid-standin", CONNRT_CLIENT_SECRET = "cs-standin-secret" }) })
      assert.equal(0, res.code, res.stderr)
      local st = require("connrt.store").open(home)
      local at = st:secrets(st:list()[1]).access_token
      st:close()
      assert.is_true(#at >= 8)
      local text, id = shown(home)
      assert.is_nil(text:find(at, 1, true), "the access token is shown or kept in clear")
      local rec = cjson.decode(h.connrt({ "show", id, "--json" }, { env = { CONNRT_HOME = home } }).stdout)
      assert.same({}, rec.values)
      -- and the connection works
      res = h.connrt({ "request", id, "/me" }, { env = { CONNRT_HOME = home } })
      assert.equal(0, res.code, res.stderr)
    end)
    s.stop()
    h.rmdir(home)
    assert(ok, err)
  end)

  it("keeps only the declared values: token, session_token, api_key and the rest are dropped", function()
    p.mode({ tok = "extras" })
    local home = h.tmpdir()
    local res = prov.run(p, connector("extras"), home)
    p.mode({ tok = "ok" })
    assert.equal(0, res.code, res.stderr)
    local text, id = shown(home)
    local st = require("connrt.store").open(home)
    local at = st:secrets(st:list()[1]).access_token
    st:close()
    assert.is_nil(text:find(at, 1, true))
    for _, name in ipairs({ '"session_token"', '"api_key"', '"secret"', '"account"', '"token"' }) do
      assert.is_nil(text:find(name, 1, true), name .. " is kept or shown")
    end
    -- their values (provider.mjs: a prefix and 24 hex digits) are nowhere either
    for _, prefix in ipairs({ "st", "ak", "se" }) do
      assert.is_nil(text:find(prefix .. "%-" .. ("%x"):rep(24)), prefix .. "-... is kept or shown")
    end
    local rec = cjson.decode(h.connrt({ "show", id, "--json" }, { env = { CONNRT_HOME = home } }).stdout)
    assert.same({ api_base = p.origin .. "/api", region = "eu" }, rec.values)
    h.rmdir(home)
  end)

  it("a declared value that carries the access token: provider error, nothing saved", function()
    p.mode({ tok = "extras" })
    local home = h.tmpdir()
    local res = prov.run(p, connector("account", 'values = { "api_base", "region", "account" },'), home)
    p.mode({ tok = "ok" })
    assert.equal(5, res.code, res.stderr)
    assert.matches("token endpoint " .. p.origin .. "/token: value account carries the access token, and it would be "
      .. "kept in clear; nothing was stored", res.stderr, 1, true)
    assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } }).stdout)
    h.rmdir(home)
  end)

  describe("a secret-looking declared name", function()
    for _, name in ipairs(SECRET_LOOKING) do
      it(name .. ": refused when the connector loads (exit 3) and by connrt check", function()
        local path = connector("secret-" .. name, 'values = { "api_base", "region", "' .. name .. '" },')
        local home = h.tmpdir()
        local heard = #p.log()
        local res = prov.run(p, path, home)
        assert.equal(3, res.code, res.stderr)
        assert.matches("key 'values[3]': \"" .. name .. "\" looks like the name of a secret", res.stderr, 1, true)
        assert.equal(heard, #p.log())
        res = h.connrt({ "check", path })
        assert.are_not.equal(0, res.code)
        assert.matches(path .. ": values[3]: \"" .. name .. "\" looks like the name of a secret", res.stdout .. res.stderr,
          1, true)
        h.rmdir(home)
      end)
    end

    it("harmless names pass (region, tenant_id, instance_url)", function()
      local res = h.connrt({ "check", connector("harmless", 'values = { "api_base", "region", "tenant_id", "instance_url" },') })
      assert.equal(0, res.code, res.stdout .. res.stderr)
    end)
  end)

  describe("values returned by hooks", function()
    local CASES = {
      { "hooks.callback, a secret-looking name", 'hooks = { callback = function(q) return { session_token = q.state } end },',
        "hooks.callback returned the value session_token, whose name looks secret" },
      { "hooks.callback, an undeclared name", 'hooks = { callback = function(q) return { realm = "r1" } end },',
        "hooks.callback returned the value realm, which is not declared in `values` (declared: api_base, region)" },
      { "hooks.lookup, a secret-looking name", 'hooks = { lookup = function(api) return { api_key = "k-1234567890" } end },',
        "hooks.lookup returned the value api_key, whose name looks secret" },
      { "hooks.lookup, an undeclared name", 'hooks = { lookup = function(api) return { login_email = "a@b.c" } end },',
        "hooks.lookup returned the value login_email, which is not declared in `values`" },
      { "hooks.token_response, a secret-looking name", [[hooks = { token_response = function(r)
          local d = connrt.json.decode(r.body)
          return { access_token = d.access_token, values = { api_base = d.api_base, region = d.region, password = "pw-12345678" } }
        end },]], "hooks.token_response returned the value password, whose name looks secret" },
      { "hooks.token_response, a declared value that is the access token", [[hooks = { token_response = function(r)
          local d = connrt.json.decode(r.body)
          return { access_token = d.access_token, values = { api_base = d.api_base, region = d.access_token } }
        end },]], "value region carries the access token", 5 },
      { "hooks.token_response, a declared value that is the access token percent-encoded", [[hooks = {
        token_response = function(r)
          local d = connrt.json.decode(r.body)
          local enc = d.access_token:gsub(".", function(ch) return ("%%%02X"):format(ch:byte()) end)
          return { access_token = d.access_token, values = { api_base = d.api_base, region = enc } }
        end },]], "value region carries a secret (in some spelling), and it would be kept in clear", 5 },
    }
    for _, case in ipairs(CASES) do
      it(case[1] .. ": the connect fails and nothing is saved", function()
        local home = h.tmpdir()
        local res = prov.run(p, connector("hook", case[2]), home)
        assert.equal(case[4] or 3, res.code, res.stderr)
        assert.matches(case[3], res.stderr, 1, true)
        assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } }).stdout)
        h.rmdir(home)
      end)
    end

    it("a hook's declared value is kept", function()
      local home = h.tmpdir()
      local path = connector("hook-ok", [[values = { "api_base", "region", "realm" },
        hooks = { callback = function(q) return { realm = "r1" } end },]])
      local res = prov.run(p, path, home)
      assert.equal(0, res.code, res.stderr)
      local rec = cjson.decode(h.connrt({ "show", "trusty", "--json" }, { env = { CONNRT_HOME = home } }).stdout)
      assert.equal("r1", rec.values.realm)
      h.rmdir(home)
    end)
  end)
end)
