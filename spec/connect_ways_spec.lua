-- luacheck: std +busted
-- Every way to connect, end to end with real processes: credentials from fields (API
-- key in a header or the query, HTTP Basic) against a loopback API that checks them,
-- the client credentials grant and the device authorization grant against the real
-- authorization server, the headless flows (--paste, connrt authorize), a public
-- redirect URL behind a proxy, and extra scopes and parameters.
local cjson = require("cjson")
local h = require("support.helpers")
local sys = require("connrt.sys")
local url = require("connrt.url")

local API_KEY = "sk-test-51a6c0ffee"
local USER, PASS = "robot", "pa55-w0rd-s3cret"

describe("ways to connect (integration) #integration", function()
  local tmp, redirect, server, devserver, api, client

  setup(function()
    tmp = h.tmpdir()
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    server = h.start_server({ redirect = { redirect, "https://connect.example.com/callback" }, args = "--access-ttl 3" })
    devserver = h.start_server({ redirect = redirect, args = "--device-ttl 3" })
    api = h.start_upstream({ ECHO_API_KEY = API_KEY, ECHO_BASIC_USER = USER, ECHO_BASIC_PASS = PASS })
    client = require("connrt.http").client()
  end)
  teardown(function()
    for _, s in ipairs({ server, devserver, api }) do if s then s.stop() end end
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

  local function list(home)
    return cjson.decode(h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } }).stdout)
  end

  local function grants(s, kind)
    return cjson.decode(assert(client:request({ url = s.issuer .. "/test/stats" })).body).grants[kind] or 0
  end

  describe("credentials from fields", function()
    local header_c, query_c, basic_c
    setup(function()
      header_c = write_connector("keyed", h.keyed_connector(api.base))
      query_c = write_connector("keyq", ([[return {
        id = "keyq", auth = "fields",
        fields = { { key = "api_key", secret = true, required = true } },
        test = "/keyed-query/me", name = "{{name}}", unique_id = "{{id}}",
        allowed_urls = { "%s" },
        request = { query = { api_key = "{{api_key}}" } },
      }]]):format(api.base))
      basic_c = write_connector("basic", ([[return {
        id = "basic", auth = "fields",
        fields = { { key = "username", required = true }, { key = "password", secret = true, required = true } },
        test = "/basic/me", name = "{{login}}", unique_id = "{{id}}",
        allowed_urls = { "%s" },
        request = { basic = { username = "{{username}}", password = "{{password}}" } },
      }]]):format(api.base))
    end)

    it("connects an API key sent in a header, sealed, and uses it for requests", function()
      local home = h.tmpdir()
      local res = h.connrt({ "run", header_c, "--json", "--field", "api_key=" .. API_KEY }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      local out = cjson.decode(res.stdout)
      assert.equal("Key Holder", out.name)
      assert.equal("acct-1", out.unique_id)
      assert.is_nil(h.store_bytes(home):find(API_KEY, 1, true))
      assert.is_nil((res.stdout .. res.stderr):find(API_KEY, 1, true))
      res = h.connrt({ "request", "keyed", "/keyed/me" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.equal("Key Holder", cjson.decode(res.stdout).name)
      h.rmdir(home)
    end)

    it("takes a secret field from the environment or a file", function()
      local home = h.tmpdir()
      local res = h.connrt({ "run", query_c }, { env = env(home, { CONNRT_FIELD_API_KEY = API_KEY }) })
      assert.equal(0, res.code, res.stderr)
      local keyfile = tmp .. "/api_key.txt"
      h.write(keyfile, API_KEY .. "\n")
      res = h.connrt({ "run", header_c, "--field-file", "api_key=" .. keyfile }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.equal(2, #list(home))
      h.rmdir(home)
    end)

    it("asks for a missing secret on a terminal without echoing it", function()
      if not h.has_pty() then pending("no pseudo-terminal can be made here (no /dev/pts)") return end
      local home = h.tmpdir()
      local dir = h.tmpdir()
      -- script(1) gives connrt a real terminal; the key is typed into it once connrt asks
      local cmd = ("cd %s && (sleep %s; printf '%%s\\n' %s) | CONNRT_HOME=%s script -qec %s /dev/null >%s/out 2>&1"):format(
        h.ROOT, h.SLOW, API_KEY, home, h.shell_quote(h.CONNRT .. " run " .. header_c), dir)
      local ok = os.execute(cmd)
      local out = h.read(dir .. "/out")
      h.rmdir(dir)
      assert.is_true(ok, out)
      assert.matches("API key: ", out, 1, true)
      assert.matches("Connected Keyed API as Key Holder", out, 1, true)
      assert.is_nil(out:find(API_KEY, 1, true)) -- never echoed, never printed
      assert.equal(1, #list(home))
      h.rmdir(home)
    end)

    it("connects with HTTP Basic credentials", function()
      local home = h.tmpdir()
      local res = h.connrt({ "run", basic_c, "--json", "--field", "username=" .. USER, "--field", "password=" .. PASS },
        { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.equal(USER, cjson.decode(res.stdout).name)
      assert.is_nil(h.store_bytes(home):find(PASS, 1, true))
      h.rmdir(home)
    end)

    describe("bad input changes nothing", function()
      local home, before
      setup(function()
        home = h.tmpdir()
        assert.equal(0, h.connrt({ "run", header_c, "--field", "api_key=" .. API_KEY }, { env = env(home) }).code)
      end)
      teardown(function() h.rmdir(home) end)
      before_each(function() before = h.snapshot(home) end)
      after_each(function() assert.same(before, h.snapshot(home)) end)

      it("a wrong key: the test API refuses it", function()
        local res = h.connrt({ "run", header_c, "--field", "api_key=wrong-key-123" }, { env = env(home) })
        assert.equal(5, res.code)
        assert.matches("test API GET " .. api.base .. "/keyed/me answered 401: invalid api key", res.stderr, 1, true)
        assert.is_nil(res.stderr:find("wrong-key-123", 1, true))
      end)

      it("wrong Basic credentials", function()
        local res = h.connrt({ "run", basic_c, "--field", "username=" .. USER, "--field", "password=nope-nope" },
          { env = env(home) })
        assert.equal(5, res.code)
        assert.matches("answered 401: bad credentials", res.stderr, 1, true)
      end)

      it("an empty secret", function()
        local res = h.connrt({ "run", header_c, "--field", "api_key=" }, { env = env(home) })
        assert.equal(2, res.code)
        assert.matches("field api_key: the secret is empty", res.stderr, 1, true)
      end)

      it("a missing secret when no terminal can be asked", function()
        local res = h.connrt({ "run", header_c }, { env = env(home) })
        assert.equal(2, res.code)
        assert.matches("field api_key (API key) is required", res.stderr, 1, true)
      end)

      it("a secret file that does not exist", function()
        local res = h.connrt({ "run", header_c, "--field-file", "api_key=" .. tmp .. "/none" }, { env = env(home) })
        assert.equal(2, res.code)
        assert.matches("--field-file api_key: " .. tmp .. "/none", res.stderr, 1, true)
      end)

      it("a fields connector whose request parameters want a token", function()
        local bad = write_connector("badfields", ([[return { id = "badf", auth = "fields", test = "/keyed/me",
          name = "n", unique_id = "u", allowed_urls = { "%s" },
          request = { headers = { Authorization = "Bearer {{access_token}}" } } }]]):format(api.base))
        local res = h.connrt({ "run", bad }, { env = env(home) })
        assert.equal(3, res.code)
        assert.matches("request.headers.Authorization uses {{access_token}}, but auth = \"fields\"", res.stderr, 1, true)
      end)
    end)
  end)

  describe("client credentials", function()
    local path
    setup(function()
      path = write_connector("machine", ([[return {
        id = "machine", auth = "client_credentials", client_auth = "basic",
        token_url = "%s/token", scopes = { "api" },
        test = "/api/whoami", name = "{{client_id}} (machine)", unique_id = "{{client_id}}",
        allowed_urls = { "%s" },
        request = { headers = { Authorization = "Bearer {{access_token}}" } },
      }]]):format(server.issuer, api.base))
    end)

    it("connects with the client's own credentials and re-fetches the token once for many processes", function()
      local home = h.tmpdir()
      local before = grants(server, "client_credentials")
      local res = h.connrt({ "run", path, "--json", "--client-id", "connrt-basic" },
        { env = env(home, { CONNRT_CLIENT_SECRET = "basic-secret" }) })
      assert.equal(0, res.code, res.stderr)
      assert.equal("connrt-basic (machine)", cjson.decode(res.stdout).name)
      assert.equal(before + 1, grants(server, "client_credentials"))
      sys.sleep(3.3) -- the 3 s token expired
      local runs = h.concurrent(10, { "request", "machine", "/api/x" }, { CONNRT_HOME = home, CONNRT_REFRESH_MARGIN = "0" })
      for _, r in ipairs(runs) do assert.equal(0, r.code, r.output) end
      assert.equal(before + 2, grants(server, "client_credentials"))
      local log = api.log()
      assert.matches("^Bearer ", log[#log].headers.authorization)
      h.rmdir(home)
    end)

    it("a wrong client secret saves nothing", function()
      local home = h.tmpdir()
      local res = h.connrt({ "run", path, "--client-id", "connrt-basic" },
        { env = env(home, { CONNRT_CLIENT_SECRET = "not-it" }) })
      assert.equal(5, res.code)
      assert.matches("answered 401: invalid_client", res.stderr, 1, true)
      assert.same({}, list(home))
      h.rmdir(home)
    end)
  end)

  describe("device authorization grant", function()
    local function device_connector(s, token_path)
      return write_connector("device" .. math.random(1e9), ([[return {
        id = "dev", auth = "device_code", device_url = "%s/device/auth", token_url = "%s%s",
        scopes = { "openid", "email", "profile", "offline_access" },
        test = "/me", name = "{{name}}'s Account", unique_id = "{{email}}",
        allowed_urls = { "%s/" }, request = { headers = { Authorization = "Bearer {{access_token}}" } },
      }]]):format(s.issuer, s.issuer, token_path or "/token", s.issuer))
    end

    local function run_device(path, action)
      local home = h.tmpdir()
      local res = h.connrt({ "run", path, "--json", "--client-id", "connrt-basic", "--timeout", "40" },
        { env = env(home, { CONNRT_CLIENT_SECRET = "basic-secret", SIGNIN_ACTION = action or "approve",
          SIGNIN_USER = "john" }) })
      res.home = home
      return res
    end

    it("shows the code, polls, and connects once the user has signed in", function()
      local res = run_device(device_connector(server))
      assert.equal(0, res.code, res.stderr)
      assert.equal("John's Account", cjson.decode(res.stdout).name)
      assert.matches("To connect dev, open " .. server.issuer .. "/device and enter the code: %w+%-%w+", res.stderr)
      assert.matches("or open this URL, which carries the code:\n" .. server.issuer:gsub("%p", "%%%0") .. "/device%?user_code=", res.stderr)
      h.rmdir(res.home)
    end)

    it("polls more slowly when the server says slow_down", function()
      local res = run_device(device_connector(server, "/test/slow-token"))
      assert.equal(0, res.code, res.stderr)
      assert.matches("The server asked to poll more slowly: every 10s now", res.stderr, 1, true)
      h.rmdir(res.home)
    end)

    it("stops on access_denied with nothing saved", function()
      local res = run_device(device_connector(server), "deny")
      assert.equal(4, res.code)
      assert.matches("authorization denied: access_denied", res.stderr, 1, true)
      assert.same({}, list(res.home))
      h.rmdir(res.home)
    end)

    it("stops when the device code expires, with nothing saved", function()
      local res = run_device(device_connector(devserver), "none")
      assert.equal(4, res.code, res.stderr)
      assert.matches("the device code expired before the sign-in was completed", res.stderr, 1, true)
      assert.same({}, list(res.home))
      h.rmdir(res.home)
    end)
  end)

  describe("headless authorization code flow", function()
    local fifo
    before_each(function()
      fifo = tmp .. "/paste" .. math.random(1e9)
      assert.is_true(os.execute("mkfifo " .. fifo))
    end)
    after_each(function() os.remove(fifo) end)

    local function paste_run(home, form, extra)
      local e = env(home, { CONNRT_CLIENT_SECRET = "basic-secret", SIGNIN_USER = "john", SIGNIN_PASTE_TO = fifo,
        SIGNIN_PASTE_FORM = form })
      for k, v in pairs(extra or {}) do e[k] = v end
      return h.connrt({ "run", "examples/local-oidc.lua", "--paste", "--json", "--client-id", "connrt-basic",
        "--field", "server=" .. server.issuer }, { env = e, stdin_fifo = fifo })
    end

    it("takes the pasted address of the redirect", function()
      local home = h.tmpdir()
      local res = paste_run(home, "url")
      assert.equal(0, res.code, res.stderr)
      assert.equal("John's Account", cjson.decode(res.stdout).name)
      assert.matches("paste the address the browser was sent to", res.stderr, 1, true)
      h.rmdir(home)
    end)

    it("takes just the code", function()
      local home = h.tmpdir()
      local res = paste_run(home, "code")
      assert.equal(0, res.code, res.stderr)
      h.rmdir(home)
    end)

    it("refuses a pasted address with the wrong state, or without a code, saving nothing", function()
      local home = h.tmpdir()
      local res = paste_run(home, "url", { SIGNIN_REWRITE_STATE = "forged" })
      assert.equal(4, res.code)
      assert.matches("the pasted address carries another state than this sign-in's", res.stderr, 1, true)
      res = paste_run(home, "nocode")
      assert.equal(4, res.code)
      assert.matches("the pasted address carries no code", res.stderr, 1, true)
      assert.same({}, list(home))
      h.rmdir(home)
    end)

    it("refuses an empty paste", function()
      local home = h.tmpdir()
      local res = h.connrt({ "run", "examples/local-oidc.lua", "--paste", "--client-id", "connrt-basic",
        "--field", "server=" .. server.issuer }, { env = env(home, { CONNRT_CLIENT_SECRET = "basic-secret",
        SIGNIN_ACTION = "none" }), stdin = "\n" })
      assert.equal(4, res.code)
      assert.matches("an empty line was pasted", res.stderr, 1, true)
      h.rmdir(home)
    end)

    it("connects on a server from what connrt authorize printed on a machine with a browser", function()
      local laptop, srv = h.tmpdir(), h.tmpdir()
      local res = h.connrt({ "authorize", "examples/local-oidc.lua", "--client-id", "connrt-basic",
        "--field", "server=" .. server.issuer }, { env = env(laptop, { CONNRT_CLIENT_SECRET = "basic-secret" }) })
      assert.equal(0, res.code, res.stderr)
      local blob = res.stdout:match("^(connrt%-authorized%-v1:[%w_-]+)\n$")
      assert.is_string(blob, res.stdout)
      -- authorize saves nothing: no store, no key file (list creates none either)
      assert.same({ ["data.mdb"] = "absent", key = "absent" }, h.snapshot(laptop))
      assert.same({}, list(laptop))
      res = h.connrt({ "run", "examples/local-oidc.lua", "--paste", "--json", "--client-id", "connrt-basic",
        "--field", "server=" .. server.issuer }, { env = env(srv, { CONNRT_CLIENT_SECRET = "basic-secret",
        SIGNIN_ACTION = "none" }), stdin = blob .. "\n" })
      assert.equal(0, res.code, res.stderr)
      assert.equal("john@example.com", cjson.decode(res.stdout).unique_id)
      -- a damaged blob
      res = h.connrt({ "run", "examples/local-oidc.lua", "--paste", "--client-id", "connrt-basic",
        "--field", "server=" .. server.issuer }, { env = env(h.tmpdir(), { CONNRT_CLIENT_SECRET = "basic-secret",
        SIGNIN_ACTION = "none" }), stdin = blob:sub(1, -10) .. "\n" })
      assert.equal(4, res.code)
      assert.matches("not a connrt authorize result", res.stderr, 1, true)
      h.rmdir(laptop)
      h.rmdir(srv)
    end)
  end)

  describe("a public redirect URL behind a reverse proxy", function()
    it("listens on CONNRT_LISTEN and still checks the path and the state", function()
      local home = h.tmpdir()
      local port = h.free_port()
      local res = h.connrt({ "run", "examples/local-oidc.lua", "--json", "--client-id", "connrt-basic",
        "--field", "server=" .. server.issuer }, { env = env(home, {
          CONNRT_CLIENT_SECRET = "basic-secret", SIGNIN_USER = "john",
          CONNRT_REDIRECT_URL = "https://connect.example.com/callback",
          CONNRT_LISTEN = "127.0.0.1:" .. port,
          SIGNIN_PROXY = "https://connect.example.com=http://127.0.0.1:" .. port }) })
      assert.equal(0, res.code, res.stderr)
      assert.matches("redirect_uri=" .. url.encode("https://connect.example.com/callback"), res.stderr, 1, true)
      h.rmdir(home)
    end)

    it("refuses a public redirect URL without a listen address, and a bad one", function()
      local res = h.connrt({ "redirect-url" }, { env = { CONNRT_REDIRECT_URL = "https://connect.example.com/callback" } })
      assert.equal(2, res.code)
      assert.matches("set CONNRT_LISTEN", res.stderr, 1, true)
      res = h.connrt({ "redirect-url" }, { env = { CONNRT_REDIRECT_URL = "https://connect.example.com/callback",
        CONNRT_LISTEN = "somewhere" } })
      assert.equal(2, res.code)
      assert.matches("CONNRT_LISTEN somewhere: expected an IP address and port", res.stderr, 1, true)
      res = h.connrt({ "redirect-url" }, { env = { CONNRT_REDIRECT_URL = "http://connect.example.com/callback",
        CONNRT_LISTEN = "127.0.0.1:9" } })
      assert.equal(2, res.code)
      assert.matches("a public redirect URL must be https", res.stderr, 1, true)
    end)
  end)

  describe("extra scopes and authorize parameters", function()
    it("adds --scope and --param to the authorization request", function()
      local home = h.tmpdir()
      local res = h.connrt({ "run", "examples/local-oidc.lua", "--json", "--client-id", "connrt-basic",
        "--field", "server=" .. server.issuer, "--scope", "api", "--param", "login_hint=john", "--param", "prompt=login consent" },
        { env = env(home, { CONNRT_CLIENT_SECRET = "basic-secret", SIGNIN_USER = "john" }) })
      assert.equal(0, res.code, res.stderr)
      local auth = res.stderr:match("\n(http://[^\n]+/auth%?[^\n]+)\n")
      local q = url.form_decode(auth:match("%?(.*)$"))
      assert.equal("openid email profile offline_access api", q.scope)
      assert.equal("john", q.login_hint)
      assert.equal("login consent", q.prompt)
      assert.matches("api", list(home)[1].scope, 1, true)
      h.rmdir(home)
    end)

    it("refuses a --param that connrt sets itself", function()
      local res = h.connrt({ "run", "examples/local-oidc.lua", "--client-id", "connrt-basic",
        "--field", "server=" .. server.issuer, "--param", "state=mine" },
        { env = env(h.tmpdir(), { CONNRT_CLIENT_SECRET = "basic-secret", SIGNIN_ACTION = "none" }) })
      assert.equal(2, res.code)
      assert.matches("--param state: connrt sets this parameter itself", res.stderr, 1, true)
    end)
  end)
end)
