-- luacheck: std +busted
-- Transport (issue 7): TLS verification is always on (peer and host name), a custom CA
-- bundle can be given (CONNRT_CA_BUNDLE), and plain http:// is refused for sign-in,
-- token, revoke and API URLs except on loopback hosts. A real HTTPS server on loopback
-- (spec/support/echo-server.js with the test certificates in spec/fixtures/tls/).
local cjson = require("cjson")
local h = require("support.helpers")
local http = require("connrt.http")

local TLS = h.ROOT .. "/spec/fixtures/tls/"
local API_KEY = "tls-key-5c2a9e"

describe("TLS and plain http #integration", function()
  local server, port, base, tmp

  setup(function()
    tmp = h.tmpdir()
    server = h.start_node("spec/support/echo-server.js", "600", ("ECHO_TLS_CERT=%s ECHO_TLS_KEY=%s ECHO_API_KEY=%s")
      :format(TLS .. "server.pem", TLS .. "server.key", API_KEY))
    port = tonumber(server.line)
    base = "https://localhost:" .. port
  end)

  teardown(function()
    if server then server.stop() end
    h.rmdir(tmp)
  end)

  describe("the HTTP client", function()
    it("refuses a certificate no trusted CA signed, and accepts it with that CA's bundle", function()
      local resp, err = http.client():request({ url = base .. "/echo" })
      assert.is_nil(resp)
      assert.matches("certificate", err)
      resp = assert(http.client({ ca_bundle = TLS .. "ca.pem" }):request({ url = base .. "/echo" }))
      assert.equal(200, resp.status)
      resp, err = http.client({ ca_bundle = TLS .. "other-ca.pem" }):request({ url = base .. "/echo" })
      assert.is_nil(resp)
      assert.matches("certificate", err)
    end)

    it("checks the host name: the certificate names localhost, not 127.0.0.1", function()
      local resp, err = http.client({ ca_bundle = TLS .. "ca.pem" }):request({
        url = "https://127.0.0.1:" .. port .. "/echo" })
      assert.is_nil(resp)
      assert.matches("127.0.0.1", err, 1, true)
      assert.matches("certificate", err)
    end)

    it("names a CA bundle that cannot be read", function()
      local resp, err = http.client({ ca_bundle = tmp .. "/none.pem" }):request({ url = base .. "/echo" })
      assert.is_nil(resp)
      assert.is_string(err)
      assert.matches("CA", err)
    end)
  end)

  describe("connrt with an HTTPS API", function()
    local connector
    setup(function()
      connector = tmp .. "/tls.lua"
      h.write(connector, ([[return {
        id = "tlsapi", title = "TLS API", auth = "fields",
        fields = { { key = "api_key", secret = true, required = true } },
        test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}",
        allowed_urls = { "%s/" },
        request = { headers = { ["X-Api-Key"] = "{{api_key}}" } },
      }]]):format(base))
    end)

    local function env(home, extra)
      local e = { CONNRT_HOME = home, CONNRT_FIELD_API_KEY = API_KEY }
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end

    it("fails to connect when the server's CA is not trusted, naming the URL, and saves nothing", function()
      local home = h.tmpdir()
      local before = h.snapshot(home)
      local res = h.connrt({ "run", connector }, { env = env(home) })
      assert.equal(6, res.code)
      assert.matches("test API GET " .. base .. "/keyed/me: no answer from GET " .. base .. "/keyed/me: ", res.stderr, 1, true)
      assert.matches("certificate", res.stderr)
      assert.is_nil(res.stderr:find(API_KEY, 1, true))
      -- nothing at all was saved (the store's files exist now: compare what they hold)
      local list = h.connrt({ "list", "--json" }, { env = env(home) })
      assert.equal("[]\n", list.stdout)
      assert.is_true(before.key == "absent" or before.key == h.snapshot(home).key)
    end)

    it("connects and sends requests with CONNRT_CA_BUNDLE; another CA or a missing bundle fails", function()
      local home = h.tmpdir()
      local res = h.connrt({ "run", connector, "--json" }, { env = env(home, { CONNRT_CA_BUNDLE = TLS .. "ca.pem" }) })
      assert.equal(0, res.code, res.stderr)
      local id = cjson.decode(res.stdout).id
      res = h.connrt({ "request", id, "/echo" }, { env = env(home, { CONNRT_CA_BUNDLE = TLS .. "ca.pem" }) })
      assert.equal(0, res.code, res.stderr)
      assert.equal("GET", cjson.decode(res.stdout).method)

      local before = h.snapshot(home)
      res = h.connrt({ "request", id, "/echo" }, { env = env(home, { CONNRT_CA_BUNDLE = TLS .. "other-ca.pem" }) })
      assert.equal(6, res.code)
      assert.matches("no answer from GET " .. base .. "/echo: ", res.stderr, 1, true)
      res = h.connrt({ "request", id, "/echo" }, { env = env(home, { CONNRT_CA_BUNDLE = tmp .. "/none.pem" }) })
      assert.equal(6, res.code)
      assert.matches(tmp .. "/none.pem", res.stderr, 1, true)
      -- the system's CAs do not include the test CA
      res = h.connrt({ "request", id, "/echo" }, { env = env(home) })
      assert.equal(6, res.code)
      assert.same(before, h.snapshot(home))
    end)

    it("has no switch that turns verification off", function()
      for _, opt in ipairs({ "--insecure", "-k" }) do
        local res = h.connrt({ "request", "tlsapi", base .. "/echo", opt }, { env = env(h.tmpdir()) })
        assert.equal(2, res.code)
        assert.matches("unknown option", res.stderr, 1, true)
      end
    end)
  end)

  describe("plain http", function()
    -- every URL that carries a credential: refused before anything is sent
    local CASES = {
      { "authorize_url", [[authorize_url = "http://login.example.com/auth", token_url = "https://login.example.com/token"]],
        "authorize_url http://login.example.com/auth: plain http is allowed only for loopback hosts" },
      { "token_url", [[authorize_url = "https://login.example.com/auth", token_url = "http://login.example.com/token"]],
        "token_url http://login.example.com/token: plain http is allowed only for loopback hosts" },
      { "revoke_url", [[authorize_url = "https://l.example.com/auth", token_url = "https://l.example.com/token",
        revoke_url = "http://l.example.com/revoke"]],
        "revoke_url http://l.example.com/revoke: plain http is allowed only for loopback hosts" },
    }
    for _, case in ipairs(CASES) do
      it("refuses an http:// " .. case[1] .. " outside loopback", function()
        local path = tmp .. "/" .. case[1] .. ".lua"
        h.write(path, ([[return { id = "plain", %s, test = "https://api.example.com/me",
          name = "{{name}}", unique_id = "{{id}}", allowed_urls = { "https://api.example.com/" },
          request = { headers = { Authorization = "Bearer {{access_token}}" } } }]]):format(case[2]))
        local home = h.tmpdir()
        local res = h.connrt({ "run", path, "--client-id", "x", "--no-browser", "--timeout", "1" },
          { env = { CONNRT_HOME = home, CONNRT_CLIENT_SECRET = "s" } })
        assert.equal(3, res.code, res.stderr)
        assert.matches(case[3], res.stderr, 1, true)
        assert.is_nil(res.stderr:find("Open this URL", 1, true))
      end)
    end

    it("refuses http:// allowed URLs and test APIs outside loopback, and accepts them on loopback", function()
      local path = tmp .. "/plainapi.lua"
      h.write(path, [[return { id = "plainapi", auth = "fields", fields = { { key = "k", secret = true } },
        test = "/me", name = "n", unique_id = "u", allowed_urls = { "http://api.example.com/" },
        request = { headers = { ["X-Key"] = "{{k}}" } } }]])
      local res = h.connrt({ "run", path, "--field", "k=v" }, { env = { CONNRT_HOME = h.tmpdir() } })
      assert.equal(3, res.code, res.stderr)
      assert.matches("allowed_urls[1] http://api.example.com/: plain http is allowed only for loopback hosts",
        res.stderr, 1, true)
      local check = h.connrt({ "check", path })
      assert.equal(3, check.code)
      assert.matches("plain http is only for loopback hosts", check.stdout, 1, true)
    end)
  end)
end)
