-- luacheck: std +busted
-- Secrets never leak (issue 7): full flows run with --verbose against the real
-- authorization server and a real upstream, and every byte of every output, trace and
-- error message, and of the store's files, is searched for each secret value the flows
-- handled: authorization codes, access, refresh and ID tokens (before and after a
-- rotating refresh), the client secret, a secret field, a wrong client secret.
local cjson = require("cjson")
local h = require("support.helpers")
local proxies = require("support.proxy")

local CLIENT_SECRET = "basic-secret"
local API_KEY = "k-7f3e9b2a41c8d5e6"

describe("secrets never leak #integration", function()
  local server, api, redirect, tmp, home
  local outputs = {}   -- every stdout and stderr the commands printed, with a label
  local secrets = {}   -- label -> value
  local codes_file

  local function keep(label, res)
    outputs[#outputs + 1] = { label = label .. " stdout", text = res.stdout or "" }
    outputs[#outputs + 1] = { label = label .. " stderr", text = res.stderr or "" }
    return res
  end

  local function env(extra)
    local e = { CONNRT_HOME = home, CONNRT_REDIRECT_URL = redirect }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function connect(extra_env, args)
    local e = env({
      CONNRT_BROWSER = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua",
      SIGNIN_USER = "john", SIGNIN_ACTION = "approve", SIGNIN_CODE_TO = codes_file,
      CONNRT_CLIENT_SECRET = CLIENT_SECRET,
    })
    for k, v in pairs(extra_env or {}) do e[k] = v end
    local argv = { "--verbose", "run", "examples/local-oidc.lua", "--field", "server=" .. server.issuer,
      "--client-id", "connrt-basic", "--timeout", "20" }
    for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
    return h.connrt(argv, { env = e })
  end

  -- The secrets sealed in the store now, under labels with a suffix.
  local function collect(suffix)
    local st = require("connrt.store").open(home)
    for _, rec in ipairs(st:list()) do
      for k, v in pairs(st:secrets(rec)) do
        if type(v) == "string" then secrets[rec.id .. "." .. k .. suffix] = v end
        if type(v) == "table" then
          for fk, fv in pairs(v) do secrets[rec.id .. "." .. k .. "." .. fk .. suffix] = fv end
        end
      end
    end
    st:close()
  end

  setup(function()
    tmp = h.tmpdir()
    home = tmp .. "/home"
    codes_file = tmp .. "/codes"
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    server = h.start_server({ redirect = redirect, args = "--rotate" })
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
  end)

  teardown(function()
    if api then api.stop() end
    if server then server.stop() end
    h.rmdir(tmp)
  end)

  it("connects, uses, refreshes, rotates and revokes with --verbose, and no secret appears anywhere", function()
    -- 1. connect (browser sign-in, PKCE, code exchange, test API), then again (update)
    local res = keep("run", connect())
    assert.equal(0, res.code, res.stderr)
    assert.equal(0, keep("run again", connect()).code)
    local id = res.stdout:match("(local%-oidc%-%x+)")
    assert.is_string(id, res.stdout)
    collect(".first")

    -- the trace is there and says what happened, with the values hidden
    assert.matches("> POST " .. server.issuer .. "/token", res.stderr, 1, true)
    assert.matches("> Authorization: [redacted]", res.stderr, 1, true)
    assert.matches("code=[redacted]", res.stderr, 1, true)
    assert.matches("code_verifier=[redacted]", res.stderr, 1, true)
    assert.matches('"access_token":"[redacted]"', res.stderr, 1, true)
    assert.matches('"refresh_token":"[redacted]"', res.stderr, 1, true)
    assert.matches("< 200", res.stderr, 1, true)
    assert.matches("listener: GET /callback?", res.stderr, 1, true)

    -- 2. look at it every way there is
    for _, args in ipairs({ { "show", id }, { "show", id, "--json" }, { "list" }, { "list", "--json" } }) do
      local r = keep(table.concat(args, " "), h.connrt({ "--verbose", table.unpack(args) }, { env = env() }))
      assert.equal(0, r.code, r.stderr)
    end

    -- 3. requests, with the response's headers and a failing one
    res = keep("request", h.connrt({ "request", id, "GET", server.issuer .. "/me", "--include", "-v" }, { env = env() }))
    assert.equal(0, res.code, res.stderr)
    assert.matches("> Authorization: [redacted]", res.stderr, 1, true)
    keep("request 404", h.connrt({ "request", id, server.issuer .. "/nope", "-v" }, { env = env() }))
    keep("request refused", h.connrt({ "request", id, "https://elsewhere.example/", "-v" }, { env = env() }))

    -- 4. a refresh that rotates the refresh token, then a request with the new token
    res = keep("refresh", h.connrt({ "refresh", id, "--verbose" }, { env = env() }))
    assert.equal(0, res.code, res.stderr)
    assert.matches("grant_type=refresh_token", res.stderr, 1, true)
    assert.matches("refresh_token=[redacted]", res.stderr, 1, true)
    collect(".second")
    assert.are_not.equal(secrets[id .. ".refresh_token.first"], secrets[id .. ".refresh_token.second"])
    assert.equal(0, keep("request after", h.connrt({ "-v", "request", id, server.issuer .. "/me" }, { env = env() })).code)

    -- 5. connrt token prints the one token asked for, and only it
    res = h.connrt({ "token", id, "--verbose" }, { env = env() })
    assert.equal(0, res.code, res.stderr)
    assert.equal(secrets[id .. ".access_token.second"] .. "\n", res.stdout)
    keep("token (stderr only)", { stderr = res.stderr })

    -- 6. the wrong client secret, traced: refused, never printed
    local bad_home = tmp .. "/bad"
    local saved = home
    home = bad_home
    res = keep("wrong secret", connect({ CONNRT_CLIENT_SECRET = "wrong-client-secret-123" }))
    home = saved
    assert.equal(5, res.code, res.stderr)
    secrets["wrong client secret"] = "wrong-client-secret-123"

    -- 7. revoke (RFC 7009: the token goes in the body), traced
    res = keep("revoke", h.connrt({ "--verbose", "revoke", id }, { env = env() }))
    assert.equal(0, res.code, res.stderr)
    assert.matches("token=[redacted]", res.stderr, 1, true)

    -- the codes the browser carried, and the client secret
    for code in (h.read(codes_file) or ""):gmatch("[^\n]+") do secrets["code " .. code:sub(1, 6)] = code end
    secrets["client secret"] = CLIENT_SECRET
    local n = 0
    for _ in pairs(secrets) do n = n + 1 end
    assert.is_true(n >= 10, "too few secrets collected: " .. n)
    assert.is_truthy(secrets["code " .. ((h.read(codes_file) or ""):sub(1, 6))])

    local store_bytes = h.store_bytes(home) .. h.store_bytes(bad_home)
    for label, value in pairs(secrets) do
      assert.is_true(#value >= 8, label)
      for _, o in ipairs(outputs) do
        assert.is_nil(o.text:find(value, 1, true), label .. " appears in " .. o.label)
      end
      assert.is_nil(store_bytes:find(value, 1, true), label .. " is in the store's files in clear")
    end
  end)

  it("hides a secret field and the API key header in traces, output and store", function()
    local path = tmp .. "/keyed.lua"
    h.write(path, h.keyed_connector(api.base))
    local out = {}
    local res = h.connrt({ "-v", "run", path }, { env = env({ CONNRT_FIELD_API_KEY = API_KEY }) })
    out[#out + 1] = res.stdout .. res.stderr
    assert.equal(0, res.code, res.stderr)
    assert.matches("> X-Api-Key: [redacted]", res.stderr, 1, true)
    for _, args in ipairs({ { "show", "keyed" }, { "show", "keyed", "--json" }, { "list", "--json" },
        { "request", "keyed", "/echo", "-i" }, { "request", "keyed", "/keyed/me" } }) do
      res = h.connrt({ "--verbose", table.unpack(args) }, { env = env() })
      assert.equal(0, res.code, res.stderr)
      out[#out + 1] = res.stdout .. res.stderr
    end
    -- the echo shows the header the API received; connrt redacts it in what it prints
    assert.matches('"x-api-key":"[redacted]"', out[5], 1, true)
    for _, text in ipairs(out) do assert.is_nil(text:find(API_KEY, 1, true), text) end
    assert.is_nil(h.store_bytes(home):find(API_KEY, 1, true))
    -- the API really got it
    local seen = 0
    for _, r in ipairs(api.log()) do if r.headers["x-api-key"] == API_KEY then seen = seen + 1 end end
    assert.is_true(seen >= 3)
  end)

  it("never cuts an echoed key one byte short where connrt shortens a provider's text", function()
    -- the cut falls one byte before the key's end: the part kept must not show the key
    -- less its last byte, which the redactor would not know
    local start = API_KEY:sub(1, -2)
    local function padded(limit, head) return ("x"):rep(limit - #head - #API_KEY + 1) end
    local q = require("connrt.url").form_encode
    local cut_env = env({ CONNRT_HOME = tmp .. "/cut" })
    local path = tmp .. "/cut.lua"
    h.write(path, h.keyed_connector(api.base))
    local res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = cut_env })
    assert.equal(0, res.code, res.stderr)
    -- the --verbose trace of a body (2000 bytes)
    res = h.connrt({ "-v", "request", "keyed", "GET", "/repeat?" .. q({ type = "text/plain",
      head = padded(2000, ""), unit = API_KEY, n = "1", tail = " and more" }) }, { env = cut_env })
    assert.equal(0, res.code, res.stderr)
    assert.matches("... (", res.stderr, 1, true)
    assert.is_nil(res.stderr:find(start, 1, true), res.stderr)
    -- a test API's error (300 bytes), and a page's title (80) where it answered HTML
    for _, test in ipairs({
        "/repeat?" .. q({ status = "400", type = "application/json", head = '{"error":"' .. padded(300, ""),
          unit = API_KEY, n = "1", tail = ' and more"}' }),
        "/repeat?" .. q({ type = "text/html", head = "<html><title>" .. padded(80, ""), unit = API_KEY, n = "1",
          tail = " and more</title>" }) }) do
      h.write(path, (h.keyed_connector(api.base):gsub('test = "/keyed/me"', function() return ("test = %q"):format(test) end)))
      res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = cut_env })
      assert.equal(5, res.code, res.stderr)
      assert.matches("xxxx", res.stderr, 1, true)
      assert.is_nil(res.stderr:find(start, 1, true), res.stderr)
    end
    -- a hook's error message (the sandbox's bound was 1024 bytes, one short of the key)
    h.write(path, (h.keyed_connector(api.base):gsub("request = {", function()
      return ([[hooks = { expired = function(resp)
        local k = resp.body:match('"x%%-api%%-key":"([^"]*)"')
        if k then error(("x"):rep(%d) .. k, 0) end
        return false
      end },
    request = {]]):format(1024 - #API_KEY)
    end)))
    res = h.connrt({ "update", "keyed", path }, { env = cut_env })
    assert.equal(0, res.code, res.stderr)
    res = h.connrt({ "request", "keyed", "/echo" }, { env = cut_env })
    assert.equal(3, res.code, res.stderr)
    assert.matches("hooks.expired failed: xxxx", res.stderr, 1, true)
    assert.is_nil(res.stderr:find(start, 1, true), res.stderr)
  end)

  it("keeps no secret in what it stores in clear: a name that echoes one is redacted, a unique id refused", function()
    -- the test API is /echo, which answers with the headers it got (the key among them),
    -- and the connector names the account with it: the key is in no file connrt keeps
    local store_env = env({ CONNRT_HOME = tmp .. "/clear" })
    local path = tmp .. "/clear.lua"
    local function with_test(name, unique_id)
      h.write(path, (h.keyed_connector(api.base):gsub('test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}"',
        function() return ('test = "/echo", name = %q, unique_id = %q'):format(name, unique_id) end)))
    end
    with_test("n {{headers.x-api-key}}", "{{method}}")
    local res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = store_env })
    assert.equal(0, res.code, res.stderr)
    local out = res.stdout .. res.stderr
    for _, args in ipairs({ { "list" }, { "list", "--json" }, { "show", "keyed" }, { "show", "keyed", "--json" } }) do
      res = h.connrt(args, { env = store_env })
      assert.equal(0, res.code, res.stderr)
      out = out .. res.stdout .. res.stderr
    end
    assert.matches("n [redacted]", out, 1, true)
    assert.is_nil(out:find(API_KEY:sub(2), 1, true), out)
    assert.is_nil(h.store_bytes(tmp .. "/clear"):find(API_KEY:sub(2), 1, true))
    -- the key in the unique id: refused, nothing saved (the connection is the first one)
    with_test("n2", "u2-{{headers.x-api-key}}")
    res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY, "--replace" }, { env = store_env })
    assert.equal(5, res.code, res.stderr)
    assert.matches("unique_id", res.stderr, 1, true)
    assert.is_nil((res.stdout .. res.stderr):find(API_KEY, 1, true))
    res = h.connrt({ "list", "--json" }, { env = store_env })
    assert.is_nil(res.stdout:find("n2", 1, true), res.stdout)
    assert.is_nil(h.store_bytes(tmp .. "/clear"):find(API_KEY:sub(2), 1, true))
    -- a refused request's error, kept as last_error: a key holding "\/", which the
    -- upstream quotes JSON-decoded ("/"), is the key again once JSON writes it (list --json)
    local slashed = "pa\\/ssw0rd-X1"
    h.write(path, (h.keyed_connector(api.base):gsub('test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}",',
      'test = "/echo", name = "slash", unique_id = "slash", hooks = { expired = function(r) return r.status == 403 end },')
      :gsub('id = "keyed"', 'id = "slashy"')))
    res = h.connrt({ "run", path, "--field", "api_key=" .. slashed }, { env = store_env })
    assert.equal(0, res.code, res.stderr)
    res = h.connrt({ "request", "slashy", "/repeat?status=403&type=application/json&head="
      .. require("connrt.url").encode('{"error":"pa/ssw0rd-X1"}') }, { env = store_env })
    assert.equal(5, res.code, res.stderr)
    -- (the message quotes the key as JSON writes it: that word is hidden, the rest stays)
    assert.matches("answered 403 [redacted] token expired", res.stderr, 1, true)
    assert.matches("needing reconnection", res.stderr, 1, true)
    out = ""
    for _, args in ipairs({ { "list", "--json" }, { "show", "slashy", "--json" }, { "show", "slashy" } }) do
      res = h.connrt(args, { env = store_env })
      out = out .. res.stdout .. res.stderr
    end
    assert.matches("last_error", out, 1, true)
    assert.is_nil(out:find(slashed, 1, true), out)
    -- a value a lookup keeps that is a key of digits as a number (kept as JSON writes it)
    h.write(path, (h.keyed_connector(api.base):gsub('test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}",',
      'test = "/echo", name = "digits", unique_id = "digits", values = { "tenant" }, hooks = { lookup = function(a) '
      .. 'return { tenant = tonumber(a.get("/echo").json.headers["x-api-key"]) / 10 * 10 } end },')
      :gsub('id = "keyed"', 'id = "digits"')))
    res = h.connrt({ "run", path, "--field", "api_key=73519864" }, { env = store_env })
    assert.equal(3, res.code, res.stderr)
    assert.matches("value tenant carries a secret", res.stderr, 1, true)
    res = h.connrt({ "list", "--json" }, { env = store_env })
    assert.is_nil(res.stdout:find("digits", 1, true), res.stdout)
    -- and as a string a reader takes for that number
    h.write(path, (h.read(path):gsub("tonumber%(.-%) / 10 %* 10", '"7351986.4e1"')))
    res = h.connrt({ "run", path, "--field", "api_key=73519864" }, { env = store_env })
    assert.equal(3, res.code, res.stderr)
    assert.matches("value tenant carries a secret", res.stderr, 1, true)
    -- a name that is a key with "?" once `connrt list` prints it as a table cell (each
    -- unprintable character a "?"): kept redacted
    h.write(path, (h.keyed_connector(api.base):gsub('test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}",',
      function()
        return ('test = %q, name = "{{name}}", unique_id = "q",'):format("/repeat?type=application/json&head="
          .. require("connrt.url").encode('{"name":"Wh0\\u0001Kn0wsIt!"}'))
      end):gsub('id = "keyed"', 'id = "qmark"')))
    res = h.connrt({ "run", path, "--field", "api_key=Wh0?Kn0wsIt!" }, { env = store_env })
    assert.equal(0, res.code, res.stderr)
    out = ""
    for _, args in ipairs({ { "list" }, { "list", "--json" }, { "show", "qmark" } }) do
      res = h.connrt(args, { env = store_env })
      out = out .. res.stdout .. res.stderr
    end
    assert.is_nil(out:find("Wh0?Kn0wsIt!", 1, true), out)
    assert.matches("Wh0\\u0001Kn0wsIt!", out, 1, true)
  end)

  it("keeps the trace off unless asked, and CONNRT_VERBOSE=1 asks", function()
    local res = h.connrt({ "request", "keyed", "/echo" }, { env = env() })
    assert.equal(0, res.code, res.stderr)
    assert.is_nil(res.stderr:find("> GET", 1, true))
    res = h.connrt({ "request", "keyed", "/echo" }, { env = env({ CONNRT_VERBOSE = "1" }) })
    assert.matches("> GET " .. api.base .. "/echo", res.stderr, 1, true)
    assert.is_nil(res.stderr:find(API_KEY, 1, true))
    assert.is_table(cjson.decode(res.stdout))
  end)
end)

describe("the --verbose trace of a token endpoint's answer #integration", function()
  local hostile, tmp
  setup(function()
    tmp = h.tmpdir()
    hostile = h.start_node("spec/support/hostile-server.mjs")
  end)
  teardown(function()
    if hostile then hostile.stop() end
    h.rmdir(tmp)
  end)

  it("shows its shape, not credentials only a token_response hook finds under names of the provider's own", function()
    local origin = cjson.decode(hostile.line).origin
    local redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    local path = tmp .. "/nested.lua"
    h.write(path, ([[return {
      id = "nested", authorize_url = "%s/auth", token_url = "%s/token", scopes = { "read" },
      test = "/me", name = "{{name}}", unique_id = "{{email}}", allowed_urls = { "%s/" },
      request = { headers = { Authorization = "Bearer {{access_token}}" } },
      hooks = { token_response = function(r)
        local g = connrt.json.decode(r.body).result.grant
        return { access_token = g.tok, refresh_token = g.renew, expires_in = g.ttl }
      end },
    }]]):format(origin, origin, origin))
    local home = tmp .. "/home"
    local env = { CONNRT_HOME = home, CONNRT_REDIRECT_URL = redirect, CONNRT_CLIENT_SECRET = "nested-client-s3cret",
      CONNRT_BROWSER = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua" }
    local res = h.connrt({ "--verbose", "run", path, "--client-id", "c", "--param", "tok=nested", "--timeout", "20" },
      { env = env })
    assert.equal(0, res.code, res.stderr)
    -- the trace shows the answer's shape and the values that are no secret
    for _, part in ipairs({ '"result":{"grant":{', '"ttl":3600', '"tok":"[redacted]"', '"renew":"[redacted]"' }) do
      assert.matches(part, res.stderr, 1, true)
    end
    local out = { res.stdout .. res.stderr }
    for _, args in ipairs({ { "refresh", "nested" }, { "request", "nested", "/me" }, { "token", "nested", "--json" } }) do
      local r = h.connrt({ "--verbose", table.unpack(args) }, { env = { CONNRT_HOME = home } })
      out[#out + 1] = args[1] .. ": " .. r.stdout .. r.stderr
    end
    for _, text in ipairs(out) do
      for _, secret in ipairs({ "NestedS3cretAccess", "rtNestedS3cretRenewal", "nested-client-s3cret" }) do
        if not (text:find("^token: ") and secret == "NestedS3cretAccess") then -- connrt token prints the token
          assert.is_nil(text:find(secret, 1, true), secret .. " in: " .. text)
        end
      end
    end
  end)
end)

-- A PostgreSQL store's password is a secret like connrt's own: given on the command line
-- (--store) it leaves the process's argv (/proc/PID/cmdline, readable by every local
-- user) as soon as connrt has read it, with a warning that names no password; the
-- browser inherits neither PGPASSWORD nor the password of CONNRT_STORE.
describe("a PostgreSQL store's password #integration #postgres", function()
  local postgres = require("support.postgres")
  local sys = require("connrt.sys")
  local PASSWORD = "pg-Argv-S3cret/7+q"
  local KEY = ("e1"):rep(32)
  local pg, tmp, api

  setup(function()
    assert(postgres.available(), "PostgreSQL 15 is not installed (make deps installs postgresql-15)")
    pg = postgres.start({ password = PASSWORD })
    tmp = h.tmpdir()
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    local keyed = tmp .. "/keyed.lua"
    h.write(keyed, h.keyed_connector(api.base))
    -- a connection for the proxy to serve, made with the password in the environment
    local res = h.connrt({ "run", keyed, "--field", "api_key=" .. API_KEY },
      { env = { CONNRT_HOME = tmp .. "/home", CONNRT_STORE = pg.url, CONNRT_KEY = KEY } })
    assert.equal(0, res.code, res.stderr)
  end)

  teardown(function()
    if pg then pg.destroy() end
    if api then api.stop() end
    if tmp then h.rmdir(tmp) end
  end)

  local function cmdline(pid)
    local f = io.open(("/proc/%d/cmdline"):format(pid), "rb")
    if not f then return nil end
    local text = f:read("a")
    f:close()
    return text
  end

  it("is gone from a running connrt proxy's argv, with a warning that does not show it", function()
    local dir = h.tmpdir()
    finally(function()
      proxies.stop_all() -- stopped even when an assertion fails
      h.rmdir(dir)
    end)
    -- the password in the user part, and as a parameter
    local as_param = ("postgresql://%s@127.0.0.1:%d/%s?password=%s&sslmode=disable")
      :format(pg.role, pg.port, pg.db, postgres.encode(PASSWORD))
    for _, store in ipairs({ pg.url, as_param }) do
      for _, args in ipairs({ { "--store", store }, { "--store=" .. store } }) do
        for _, a in ipairs({ "--socket", dir .. "/proxy.sock", "--workers", "1" }) do args[#args + 1] = a end
        local px = proxies.start(tmp .. "/home", args, { CONNRT_KEY = KEY })
        -- the proxy and its worker, running with the store open
        local pids = { px.pid }
        local p = io.popen(("pgrep -P %d"):format(px.pid))
        for w in p:lines() do pids[#pids + 1] = tonumber(w) end
        p:close()
        assert.is_true(#pids >= 2, "no worker")
        for _, each in ipairs(pids) do
          local text = assert(cmdline(each))
          assert.matches("--store", text, 1, true) -- the argv is real
          assert.matches("127.0.0.1:" .. pg.port, text, 1, true)
          for _, secret in ipairs({ PASSWORD, postgres.encode(PASSWORD) }) do
            assert.is_nil(text:find(secret, 1, true), "the password in the argv of " .. each .. ": "
              .. text:gsub("%z", " "))
          end
        end
        px.stop("TERM")
        local err = px.stderr or ""
        local _, warnings = err:gsub("a password on the command line is visible to other local users", "")
        assert.equal(1, warnings, err)
        for _, secret in ipairs({ PASSWORD, postgres.encode(PASSWORD) }) do
          assert.is_nil(err:find(secret, 1, true), err)
        end
      end
    end
  end)

  it("is in no variable the browser inherits", function()
    local dump = tmp .. "/dump"
    assert(sys.mkdir(dump, 448))
    local script = tmp .. "/browser.sh"
    h.write(script, ('env >%s/env.tmp; mv %s/env.tmp %s/env\n'):format(dump, dump, dump))
    local res = h.connrt({ "run", "examples/local-oidc.lua", "--timeout", "3" }, { env = {
      CONNRT_HOME = tmp .. "/home", CONNRT_STORE = pg.url, CONNRT_KEY = KEY, PGPASSWORD = "pgpw-browser-s3cret",
      CONNRT_BROWSER = "sh " .. script, CONNRT_FIELD_SERVER = "http://127.0.0.1:9", CONNRT_CLIENT_ID = "client-id-1",
      CONNRT_REDIRECT_URL = ("http://127.0.0.1:%d/callback"):format(h.free_port()) } })
    assert.equal(4, res.code, res.stderr) -- nobody signs in: the wait times out
    local text
    for _ = 1, 100 do
      text = h.read(dump .. "/env")
      if text then break end
      sys.sleep(0.05)
    end
    assert.is_string(text, "the browser wrote nothing")
    assert.matches(("CONNRT_STORE=postgres://%s@127.0.0.1:%d/%s\n"):format(pg.role, pg.port, pg.db), text, 1, true)
    assert.is_nil(text:find("PGPASSWORD", 1, true), text)
    for _, secret in ipairs({ PASSWORD, postgres.encode(PASSWORD), "pgpw-browser-s3cret" }) do
      assert.is_nil(text:find(secret, 1, true), text)
    end
  end)
end)

-- The PostgreSQL store password by one rule everywhere (src/api/sys.c, pg_url_secrets):
-- the user part ends at the LAST '@' before the first '?' or '#', and all of it after its
-- first ':' is the password, raw '/', '@', ':', '+' and '=' included. It leaves the argv
-- of connrt wherever the URL stands (also after an option that took "--" as its value),
-- but never the arguments of the program `connrt exec` runs; a child's CONNRT_STORE has
-- none of it; an error names only scheme, host and database. No PostgreSQL server: a
-- listener that never answers keeps a connrt waiting on the store.
describe("a PostgreSQL store URL's password, whatever its characters and position #integration", function()
  local sys = require("connrt.sys")
  -- (libpq ends the user part at the first '@' or '/': a raw '?' or '#' is the password's)
  local PASSWORDS = { "Ab/cDeFgSECRET1", "Ab@cDeFgSECRET2", "Ab+c/DeFg=SECRET3", "Ab:cD+eF=gSECRET4",
    "A:b@c/d+e=SECRET5", "Ab?cDeFgSECRET7", "Ab#cD?eFgSECRET8" }
  local KEY = ("e2"):rep(32)
  local silent, tmp, api, home, port

  setup(function()
    silent = require("connrt.listener").open("127.0.0.1", 0) -- the kernel accepts; nobody answers
    port = silent:port()
    tmp = h.tmpdir()
    home = tmp .. "/home"
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    h.write(tmp .. "/keyed.lua", h.keyed_connector(api.base))
    h.write(tmp .. "/hold.lua", 'io.read("l")\n') -- a pipeline script that waits for its input
    local res = h.connrt({ "run", tmp .. "/keyed.lua", "--field", "api_key=" .. API_KEY },
      { env = { CONNRT_HOME = home, CONNRT_KEY = KEY } })
    assert.equal(0, res.code, res.stderr)
  end)

  teardown(function()
    if silent then silent:close() end
    if api then api.stop() end
    if tmp then h.rmdir(tmp) end
  end)

  local function url(pw, rest)
    return ("postgres://connrt:%s@127.0.0.1:%d/connrt%s"):format(pw, port, rest or "")
  end

  -- Starts connrt ARGS in the background (standard input a FIFO nobody writes), waits until
  -- it warned about the argv or ended, and returns its /proc/PID/cmdline (nil if it ended)
  -- and standard error, after stopping it.
  local function argv_of(args)
    local dir = h.tmpdir()
    -- (a connrt left waiting on its FIFO by a failed check is stopped too)
    finally(function()
      local left = tonumber(h.read(dir .. "/pid") or "")
      if left then os.execute(("kill -TERM %d 2>/dev/null"):format(left)) end
      h.rmdir(dir)
    end)
    assert(os.execute("mkfifo " .. dir .. "/in"))
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = h.shell_quote(a) end
    os.execute(("(cd %s && env CONNRT_HOME=%s CONNRT_KEY=%s %s %s <>%s/in >%s/out 2>%s/err & "
      .. "echo $! >%s/pid; wait $!; echo $? >%s/rc) >/dev/null 2>&1 &")
      :format(h.shell_quote(h.ROOT), h.shell_quote(home), KEY, h.CONNRT, table.concat(quoted, " "),
        dir, dir, dir, dir, dir))
    for _ = 1, 400 do
      if h.read(dir .. "/pid") then break end
      sys.sleep(0.05)
    end
    local pid = assert(tonumber(h.read(dir .. "/pid")))
    for _ = 1, 200 do
      if (h.read(dir .. "/err") or ""):find("warning: a password", 1, true) or h.read(dir .. "/rc") then break end
      sys.sleep(0.05)
    end
    local text = h.read(("/proc/%d/cmdline"):format(pid))
    os.execute(("kill -TERM %d 2>/dev/null"):format(pid))
    for _ = 1, 200 do
      if h.read(dir .. "/rc") then break end
      sys.sleep(0.05)
    end
    return text, h.read(dir .. "/err") or ""
  end

  local function warnings(err)
    return select(2, err:gsub("a password on the command line is visible to other local users", ""))
  end

  it("leaves the argv when an option took \"--\" as its value before --store or --from", function()
    local pw = "pgArgvDash-S3cret"
    for _, args in ipairs({ { "request", "keyed", api.base .. "/x", "--data", "--", "--store", url(pw) },
      { "store", "copy", "--to", "--", "--from", url(pw) } }) do
      local text, err = argv_of(args)
      local shown = table.concat(args, " ")
      assert.is_string(text, "connrt ended before its argv was read: " .. shown .. "\n" .. err)
      assert.matches("@127.0.0.1:" .. port .. "/connrt", text, 1, true) -- the argv is real
      assert.is_nil(text:find(pw, 1, true), shown .. ": " .. text:gsub("%z", " "))
      assert.equal(1, warnings(err), err)
      assert.is_nil(err:find(pw, 1, true), err)
    end
  end)

  it("leaves the argv with raw '/', '@', ':', '+', '=', '?' or '#' in it, as a value and in --opt=URL", function()
    for _, pw in ipairs(PASSWORDS) do
      local text, err = argv_of({ "script", tmp .. "/hold.lua", url(pw), "--to=" .. url(pw, "?sslmode=disable") })
      assert.is_string(text, "connrt ended before its argv was read: " .. err)
      -- (a URL that is not plain: all of it after "://")
      assert.matches(pw:find("[/@?#]") and "postgres://***" or ("@127.0.0.1:" .. port .. "/connrt"), text, 1, true)
      assert.is_nil(text:find("SECRET", 1, true), pw .. ": " .. text:gsub("%z", " "))
      assert.equal(1, warnings(err), err)
    end
  end)

  it("is not in the error, which names only scheme, host and database", function()
    for _, pw in ipairs(PASSWORDS) do
      local res = h.connrt({ "--store", url(pw, "?connect_timeout=2"), "list" }, { env = { CONNRT_KEY = KEY },
        timeout = 60 })
      -- (a URL that is not plain may be read more than one way: its host part may hold
      -- pieces of the password, and is not named)
      local where = pw:find("[/@?#]") and "the PostgreSQL store postgres://(host not shown: the URL is not plain):"
        or ("the PostgreSQL store postgres://127.0.0.1:%d/connrt:"):format(port)
      assert.matches(where, res.stderr, 1, true)
      assert.is_nil(res.stderr:find("SECRET", 1, true), res.stderr)
      if pw:find("[/@?#]") then
        -- libpq would read pieces of it as host, port or database, or read it otherwise
        -- than connrt: refused before
        assert.equal(2, res.code, res.stderr)
        assert.matches("the URL can be read more than one way", res.stderr, 1, true)
      else
        assert.equal(8, res.code, res.stderr) -- reached the listener, which never answered
      end
    end
  end)

  it("is hidden whole in a URL that is not plain, which is refused; a plain one is read as libpq reads it", function()
    -- URLs that may be read more than one way (reviews 22, 23): all after "://" is hidden,
    -- and the store refuses them before libpq reads them
    for _, u in ipairs({
        ("postgres://127.0.0.1:%d?application_name=x@127.0.0.1:%d/z&password=SECRETnine"):format(port, port),
        ("postgres://connrt:Kq7vLongSECRETten?x/y@127.0.0.1:%d/connrt"):format(port),
        ("postgres://connrt:Xy7@LmnSECRET?Qrs9@127.0.0.1:%d/connrt"):format(port),
        ("postgres://db.internal:%d?sslmode=disable&password=p@SECRETss"):format(port),
        "postgres://?password=x@SECRETy&host=/tmp",
        ("postgres://app:2024/SpringSECRET?x@127.0.0.1:%d/connrt"):format(port),
        ("postgres://app:7?k/LmSECRET@127.0.0.1:%d/connrt"):format(port),
        ("postgres://app:?ZqSECRET/9@127.0.0.1:%d/connrt"):format(port),
        ("postgres://app:7#k/LmSECRET@127.0.0.1:%d/connrt"):format(port),
        ("postgres://u:pa?%s&z@127.0.0.1:%d/connrt"):format(("password=SECRET&"):rep(17), port),
        ("postgres://127.0.0.1:%d/connrt?%s"):format(port, ("password=SECRETp&"):rep(17)),
        -- libpq has no fragment: a '#' is part of a value, or of a password (review 24)
        "postgres://connrt@/connrt?host=/tmp&application_name=a#&password=hunter2SECRET",
        "postgres://h/db?password=abc#defSECRET",
        "postgres://connrt@/x#?dbname=connrt&host=/tmp&password=SECRETq" }) do
      local bare = sys.pg_url_secrets(u)
      assert.is_nil(bare:find("SECRET", 1, true), u .. " -> " .. bare)
      local res = h.connrt({ "--store", u, "list" }, { env = { CONNRT_KEY = KEY }, timeout = 60 })
      assert.equal(2, res.code, u .. ": " .. res.stderr)
      assert.is_nil(res.stderr:find("SECRET", 1, true), res.stderr)
      assert.matches("the URL can be read more than one way", res.stderr, 1, true)
      local text, err = argv_of({ "script", tmp .. "/hold.lua", u })
      assert.is_string(text, "connrt ended before its argv was read: " .. err)
      assert.is_nil(text:find("SECRET", 1, true), u .. ": " .. text:gsub("%z", " "))
      assert.equal(1, warnings(err), err)
    end
    -- plain URLs libpq reads as connrt does: taken, their password alone hidden
    for _, case in ipairs({ { "postgres://u@127.0.0.1:1?application_name=x@y", {} },
        { "postgres://app:pwSECRET@h:1?application_name=me@laptop", { "pwSECRET" } },
        { "postgres://u:p%40wSECRET@[::1]:5432,h2:5433/db?host=/run/pg&sslpassword=sSECRET",
          { "p%40wSECRET", "sSECRET" } },
        { "postgresql:///db?host=/tmp&user=a@b&password=qSECRET", { "qSECRET" } },
        { "postgres://%2Fvar%2Frun%2Fpg/db", {} },
        { "postgres://u:pwSECRET@/db&", { "pwSECRET" }, "postgres://u@/db&" },
        { "postgres://h/db?password=sSECRET&application_name=x?", { "sSECRET" }, "postgres://h/db?application_name=x?" },
        { "postgres://h/db?a=1&oauth_client_secret=oSECRET", { "oSECRET" }, "postgres://h/db?a=1" },
        -- (a name libpq refuses, but a password it holds)
        { "postgres://h/db?PASSWORD=pSECRET&a=1", { "pSECRET" }, "postgres://h/db?a=1" } }) do
      local bare, secrets = sys.pg_url_secrets(case[1])
      assert.same(case[2], secrets, case[1])
      assert.is_nil(bare:find("SECRET", 1, true), bare)
      -- (what stays is the URL's own: a '&' or '?' ending its database or a value)
      if case[3] then assert.equal(case[3], bare) end
      assert.is_false(select(4, sys.pg_url_where(case[1])), case[1])
    end
    -- a URL after other text (a blank in front) is no directory's name: refused, not shown
    for _, args in ipairs({ { { "--store", " postgres://u:S3cretX@127.0.0.1/db", "list" }, {} },
        { { "list" }, { CONNRT_STORE = "x postgres://u:S3cretX@127.0.0.1/db" } } }) do
      local env = { CONNRT_KEY = KEY }
      for k, v in pairs(args[2]) do env[k] = v end
      local res = h.connrt(args[1], { env = env })
      assert.equal(2, res.code, res.stderr)
      assert.matches("must start with postgres:// or postgresql://", res.stderr, 1, true)
      assert.is_nil(res.stderr:find("S3cret", 1, true), res.stderr)
    end
    local res = h.connrt({ "--store", home, "exec", "keyed", "--", "env" },
      { env = { CONNRT_KEY = KEY, CONNRT_STORE = " postgres://u:S3cretX@127.0.0.1/db" } })
    assert.equal(0, res.code, res.stderr)
    assert.matches("\nCONNRT_STORE= postgres://u@127.0.0.1/db\n", "\n" .. res.stdout, 1, true)
    -- (the URL, not the first "postgres" of the value)
    res = h.connrt({ "--store", home, "exec", "keyed", "--", "env" },
      { env = { CONNRT_KEY = KEY, CONNRT_STORE = "/srv/postgres-data postgres://u:S3cretX@127.0.0.1/db" } })
    assert.equal(0, res.code, res.stderr)
    assert.matches("\nCONNRT_STORE=/srv/postgres-data postgres://u@127.0.0.1/db\n", "\n" .. res.stdout, 1, true)
  end)

  it("is not in a child's CONNRT_STORE", function()
    for _, pw in ipairs(PASSWORDS) do
      local res = h.connrt({ "--store", home, "exec", "keyed", "--", "env" },
        { env = { CONNRT_KEY = KEY, CONNRT_STORE = url(pw, "?sslmode=disable&password=" .. pw:gsub("[/@:+=]", "")) } })
      assert.equal(0, res.code, res.stderr)
      -- (a URL that is not plain, which the store refuses: nothing of it after "://")
      assert.matches(pw:find("[/@?#]") and "\nCONNRT_STORE=postgres://\n"
        or ("\nCONNRT_STORE=postgres://connrt@127.0.0.1:%d/connrt?sslmode=disable\n"):format(port),
        "\n" .. res.stdout, 1, true)
      assert.is_nil(res.stdout:find("SECRET", 1, true), res.stdout)
    end
  end)

  it("stays whole in the arguments of the program connrt exec runs, and in connrt's argv there", function()
    local pw = "Ab/cDeFgSECRET6"
    local out = tmp .. "/argv"
    local res = h.connrt({ "--store", home, "exec", "keyed", "--", "sh", "-c",
      'tr "\\000" " " </proc/$PPID/cmdline >"$1"; printf "%s\\n" "$2" >>"$1"', "sh", out, url(pw) },
      { env = { CONNRT_KEY = KEY } })
    assert.equal(0, res.code, res.stderr)
    local text = assert(h.read(out))
    local _, n = text:find(url(pw), 1, true)
    assert.truthy(n, text)
    assert.is_truthy(text:find(url(pw), n + 1, true), "not whole in both: " .. text)
    assert.equal(0, warnings(res.stderr), res.stderr)
  end)
end)
