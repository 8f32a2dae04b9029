-- luacheck: std +busted
-- Using stored connections from pipelines, end to end: `connrt request`, `token`,
-- `refresh`, `revoke`, Lua and C pipelines, against the real authorization server
-- (oidc-provider) and upstream APIs on loopback that record what each request carried.
local cjson = require("cjson")
local h = require("support.helpers")
local http = require("connrt.http")
local sys = require("connrt.sys")
local url = require("connrt.url")

local CONNECTOR = [[
return {
  id = "pipe",
  title = "Pipeline test",
  fields = {
    { key = "server", required = true },
    { key = "api", required = true },
    { key = "api2", required = true },
    { key = "dead", required = true },
    { key = "api_key", secret = true, required = true },
  },
  issuer = "{{server}}",
  authorize_url = "{{server}}/auth",
  scopes = { "openid", "email", "profile", "offline_access" },
  authorize_params = { prompt = "consent" },
  token_url = "{{server}}/token",
  revoke_url = "{{server}}/token/revocation",
  test = "/me",
  name = "{{name}}'s Account",
  unique_id = "{{email}}",
  allowed_urls = { "{{server}}/", "{{api}}/", "{{api2}}/api/v1", "{{dead}}/" },
  request = {
    headers = { Authorization = "Bearer {{access_token}}", ["X-Connector"] = "pipe" },
    query = { api_key = "{{api_key}}" },
    body = { source = "connrt" },
  },
}
]]

local API_KEY = "k3y-s3cr3t-value"

describe("pipelines (integration) #integration", function()
  local tmp, redirect, long, short, up1, up2, connector_path, dead_port, other_port
  local client = http.client()

  setup(function()
    tmp = h.tmpdir()
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    long = h.start_server({ redirect = redirect })
    short = h.start_server({ redirect = redirect, args = "--access-ttl 3 --rotate" })
    up1, up2 = h.start_upstream(), h.start_upstream()
    dead_port = h.free_port()   -- allowed, but nothing listens there
    other_port = h.free_port()  -- not allowed
    connector_path = tmp .. "/pipe.lua"
    h.write(connector_path, CONNECTOR)
  end)

  teardown(function()
    for _, s in ipairs({ long, short, up1, up2 }) do if s then s.stop() end end
    h.rmdir(tmp)
  end)

  local function env(home, extra)
    local e = {
      CONNRT_HOME = home, CONNRT_REDIRECT_URL = redirect,
      CONNRT_BROWSER = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua",
      SIGNIN_USER = "john", CONNRT_CLIENT_SECRET = "basic-secret",
    }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  -- Connects john through `server` into a fresh store; returns the store directory.
  local function connect(server, home, path)
    home = home or h.tmpdir()
    local res = h.connrt({ "run", path or connector_path, "--client-id", "connrt-basic", "--json", "--timeout", "20",
      "--field", "server=" .. server.issuer, "--field", "api=" .. up1.base, "--field", "api2=" .. up2.base,
      "--field", "dead=http://127.0.0.1:" .. dead_port,
      "--field", "api_key=" .. API_KEY }, { env = env(home) })
    assert.equal(0, res.code, res.stderr)
    return home, cjson.decode(res.stdout).id
  end

  local function connrt(home, args, extra)
    return h.connrt(args, { env = env(home, extra) })
  end

  local function secrets(home)
    local st = require("connrt.store").open(home)
    local rec = st:list()[1]
    local s = st:secrets(rec)
    st:close()
    return s, rec
  end

  local function stats(server)
    return cjson.decode(assert(client:request({ url = server.issuer .. "/test/stats" })).body)
  end

  local function refreshes(server) return stats(server).grants.refresh_token or 0 end

  -- Calls the server's own endpoints as the client would (Basic auth), e.g. to revoke
  -- or introspect a token behind connrt's back.
  local function as_client(server, path, params)
    local resp = assert(client:request({ method = "POST", url = server.issuer .. path,
      headers = { "Authorization: Basic " .. require("connrt.crypto").b64encode("connrt-basic:basic-secret"),
        "Content-Type: application/x-www-form-urlencoded" },
      body = url.form_encode(params) }))
    return resp.status, require("cjson.safe").decode(resp.body)
  end

  describe("requests", function()
    local home, id
    setup(function() home, id = connect(long) end)
    teardown(function() h.rmdir(home) end)

    it("adds the connector's headers, query and body values to the caller's", function()
      local res = connrt(home, { "request", "pipe", "POST", up1.base .. "/api/items?x=1", "-H", "X-Trace: 7",
        "-d", "a=1" })
      assert.equal(0, res.code, res.stderr)
      assert.matches("^200 ", res.stderr)
      local log = up1.log()
      local seen = log[#log] -- what the upstream really received
      local s = secrets(home)
      assert.equal("POST", seen.method)
      assert.equal("Bearer " .. s.access_token, seen.headers.authorization)
      assert.equal("pipe", seen.headers["x-connector"])
      assert.equal("7", seen.headers["x-trace"])
      local q = url.form_decode(seen.url:match("%?(.*)$"))
      assert.same({ x = "1", api_key = API_KEY }, q)
      assert.same({ a = "1", source = "connrt" }, (url.form_decode(seen.body)))
      -- and no secret was printed in clear, not even the echo of them in the body
      for _, secret in ipairs({ s.access_token, API_KEY }) do
        assert.is_nil((res.stdout .. res.stderr):find(secret, 1, true))
      end
      assert.matches("Bearer [redacted]", res.stdout, 1, true)
    end)

    it("lets the caller's own header win over the connector's", function()
      local res = connrt(home, { "request", "pipe", up1.base .. "/api/me", "-H", "X-Connector: mine" })
      assert.equal("mine", cjson.decode(res.stdout).headers["x-connector"])
    end)

    it("merges body values into a JSON body", function()
      local res = connrt(home, { "request", "pipe", "PUT", up1.base .. "/api/doc", "--json-body", '{"n":1}' })
      assert.equal(0, res.code, res.stderr)
      local seen = cjson.decode(res.stdout)
      assert.equal("application/json", seen.headers["content-type"])
      assert.same({ n = 1, source = "connrt" }, cjson.decode(seen.body))
    end)

    it("resolves a relative URL against the first allowed URL, by id or connector id", function()
      local res = connrt(home, { "request", id, "/me" })
      assert.equal(0, res.code, res.stderr)
      assert.equal("john@example.com", cjson.decode(res.stdout).email)
      res = connrt(home, { "request", "pipe", "/me", "--json" })
      local doc = cjson.decode(res.stdout)
      assert.equal(200, doc.status)
      assert.equal("John", doc.body.name)
    end)

    it("exits non-zero on a failed status, with the status on stderr", function()
      local res = connrt(home, { "request", "pipe", up1.base .. "/status/404" })
      assert.equal(5, res.code)
      assert.matches("^404 ", res.stderr)
      res = connrt(home, { "request", "pipe", up1.base .. "/status/404", "--include" })
      assert.matches("^HTTP 404\r\n", res.stdout)
    end)

    it("prints a bare valid token", function()
      local res = connrt(home, { "token", "pipe" })
      assert.equal(0, res.code, res.stderr)
      assert.equal(secrets(home).access_token .. "\n", res.stdout)
    end)

    it("retries a 429 after the Retry-After seconds, within the caller's bounds", function()
      local res = connrt(home, { "request", "pipe", up1.base .. "/ratelimit?key=a&n=1&after=1", "--retries", "2" })
      assert.equal(0, res.code, res.stderr)
      assert.matches("waiting 1.0s before retrying (429 Retry-After)", res.stderr, 1, true)
      -- no retries asked for: the 429 is the answer
      res = connrt(home, { "request", "pipe", up1.base .. "/ratelimit?key=b&n=1&after=1" })
      assert.equal(5, res.code)
      assert.matches("^429 ", res.stderr)
      -- a wait beyond --max-wait is not waited for
      res = connrt(home, { "request", "pipe", up1.base .. "/ratelimit?key=c&n=1&after=30", "--retries", "1",
        "--max-wait", "2" })
      assert.equal(5, res.code)
    end)

    it("takes Retry-After as an HTTP date", function()
      local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 2)
      local res = connrt(home, { "request", "pipe", up1.base .. "/ratelimit?key=d&n=1&after=" .. url.encode(date),
        "--retries", "1" })
      assert.equal(0, res.code, res.stderr)
      assert.matches("waiting %d%.%ds before retrying", res.stderr)
    end)

    it("retries connection errors for idempotent methods only", function()
      local dead = "http://127.0.0.1:" .. dead_port .. "/x"
      local res = connrt(home, { "request", "pipe", "GET", dead, "--retries", "2" })
      assert.equal(6, res.code)
      local _, waits = res.stderr:gsub("waiting 1%.0s before retrying", "")
      assert.equal(2, waits)
      assert.matches("no answer from GET " .. dead, res.stderr, 1, true)
      res = connrt(home, { "request", "pipe", "POST", dead, "-d", "x=1", "--retries", "2" })
      assert.equal(6, res.code)
      assert.is_nil(res.stderr:find("waiting", 1, true))
    end)

    describe("allowed URLs", function()
      local function refused_cases()
        local p2 = up2.port
        local base2 = "http://127.0.0.1:" .. p2
        return {
          base2 .. "/api/v10",                              -- path prefix, not a segment
          base2 .. "/api/v1/../admin",                      -- .. climbing out
          base2 .. "/api/v1/%2e%2e/admin",                  -- encoded dots
          base2 .. "/api/v1%2f..%2fadmin",                  -- encoded slashes
          base2 .. "/api/v1/..%2Fadmin",
          base2 .. "/api/v1\\..\\admin",                    -- backslashes
          base2 .. "/API/V1/x",                             -- paths are case-sensitive
          base2 .. "/admin",
          "http://127.0.0.1:" .. other_port .. "/api/v1/x", -- another port
          "https://127.0.0.1:" .. p2 .. "/api/v1/x",        -- another scheme
          "ftp://127.0.0.1:" .. p2 .. "/api/v1/x",
          "http://127.0.0.1:" .. p2 .. "@evil.test/api/v1/x",  -- userinfo trick
          "http://user@127.0.0.1:" .. p2 .. "/api/v1/x",
          "http://127.0.0.1.evil.test:" .. p2 .. "/api/v1/x",  -- a longer host
          "http://127.0.0.2:" .. p2 .. "/api/v1/x",         -- another host
          "http://localhost:" .. p2 .. "/api/v1/x",         -- another name for the host
          "http://[::1]:" .. p2 .. "/api/v1/x",
          "https://api.example.com/v1/me",
        }
      end

      it("refuses every URL outside them before anything is sent", function()
        local before = #up2.log()
        for _, u in ipairs(refused_cases()) do
          local res = connrt(home, { "request", "pipe", u })
          assert.equal(7, res.code, u .. ": " .. res.stderr)
          assert.matches("refused", res.stderr, 1, true)
          assert.matches("allowed: " .. long.issuer .. "/, " .. up1.base .. "/, " .. up2.base .. "/api/v1, ",
            res.stderr, 1, true)
        end
        assert.equal(before, #up2.log())
      end)

      it("allows what is under them", function()
        local res = connrt(home, { "request", "pipe", up2.base .. "/api/v1/items/../list" })
        assert.equal(0, res.code, res.stderr)
        assert.matches("^/api/v1/list", cjson.decode(res.stdout).url)
      end)

      it("follows a redirect within the same origin with the credentials", function()
        local res = connrt(home, { "request", "pipe", up1.base .. "/redirect?to=/api/after" })
        assert.equal(0, res.code, res.stderr)
        local log = up1.log()
        local seen = log[#log]
        assert.matches("^/api/after", seen.url)
        assert.equal("Bearer " .. secrets(home).access_token, seen.headers.authorization)
      end)

      it("strips every credential it added when a redirect changes origin", function()
        local target = up2.base .. "/api/v1/landed"
        local res = connrt(home, { "request", "pipe", up1.base .. "/redirect?to=" .. url.encode(target),
          "-H", "X-Trace: 9" })
        assert.equal(0, res.code, res.stderr)
        local seen = cjson.decode(res.stdout)
        assert.equal("/api/v1/landed", seen.url)
        assert.is_nil(seen.headers.authorization)
        assert.is_nil(seen.headers["x-connector"])
        assert.equal("9", seen.headers["x-trace"]) -- the caller's own header is the caller's business
      end)

      it("refuses a redirect to a URL outside them", function()
        local before = #up2.log()
        local res = connrt(home, { "request", "pipe", up1.base .. "/redirect?to="
          .. url.encode(up2.base .. "/admin") })
        assert.equal(7, res.code)
        assert.matches("redirected to " .. up2.base .. "/admin, which is refused", res.stderr, 1, true)
        assert.equal(before, #up2.log())
      end)
    end)

    describe("bad input changes nothing", function()
      local before
      before_each(function() before = h.snapshot(home) end)
      after_each(function() assert.same(before, h.snapshot(home)) end)

      local cases = {
        { { "request", "nope", "/me" }, 9, "no connection nope" },
        { { "request", "pipe" }, 2, "usage: connrt request ID" },
        { { "request", "pipe", "/me", "-H", "no colon" }, 2, "expected 'Name: value'" },
        { { "request", "pipe", "/me", "-d", "a", "--json-body", "{}" }, 2, "give -d or --json-body, not both" },
        { { "request", "pipe", "/me", "--json-body", "{nope" }, 2, "--json-body: not valid JSON" },
        { { "request", "pipe", "/me", "--retries", "many" }, 2, "--retries many: expected a number" },
        { { "request", "pipe", "/me", "--bogus" }, 2, "unknown option --bogus" },
        { { "token", "nope" }, 9, "no connection nope" },
        { { "refresh" }, 2, "usage: connrt refresh ID" },
        { { "revoke", "nope" }, 9, "no connection nope" },
      }
      for _, case in ipairs(cases) do
        it(table.concat(case[1], " "), function()
          local res = connrt(home, case[1])
          assert.equal(case[2], res.code, res.stderr)
          assert.matches(case[3], res.stderr, 1, true)
        end)
      end
    end)

    it("runs a Lua pipeline script", function()
      local res = connrt(home, { "script", "examples/pipeline.lua", "pipe" })
      assert.equal(0, res.code, res.stderr)
      assert.equal("John's Account (pipe): john@example.com\n", res.stdout)
    end)

    it("gives plain lua5.4 programs the same API with require \"connrt\"", function()
      local script = tmp .. "/plain.lua"
      h.write(script, [[
        local connrt = require "connrt"
        local c = connrt.connection("pipe")
        local r = c:get("/me")
        print(r.status, r.json.email, #connrt.list())
      ]])
      local dir = h.tmpdir()
      local cmd = ("cd %s && CONNRT_HOME=%s LUA_CPATH='%s/?.so;;' %s %s >%s/out 2>%s/err"):format(
        h.ROOT, h.shell_quote(home), h.BUILD, h.LUA, script, dir, dir)
      local ok = os.execute(cmd)
      local out, err = h.read(dir .. "/out"), h.read(dir .. "/err")
      h.rmdir(dir)
      assert.is_true(ok, err)
      assert.equal("200\tjohn@example.com\t1\n", out)
    end)

    it("runs the C example linked against libconnrt", function()
      local dir = h.tmpdir()
      local ok = os.execute(("CONNRT_HOME=%s %s/examples/pipeline pipe /me >%s/out 2>%s/err"):format(
        h.shell_quote(home), h.BUILD, dir, dir))
      local out, err = h.read(dir .. "/out"), h.read(dir .. "/err")
      assert.is_true(ok, err)
      assert.equal("200\n", err)
      assert.equal("john@example.com", cjson.decode(out).email)
      -- errors come back as codes and messages
      local _, _, code = os.execute(("CONNRT_HOME=%s %s/examples/pipeline pipe https://evil.test/x >%s/out 2>%s/err")
        :format(h.shell_quote(home), h.BUILD, dir, dir))
      err = h.read(dir .. "/err")
      h.rmdir(dir)
      assert.equal(7, code)
      assert.matches("refused https://evil.test/x", err, 1, true)
      assert.matches("(URL refused: outside the allowed URLs; reason: refused_url)", err, 1, true) -- connrt_errreason
    end)

    it("runs the shell pipeline example", function()
      local dir = h.tmpdir()
      local ok = os.execute(("cd %s && CONNRT=%s CONNRT_HOME=%s sh examples/pipeline.sh pipe /me name >%s/out 2>%s/err")
        :format(h.ROOT, h.shell_quote(h.CONNRT), h.shell_quote(home), dir, dir))
      local out, err = h.read(dir .. "/out"), h.read(dir .. "/err")
      h.rmdir(dir)
      assert.is_true(ok, err)
      assert.equal("status 200, name: John\n", out)
    end)
  end)

  describe("keeping connections alive", function()
    it("refreshes before a request when the token is about to expire, and keeps the rotated refresh token", function()
      local home = connect(short)
      local connected = os.time()
      local old = secrets(home)
      local before = refreshes(short)
      -- past half of the 3 s token's life: the margin is 60 s, but never more than half
      -- of a token's lifetime. Expiry times are whole seconds (issued_at = os.time() when
      -- the token came, at most `connected`): two clock seconds on is past the half.
      while os.time() < connected + 2 do sys.sleep(0.05) end
      local res = connrt(home, { "request", "pipe", "/me" })
      assert.equal(0, res.code, res.stderr)
      assert.equal(before + 1, refreshes(short))
      local new = secrets(home)
      assert.not_equal(old.access_token, new.access_token)
      assert.not_equal(old.refresh_token, new.refresh_token)
      -- the server refuses the old refresh token now that it rotated
      local status, body = as_client(short, "/token", { grant_type = "refresh_token", refresh_token = old.refresh_token })
      assert.equal(400, status)
      assert.equal("invalid_grant", body.error)
      h.rmdir(home)
    end)

    it("refreshes once and retries once when the API answers 401", function()
      local home, id = connect(short)
      -- the token dies earlier than connrt was told (as with clock skew, or a provider
      -- that ends tokens early): the record says an hour, the server says 3 s
      local st = require("connrt.store").open(home)
      local at = st:secrets(st:get(id)).access_token
      st:save_tokens(id, { access_token = at, expires_at = os.time() + 3600 })
      st:close()
      sys.sleep(3.3)
      local before = refreshes(short)
      local res = connrt(home, { "request", "pipe", "/me" }, { CONNRT_REFRESH_MARGIN = "0" })
      assert.equal(0, res.code, res.stderr)
      assert.equal("john@example.com", cjson.decode(res.stdout).email)
      assert.equal(before + 1, refreshes(short))
      h.rmdir(home)
    end)

    it("refreshes on the statuses the connector names (403 here), once, and retries once", function()
      local path = tmp .. "/pipe403.lua"
      h.write(path, (CONNECTOR:gsub('  test = "/me",', '  test = "/me",\n  refresh_on = { 401, 403 },')))
      local home = connect(short, nil, path)
      local before = refreshes(short)
      local res = connrt(home, { "request", "pipe", up1.base .. "/status/403" }, { CONNRT_REFRESH_MARGIN = "0" })
      assert.equal(5, res.code)
      assert.matches("^403 ", res.stderr)
      assert.equal(before + 1, refreshes(short))
      local log = up1.log()
      assert.equal("/status/403", log[#log].url:match("^[^?]*"))
      assert.equal("/status/403", log[#log - 1].url:match("^[^?]*"))
      h.rmdir(home)
    end)

    it("refreshes exactly once for 20 processes that find the token expired together", function()
      local home = connect(short)
      sys.sleep(3.3) -- the 3 s access token is now expired
      local before = refreshes(short)
      local runs = h.concurrent(20, { "request", "pipe", "/me" }, { CONNRT_HOME = home, CONNRT_REFRESH_MARGIN = "0" })
      assert.equal(20, #runs)
      for _, r in ipairs(runs) do
        assert.equal(0, r.code, r.output)
        assert.matches("john@example.com", r.output, 1, true)
      end
      assert.equal(before + 1, refreshes(short))
      h.rmdir(home)
    end)

    it("uses a freshly refreshed short-lived token instead of refreshing it again (the margin is at most half its life)", function()
      local home = connect(short)
      sys.sleep(3.3) -- the 3 s access token is now expired
      local before = refreshes(short)
      local res = connrt(home, { "request", "pipe", "/me" }) -- the default 60 s margin
      assert.equal(0, res.code, res.stderr)
      assert.equal(before + 1, refreshes(short))
      local fresh = secrets(home).access_token
      for _ = 1, 3 do
        res = connrt(home, { "request", "pipe", "/me" })
        assert.equal(0, res.code, res.stderr)
      end
      assert.equal(before + 1, refreshes(short))
      assert.equal(fresh, secrets(home).access_token)
      h.rmdir(home)
    end)

    it("refreshes once for 20 processes that find a short-lived token expired, with the default margin", function()
      local home = connect(short)
      sys.sleep(3.3)
      local before = refreshes(short)
      local runs = h.concurrent(20, { "request", "pipe", "/me" }, { CONNRT_HOME = home })
      for _, r in ipairs(runs) do assert.equal(0, r.code, r.output) end
      assert.equal(before + 1, refreshes(short))
      h.rmdir(home)
    end)

    it("takes over a lease whose holder died", function()
      local home = connect(short)
      local _, rec = secrets(home)
      local st = require("connrt.store").open(home)
      assert.is_truthy(st:acquire_lease(rec.id, "a-process-that-died", 1.5))
      st:close()
      local t0 = sys.monotime()
      local res = connrt(home, { "refresh", "pipe" })
      assert.equal(0, res.code, res.stderr)
      assert.truthy(sys.monotime() - t0 >= 1.0)
      assert.matches("refreshed " .. rec.id, res.stderr, 1, true)
      h.rmdir(home)
    end)

    it("marks a connection whose refresh is refused, and connrt run restores it in place", function()
      local home, id = connect(short)
      local s = secrets(home)
      assert.equal(200, (as_client(short, "/token/revocation", { token = s.refresh_token, token_type_hint = "refresh_token" })))
      local before = h.snapshot(home)
      local res = connrt(home, { "refresh", "pipe" })
      assert.equal(5, res.code)
      assert.matches("invalid_grant", res.stderr, 1, true)
      assert.matches("needs reconnecting", res.stderr, 1, true)
      assert.not_same(before, h.snapshot(home)) -- the mark is saved
      local list = cjson.decode(connrt(home, { "list", "--json" }).stdout)
      assert.is_true(list[1].needs_reconnect)
      assert.matches("needs reconnect", connrt(home, { "list" }).stdout, 1, true)
      local home2, id2 = connect(short, home)
      assert.equal(home, home2)
      assert.equal(id, id2)
      list = cjson.decode(connrt(home, { "list", "--json" }).stdout)
      assert.equal(1, #list)
      assert.is_nil(list[1].needs_reconnect)
      h.rmdir(home)
    end)

    it("revokes at the provider, confirmed by introspection, then deletes", function()
      local home, id = connect(long)
      local s = secrets(home)
      local _, info = as_client(long, "/token/introspection", { token = s.refresh_token })
      assert.is_true(info.active)
      local res = connrt(home, { "revoke", "pipe" })
      assert.equal(0, res.code, res.stderr)
      assert.matches("revoked the refresh token and access token of " .. id, res.stderr, 1, true)
      for _, tok in ipairs({ s.refresh_token, s.access_token }) do
        _, info = as_client(long, "/token/introspection", { token = tok })
        assert.is_false(info.active)
      end
      assert.same({}, cjson.decode(connrt(home, { "list", "--json" }).stdout))
      h.rmdir(home)
    end)

    it("deletes locally only with delete", function()
      local home = connect(long)
      local s = secrets(home)
      local res = connrt(home, { "delete", "pipe" })
      assert.equal(0, res.code, res.stderr)
      assert.matches("deleted", res.stderr, 1, true)
      local _, info = as_client(long, "/token/introspection", { token = s.refresh_token })
      assert.is_true(info.active)
      h.rmdir(home)
    end)
  end)
end)
