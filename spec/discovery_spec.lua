-- luacheck: std +busted
-- Connecting with no hand-written endpoints, end to end against the real authorization
-- server (oidc-provider, spec/support/oidc-server.mjs): metadata discovery (RFC 8414)
-- filling a connector's endpoints, dynamic client registration (RFC 7591) once per
-- server, `connrt connect URL` on a protected resource (RFC 9728) that accepts only
-- tokens issued for it (RFC 8707), and hostile metadata, each refused with nothing stored.
local cjson = require("cjson")
local h = require("support.helpers")

describe("discovery, registration and protected resources (integration) #integration", function()
  local tmp, redirect, server, closed, client

  setup(function()
    tmp = h.tmpdir()
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    -- registration open, and the protected resource stand-in beside it
    server = h.start_server({ redirect = redirect, args = "--registration --resource-server" })
    -- registration closed (the default of the spec server)
    closed = h.start_server({ redirect = redirect })
    client = require("connrt.http").client()
  end)
  teardown(function()
    for _, s in ipairs({ server, closed }) do if s then s.stop() end end
    h.rmdir(tmp)
  end)

  local function write_connector(name, body)
    local path = tmp .. "/" .. name .. ".lua"
    h.write(path, body)
    return path
  end

  local function env(home, extra)
    local e = { CONNRT_HOME = home, CONNRT_REDIRECT_URL = redirect,
      CONNRT_BROWSER = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function stats(s)
    return cjson.decode(assert(client:request({ url = s.issuer .. "/test/stats" })).body)
  end

  local function list(home)
    return cjson.decode(h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } }).stdout)
  end

  -- the keys of the store's clients database (remembered and registered clients)
  local function clients(home)
    local env_ = require("connrt.lmdb").open(home, { "connections", "secrets", "accounts", "clients", "connectors",
      "leases", "meta" }, {})
    if not env_ then return {} end
    local txn = env_:begin(false)
    local rows = txn:list("clients")
    txn:abort()
    env_:close()
    local keys = {}
    for _, kv in ipairs(rows) do keys[#keys + 1] = kv[1] end
    return keys
  end

  -- a connector that names no endpoint: discovery fills them, userinfo is the test API
  local DISCOVERED = [[return {
    id = "disc", title = "Discovered",
    fields = { { key = "server", required = true } },
    discovery = "{{server}}",
    scopes = { "openid", "email", "profile" },
    %s
    name = "{{name}}", unique_id = "{{email}}",
    allowed_urls = { "{{server}}/" },
    request = { headers = { Authorization = "Bearer {{access_token}}" } },
  }]]

  describe("discovery (RFC 8414)", function()
    it("fills the endpoints, the issuer and the test API from the metadata; the connection refreshes and revokes",
      function()
        local path = write_connector("disc", DISCOVERED:format(""))
        local home = h.tmpdir()
        local res = h.connrt({ "run", path, "--field", "server=" .. closed.issuer, "--client-id", "connrt-basic",
          "--json", "--timeout", "20" }, { env = env(home, { CONNRT_CLIENT_SECRET = "basic-secret" }) })
        assert.equal(0, res.code, res.stderr)
        local out = cjson.decode(res.stdout)
        assert.equal("John", out.name)
        assert.equal("john@example.com", out.unique_id)
        -- the authorize URL is the metadata's, with PKCE
        assert.matches(closed.issuer .. "/auth?response_type=code", res.stderr, 1, true)
        assert.matches("code_challenge_method=S256", res.stderr, 1, true)
        local show = cjson.decode(h.connrt({ "show", out.id, "--json" }, { env = { CONNRT_HOME = home } }).stdout)
        assert.equal(closed.issuer, show.discovery.issuer)
        assert.equal(closed.issuer .. "/.well-known/oauth-authorization-server", show.discovery.metadata_url)
        assert.same({ "authorize_url", "token_url", "revoke_url", "device_url", "issuer", "test" }, show.discovery.filled)
        local text = h.connrt({ "show", out.id }, { env = { CONNRT_HOME = home } }).stdout
        assert.matches("discovery%s+" .. closed.issuer:gsub("%p", "%%%0"), text)
        -- the discovered endpoints stay through `connrt update` with the same connector
        local u = h.connrt({ "update", out.id, path }, { env = { CONNRT_HOME = home } })
        assert.equal(0, u.code, u.stderr)
        assert.matches("nothing to update", u.stderr, 1, true)
        -- the token URL came from the metadata and was kept: refresh and revoke use it
        local before = stats(closed).grants.refresh_token or 0
        local r = h.connrt({ "refresh", out.id }, { env = { CONNRT_HOME = home } })
        assert.equal(0, r.code, r.stderr)
        assert.equal(before + 1, stats(closed).grants.refresh_token)
        r = h.connrt({ "revoke", out.id }, { env = { CONNRT_HOME = home } })
        assert.equal(0, r.code, r.stderr)
        assert.same({}, list(home))
        h.rmdir(home)
      end)

    it("lets the keys the connector sets win over the metadata", function()
      -- a token_url of the connector's own: the metadata's is not used (nor checked)
      local path = write_connector("disc-own", DISCOVERED:format(
        ('token_url = "%s/test/html-token",'):format(closed.issuer)))
      local home = h.tmpdir()
      local res = h.connrt({ "run", path, "--field", "server=" .. closed.issuer, "--client-id", "connrt-basic",
        "--timeout", "20" }, { env = env(home, { CONNRT_CLIENT_SECRET = "basic-secret" }) })
      assert.equal(5, res.code, res.stderr)
      assert.matches("token endpoint " .. closed.issuer .. "/test/html-token answered 502", res.stderr, 1, true)
      assert.same({}, list(home))
      h.rmdir(home)
    end)

    it("refuses a connector whose registration has no discovery, or that has neither test nor discovery", function()
      local no_disc = write_connector("no-disc", [[return { id = "x", authorize_url = "https://a.example/auth",
        token_url = "https://a.example/token", registration = "dynamic", test = "/me", name = "x",
        unique_id = "{{id}}", allowed_urls = { "https://a.example/" } }]])
      local res = h.connrt({ "run", no_disc, "--client-id", "c" }, { env = env(h.tmpdir()) })
      assert.equal(3, res.code)
      assert.matches("key 'registration': registering a client needs the server's metadata: give `discovery` too",
        res.stderr, 1, true)
      local no_test = write_connector("no-test", [[return { id = "x", authorize_url = "https://a.example/auth",
        token_url = "https://a.example/token", name = "x", unique_id = "{{id}}", allowed_urls = { "https://a.example/" } }]])
      res = h.connrt({ "run", no_test, "--client-id", "c" }, { env = env(h.tmpdir()) })
      assert.equal(3, res.code)
      assert.matches("key 'test': is required", res.stderr, 1, true)
      for _, case in ipairs({
        { 'discovery = "{{host}}"', "discovery uses {{host}}, which is not a field of this connector (fields: none)" },
        { 'discovery = "https://a.example", registration = "static"',
          "key 'registration': expected one of dynamic, got static" },
        { 'discovery = "https://a.example", resource = "http://api.example.com/"',
          "resource http://api.example.com/: plain http is allowed only for loopback hosts" },
        { 'discovery = "https://a.example", auth = "fields"',
          "key 'discovery': auth = \"fields\" connections have no authorization server" },
      }) do
        local bad = write_connector("bad", ([[return { id = "x", %s, test = "/me", name = "x",
          unique_id = "{{id}}", allowed_urls = { "https://a.example/" } }]]):format(case[1]))
        res = h.connrt({ "run", bad, "--client-id", "c" }, { env = env(h.tmpdir()) })
        assert.equal(3, res.code, res.stderr)
        assert.matches(case[2], res.stderr, 1, true)
      end
    end)
  end)

  describe("metadata fetched again when a refresh meets an endpoint error", function()
    it("follows a token endpoint that moved on the issuer's origin, never one that moved to another", function()
      local moving = h.start_server({ redirect = redirect })
      local path = write_connector("moving", DISCOVERED:format(""))
      local home = h.tmpdir()
      local res = h.connrt({ "run", path, "--field", "server=" .. moving.issuer, "--client-id", "connrt-basic",
        "--json", "--timeout", "20" }, { env = env(home, { CONNRT_CLIENT_SECRET = "basic-secret" }) })
      assert.equal(0, res.code, res.stderr)
      local id = cjson.decode(res.stdout).id
      local e = { CONNRT_HOME = home }
      local function show() return cjson.decode(h.connrt({ "show", id, "--json" }, { env = e }).stdout) end
      local before = show()
      -- to another origin: refused, and the connection keeps its token URL
      assert.equal(200, client:request({ url = moving.issuer .. "/test/move-token?to=other" }).status)
      local r = h.connrt({ "refresh", id }, { env = e })
      assert.equal(5, r.code, r.stderr)
      assert.matches("refresh at " .. moving.issuer .. "/token failed, and the metadata of " .. moving.issuer
        .. " (" .. moving.issuer .. "/.well-known/oauth-authorization-server) now names the token endpoint "
        .. moving.issuer:gsub("127%.0%.0%.1", "localhost") .. "/token, on another origin", r.stderr, 1, true)
      assert.same(before, show())
      -- on the same origin: followed, kept with the connection, and the refresh is done there
      assert.equal(200, client:request({ url = moving.issuer .. "/test/move-token?to=same" }).status)
      r = h.connrt({ "refresh", id }, { env = e })
      assert.equal(0, r.code, r.stderr)
      assert.matches("token endpoint moved to " .. moving.issuer .. "/token2", r.stderr, 1, true)
      local after = show()
      assert.is_true(after.discovery.fetched_at >= before.discovery.fetched_at)
      r = h.connrt({ "refresh", id }, { env = e }) -- straight to the new endpoint now
      assert.equal(0, r.code, r.stderr)
      assert.is_nil(r.stderr:find("moved", 1, true))
      local st = stats(moving)
      assert.equal(2, st.grants.refresh_token)
      assert.equal(2, st.gone_token) -- the refused refresh and the followed one met the old endpoint once each
      moving.stop()
      h.rmdir(home)
    end)
  end)

  describe("dynamic client registration (RFC 7591)", function()
    local REGISTERED = DISCOVERED:format('registration = "dynamic",')

    it("registers once, connects with PKCE, and reuses the registered client on the next connect", function()
      local path = write_connector("reg", REGISTERED)
      local home = h.tmpdir()
      local before = stats(server).registrations
      local args = { "run", path, "--field", "server=" .. server.issuer, "--json", "--timeout", "20" }
      -- --verbose traces the registration: its secrets are hidden there too
      local first = { "--verbose" }
      for _, a in ipairs(args) do first[#first + 1] = a end
      local res = h.connrt(first, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.equal(before + 1, stats(server).registrations)
      assert.matches("Registered connrt as client ", res.stderr, 1, true)
      assert.matches("code_challenge_method=S256", res.stderr, 1, true)
      local id = cjson.decode(res.stdout).id
      local show = cjson.decode(h.connrt({ "show", id, "--json" }, { env = { CONNRT_HOME = home } }).stdout)
      assert.is_true(show.discovery.registered)
      assert.is_string(show.client_id)
      -- the registered client is kept under the server, sealed
      local keys = clients(home)
      local registered
      for _, k in ipairs(keys) do if k:find("registered " .. server.issuer, 1, true) == 1 then registered = k end end
      assert.is_truthy(registered, table.concat(keys, ", "))
      local st = require("connrt.store").open(home)
      local reg = st:client(registered)
      st:close()
      assert.equal(show.client_id, reg.client_id)
      assert.is_true(#reg.client_secret >= 16)
      assert.is_nil((res.stdout .. res.stderr):find(reg.client_secret, 1, true))
      assert.is_nil(h.store_bytes(home):find(reg.client_secret, 1, true))
      -- the second connect registers nothing: the same client, the same connection
      res = h.connrt(args, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.equal(before + 1, stats(server).registrations)
      assert.is_nil(res.stderr:find("Registered connrt", 1, true))
      local again = cjson.decode(res.stdout)
      assert.equal(id, again.id)
      assert.is_true(again.updated)
      assert.equal(show.client_id,
        cjson.decode(h.connrt({ "show", id, "--json" }, { env = { CONNRT_HOME = home } }).stdout).client_id)
      -- and the connection refreshes with it (its authentication is the registered one)
      local r = h.connrt({ "refresh", id }, { env = { CONNRT_HOME = home } })
      assert.equal(0, r.code, r.stderr)
      h.rmdir(home)
    end)

    it("lets --client-id win: nothing is registered", function()
      local path = write_connector("reg-given", REGISTERED)
      local home = h.tmpdir()
      local before = stats(server).registrations
      local res = h.connrt({ "run", path, "--field", "server=" .. server.issuer, "--client-id", "connrt-basic",
        "--json", "--timeout", "20" }, { env = env(home, { CONNRT_CLIENT_SECRET = "basic-secret" }) })
      assert.equal(0, res.code, res.stderr)
      assert.equal(before, stats(server).registrations)
      local show = cjson.decode(h.connrt({ "show", cjson.decode(res.stdout).id, "--json" },
        { env = { CONNRT_HOME = home } }).stdout)
      assert.equal("connrt-basic", show.client_id)
      h.rmdir(home)
    end)

    it("asks for --client-id when the server does not allow registration, with nothing stored", function()
      local path = write_connector("reg-closed", REGISTERED)
      local home = h.tmpdir()
      local res = h.connrt({ "run", path, "--field", "server=" .. closed.issuer, "--timeout", "20" }, { env = env(home) })
      assert.equal(2, res.code, res.stderr)
      assert.matches(closed.issuer .. " does not offer dynamic client registration (its metadata " .. closed.issuer
        .. "/.well-known/oauth-authorization-server has no registration_endpoint): register connrt there yourself "
        .. "(redirect URL: " .. redirect .. ") and pass --client-id", res.stderr, 1, true)
      assert.same({}, list(home))
      assert.same({}, clients(home))
      h.rmdir(home)
    end)
  end)

  describe("connrt connect URL (RFC 9728, RFC 8707)", function()
    it("connects a protected resource end to end: request, token, refresh, show, list, revoke", function()
      local mcp = server.resource .. "/mcp"
      local home = h.tmpdir()
      local ok_before = stats(server).resource_ok
      local res = h.connrt({ "connect", mcp, "--json", "--timeout", "20" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      -- the allowed URL is said before the browser opens, and the resource indicator is sent
      local said = res.stderr:find("the connection will send its token only under " .. mcp, 1, true)
      local opened = res.stderr:find("Open this URL", 1, true)
      assert.is_truthy(said and opened and said < opened, res.stderr)
      assert.matches("resource=" .. require("connrt.url").encode(mcp), res.stderr, 1, true)
      local id = cjson.decode(res.stdout).id
      local e = { CONNRT_HOME = home }
      -- the stand-in accepts only tokens issued for its resource
      local r = h.connrt({ "request", id, mcp }, { env = e })
      assert.equal(0, r.code, r.stderr)
      assert.same({ sub = "john", resource = mcp }, cjson.decode(r.stdout))
      assert.is_true(stats(server).resource_ok >= ok_before + 2) -- the test API's and this one
      local tok = h.connrt({ "token", id }, { env = e })
      assert.equal(0, tok.code, tok.stderr)
      local raw = assert(client:request({ url = mcp, headers = { "Authorization: Bearer " .. tok.stdout:gsub("%s+$", "") } }))
      assert.equal(200, raw.status)
      -- the allowed URL is the resource's origin and path, nothing else of the origin
      r = h.connrt({ "request", id, server.resource .. "/bare" }, { env = e })
      assert.equal(7, r.code, r.stderr)
      r = h.connrt({ "refresh", id }, { env = e })
      assert.equal(0, r.code, r.stderr)
      r = h.connrt({ "request", id, mcp }, { env = e })
      assert.equal(0, r.code, r.stderr)
      local show = h.connrt({ "show", id }, { env = e }).stdout
      assert.matches("resource%s+" .. mcp:gsub("%p", "%%%0"), show)
      assert.matches("registration%s+dynamic", show)
      assert.matches("allowed_urls%s+" .. mcp:gsub("%p", "%%%0") .. "\n", show)
      assert.equal(1, #list(home))
      r = h.connrt({ "revoke", id }, { env = e })
      assert.equal(0, r.code, r.stderr)
      assert.same({}, list(home))
      -- revoked at the server: the old token is refused now
      raw = assert(client:request({ url = mcp, headers = { "Authorization: Bearer " .. tok.stdout:gsub("%s+$", "") } }))
      assert.equal(401, raw.status)
      h.rmdir(home)
    end)

    it("says to connect the resource again when its refresh token is refused", function()
      local mcp = server.resource .. "/mcp"
      local home = h.tmpdir()
      local res = h.connrt({ "connect", mcp, "--json", "--timeout", "20" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      local id = cjson.decode(res.stdout).id
      -- the refresh token revoked at the server, behind connrt's back
      local st = require("connrt.store").open(home)
      local rec = st:get(id)
      local secrets = st:secrets(rec)
      st:close()
      local basic = require("connrt.crypto").b64encode(rec.client_id .. ":" .. secrets.client_secret)
      local r = assert(client:request({ method = "POST", url = server.issuer .. "/token/revocation",
        headers = { "Authorization: Basic " .. basic, "Content-Type: application/x-www-form-urlencoded" },
        body = "token=" .. require("connrt.url").encode(secrets.refresh_token) }))
      assert.equal(200, r.status)
      local out = h.connrt({ "refresh", id }, { env = { CONNRT_HOME = home } })
      assert.equal(5, out.code, out.stderr)
      assert.matches("invalid_grant", out.stderr, 1, true)
      assert.matches("needs reconnecting: run `connrt connect " .. mcp .. "` again", out.stderr, 1, true)
      h.rmdir(home)
    end)

    it("prints the equivalent connector, which connects with `connrt run`", function()
      local mcp = server.resource .. "/mcp"
      local home = h.tmpdir()
      local res = h.connrt({ "connect", mcp, "--print-connector" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.matches('discovery = "' .. server.issuer .. '"', res.stdout, 1, true)
      assert.matches('registration = "dynamic"', res.stdout, 1, true)
      assert.matches('resource = "' .. mcp .. '"', res.stdout, 1, true)
      assert.matches('allowed_urls = { "' .. mcp .. '" }', res.stdout, 1, true)
      assert.same({}, list(home)) -- printing connects nothing
      local path = write_connector("printed", res.stdout)
      local checked = h.connrt({ "check", path })
      assert.equal(0, checked.code, checked.stdout .. checked.stderr)
      assert.matches("0 error(s), 0 warning(s)", checked.stderr, 1, true)
      local r = h.connrt({ "run", path, "--json", "--timeout", "20" }, { env = env(home) })
      assert.equal(0, r.code, r.stderr)
      r = h.connrt({ "request", cjson.decode(r.stdout).id, mcp }, { env = { CONNRT_HOME = home } })
      assert.equal(0, r.code, r.stderr)
      h.rmdir(home)
    end)

    it("finds the metadata at the origin's well-known URL when the 401 does not name it", function()
      local res = h.connrt({ "connect", server.resource .. "/bare", "--print-connector" }, { env = env(h.tmpdir()) })
      assert.equal(0, res.code, res.stderr)
      assert.matches('resource = "' .. server.resource .. '/bare"', res.stdout, 1, true)
    end)

    it("refuses a token issued for another resource: the stand-in checks the audience", function()
      -- a connection of the same server without a resource indicator
      local path = write_connector("no-resource", ([[return {
        id = "nores", discovery = "%s", scopes = { "openid", "email" },
        name = "{{email}}", unique_id = "{{email}}",
        allowed_urls = { "%s/", "%s/mcp" },
        request = { headers = { Authorization = "Bearer {{access_token}}" } },
      }]]):format(closed.issuer, closed.issuer, server.resource))
      local home = h.tmpdir()
      local res = h.connrt({ "run", path, "--client-id", "connrt-basic", "--json", "--timeout", "20" },
        { env = env(home, { CONNRT_CLIENT_SECRET = "basic-secret" }) })
      assert.equal(0, res.code, res.stderr)
      local r = h.connrt({ "request", cjson.decode(res.stdout).id, server.resource .. "/mcp" }, { env = { CONNRT_HOME = home } })
      assert.equal(5, r.code, r.stderr)
      assert.matches("^401 ", r.stderr)
      h.rmdir(home)
    end)
  end)

  describe("hostile metadata, refused with nothing stored", function()
    local function hostile(case, extra)
      return write_connector("hostile-" .. case, ([[return {
        id = "hostile", discovery = "%s/as/%s", %s
        test = "%s/mcp", name = "x", unique_id = "x", allowed_urls = { "%s/mcp" },
      }]]):format(server.resource, case, extra or "", server.resource, server.resource))
    end

    local function refused(case, code, message, extra, args)
      local home = h.tmpdir()
      local argv = { "run", hostile(case, extra), "--timeout", "10" }
      for _, a in ipairs(args or { "--client-id", "c" }) do argv[#argv + 1] = a end
      local res = h.connrt(argv, { env = env(home) })
      assert.equal(code, res.code, res.stderr)
      assert.matches(message, res.stderr, 1, true)
      assert.is_nil(res.stderr:find("traceback", 1, true))
      assert.is_nil(res.stderr:find("Open this URL", 1, true)) -- refused before any sign-in
      assert.same({}, list(home))
      assert.same({}, clients(home))
      h.rmdir(home)
    end

    it("an issuer that is not the URL the metadata was fetched for", function()
      local as = server.resource .. "/as/"
      refused("wrong-issuer", 5, "authorization server metadata " .. server.resource
        .. "/.well-known/oauth-authorization-server/as/wrong-issuer names the issuer " .. as .. "someone-else, not "
        .. as .. "wrong-issuer, the issuer it was fetched for")
    end)

    it("an endpoint on plain http off loopback", function()
      refused("http-endpoint", 5, "token_endpoint http://auth.example.com/token: plain http is allowed only for "
        .. "loopback hosts")
    end)

    it("a token endpoint on another host than the issuer's", function()
      local other = server.resource:gsub("127%.0%.0%.1", "localhost")
      local port = server.resource:match(":(%d+)$")
      refused("other-host", 5, "token_endpoint " .. other .. "/token is on http://localhost:" .. port
        .. ", not on the issuer's origin http://127.0.0.1:" .. port)
    end)

    it("an oversized document", function()
      refused("oversized", 5, "/.well-known/oauth-authorization-server/as/oversized answered with a")
    end)

    it("a document that never ends: the token endpoint's timeout (30 s) stops it", function()
      local t0 = require("connrt.sys").monotime()
      refused("slow", 6, "/.well-known/oauth-authorization-server/as/slow: Timeout was reached")
      local took = require("connrt.sys").monotime() - t0
      assert.is_true(took >= 25 and took < 50, "took " .. took .. " s")
    end)

    it("a document that is not JSON", function()
      refused("invalid-json", 5, "as/invalid-json answered 200 with a body that is not JSON metadata, not a JSON object")
    end)

    it("a callback without iss from a server whose metadata says it sends one (RFC 9207 2.4)", function()
      local home = h.tmpdir()
      local res = h.connrt({ "run", hostile("no-iss", 'scopes = { "api" },'), "--client-id", "c", "--timeout", "10" },
        { env = env(home) })
      assert.equal(4, res.code, res.stderr)
      assert.matches("the callback carries no iss, though " .. server.resource .. "/as/no-iss sends one (RFC 9207 2.4",
        res.stderr, 1, true)
      assert.is_nil(res.stderr:find("traceback", 1, true))
      assert.same({}, list(home))
      h.rmdir(home)
    end)

    it("a registration answer without client_id", function()
      refused("no-client-id", 5, "client registration at " .. server.resource
        .. "/as/no-client-id/register answered without a client_id", 'registration = "dynamic",', {})
    end)

    it("a registration answer whose client_id is its client_secret (kept and shown in clear)", function()
      refused("id-is-secret", 5, "client registration at " .. server.resource .. "/as/id-is-secret/register registered a "
        .. "client whose client_id carries its client_secret", 'registration = "dynamic",', {})
    end)

    it("a server without a registration endpoint, for a connector that registers", function()
      refused("no-registration", 2, "does not offer dynamic client registration", 'registration = "dynamic",', {})
    end)

    it("resource metadata naming an authorization server that does not answer", function()
      local home = h.tmpdir()
      local res = h.connrt({ "connect", server.resource .. "/dead", "--timeout", "10" }, { env = env(home) })
      assert.equal(6, res.code, res.stderr)
      assert.matches("authorization server metadata http://127.0.0.1:%d+/.well%-known/oauth%-authorization%-server: "
        .. "no answer", res.stderr)
      assert.same({}, list(home))
      assert.same({}, clients(home))
      h.rmdir(home)
    end)

    it("resource metadata for another resource than the URL", function()
      local home = h.tmpdir()
      local res = h.connrt({ "connect", server.resource .. "/elsewhere", "--timeout", "10" }, { env = env(home) })
      assert.equal(5, res.code, res.stderr)
      assert.matches("is for the resource " .. server.resource .. "/bare, which does not cover " .. server.resource
        .. "/elsewhere", res.stderr, 1, true)
      assert.same({}, list(home))
      h.rmdir(home)
    end)

    it("resource metadata naming no authorization server, or one on plain http", function()
      for _, case in ipairs({
        { "noas", "protected resource metadata " .. server.resource
          .. "/.well-known/oauth-protected-resource/noas names no authorization server (`authorization_servers`)" },
        { "httpas", "/.well-known/oauth-protected-resource/httpas: authorization_servers[1] http://auth.example.com: "
          .. "plain http is allowed only for loopback hosts" },
      }) do
        local home = h.tmpdir()
        local res = h.connrt({ "connect", server.resource .. "/" .. case[1] }, { env = env(home) })
        assert.equal(5, res.code, res.stderr)
        assert.matches(case[2], res.stderr, 1, true)
        assert.same({}, list(home))
        h.rmdir(home)
      end
    end)

    it("a resource that publishes no metadata", function()
      local res = h.connrt({ "connect", closed.issuer .. "/me", "--print-connector" }, { env = env(h.tmpdir()) })
      assert.equal(5, res.code, res.stderr)
      assert.matches(closed.issuer .. "/me answered 401 without naming its metadata (no WWW-Authenticate "
        .. "resource_metadata), and " .. closed.issuer .. "/.well-known/oauth-protected-resource/me answered 404, "
        .. closed.issuer .. "/.well-known/oauth-protected-resource answered 404: it publishes no RFC 9728 metadata",
        res.stderr, 1, true)
      assert.equal("", res.stdout)
    end)

    it("a command line connect cannot use", function()
      for _, case in ipairs({
        { { "connect" }, "usage: connrt connect URL [--print-connector] [options]" },
        { { "connect", "mcp.example.com" }, "connrt connect URL: invalid URL" },
        { { "connect", server.resource .. "/mcp", "--field", "a=b" }, "connrt connect builds its connector itself: "
          .. "it has no fields" },
        { { "connect", server.resource .. "/mcp#x" }, "a resource URL has no fragment" },
      }) do
        local res = h.connrt(case[1], { env = env(h.tmpdir()) })
        assert.equal(2, res.code, res.stderr)
        assert.matches(case[2], res.stderr, 1, true)
      end
    end)

    it("a URL connrt cannot send a token to", function()
      local res = h.connrt({ "connect", "http://mcp.example.com/mcp" }, { env = env(h.tmpdir()) })
      assert.equal(2, res.code, res.stderr)
      assert.matches("plain http is allowed only for loopback hosts", res.stderr, 1, true)
    end)
  end)
end)
