-- luacheck: std +busted
-- What connector authors hit (issue 14), end to end through the loopback provider of
-- spec/support/provider.mjs with `connrt` as a real process: a test API that answers an
-- error with HTTP 200, a token the connector calls expired that cannot be refreshed,
-- hooks.callback failing, {{client_id}} in request templates, namespaced template names,
-- extra token request headers, the grant a token answer is for, the small things of
-- `show`, `refresh`, `--verbose` and `revoke`, and `connrt update` re-applying a changed
-- connector to a stored connection without a new sign-in.
local cjson = require("cjson")
local h = require("support.helpers")
local prov = require("support.provider")

local RESET = { tok = "ok", refresh = "ok", me = "ok", api = "ok", revoke = 200 }

describe("what connector authors hit (issue 14) #integration", function()
  local p, tmp

  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
  end)
  teardown(function()
    if p then p.stop() end
    h.rmdir(tmp)
  end)
  after_each(function() p.mode(RESET) end)

  local n = 0
  -- The provider's connector with `extra` keys, in a file of its own.
  local function connector(extra)
    n = n + 1
    local path = ("%s/trusty-%d.lua"):format(tmp, n)
    h.write(path, prov.connector(extra))
    return path
  end

  local function run(home, args, extra) return h.connrt(args, { env = prov.env(home, extra) }) end
  local function list(home) return cjson.decode(run(home, { "list", "--json" }).stdout) end
  local function show(home, id) return cjson.decode(run(home, { "show", id, "--json" }).stdout) end

  -- The requests the provider heard since `since` (a count) with `method` and `path`.
  local function heard(since, method, path)
    local out = {}
    for i, e in ipairs(p.log()) do
      if i > since and e.method == method and e.path == path then out[#out + 1] = e end
    end
    return out
  end

  -- Connects `path` in a fresh store with the provider in `mode`; returns home and id.
  local function connected(path, mode)
    if mode then p.mode(mode) end
    local home, id = prov.connect(p, path)
    p.mode(RESET)
    return home, id
  end

  -- hooks.expired as Slack's: an answer {"ok": false} means the token is no good
  local EXPIRED_HOOK = [[hooks = { expired = function(r)
    local d = connrt.json.decode(r.body)
    return type(d) == "table" and d.ok == false
  end },]]

  describe("a test API that answers an error with HTTP 200 (item 1)", function()
    it("fails the connect when test.ok says the answer is an error: exit 5, the provider's error, nothing saved", function()
      p.mode({ me = "error200" })
      local home = h.tmpdir()
      local res = prov.run(p, connector([[test = { url = "/me", ok = { ok = true } },]]), home)
      assert.equal(5, res.code, res.stderr)
      assert.matches("test API GET " .. p.origin .. "/api/me answered 200 with ok = false, not true: invalid_auth; "
        .. "the connection was not saved", res.stderr, 1, true)
      assert.same({}, list(home))
      h.rmdir(home)
    end)

    it("fails the connect when hooks.expired says the test API's answer means the token is no good", function()
      p.mode({ me = "error200" })
      local home = h.tmpdir()
      local res = prov.run(p, connector(EXPIRED_HOOK), home)
      assert.equal(5, res.code, res.stderr)
      assert.matches("test API GET " .. p.origin .. "/api/me answered 200: invalid_auth, which hooks.expired says "
        .. "means the token is not valid; the connection was not saved", res.stderr, 1, true)
      assert.same({}, list(home))
      h.rmdir(home)
    end)

    it("connects when the answer passes test.ok, and a rule on a nested value works", function()
      local home = connected(connector([[test = { url = "/me", ok = { id = "u-1", name = "User One" } },]]))
      assert.equal(1, #list(home))
      h.rmdir(home)
    end)
  end)

  describe("a token the connector calls expired that cannot be refreshed (item 2)", function()
    it("connrt request exits 5, says to connect again and marks the connection", function()
      local home, id = connected(connector(EXPIRED_HOOK), { tok = "norefresh" })
      p.mode({ api = "expired200" })
      local res = run(home, { "request", id, "/things" })
      assert.equal(5, res.code, res.stderr)
      assert.matches("token expired (hooks.expired) and cannot be refreshed: connect again with connrt run ",
        res.stderr, 1, true)
      assert.is_true(list(home)[1].needs_reconnect)
      assert.matches("needs reconnect", run(home, { "list" }).stdout, 1, true)
      h.rmdir(home)
    end)

    it("a token still expired after a refresh is an error too, not an answer (exit 5)", function()
      local home, id = connected(connector(EXPIRED_HOOK))
      p.mode({ api = "expired200" })
      local since = #p.log()
      local res = run(home, { "request", id, "/things" })
      assert.equal(5, res.code, res.stderr)
      assert.matches("hooks.expired says the token is still not valid after a refresh", res.stderr, 1, true)
      assert.equal(1, #heard(since, "POST", "/token"))
      h.rmdir(home)
    end)
  end)

  describe("hooks.callback can fail (item 3)", function()
    it("return nil, message stops before the code is exchanged: exit 4, the message, nothing saved", function()
      local since = #p.log()
      local home = h.tmpdir()
      local res = prov.run(p, connector([[values = { "api_base", "region", "realm_id" },
        hooks = { callback = function(q)
          if not q.realmId then return nil, "the callback carries no realmId: choose a company" end
          return { realm_id = q.realmId }
        end },]]), home)
      assert.equal(4, res.code, res.stderr)
      assert.matches("hooks.callback: the callback carries no realmId: choose a company; nothing was saved",
        res.stderr, 1, true)
      assert.equal(0, #heard(since, "POST", "/token"), "the code was exchanged")
      assert.same({}, list(home))
      h.rmdir(home)
    end)
  end)

  describe("{{client_id}} in request templates", function()
    it("works in every request of a stored connection (Twitch, Etsy)", function()
      local home, id = connected(connector([[request = { headers = { Authorization = "Bearer {{access_token}}",
        ["Client-Id"] = "{{client_id}}" } },]]))
      local since = #p.log()
      local res = run(home, { "request", id, "/things" })
      assert.equal(0, res.code, res.stderr)
      local got = heard(since, "GET", "/api/things")
      assert.equal(1, #got)
      assert.equal(prov.CLIENT_ID, got[1].headers["client-id"])
      h.rmdir(home)
    end)
  end)

  describe("the small things (item 5)", function()
    it("connrt show prints a kept integer as an integer", function()
      local home, id = connected(connector([[values = { "api_base", "region", "quota" },]]))
      local out = run(home, { "show", id }).stdout
      assert.matches("\nvalues.quota%s+8726400\n", out)
      assert.is_nil(out:find("8726400.0", 1, true))
      h.rmdir(home)
    end)

    it("connrt refresh without a refresh token exits 1, sends nothing and says how to reconnect", function()
      local home, id = connected(connector(), { tok = "norefresh" })
      local since = #p.log()
      local res = run(home, { "refresh", id })
      assert.equal(1, res.code, res.stderr)
      assert.matches("connection " .. id .. " has no refresh token, so nothing was sent: connect again with connrt run ",
        res.stderr, 1, true)
      assert.equal(since, #p.log())
      h.rmdir(home)
    end)

    it("--verbose shows the connector's headers that carry no secret and hides those that do", function()
      local home, id = connected(connector([[fields = { { key = "server", required = true }, { key = "tenant", default = "t1" },
        { key = "pin", secret = true, default = "pin-4711" } },
        request = { headers = { Authorization = "Bearer {{access_token}}", ["X-Tenant"] = "{{tenant}}",
          ["X-Region"] = "{{region}}", ["X-Pin"] = "p={{pin}}" } },]]))
      local res = run(home, { "request", id, "/things", "--verbose" })
      assert.equal(0, res.code, res.stderr)
      assert.matches("> X-Tenant: t1\n", res.stderr, 1, true)
      assert.matches("> X-Region: eu\n", res.stderr, 1, true)
      assert.matches("> Authorization: [redacted]\n", res.stderr, 1, true)
      assert.matches("> X-Pin: [redacted]\n", res.stderr, 1, true)
      assert.is_nil(res.stderr:find("pin-4711", 1, true))
      h.rmdir(home)
    end)

    it("an unknown expiry is shown as unknown, not never", function()
      local home, id = connected(connector(), { tok = "noexpiry" })
      assert.matches("\nexpires_at%s+unknown\n", run(home, { "show", id }).stdout)
      local l = run(home, { "list" }).stdout
      assert.matches("unknown", l, 1, true)
      assert.is_nil(l:find("never", 1, true))
      h.rmdir(home)
    end)

    it("a refused revoke says the connection was kept and that connrt delete removes it here", function()
      local home, id = connected(connector())
      p.mode({ revoke = 400 })
      local res = run(home, { "revoke", id })
      assert.equal(5, res.code, res.stderr)
      assert.matches("answered 400", res.stderr, 1, true)
      assert.matches("the connection was kept: connrt delete " .. id .. " removes it here", res.stderr, 1, true)
      assert.equal(1, #list(home))
      h.rmdir(home)
    end)
  end)

  describe("namespaced names in templates (item 6)", function()
    it("{{test.X}}, {{values.X}}, {{fields.X}} and {{token.X}} name one place each", function()
      -- a kept value `id` beside the test API's `id` (Salesforce), told apart by namespace
      local home, id = connected(connector([[values = { "api_base", "region", "id" },
        hooks = { callback = function() return { id = "kept-7" } end },
        name = "{{test.name}} ({{values.id}}, {{fields.tenant}}, {{token.scope}})", unique_id = "{{test.id}}",
        allowed_urls = { "{{values.api_base}}", "{{fields.server}}/t/{{fields.tenant}}" },
        request = { headers = { Authorization = "Bearer {{token.access_token}}", ["X-Region"] = "{{values.region}}" } },]]))
      local rec = show(home, id)
      assert.equal("u-1", rec.unique_id)
      assert.equal("User One (kept-7, t1, read)", rec.name)
      assert.same({ p.origin .. "/api", p.origin .. "/t/t1" }, rec.allowed_urls)
      local since = #p.log()
      local res = run(home, { "request", id, "/things" })
      assert.equal(0, res.code, res.stderr)
      assert.equal("eu", heard(since, "GET", "/api/things")[1].headers["x-region"])
      h.rmdir(home)
    end)
  end)

  describe("token requests (item 7)", function()
    it("send the connector's token_headers, with Accept: application/json, on the exchange and on refreshes", function()
      local since = #p.log()
      local home, id = connected(connector([[token_headers = { ["User-Agent"] = "trusty-app/1.0 ({{tenant}})" },]]))
      assert.equal(0, run(home, { "refresh", id }).code)
      local got = heard(since, "POST", "/token")
      assert.equal(2, #got)
      for _, e in ipairs(got) do
        assert.equal("trusty-app/1.0 (t1)", e.headers["user-agent"])
        assert.equal("application/json", e.headers.accept)
      end
      h.rmdir(home)
    end)

    it("tell hooks.token_response which grant it answers (raw.grant)", function()
      local home, id = connected(connector([[hooks = { token_response = function(raw)
        local d = connrt.json.decode(raw.body)
        local ttl = ({ authorization_code = 7200, refresh_token = 5400 })[raw.grant] or 60
        return { access_token = d.access_token, refresh_token = d.refresh_token, expires_in = ttl,
          values = { api_base = d.api_base, region = d.region } }
      end },]]))
      local left = show(home, id).expires_at - os.time()
      assert.is_true(math.abs(left - 7200) < 60, "expires in " .. left)
      assert.equal(0, run(home, { "refresh", id }).code)
      left = show(home, id).expires_at - os.time()
      assert.is_true(math.abs(left - 5400) < 60, "expires in " .. left)
      h.rmdir(home)
    end)
  end)

  describe("connrt update (item 8)", function()
    local function token_of(home, id) return run(home, { "token", id }).stdout end

    it("re-applies a changed connector to a stored connection: no sign-in, tokens kept, one request later", function()
      local path = connector()
      local home, id = connected(path)
      local before = show(home, id)
      local tok = token_of(home, id)
      -- the author fixes the connector: another allowed URL path and a version header
      h.write(path, prov.connector([[allowed_urls = { "{{api_base}}", "{{server}}/t/{{tenant}}/v2" },
        request = { headers = { Authorization = "Bearer {{access_token}}", ["X-Tenant"] = "{{tenant}}",
          ["X-Region"] = "{{region}}", ["X-Api-Version"] = "2" } },]]))
      local since = #p.log()
      local res = run(home, { "update", id })
      assert.equal(0, res.code, res.stderr)
      assert.matches("updated " .. id, res.stderr, 1, true)
      assert.equal(since, #p.log(), "update sent something")
      local after = show(home, id)
      assert.same({ p.origin .. "/api", p.origin .. "/t/t1/v2" }, after.allowed_urls)
      assert.equal(before.name, after.name)
      assert.equal(before.unique_id, after.unique_id)
      assert.equal(before.expires_at, after.expires_at)
      assert.equal(tok, token_of(home, id))
      res = run(home, { "request", id, "/things" })
      assert.equal(0, res.code, res.stderr)
      assert.equal("2", heard(since, "GET", "/api/things")[1].headers["x-api-version"])
      -- the old source no longer decides: the connection's record is bound to the new one
      res = run(home, { "request", id, p.origin .. "/t/t1/x" })
      assert.equal(7, res.code, res.stderr)
      h.rmdir(home)
    end)

    it("says when there is nothing to change, and takes another file, remembered for the next update", function()
      local home, id = connected(connector())
      local res = run(home, { "update", id })
      assert.equal(0, res.code, res.stderr)
      assert.matches("nothing to update", res.stderr, 1, true)
      local other = connector()
      res = run(home, { "update", id, other })
      assert.equal(0, res.code, res.stderr)
      assert.matches("connector_path", res.stderr, 1, true)
      h.write(other, prov.connector([[request = { headers = { Authorization = "Bearer {{access_token}}",
        ["X-From"] = "the other file" } },]]))
      res = run(home, { "update", id })
      assert.equal(0, res.code, res.stderr)
      local since = #p.log()
      assert.equal(0, run(home, { "request", id, "/things" }).code)
      assert.equal("the other file", heard(since, "GET", "/api/things")[1].headers["x-from"])
      h.rmdir(home)
    end)

    local REFUSED = {
      { "another connector id", [[id = "other",]], 2, "is a connector for other, not trusty" },
      { "another way of connecting", [[auth = "client_credentials",]], 2, "connects with auth = \"client_credentials\"" },
      { "more scopes", [[scopes = { "read", "write" },]], 2, "asks for scopes the connection was not granted: write" },
      { "a token URL at another host", [[token_url = "http://localhost:9/token",]], 2, "token_url moves to another host" },
      { "a required field the connection does not have", [[fields = { { key = "server", required = true },
        { key = "tenant", default = "t1" }, { key = "org", required = true } },]], 2, "needs field org" },
      { "a template naming a value the connection does not keep", [[values = { "api_base", "region", "team" },
        request = { headers = { Authorization = "Bearer {{access_token}}", ["X-Team"] = "{{team}}" } },]], 3,
        "{{team}} names a value that does not exist" },
      { "an invalid connector", [[refresh_on = { 200 },]], 3, "refresh_on" },
    }
    it("refuses a connector it cannot read (exit 2), a missing file or a directory, and an unknown connection (exit 9)", function()
      local home, id = connected(connector())
      local snap = h.snapshot(home)
      for _, path in ipairs({ tmp .. "/missing.lua", tmp }) do
        local res = run(home, { "update", id, path })
        assert.equal(2, res.code, res.stderr)
        assert.matches("cannot read the connector " .. path, res.stderr, 1, true)
      end
      assert.equal(9, run(home, { "update", "nope" }).code)
      assert.equal(2, run(home, { "update" }).code)
      assert.same(snap, h.snapshot(home))
      h.rmdir(home)
    end)

    for _, case in ipairs(REFUSED) do
      it("refuses " .. case[1] .. " (exit " .. case[3] .. ") and changes nothing", function()
        local path = connector()
        local home, id = connected(path)
        local snap = h.snapshot(home)
        h.write(path, prov.connector(case[2]))
        local res = run(home, { "update", id })
        assert.equal(case[3], res.code, res.stderr)
        assert.matches(case[4], res.stderr, 1, true)
        assert.is_nil(res.stderr:find("traceback", 1, true))
        assert.same(snap, h.snapshot(home))
        h.rmdir(home)
      end)
    end
  end)
end)
