-- luacheck: std +busted
-- The connect flow end to end: `connrt run` as a real process, against a real
-- authorization server (oidc-provider), a scripted user signing in over plain HTTP with
-- a cookie jar, a real LMDB store. No mocks.
local cjson = require("cjson")
local h = require("support.helpers")
local sys = require("connrt.sys")

local EXAMPLE = h.read("examples/local-oidc.lua")

describe("connrt run (integration) #integration", function()
  local server, redirect, tmp

  -- A connector file from the example with `edits` (pattern -> replacement) applied.
  local function connector_with(edits)
    local src = EXAMPLE
    for pat, rep in pairs(edits or {}) do
      local n
      src, n = src:gsub(pat, rep)
      assert(n > 0, "edit did not apply: " .. pat)
    end
    local path = tmp .. "/c" .. tostring(math.random(1e9)) .. ".lua"
    h.write(path, src)
    return path
  end

  -- Runs `connrt run` with the scripted user. opts: home, connector, client_id, secret,
  -- user, action, delay, args, env, timeout.
  local function run(opts)
    local log = tmp .. "/browser-" .. tostring(math.random(1e9)) .. ".log"
    local env = {
      CONNRT_HOME = opts.home,
      CONNRT_REDIRECT_URL = redirect,
      CONNRT_BROWSER = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua",
      SIGNIN_USER = opts.user or "john",
      SIGNIN_ACTION = opts.action or "approve",
      SIGNIN_CALLBACK_DELAY = opts.delay and tostring(opts.delay) or nil,
      SIGNIN_REWRITE_STATE = opts.rewrite_state,
      SIGNIN_LOG = log,
      CONNRT_CLIENT_SECRET = opts.secret,
    }
    for k, v in pairs(opts.env or {}) do env[k] = v end
    local args = { "run", opts.connector or "examples/local-oidc.lua", "--field", "server=" .. server.issuer,
      "--timeout", tostring(opts.timeout or 20), "--json" }
    if opts.client_id ~= false then
      args[#args + 1] = "--client-id"
      args[#args + 1] = opts.client_id or "connrt-basic"
    end
    for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
    local res = h.connrt(args, { env = env })
    -- the browser runs detached: give it a moment to write its last line
    for _ = 1, 40 do
      local l = h.read(log) or ""
      if l:find("landing") or l:find("error") or opts.action == "none" then break end
      sys.sleep(0.05)
    end
    res.browser = h.read(log) or ""
    if res.code == 0 and res.stdout ~= "" then res.json = cjson.decode(res.stdout) end
    return res
  end

  local function list(home)
    local res = h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    return cjson.decode(res.stdout)
  end

  setup(function()
    tmp = h.tmpdir()
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    server = h.start_server({ redirect = redirect })
  end)

  teardown(function()
    if server then server.stop() end
    h.rmdir(tmp)
  end)

  describe("connecting", function()
    local home
    before_each(function() home = h.tmpdir() end)
    after_each(function() h.rmdir(home) end)

    it("connects an account with client authentication by HTTP Basic", function()
      local res = run({ home = home, secret = "basic-secret" })
      assert.equal(0, res.code, res.stderr)
      assert.equal("John's Account", res.json.name)
      assert.equal("john@example.com", res.json.unique_id)
      assert.equal("local-oidc", res.json.connector)
      assert.is_false(res.json.updated)
      -- the landing page escapes what it shows
      assert.matches("landing 200 Connected to Local OIDC as John&#39;s Account", res.browser, 1, true)

      -- the authorization URL is printed alone on its own line, with state and PKCE S256
      local auth
      for line in res.stderr:gmatch("[^\n]+") do
        if line:find("^http://127%.0%.0%.1:%d+/auth%?") then auth = line end
      end
      assert.is_string(auth, res.stderr)
      local q = require("connrt.url").form_decode(auth:match("%?(.*)$"))
      assert.equal("code", q.response_type)
      assert.equal("connrt-basic", q.client_id)
      assert.equal(redirect, q.redirect_uri)
      assert.equal("S256", q.code_challenge_method)
      assert.equal(43, #q.code_challenge)
      assert.truthy(#q.state >= 22) -- at least 128 bits, base64url
      assert.equal("openid email profile offline_access", q.scope)

      local conns = list(home)
      assert.equal(1, #conns)
      assert.equal(res.json.id, conns[1].id)
      assert.is_nil(conns[1].sealed)
      assert.is_true(conns[1].has_refresh_token)
    end)

    it("stores secrets sealed, in a private directory, and the token works", function()
      local res = run({ home = home, secret = "basic-secret" })
      assert.equal(0, res.code, res.stderr)
      assert.equal(448, sys.mode(home))                 -- 0700
      assert.equal(384, sys.mode(home .. "/data.mdb"))  -- 0600
      assert.equal(384, sys.mode(home .. "/key"))

      local st = require("connrt.store").open(home)
      local rec = st:get(res.json.id)
      local secrets = st:secrets(rec)
      st:close()
      assert.is_string(secrets.access_token)
      assert.is_string(secrets.refresh_token)
      assert.equal("basic-secret", secrets.client_secret)

      local bytes = h.store_bytes(home)
      for _, s in ipairs({ secrets.access_token, secrets.refresh_token, "basic-secret" }) do
        assert.is_nil(bytes:find(s, 1, true), "a secret is in the store's files in clear")
      end
      -- nor in anything connrt printed
      for _, s in ipairs({ secrets.access_token, secrets.refresh_token, "basic-secret" }) do
        assert.is_nil((res.stdout .. res.stderr):find(s, 1, true))
      end

      -- the stored access token is a real one: the server's userinfo takes it
      local http = require("connrt.http")
      local c = http.client()
      local me = assert(c:request({ url = server.issuer .. "/me",
        headers = { "Authorization: Bearer " .. secrets.access_token } }))
      assert.equal(200, me.status)
      assert.equal("john@example.com", cjson.decode(me.body).email)
    end)

    -- how the token endpoint saw the client authenticate, counted by the server
    local function token_auth()
      local http = require("connrt.http")
      local r = assert(http.client():request({ url = server.issuer .. "/test/stats" }))
      return cjson.decode(r.body).token_auth
    end

    it("connects with client authentication in the request body", function()
      local before = token_auth()
      local path = connector_with({ ['client_auth = "basic"'] = 'client_auth = "body"' })
      local res = run({ home = home, connector = path, client_id = "connrt-post", secret = "post-secret" })
      assert.equal(0, res.code, res.stderr)
      assert.equal("John's Account", res.json.name)
      local after = token_auth()
      assert.equal(before.basic, after.basic)
      assert.equal(before.other + 1, after.other)
      -- and the Basic connector really sends Basic
      assert.equal(0, run({ home = home, secret = "basic-secret" }).code)
      assert.equal(after.basic + 1, token_auth().basic)
    end)

    it("keeps one connection per account and adds one for another account", function()
      local first = run({ home = home, secret = "basic-secret" })
      assert.equal(0, first.code, first.stderr)
      local again = run({ home = home, secret = "basic-secret" })
      assert.equal(0, again.code, again.stderr)
      assert.equal(first.json.id, again.json.id)
      assert.is_true(again.json.updated)
      assert.equal(1, #list(home))

      local jane = run({ home = home, secret = "basic-secret", user = "jane" })
      assert.equal(0, jane.code, jane.stderr)
      assert.equal("Jane's Account", jane.json.name)
      assert.equal("jane@example.com", jane.json.unique_id)
      assert.not_equal(first.json.id, jane.json.id)
      local conns = list(home)
      assert.equal(2, #conns)
    end)

    it("asks for the client credentials once per connector", function()
      assert.equal(0, run({ home = home, secret = "basic-secret" }).code)
      local res = run({ home = home, client_id = false, user = "jane" })
      assert.equal(0, res.code, res.stderr)
      assert.equal(2, #list(home))
    end)

    it("shows a connection without its secrets", function()
      local res = run({ home = home, secret = "basic-secret" })
      local show = h.connrt({ "show", res.json.id }, { env = { CONNRT_HOME = home } })
      assert.equal(0, show.code, show.stderr)
      assert.matches("John's Account", show.stdout, 1, true)
      assert.matches("refresh_token%s+yes %(sealed%)", show.stdout)
      local by_connector = h.connrt({ "show", "local-oidc", "--json" }, { env = { CONNRT_HOME = home } })
      assert.equal(res.json.id, cjson.decode(by_connector.stdout).id)
      assert.is_nil(by_connector.stdout:find("basic-secret", 1, true))
    end)
  end)

  describe("bad input changes nothing", function()
    local home, before

    setup(function()
      home = h.tmpdir()
      local res = run({ home = home, secret = "basic-secret" })
      assert.equal(0, res.code, res.stderr)
    end)
    teardown(function() h.rmdir(home) end)
    before_each(function() before = h.snapshot(home) end)
    after_each(function()
      assert.same(before, h.snapshot(home))
      assert.equal(1, #list(home))
    end)

    it("a broken connector: names the file and what is wrong", function()
      local path = connector_with({ ['token_url = "{{server}}/token",'] = "" })
      local res = run({ home = home, connector = path, secret = "basic-secret" })
      assert.equal(3, res.code)
      assert.matches(path .. ": key 'token_url': is required", res.stderr, 1, true)
    end)

    it("a connector with a syntax error: names the line", function()
      local path = connector_with({ ['pkce = true,'] = "pkce = = true," })
      local res = run({ home = home, connector = path, secret = "basic-secret" })
      assert.equal(3, res.code)
      assert.matches("syntax error: line %d+", res.stderr)
    end)

    it("a missing connector file", function()
      local res = run({ home = home, connector = tmp .. "/nope.lua", secret = "basic-secret" })
      assert.equal(3, res.code)
      assert.matches("cannot read connector: " .. tmp .. "/nope.lua", res.stderr, 1, true)
    end)

    it("a field value outside its pattern, and an unknown field", function()
      local res = run({ home = home, secret = "basic-secret", args = { "--field", "region=eu" } })
      assert.equal(2, res.code)
      assert.matches("--field region: examples/local-oidc.lua has no such field (fields: server)", res.stderr, 1, true)
    end)

    it("a callback with the wrong state is rejected and the flow times out", function()
      local res = run({ home = home, secret = "basic-secret", rewrite_state = "forged", timeout = 3 })
      assert.equal(4, res.code)
      assert.matches("1 callback(s) with a wrong or missing state were rejected", res.stderr, 1, true)
      assert.matches("landing 400", res.browser, 1, true)
    end)

    it("the user denies access", function()
      local res = run({ home = home, secret = "basic-secret", action = "deny" })
      assert.equal(4, res.code)
      assert.matches("authorization denied: access_denied", res.stderr, 1, true)
      assert.matches("landing 400", res.browser, 1, true)
    end)

    it("the token endpoint answers 400 invalid_grant (an expired code)", function()
      local res = run({ home = home, client_id = "connrt-shortcode", secret = "short-secret", delay = 2.5 })
      assert.equal(5, res.code)
      assert.matches("token endpoint " .. server.issuer .. "/token answered 400: invalid_grant", res.stderr, 1, true)
    end)

    it("the token endpoint answers with an HTML page", function()
      local path = connector_with({ ['token_url = "{{server}}/token"'] = 'token_url = "{{server}}/test/html-token"' })
      local res = run({ home = home, connector = path, secret = "basic-secret" })
      assert.equal(5, res.code)
      assert.matches("answered 502 with text/html, not a token response (page title: 502 Bad Gateway)", res.stderr, 1, true)
    end)

    it("the wrong client secret", function()
      local res = run({ home = home, secret = "not-the-secret" })
      assert.equal(5, res.code)
      assert.matches("answered 401: invalid_client", res.stderr, 1, true)
      assert.is_nil(res.stderr:find("not-the-secret", 1, true))
    end)

    it("the test API fails", function()
      local path = connector_with({ ['test = "/me"'] = 'test = "/me/nothing-here"' })
      local res = run({ home = home, connector = path, secret = "basic-secret" })
      assert.equal(5, res.code)
      assert.matches("test API GET " .. server.issuer .. "/me/nothing-here answered 404", res.stderr, 1, true)
      assert.matches("the connection was not saved", res.stderr, 1, true)
    end)

    it("a test API outside the allowed URLs is refused", function()
      local path = connector_with({ ['test = "/me"'] = 'test = "https://evil.example/me"' })
      local res = run({ home = home, connector = path, secret = "basic-secret" })
      assert.equal(7, res.code)
      assert.matches("test API https://evil.example/me is refused", res.stderr, 1, true)
    end)

    it("a name template that names a value the test API does not give", function()
      local path = connector_with({ ["{{name}}'s Account"] = "{{nickname}}'s Account" })
      local res = run({ home = home, connector = path, secret = "basic-secret" })
      assert.equal(3, res.code)
      assert.matches(path .. ": name: {{nickname}} names a value that does not exist", res.stderr, 1, true)
    end)

    it("a callback from another issuer (RFC 9207)", function()
      local path = connector_with({ ['issuer = "{{server}}"'] = 'issuer = "https://login.example.com"' })
      local res = run({ home = home, connector = path, secret = "basic-secret" })
      assert.equal(4, res.code)
      assert.matches("the callback comes from issuer " .. server.issuer .. ", not https://login.example.com",
        res.stderr, 1, true)
    end)

    it("a callback that never comes", function()
      local res = run({ home = home, secret = "basic-secret", action = "none", timeout = 1 })
      assert.equal(4, res.code)
      assert.matches("timed out waiting for the sign-in callback on " .. redirect, res.stderr, 1, true)
    end)

    it("the wrong sealing key", function()
      local res = run({ home = home, secret = "basic-secret", env = { CONNRT_KEY = string.rep("ab", 32) } })
      assert.equal(8, res.code)
      assert.matches("cannot decrypt: wrong key?", res.stderr, 1, true)
    end)

    it("no client id", function()
      local fresh = h.tmpdir()
      local res = run({ home = fresh, client_id = false })
      h.rmdir(fresh)
      assert.equal(2, res.code)
      assert.matches("no client id for local-oidc", res.stderr, 1, true)
    end)
  end)

  describe("redirect-url", function()
    it("prints the default and the configured redirect URL", function()
      assert.equal("http://127.0.0.1:8400/callback\n", h.connrt({ "redirect-url" }).stdout)
      local res = h.connrt({ "redirect-url" }, { env = { CONNRT_REDIRECT_URL = "http://[::1]:9999/cb" } })
      assert.equal("http://[::1]:9999/cb\n", res.stdout)
      res = h.connrt({ "redirect-url" }, { env = { CONNRT_REDIRECT_URL = "https://example.com/cb" } })
      assert.equal(2, res.code)
      assert.matches("loopback", res.stderr, 1, true)
    end)
  end)
end)

describe("waiting for the sign-in", function()
  it("counts down on one line on a terminal and clears it; plain lines otherwise", function()
    if not h.has_pty() then pending("no pseudo-terminal can be made here (no /dev/pts)") return end
    local home, dir = h.tmpdir(), h.tmpdir()
    local redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    local cmd = ("cd %s && CONNRT_HOME=%s CONNRT_REDIRECT_URL=%s CONNRT_CLIENT_SECRET=x script -qec %s /dev/null </dev/null >%s/out 2>&1")
      :format(h.ROOT, home, redirect, h.shell_quote(h.CONNRT .. " run examples/local-oidc.lua --client-id c --no-browser --timeout 2"), dir)
    os.execute(cmd)
    local out = h.read(dir .. "/out")
    assert.matches("Waiting for the sign-in to Local OIDC: 0:02 left", out, 1, true)
    assert.matches("0:01 left", out, 1, true)
    assert.matches("\r\27[K", out, 1, true) -- the line is cleared before the message
    assert.matches("timed out waiting for the sign-in callback", out, 1, true)
    -- not a terminal: no countdown, no control characters
    local res = h.connrt({ "run", "examples/local-oidc.lua", "--client-id", "c", "--no-browser", "--timeout", "1" },
      { env = { CONNRT_HOME = home, CONNRT_REDIRECT_URL = redirect, CONNRT_CLIENT_SECRET = "x" } })
    assert.equal(4, res.code)
    assert.is_nil(res.stderr:find("left", 1, true))
    assert.is_nil(res.stderr:find("\27", 1, true))
    h.rmdir(home)
    h.rmdir(dir)
  end)
end)

describe("Ctrl-C while waiting", function()
  it("stops at once with status 130 and saves nothing", function()
    local home, dir = h.tmpdir(), h.tmpdir()
    local redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    -- a shell that starts connrt, interrupts it with SIGINT once it waits, and reports its
    -- status (a background job of a script starts with SIGINT ignored: env gives it back
    -- the default, as a terminal's foreground job has)
    local script = ([[
      CONNRT_HOME=%s CONNRT_REDIRECT_URL=%s CONNRT_CLIENT_SECRET=x env --default-signal=INT %s run examples/local-oidc.lua \
        --client-id c --no-browser --timeout 30 2>%s/err &
      pid=$!
      for i in $(seq 50); do grep -q Waiting %s/err 2>/dev/null && break; sleep 0.1; done
      kill -INT $pid
      wait $pid
      echo $? >%s/rc
    ]]):format(home, redirect, h.CONNRT, dir, dir, dir)
    local t0 = require("connrt.sys").monotime()
    os.execute("cd " .. h.ROOT .. " && sh -c " .. h.shell_quote(script))
    assert.truthy(require("connrt.sys").monotime() - t0 < 10) -- it did not wait for its timeout
    assert.equal("130\n", h.read(dir .. "/rc"))
    local list = h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } })
    assert.equal("[]\n", list.stdout)
    h.rmdir(home)
    h.rmdir(dir)
  end)
end)
