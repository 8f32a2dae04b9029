-- luacheck: std +busted
-- A PostgreSQL store (issue 16), end to end with real processes: a real PostgreSQL
-- (spec/support/postgres.lua), the real authorization server (oidc-server.mjs) and the
-- scripted browser. Every command on a postgres:// store; a fleet of processes in three
-- groups of 20 (each its own CONNRT_HOME, only the URL and the key in common) hitting an
-- expired connection at once: exactly one refresh; a refresher stopped (SIGSTOP) past its
-- lease while another refreshes cannot overwrite the newer tokens; the server down:
-- exit 8 naming the store, no password, nothing lost; a wrong password; a newer schema;
-- `connrt store copy` LMDB -> PostgreSQL -> LMDB; `connrt proxy` following what other
-- hosts write.
local cjson = require("cjson")
local crypto = require("connrt.crypto")
local h = require("support.helpers")
local http = require("connrt.http")
local postgres = require("support.postgres")
local proxies = require("support.proxy")
local sys = require("connrt.sys")

local KEY_HEX = crypto.hex(crypto.random(32))
local SECRET = "basic-secret"
local CONNECTOR = h.read("examples/local-oidc.lua")
  :gsub('id = "local%-oidc"', 'id = "pg-oidc"')
  :gsub('unique_id = "{{email}}"', 'unique_id = "{{sub}}"')

local client = http.client({ timeout = 10 })

local function stats(server)
  return cjson.decode(assert(client:request({ url = server.issuer .. "/test/stats" })).body)
end

-- The subject the server's userinfo endpoint gives for an access token, or nil.
local function whoami(server, token)
  local r = assert(client:request({ url = server.issuer .. "/me", headers = { "Authorization: Bearer " .. token } }))
  if r.status ~= 200 then return nil end
  return cjson.decode(r.body).sub
end

describe("a PostgreSQL store #integration #postgres", function()
  local pg, tmp, redirect, connector_path, browser, oidc, slow

  setup(function()
    assert(postgres.available(), "PostgreSQL 15 is not installed (make deps installs postgresql-15)")
    pg = postgres.start()
    tmp = h.tmpdir()
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    connector_path = tmp .. "/pg-oidc.lua"
    h.write(connector_path, CONNECTOR)
    browser = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua"
    oidc = h.start_server({ redirect = redirect, args = "--rotate" })
    -- token requests taken 1 s late and answered 1 s after: a refresh is slow, and a
    -- refresher can be stopped in between (the fencing case) even on a busy machine
    slow = h.start_server({ redirect = redirect, args = "--latency 2000" })
  end)

  teardown(function()
    -- the server first: restarted by a case, it inherited the pipes the node servers
    -- stop on, which would keep them waiting
    if pg then pg.destroy() end
    for _, s in ipairs({ oidc, slow }) do if s then s.stop() end end
    if tmp then h.rmdir(tmp) end
  end)

  local n_db = 0
  -- A fresh database on the server, as a postgres:// URL.
  local function new_db()
    n_db = n_db + 1
    local db = "pgspec" .. n_db
    pg.psql(("CREATE DATABASE %s OWNER %s;"):format(db, pg.role), "postgres")
    return (pg.url:gsub("/[^/]*$", "/" .. db)), db
  end

  -- The environment of a connrt on a host of its own (CONNRT_HOME) using `store`.
  local function env_for(store, extra)
    local e = { CONNRT_STORE = store, CONNRT_HOME = tmp .. "/host-" .. math.random(1e9), CONNRT_KEY = KEY_HEX,
      CONNRT_REDIRECT_URL = redirect, CONNRT_BROWSER = browser, CONNRT_CLIENT_SECRET = SECRET, SIGNIN_USER = "john" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function run(args, env)
    return h.connrt(args, { env = env })
  end

  local function connect(server, env)
    local res = run({ "run", connector_path, "--field", "server=" .. server.issuer, "--client-id", "connrt-basic",
      "--timeout", "20", "--json" }, env)
    assert.equal(0, res.code, res.stderr)
    return cjson.decode(res.stdout).id
  end

  -- Makes the connection's token due (it expires in 5 s and was issued an hour ago),
  -- through the store with the key.
  local function make_due(env, id)
    local script = tmp .. "/due.lua"
    h.write(script, [[
      local st = require("connrt.store").open()
      local rec = st:get(arg[1])
      local now = os.time()
      st:save_tokens(arg[1], { access_token = st:secrets(rec).access_token, expires_at = now + 5, issued_at = now - 3600 })
      st:close()
    ]])
    local res = run({ "script", script, id }, env)
    assert.equal(0, res.code, "making the token due: " .. res.stderr)
  end

  local function show(env, id)
    local res = run({ "show", id, "--json" }, env)
    assert.equal(0, res.code, res.stderr)
    return cjson.decode(res.stdout)
  end

  it("runs every command on the store, keeping nothing in the local directory but no key", function()
    local url = new_db()
    local env = env_for(url)
    local id = connect(oidc, env)
    assert.is_nil(h.read(env.CONNRT_HOME .. "/data.mdb"), "an LMDB store was made beside the PostgreSQL one")
    -- another host: its own empty CONNRT_HOME, the same URL and key
    local other = env_for(url)
    local res = run({ "list" }, other)
    assert.equal(0, res.code, res.stderr)
    assert.matches(id, res.stdout, 1, true)
    res = run({ "list", "--json" }, other)
    assert.equal(0, res.code, res.stderr)
    assert.equal(id, cjson.decode(res.stdout)[1].id)
    assert.equal("john", show(other, id).unique_id)
    res = run({ "token", id }, other)
    assert.equal(0, res.code, res.stderr)
    assert.equal("john", whoami(oidc, (res.stdout:gsub("%s+$", ""))))
    res = run({ "request", id, "/me" }, other)
    assert.equal(0, res.code, res.stderr)
    assert.matches('"sub":"john"', res.stdout, 1, true)
    local before = stats(oidc).grants.refresh_token or 0
    res = run({ "refresh", id }, other)
    assert.equal(0, res.code, res.stderr)
    assert.equal(before + 1, stats(oidc).grants.refresh_token)
    -- --store on the command line instead of CONNRT_STORE
    local flag_env = env_for(url)
    flag_env.CONNRT_STORE = nil
    res = run({ "--store", url, "token", id }, flag_env)
    assert.equal(0, res.code, res.stderr)
    res = run({ "show", id, "--store=" .. url }, flag_env)
    assert.equal(0, res.code, res.stderr)
    -- rekey: every secret under a new key, which the other host then needs
    local new_key = crypto.hex(crypto.random(32))
    res = run({ "rekey" }, env_for(url, { CONNRT_NEW_KEY = new_key }))
    assert.equal(0, res.code, res.stderr)
    res = run({ "token", id }, other)
    assert.equal(8, res.code)
    assert.matches("cannot decrypt: wrong key?", res.stderr, 1, true)
    local renv = env_for(url, { CONNRT_KEY = new_key })
    res = run({ "token", id }, renv)
    assert.equal(0, res.code, res.stderr)
    res = run({ "revoke", id }, renv)
    assert.equal(0, res.code, res.stderr)
    res = run({ "list", "--json" }, renv)
    assert.equal("[]", (res.stdout:gsub("%s+$", "")))
    id = connect(oidc, renv)
    res = run({ "delete", id }, renv)
    assert.equal(0, res.code, res.stderr)
    res = run({ "token", id }, renv)
    assert.equal(9, res.code)
    res = run({ "store", "migrate" }, renv)
    assert.equal(0, res.code, res.stderr)
    assert.matches("schema version 1, the newest this connrt knows", res.stderr, 1, true)
    assert.is_nil(res.stderr:find(pg.password, 1, true))
  end)

  it("serves connrt proxy from the store, following what other hosts write without a SIGHUP", function()
    local url, db = new_db()
    local env = env_for(url)
    local id = connect(oidc, env)
    local other = env_for(url) -- another host: the same URL and key, its own CONNRT_HOME
    local p = proxies.start(env.CONNRT_HOME, { "--socket", tmp .. "/pg-proxy.sock", "--workers", "2" }, env)
    local function sub_via(path)
      local code, body = proxies.curl(p, path)
      return code, code == 200 and cjson.decode(body).sub or cjson.decode(body)
    end
    local ok, err = pcall(function()
      -- by id, and by the connector's id while it has one connection
      assert.same({ 200, "john" }, { sub_via("/" .. id .. "/me") })
      assert.same({ 200, "john" }, { sub_via("/pg-oidc/me") })
      -- `connrt token` through CONNRT_PROXY, from this host and from another with the same
      -- URL and key: the store and key the proxy holds (Store:selection), served
      for _, e in ipairs({ env, other }) do
        local direct = run({ "token", id }, e)
        local ve = { CONNRT_PROXY = p.info.socket }
        for k, v in pairs(e) do ve[k] = v end
        local via = run({ "token", id }, ve)
        assert.equal(0, via.code, via.stderr)
        assert.equal(direct.stdout, via.stdout)
        assert.is_nil(via.stderr:find("going direct", 1, true), via.stderr)
      end
      -- another host refreshes: the proxy sends the tokens it saved
      local res = run({ "refresh", id }, other)
      assert.equal(0, res.code, res.stderr)
      local code, tok = proxies.curl(p, "/_connrt/token/" .. id)
      assert.equal(200, code)
      assert.equal(run({ "token", id }, other).stdout, tok)
      -- another host connects a second account of the connector: the name is ambiguous
      local jane = connect(oidc, env_for(url, { SIGNIN_USER = "jane" }))
      local doc
      code, doc = sub_via("/pg-oidc/me")
      assert.equal(400, code)
      assert.equal("ambiguous", doc.reason)
      assert.same({ 200, "jane" }, { sub_via("/" .. jane .. "/me") })
      -- it deletes john's: the name is jane's, john's id is gone
      res = run({ "delete", id }, other)
      assert.equal(0, res.code, res.stderr)
      assert.same({ 200, "jane" }, { sub_via("/pg-oidc/me") })
      code, doc = sub_via("/" .. id .. "/me")
      assert.equal(404, code)
      assert.equal("notfound", doc.error)
      -- its database connections cut (an idle-connection killer, a failover): the next
      -- requests go on, on new connections, by id and by the connector's id
      local function cut()
        return tonumber(pg.psql(("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
          .. "WHERE datname = '%s' AND pid <> pg_backend_pid()"):format(db), "postgres"))
      end
      assert.is_true(cut() >= 1, "the proxy held no connection to cut")
      for _ = 1, 4 do
        assert.same({ 200, "jane" }, { sub_via("/pg-oidc/me") })
        assert.same({ 200, "jane" }, { sub_via("/" .. jane .. "/me") })
      end
      cut()
      code, tok = proxies.curl(p, "/_connrt/token/" .. jane)
      assert.equal(200, code, tok)
    end)
    assert.equal(0, p.stop())
    assert(ok, err)
  end)

  it("lets a fleet of 60 processes on three hosts refresh an expired connection exactly once", function()
    local url = new_db()
    local env = env_for(url)
    local id = connect(oidc, env)
    make_due(env, id)
    local before = stats(oidc).grants.refresh_token or 0
    -- three groups, each its own CONNRT_HOME (a host), started at once
    local dir = h.tmpdir()
    local script = {}
    for g = 1, 3 do
      local e = env_for(url)
      local prefix = {}
      for k, v in pairs(e) do prefix[#prefix + 1] = k .. "=" .. h.shell_quote(v) end
      for i = 1, 20 do
        local n = (g - 1) * 20 + i
        script[#script + 1] = ("(env %s %s token %s >%s/out%d 2>%s/err%d; echo $? >%s/rc%d) &"):format(
          table.concat(prefix, " "), h.shell_quote(h.CONNRT), id, dir, n, dir, n, dir, n)
      end
    end
    script[#script + 1] = "wait"
    os.execute(table.concat(script, "\n"))
    local tokens = {}
    for n = 1, 60 do
      assert.equal("0", (h.read(dir .. "/rc" .. n) or ""):gsub("%s+", ""), h.read(dir .. "/err" .. n))
      tokens[(h.read(dir .. "/out" .. n):gsub("%s+$", ""))] = true
    end
    h.rmdir(dir)
    assert.equal(before + 1, stats(oidc).grants.refresh_token, "refreshes at the authorization server")
    local n = 0
    for t in pairs(tokens) do
      n = n + 1
      assert.equal("john", whoami(oidc, t))
    end
    assert.equal(1, n, "every process got the one new token")
    -- the rotated refresh token is the one stored: the next refresh works
    local res = run({ "refresh", id }, env)
    assert.equal(0, res.code, res.stderr)
    assert.equal(before + 2, stats(oidc).grants.refresh_token)
  end)

  it("refuses the write of a refresher stopped past its lease while another refreshed", function()
    local url = new_db()
    local env = env_for(url, { CONNRT_LEASE_TTL = "1.5" })
    local id = connect(slow, env)
    make_due(env, id)
    local before = stats(slow).grants.refresh_token or 0
    -- A: a `connrt token` in the background; stopped once the server has refreshed for it
    local dir = h.tmpdir()
    local prefix = {}
    for k, v in pairs(env) do prefix[#prefix + 1] = k .. "=" .. h.shell_quote(v) end
    local p = io.popen(("sh -c %s </dev/null >/dev/null 2>&1 & echo $!"):format(h.shell_quote(("env %s %s token %s >%s/a.out 2>%s/a.err; "
      .. "echo $? >%s/a.rc"):format(table.concat(prefix, " "), h.shell_quote(h.CONNRT), id, dir, dir, dir))))
    local shpid = tonumber(p:read("a"))
    p:close()
    local deadline = sys.monotime() + 20
    while (stats(slow).grants.refresh_token or 0) == before do
      assert(sys.monotime() < deadline, "A never refreshed")
      sys.sleep(0.01)
    end
    local q = io.popen("pgrep -P " .. shpid)
    local apid = tonumber(q:read("a"))
    q:close()
    assert(apid, "A's process")
    os.execute("kill -STOP " .. apid)
    sys.sleep(1.6) -- A's lease expires while it is stopped
    -- B refreshes and writes its tokens
    local b = run({ "token", id }, env)
    assert.equal(0, b.code, b.stderr)
    local b_token = b.stdout:gsub("%s+$", "")
    assert.equal(before + 2, stats(slow).grants.refresh_token)
    os.execute("kill -CONT " .. apid)
    deadline = sys.monotime() + 20
    while not h.read(dir .. "/a.rc") do
      assert(sys.monotime() < deadline, "A did not finish")
      sys.sleep(0.05)
    end
    local a_err = h.read(dir .. "/a.err")
    assert.equal("0", (h.read(dir .. "/a.rc"):gsub("%s+", "")), a_err)
    -- A's own tokens were never stored: it answers with B's, which stay stored
    assert.equal(b_token, (h.read(dir .. "/a.out"):gsub("%s+$", "")))
    h.rmdir(dir)
    local res = run({ "token", id }, env)
    assert.equal(b_token, (res.stdout:gsub("%s+$", "")))
    assert.equal(before + 2, stats(slow).grants.refresh_token, "no refresh after B's")
  end)

  it("marks nothing for a refresher whose refresh token was refused after another rotated it past its lease",
    function()
    -- A's refresh reaches the server at once but is handled 5 s late; its lease (1.5 s)
    -- expires and B refreshes, rotating the refresh token A sent; A's is then refused
    -- (invalid_grant). A must not mark the connection as needing reconnection: the
    -- tokens B stored stand, and A answers with them.
    local url = new_db()
    local env = env_for(url, { CONNRT_LEASE_TTL = "1.5" })
    local id = connect(oidc, env)
    make_due(env, id)
    local before = stats(oidc).grants.refresh_token or 0
    assert(client:request({ url = oidc.issuer .. "/test/hold?ms=5000" }))
    local dir = h.tmpdir()
    local prefix = {}
    for k, v in pairs(env) do prefix[#prefix + 1] = k .. "=" .. h.shell_quote(v) end
    os.execute(("sh -c %s </dev/null >/dev/null 2>&1 &"):format(h.shell_quote(("env %s %s refresh %s >%s/a.out "
      .. "2>%s/a.err; echo $? >%s/a.rc"):format(table.concat(prefix, " "), h.shell_quote(h.CONNRT), id, dir, dir, dir))))
    local deadline = sys.monotime() + 20
    while (stats(oidc).held or 0) == 0 do
      assert(sys.monotime() < deadline, "A's refresh never reached the server")
      sys.sleep(0.01)
    end
    sys.sleep(1.6) -- A's lease expires while its request waits at the server
    local b = run({ "refresh", id }, env)
    assert.equal(0, b.code, b.stderr)
    local b_token = run({ "token", id }, env).stdout
    deadline = sys.monotime() + 30
    while not h.read(dir .. "/a.rc") do
      assert(sys.monotime() < deadline, "A did not finish")
      sys.sleep(0.05)
    end
    -- the server did refuse A's (rotated) refresh token: one grant counted, B's
    assert.equal(before + 1, stats(oidc).grants.refresh_token)
    assert.equal("0", (h.read(dir .. "/a.rc"):gsub("%s+", "")), h.read(dir .. "/a.err"))
    h.rmdir(dir)
    local listed = cjson.decode(run({ "list", "--json" }, env).stdout)[1]
    assert.is_nil(listed.needs_reconnect)
    assert.is_nil(listed.last_error)
    assert.equal(b_token, run({ "token", id }, env).stdout)
  end)

  it("fails with exit 8 naming the store when PostgreSQL is down, and loses nothing", function()
    -- commits durable, as on a real server (the spec server turns that off for speed;
    -- an immediate stop would lose the last ones, which is PostgreSQL's, not connrt's)
    pg.psql("ALTER SYSTEM SET synchronous_commit = on; SELECT pg_reload_conf();", "postgres")
    local url, db = new_db()
    local env = env_for(url)
    local id = connect(oidc, env)
    local was = show(env, id)
    pg.stop("immediate")
    local ok, err = pcall(function()
      for _, args in ipairs({ { "token", id }, { "list" }, { "show", id }, { "refresh", id }, { "list", "--json" } }) do
        local res = run(args, env)
        assert.equal(8, res.code, args[1] .. ": " .. res.stderr)
        assert.matches(("PostgreSQL store postgres://127.0.0.1:%d/%s"):format(pg.port, db), res.stderr, 1, true)
        assert.is_nil(res.stderr:find(pg.password, 1, true), res.stderr)
        assert.is_nil(res.stderr:find("traceback", 1, true), res.stderr)
      end
    end)
    pg.start()
    if not ok then error(err, 0) end
    assert.same(was, show(env, id))
    local res = run({ "token", id }, env)
    assert.equal(0, res.code, res.stderr)
  end)

  -- Starts `connrt ARGS` in the background; returns a function that waits for it (up to
  -- 30 s) and gives {code, stdout, stderr}.
  local function background(args, env)
    local dir = h.tmpdir()
    local prefix, quoted = {}, {}
    for k, v in pairs(env) do prefix[#prefix + 1] = k .. "=" .. h.shell_quote(v) end
    for _, a in ipairs(args) do quoted[#quoted + 1] = h.shell_quote(a) end
    os.execute(("sh -c %s </dev/null >/dev/null 2>&1 &"):format(h.shell_quote(("env %s %s %s >%s/out 2>%s/err; "
      .. "echo $? >%s/rc"):format(table.concat(prefix, " "), h.shell_quote(h.CONNRT), table.concat(quoted, " "),
      dir, dir, dir))))
    return function()
      local deadline = sys.monotime() + 30
      while not (h.read(dir .. "/rc") or ""):find("\n") do
        assert(sys.monotime() < deadline, "connrt " .. args[1] .. " did not finish")
        sys.sleep(0.05)
      end
      local res = { code = tonumber(h.read(dir .. "/rc")), stdout = h.read(dir .. "/out"), stderr = h.read(dir .. "/err") }
      h.rmdir(dir)
      return res
    end
  end

  -- Waits until the slow server has taken a token request since `since` (stats.at.token).
  local function token_request_arrived(since)
    local deadline = sys.monotime() + 20
    while (stats(slow).at.token or 0) == since do
      assert(sys.monotime() < deadline, "no token request reached the server")
      sys.sleep(0.01)
    end
  end

  local function assert_store_error(res, db, what)
    assert.equal(8, res.code, what .. ": " .. res.stderr)
    assert.matches(("PostgreSQL store postgres://127.0.0.1:%d/%s"):format(pg.port, db), res.stderr, 1, true)
    assert.is_nil(res.stderr:find(pg.password, 1, true), res.stderr)
    assert.is_nil(res.stderr:find("traceback", 1, true), res.stderr)
  end

  it("fails with exit 8 when PostgreSQL stops during a connect or a refresh, half-writing nothing", function()
    pg.psql("ALTER SYSTEM SET synchronous_commit = on; SELECT pg_reload_conf();", "postgres")
    local url, db = new_db()
    local env = env_for(url, { CONNRT_LEASE_TTL = "2" })
    local id = connect(slow, env)
    local was = show(env, id)

    -- during a connect: the server stops while the code is exchanged for tokens
    local since = stats(slow).at.token
    local wait = background({ "run", connector_path, "--field", "server=" .. slow.issuer, "--client-id", "connrt-basic",
      "--timeout", "20", "--json" }, env)
    token_request_arrived(since)
    local ok, err = pcall(function()
      pg.stop("immediate")
      assert_store_error(wait(), db, "connect")
    end)
    pg.start()
    if not ok then error(err, 0) end
    local res = run({ "list", "--json" }, env)
    assert.equal(0, res.code, res.stderr)
    local list = cjson.decode(res.stdout)
    assert.equal(1, #list, "the connect half-wrote a connection: " .. res.stdout)
    assert.equal(id, list[1].id)
    assert.same(was, show(env, id))

    -- during a refresh: the server stops while the refresh is in flight
    make_due(env, id)
    local due = show(env, id)
    since = stats(slow).at.token
    wait = background({ "token", id }, env)
    token_request_arrived(since)
    ok, err = pcall(function()
      pg.stop("immediate")
      assert_store_error(wait(), db, "refresh")
    end)
    pg.start()
    if not ok then error(err, 0) end
    assert.same(due, show(env, id))
    -- after the restart: the connection refreshes (once the dead refresher's lease has
    -- expired), and a connect works
    res = run({ "token", id }, env)
    assert.equal(0, res.code, res.stderr)
    assert.equal("john", whoami(slow, (res.stdout:gsub("%s+$", ""))))
    -- the same account again: the one connection, updated
    assert.equal(id, connect(slow, env))
    res = run({ "list", "--json" }, env)
    assert.equal(0, res.code, res.stderr)
    assert.equal(1, #cjson.decode(res.stdout))
  end)

  it("refuses a wrong password and a newer schema with exit 8 and a clear reason", function()
    local url, db = new_db()
    local wrong = url:gsub("://([^:]*):[^@]*@", "://%1:not-the-password@")
    local res = run({ "list" }, env_for(wrong))
    assert.equal(8, res.code)
    assert.matches("PostgreSQL store postgres://127.0.0.1:" .. pg.port, res.stderr, 1, true)
    assert.is_nil(res.stderr:find("not-the-password", 1, true))
    local env = env_for(url)
    connect(oidc, env)
    pg.psql("UPDATE connrt_schema SET version = 99;", db)
    res = run({ "list" }, env)
    assert.equal(8, res.code)
    assert.matches("has schema version 99, newer than the 1 this connrt knows", res.stderr, 1, true)
    res = run({ "store", "migrate" }, env)
    assert.equal(8, res.code)
    pg.psql("UPDATE connrt_schema SET version = 1;", db)
    res = run({ "list" }, env)
    assert.equal(0, res.code, res.stderr)
  end)

  it("serves the Lua API with a postgres:// home, and a store error is an error object there", function()
    local url = new_db()
    local env = env_for(url)
    local id = connect(oidc, env)
    local script = tmp .. "/api.lua"
    h.write(script, [[
      local url, id = arg[1], arg[2]
      local c = connrt.connection(id, { home = url })
      io.write(c:get("/me").json.sub, " ", #connrt.list({ home = url }), "\n")
      local bad = url:gsub("://([^:]*):[^@]*@", "://%1:wrong@")
      local ok, e = pcall(connrt.list, { home = bad })
      io.write(tostring(ok), " ", tostring(e.kind), " ", tostring(e.reason), "\n")
    ]])
    local noenv = env_for(url)
    noenv.CONNRT_STORE = nil
    local res = run({ "script", script, url, id }, noenv)
    assert.equal(0, res.code, res.stderr)
    assert.equal("john 1\nfalse store auth\n", res.stdout)
  end)

  it("refuses a server whose certificate the CA given does not sign (sslmode=verify-full)", function()
    local tls = postgres.start({ tls = true })
    local ok, err = pcall(function()
      local base = tls.url .. "?sslmode=verify-full&sslrootcert="
      local res = run({ "list" }, env_for(base .. postgres.encode(postgres.TLS .. "other-ca.pem")))
      assert.equal(8, res.code, res.stderr)
      assert.matches("PostgreSQL store postgres://127.0.0.1:" .. tls.port, res.stderr, 1, true)
      assert.is_nil(res.stderr:find(tls.password, 1, true))
      -- the right CA (the certificate names localhost)
      local good = (base .. postgres.encode(postgres.TLS .. "ca.pem")):gsub("127%.0%.0%.1", "localhost")
      res = run({ "list" }, env_for(good))
      assert.equal(0, res.code, res.stderr)
      -- no TLS at all: the server takes logins over TLS only
      res = run({ "list" }, env_for(tls.url .. "?sslmode=disable"))
      assert.equal(8, res.code, res.stderr)
    end)
    tls.destroy()
    if not ok then error(err, 0) end
  end)

  it("copies LMDB -> PostgreSQL -> LMDB with identical connections, and copying again changes nothing", function()
    local url = new_db()
    local home = tmp .. "/laptop"
    local lenv = env_for(home)
    local id = connect(oidc, lenv)
    local res = run({ "store", "copy", "--to", url }, lenv)
    assert.equal(0, res.code, res.stderr)
    assert.matches("copied 1 connection(s) and 1 client(s)", res.stderr, 1, true)
    res = run({ "store", "copy", "--to", url }, lenv) -- again: nothing changes
    assert.equal(0, res.code, res.stderr)
    local penv = env_for(url)
    local back = tmp .. "/back"
    res = run({ "store", "copy", "--from", url, "--to", back }, penv)
    assert.equal(0, res.code, res.stderr)
    local a, b, c = show(lenv, id), show(penv, id), show(env_for(back), id)
    assert.same(a, b)
    assert.same(a, c)
    res = run({ "token", id }, env_for(back))
    assert.equal(0, res.code, res.stderr)
    assert.equal("john", whoami(oidc, (res.stdout:gsub("%s+$", ""))))
    -- under another key for the target: re-sealed, and that key opens it
    local other_key = tmp .. "/other.key"
    assert(sys.write_private(other_key, crypto.hex(crypto.random(32)) .. "\n"))
    local third = tmp .. "/third"
    res = run({ "store", "copy", "--from", url, "--to", third, "--to-key-file", other_key }, penv)
    assert.equal(0, res.code, res.stderr)
    res = run({ "token", id }, env_for(third, { CONNRT_KEY = h.read(other_key):gsub("%s+$", "") }))
    assert.equal(0, res.code, res.stderr)
    res = run({ "token", id }, env_for(third))
    assert.equal(8, res.code)
  end)

  it("copies a store of 10,000 connections from LMDB to PostgreSQL", function()
    local url = new_db()
    local home = tmp .. "/big"
    local lenv = env_for(home)
    -- the source store, built through the Lua API in one write transaction
    local script = tmp .. "/fill.lua"
    h.write(script, [[
      local n, server, path = tonumber(arg[1]), arg[2], arg[3]
      local f = assert(io.open(path, "rb"))
      local src = f:read("a")
      f:close()
      local st = require("connrt.store").open()
      local items = {}
      for i = 1, n do
        items[i] = {
          { v = 1, connector = "pg-oidc", title = "PG OIDC", connector_path = path, auth = "authorization_code",
            name = ("User %d"):format(i), unique_id = ("user%d"):format(i), fields = { server = server }, values = {},
            client_id = "connrt-basic", client_auth = "basic", urls = { token_url = server .. "/token", issuer = server },
            allowed_urls = { server .. "/" }, token_type = "Bearer", has_refresh_token = true },
          { access_token = "at-" .. i, refresh_token = "rt-" .. i, client_secret = "basic-secret" },
          src,
        }
      end
      local ids = st:save_all(items)
      st:close()
      io.write(ids[1], " ", ids[n // 2], " ", ids[n], "\n")
    ]])
    local res = run({ "script", script, "10000", oidc.issuer, connector_path }, lenv)
    assert.equal(0, res.code, res.stderr)
    local sample = {}
    for id in res.stdout:gmatch("%S+") do sample[#sample + 1] = id end
    assert.equal(3, #sample)
    res = run({ "store", "copy", "--to", url }, lenv)
    assert.equal(0, res.code, res.stderr)
    assert.matches("copied 10000 connection(s)", res.stderr, 1, true)
    local penv = env_for(url)
    res = run({ "list", "--json" }, penv)
    assert.equal(0, res.code, res.stderr)
    local list = cjson.decode(res.stdout)
    assert.equal(10000, #list)
    local seen = {}
    for _, c in ipairs(list) do seen[c.id] = true end
    for _, id in ipairs(sample) do
      assert.is_true(seen[id], id)
      assert.same(show(lenv, id), show(penv, id))
    end
  end)
end)
