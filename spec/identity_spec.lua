-- luacheck: std +busted
-- A connector's id is a name its author chose, not an identity (issue 13, found attacking
-- the store and the sandbox): a connector that only shares the id of another gets neither
-- the client secret given for the other nor its connections; the store's unbound account
-- index cannot point a reconnect at another connection; values from a provider or a user
-- keep their exact text and cannot widen a URL's path; data a connector declares that
-- connrt cannot send is refused as the connector's error (exit 3), never an internal one.
local cjson = require("cjson")
local h = require("support.helpers")
local prov = require("support.provider")

describe("identity and values #integration", function()
  local p, other, tmp
  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
    other = prov.start() -- another provider: what a stranger's connector points at
  end)
  teardown(function()
    p.stop()
    other.stop()
    h.rmdir(tmp)
  end)

  local function connector_at(name, extra)
    local path = tmp .. "/" .. name .. ".lua"
    h.write(path, prov.connector(extra))
    return path
  end

  describe("a connector that shares another's id", function()
    it("is not given the client secret remembered for the other, and gets a clear error", function()
      local home = h.tmpdir()
      local path = connector_at("trusty")
      assert.equal(0, prov.run(p, path, home).code)
      -- the same id, pointed at another provider, without --client-id: the documented
      -- "given once" use, which must not hand the secret over
      local env = prov.env(home)
      env.CONNRT_CLIENT_SECRET = nil
      local res = h.connrt({ "run", path, "--field", "server=" .. other.origin, "--json", "--timeout", "20" }, { env = env })
      local log = other.log()
      h.rmdir(home)
      assert.equal(2, res.code, res.stderr)
      assert.matches("no client id for trusty", res.stderr, 1, true)
      assert.matches("was given for " .. p.origin:gsub("^http://", "http://"), res.stderr, 1, true)
      for _, r in ipairs(log) do
        assert.is_nil((r.headers.authorization or ""):find("Basic", 1, true), "the secret reached the other provider")
        assert.is_nil(r.body:find(prov.CLIENT_SECRET, 1, true))
      end
    end)

    it("does not take over the connection of the same account unless asked to", function()
      local home = h.tmpdir()
      local path = connector_at("trusty")
      local first = prov.run(p, path, home)
      assert.equal(0, first.code, first.stderr)
      local id = cjson.decode(first.stdout).id
      -- the other provider answers with the same account id
      local res = prov.run(other, path, home)
      assert.equal(2, res.code, res.stderr)
      assert.matches("is connected already (" .. id .. ")", res.stderr, 1, true)
      assert.matches("--replace", res.stderr, 1, true)
      local show = h.connrt({ "show", id, "--json" }, { env = prov.env(home) })
      assert.matches(p.origin, cjson.decode(show.stdout).allowed_urls[1], 1, true)
      res = prov.run(other, path, home, { "--replace" })
      assert.equal(0, res.code, res.stderr)
      assert.equal(id, cjson.decode(res.stdout).id)
      show = h.connrt({ "show", id, "--json" }, { env = prov.env(home) })
      h.rmdir(home)
      assert.matches(other.origin, cjson.decode(show.stdout).allowed_urls[1], 1, true)
    end)
  end)

  it("refuses a reconnect that the account index points at another connection", function()
    local home = h.tmpdir()
    local path = connector_at("trusty")
    local a = cjson.decode(prov.run(p, path, home).stdout).id
    local b = cjson.decode(prov.run(p, path, home, { "--field", "tenant=t2" }).stdout).id
    assert.are_not.equal(a, b) -- another account (the provider names the account by tenant)
    local before = h.snapshot(home)
    prov.write(home, function(txn)
      local rec = cjson.decode(txn:get("connections", a))
      txn:put("accounts", "trusty\0" .. rec.unique_id, b)
    end)
    local mid = h.snapshot(home)
    local res = prov.run(p, path, home)
    local after = h.snapshot(home)
    h.rmdir(home)
    assert.are_not.same(before, mid)
    assert.equal(8, res.code, res.stderr)
    assert.matches("account index", res.stderr, 1, true)
    assert.same(mid, after)
  end)

  describe("values in URLs", function()
    it("refuses a field of '', '.' or '..' in a URL's path, so it cannot widen an allowed URL", function()
      local path = connector_at("dots")
      for _, v in ipairs({ "..", ".", "" }) do
        local home = h.tmpdir()
        local res = prov.run(p, path, home, { "--field", "tenant=" .. v })
        local stored = h.read(home .. "/data.mdb")
        h.rmdir(home)
        assert.are_not.equal(0, res.code, v)
        assert.is_nil(res.stderr:find("internal error", 1, true))
        assert.matches("{{tenant}}", res.stderr, 1, true)
        assert.matches("would change the URL's path", res.stderr, 1, true)
        assert.is_true(stored == nil or not stored:find("/t/" .. v .. "\"", 1, true))
      end
    end)

    it("keeps a value of many digits exactly, so what is sent is what the provider said", function()
      local path = connector_at("digits", [[values = { "api_base", "region", "account" },
        hooks = { lookup = function() return { account = 123456789012345678 } end },
        request = { headers = { Authorization = "Bearer {{access_token}}", ["X-Account"] = "{{account}}" } },]])
      -- the connector has its own `request`: drop the one prov.connector wrote
      local src = h.read(path):gsub("  request = { headers = { Authorization = \"Bearer {{access_token}}\", "
        .. "%[\"X%-Tenant\"%] = \"{{tenant}}\",\n    %[\"X%-Region\"%] = \"{{region}}\" } },\n", "", 1)
      h.write(path, src)
      local home = h.tmpdir()
      local res = prov.run(p, path, home)
      assert.equal(0, res.code, res.stderr)
      local id = cjson.decode(res.stdout).id
      res = h.connrt({ "request", id, "/me" }, { env = prov.env(home) })
      h.rmdir(home)
      assert.equal(0, res.code, res.stderr)
      local log = p.log()
      assert.equal("123456789012345678", log[#log].headers["x-account"])
    end)
  end)

  describe("connector data connrt cannot send is the connector's error", function()
    local CASES = {
      { "a test with a function in its JSON", [[test = { method = "POST", url = "/me", json = { f = function() end } },]],
        "expected JSON data" },
      { "a GET test with a body", [[test = { url = "/me", body = "x" },]], "a GET request cannot have a body" },
      { "more allowed URLs than connrt takes", "allowed_urls = { " .. ("\"https://a.example\", "):rep(65) .. "},",
        "at most 64" },
      { "a token in the request's query", [[request = { query = { access_token = "{{access_token}}" } },]],
        "tokens and secrets never go in URLs" },
      { "a token in the test's URL", [[test = "/introspect/{{access_token}}",]], "tokens and secrets never go in URLs" },
    }
    for _, case in ipairs(CASES) do
      it("refuses " .. case[1], function()
        local path = tmp .. "/bad.lua"
        -- the case's key, given last, replaces the connector's own of the same name
        h.write(path, prov.connector(case[2]))
        local res = h.connrt({ "check", path })
        assert.equal(3, res.code, res.stdout .. res.stderr)
        assert.matches(case[3], res.stdout, 1, true)
        assert.is_nil((res.stdout .. res.stderr):find("internal error", 1, true))
      end)
    end
  end)
end)
