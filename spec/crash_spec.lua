-- luacheck: std +busted
-- Crash safety (issue 7): real `connrt` processes are killed with SIGKILL at random
-- moments while they connect an account and while they refresh a token (with refresh
-- token rotation), against the real authorization server (oidc-provider) and a real
-- LMDB store. After every kill the store must open, every connection must be whole
-- across the store's databases (its record, its sealed secrets, its account index entry,
-- its connector source, its client; the old version or the new one, never a mix), and
-- each one must work, or say it needs reconnecting and be restored by `connrt run`.
--
-- Each kill lands after a delay drawn uniformly over the span of an undisturbed run of
-- the same command, measured first (half of them over its later part, from the token
-- request on, which start-up and sign-in would otherwise crowd out), so kills fall in
-- every phase; the phase a kill hit is read back afterwards from what the process
-- printed, what the server saw (its grant and userinfo counters), what the scripted
-- browser saw and what the store holds, and the system call the process was in at the
-- kill (/proc/PID/syscall). Then: connrt under strace with every write and sync of the
-- store slowed, so that kills land inside LMDB commits; two refreshers at once with the
-- first killed; the first connect killed while it writes the key file; 130 processes
-- killed inside read transactions while the store is open elsewhere; and a live
-- holder's lease, which must still be waited for.
--
-- The seed is printed: CRASH_SEED=N reruns the same draws (the timing still varies).
-- CRASH_CONNECT_KILLS, CRASH_REFRESH_KILLS, CRASH_WRITE_KILLS and CRASH_RIVAL_KILLS set
-- how many kills each part makes (default 50, 50, 24 and 10); CRASH_DEBUG=1 prints
-- every trial.
local cjson = require("cjson")
local crypto = require("connrt.crypto")
local h = require("support.helpers")
local http = require("connrt.http")
local lmdb = require("connrt.lmdb")
local sys = require("connrt.sys")

local SEED = tonumber(os.getenv("CRASH_SEED") or "") or (os.time() % 1000000)
local CONNECT_KILLS = tonumber(os.getenv("CRASH_CONNECT_KILLS") or "") or 50
local REFRESH_KILLS = tonumber(os.getenv("CRASH_REFRESH_KILLS") or "") or 50
local WRITE_KILLS = tonumber(os.getenv("CRASH_WRITE_KILLS") or "") or 24
local RIVAL_KILLS = tonumber(os.getenv("CRASH_RIVAL_KILLS") or "") or 10
local KEY_HEX = "6372617368207370656320736565642e20636f6e6e7274206b65792076312e2e"
local KEY = crypto.unhex(KEY_HEX)
local SECRET = "basic-secret"
local DBS = { "connections", "secrets", "accounts", "clients", "connectors", "leases", "meta" }

-- x86_64 system call numbers worth naming in the report (elsewhere the number is shown)
local uname = io.popen("uname -m")
local X86_64 = uname:read("a"):match("^x86_64") ~= nil
uname:close()
local SYSCALLS = not X86_64 and {} or { [0] = "read", [1] = "write", [7] = "poll", [18] = "pwrite64", [20] = "writev",
  [26] = "msync", [42] = "connect", [43] = "accept", [44] = "sendto", [45] = "recvfrom",
  [61] = "wait4", [74] = "fsync", [75] = "fdatasync", [202] = "futex", [230] = "clock_nanosleep",
  [232] = "epoll_wait", [271] = "ppoll", [288] = "accept4" }
local COMMIT_CALLS = { pwrite64 = true, writev = true, fdatasync = true, fsync = true, msync = true }

-- A connector for the local server whose unique id is the subject, so any login name
-- is an account of its own (new accounts and reconnected ones in the same store).
local CONNECTOR = h.read("examples/local-oidc.lua")
  :gsub('id = "local%-oidc"', 'id = "crash-oidc"')
  :gsub('name = "{{name}}\'s Account"', 'name = "Account {{sub}}"')
  :gsub('unique_id = "{{email}}"', 'unique_id = "{{sub}}"')
assert(CONNECTOR:find('unique_id = "{{sub}}"', 1, true) and CONNECTOR:find('id = "crash-oidc"', 1, true),
  "examples/local-oidc.lua changed: the crash spec's connector edits no longer apply")

local function say(fmt, ...)
  io.stderr:write(("crash_spec: " .. fmt .. "\n"):format(...))
  io.stderr:flush()
end

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  return s[(#s + 1) // 2]
end

-- Starts `connrt ARGS` (env: a table) in the background from a shell; with `delay`,
-- sends it SIGKILL after that many seconds (reading the system call it is in first)
-- unless it has exited, then reaps it. `wrap`: a command the process runs under
-- (strace); the SIGKILL goes to connrt, its child. `rival`: the arguments of a second
-- connrt started 5 ms after the first with the same environment, never killed, waited
-- for too. Returns {code, killed, syscall, stdout, stderr, started, elapsed, rival =
-- {code, stderr}}: code 137 is a process that the SIGKILL ended.
local function run_killed(args, env, delay, wrap, rival)
  local dir = h.tmpdir()
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  local parts = {}
  for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. h.shell_quote(env[k]) end
  if wrap then
    for k, v in pairs(h.ptrace_env()) do parts[#parts + 1] = k .. "=" .. h.shell_quote(v) end
    -- under the wrapper, a shell writes connrt's pid, then becomes connrt
    for _, a in ipairs(wrap) do parts[#parts + 1] = h.shell_quote(a) end
    parts[#parts + 1] = "sh -c " .. h.shell_quote(('echo $$ >%s/pid; exec "$0" "$@"'):format(dir))
  end
  parts[#parts + 1] = h.shell_quote(h.CONNRT)
  for _, a in ipairs(args) do parts[#parts + 1] = h.shell_quote(a) end
  local lines = {
    "exec 2>/dev/null", -- no "Killed" from the shell
    "cd " .. h.shell_quote(h.ROOT) .. " || exit 1",
    ("env %s </dev/null >%s/out 2>%s/err &"):format(table.concat(parts, " "), dir, dir),
    "pid=$! target=$! sc=",
  }
  if rival then
    local r = {}
    for _, k in ipairs(names) do r[#r + 1] = k .. "=" .. h.shell_quote(env[k]) end
    r[#r + 1] = h.shell_quote(h.CONNRT)
    for _, a in ipairs(rival) do r[#r + 1] = h.shell_quote(a) end
    lines[#lines + 1] = "sleep 0.005"
    lines[#lines + 1] = ("env %s </dev/null >/dev/null 2>%s/rerr &"):format(table.concat(r, " "), dir)
    lines[#lines + 1] = "rpid=$!"
  end
  if wrap then
    lines[#lines + 1] = "target= i=0"
    lines[#lines + 1] = ("while [ -z \"$target\" ] && [ $i -lt 5000 ]; do read -r target <%s/pid; i=$((i+1)); done"):format(dir)
    lines[#lines + 1] = "target=${target:-$pid}"
  end
  if type(delay) == "string" then
    -- killed once it is seen in that system call twice 50 ms apart (a call held up by
    -- strace, not one passing by), or after 30 s in any case
    local nr
    for n, name in pairs(SYSCALLS) do if name == delay then nr = n end end
    lines[#lines + 1] = ("i=0 seen=0; while [ $i -lt 600 ] && [ $seen -lt 2 ]; do sc=; "
      .. "read -r sc rest </proc/$target/syscall 2>/dev/null || break; "
      .. "if [ \"$sc\" = %d ]; then seen=$((seen+1)); else seen=0; fi; "
      .. "[ $seen -lt 2 ] && sleep 0.05; i=$((i+1)); done"):format(nr or -1)
    lines[#lines + 1] = "kill -KILL $target"
  elseif delay then
    lines[#lines + 1] = ("sleep %.4f"):format(delay)
    lines[#lines + 1] = "read -r sc rest </proc/$target/syscall"
    lines[#lines + 1] = "kill -KILL $target"
  end
  lines[#lines + 1] = "wait $pid"
  lines[#lines + 1] = ('echo "$? $sc" >%s/rc'):format(dir)
  if rival then lines[#lines + 1] = ("wait $rpid; echo $? >%s/rrc"):format(dir) end
  local started, t0 = sys.time(), sys.monotime()
  os.execute(table.concat(lines, "\n"))
  local elapsed = sys.monotime() - t0
  local code, sc = (h.read(dir .. "/rc") or ""):match("^(%d+) ?(%S*)")
  local res = { code = tonumber(code), stdout = h.read(dir .. "/out") or "", stderr = h.read(dir .. "/err") or "",
    started = started, elapsed = elapsed }
  res.killed = res.code == 137
  if rival then res.rival = { code = tonumber(h.read(dir .. "/rrc") or ""), stderr = h.read(dir .. "/rerr") or "" } end
  res.syscall = sc == "running" and "on CPU" or SYSCALLS[tonumber(sc or "")] or (sc ~= "" and ("syscall " .. sc)) or "gone"
  h.rmdir(dir)
  return res
end

-- strace slowing every write and sync of the store's file by 10 ms, so that kills land
-- inside LMDB commits (after some pages are written, before the sync, before the meta
-- page that makes the commit count). The parts that need it are pending without it.
local STRACE = { "strace", "-o", "/dev/null", "-f", "--seccomp-bpf", "-e", "trace=pwrite64,writev,fdatasync",
  "-e", "inject=pwrite64,writev,fdatasync:delay_enter=10000" }
local function strace_works()
  return os.execute("strace -o /dev/null -f --seccomp-bpf -e trace=fdatasync true >/dev/null 2>&1") == true
end

local client = http.client({ timeout = 10 })

local function stats(server)
  return cjson.decode(assert(client:request({ url = server.issuer .. "/test/stats" })).body)
end

-- The server's counters once it has handled every token and userinfo request it got
-- (a killed process's last request may still be on its way or under way).
local function settled(server)
  sys.sleep(0.02)
  local deadline = sys.monotime() + 5
  while true do
    local s = stats(server)
    if s.busy == 0 or sys.monotime() > deadline then return s end
    sys.sleep(0.01)
  end
end

-- The subject the server's userinfo endpoint gives for an access token, or nil and the status.
local function whoami(server, token)
  local r = assert(client:request({ url = server.issuer .. "/me", headers = { "Authorization: Bearer " .. token } }))
  if r.status ~= 200 then return nil, r.status end
  return cjson.decode(r.body).sub
end

-- Opens the store's LMDB environment directly (not through connrt's store.lua) and
-- checks that every connection is whole across the databases. Returns {conns = {id ->
-- {rec, secrets}}, n, leases = {id -> lease}}. `where` names the trial in messages.
local function inspect(home, where)
  local env, err = lmdb.open(home, DBS, {})
  assert(env, where .. ": the store does not open: " .. tostring(err))
  local txn = env:begin(false)
  local out = { conns = {}, n = 0, leases = {} }
  local ok, failure = pcall(function()
    local check = txn:get("meta", "keycheck")
    local keycheck = check and crypto.open(KEY, check, "meta/keycheck")
    assert(keycheck == "connrt key check v2" or keycheck == "connrt key check v1", where .. ": the key check does not open")
    for _, kv in ipairs(txn:list("connections")) do
      local id = kv[1]
      local what = where .. ": connection " .. id
      local okj, rec = pcall(cjson.decode, kv[2])
      assert(okj and type(rec) == "table", what .. ": its record is not JSON: " .. kv[2]:sub(1, 80))
      assert(rec.id == id, what .. ": its record names another id")
      for _, f in ipairs({ "connector", "name", "unique_id", "connector_hash", "client_id" }) do
        assert(type(rec[f]) == "string" and rec[f] ~= "", what .. ": no " .. f)
      end
      for _, f in ipairs({ "created_at", "updated_at", "expires_at" }) do
        assert(type(rec[f]) == "number", what .. ": no " .. f)
      end
      assert(type(rec.urls) == "table" and type(rec.urls.token_url) == "string", what .. ": no token URL")
      assert(type(rec.allowed_urls) == "table" and #rec.allowed_urls > 0, what .. ": no allowed URLs")
      assert(type(rec.has_refresh_token) == "boolean", what .. ": has_refresh_token missing")
      assert(rec.sealed == nil, what .. ": secrets inline in the plain record")
      -- its secrets: present, and they open under the key, bound to this id
      local sealed = txn:get("secrets", id)
      assert(sealed, what .. ": its sealed secrets are missing")
      local raw = crypto.b64decode(sealed)
      local plain = raw and crypto.open(KEY, raw, "connection/" .. id)
      assert(plain, what .. ": its secrets do not unseal")
      local secrets = cjson.decode(plain)
      assert(type(secrets.access_token) == "string", what .. ": no access token")
      assert(type(secrets.refresh_token) == "string", what .. ": no refresh token")
      assert(rec.has_refresh_token, what .. ": has a refresh token but says it has none")
      assert(secrets.client_secret == SECRET, what .. ": the client secret is not the one given")
      -- its account index entry, connector source and client
      assert(txn:get("accounts", rec.connector .. "\0" .. rec.unique_id) == id, what .. ": the account index does not point to it")
      local src = txn:get("connectors", rec.connector_hash)
      assert(src and crypto.hex(crypto.sha256(src)) == rec.connector_hash, what .. ": its connector source is missing")
      local cv = txn:get("clients", rec.connector)
      assert(cv, what .. ": its client is missing")
      local c = cjson.decode(cv)
      assert(c.client_id == rec.client_id, what .. ": another client id is stored for its connector")
      local cs = crypto.open(KEY, crypto.b64decode(c.sealed) or "", "client/" .. rec.connector)
      assert(cs and cjson.decode(cs).client_secret == SECRET, what .. ": the client secret does not unseal")
      out.conns[id] = { rec = rec, secrets = secrets }
      out.n = out.n + 1
    end
    for _, kv in ipairs(txn:list("accounts")) do
      local conn = out.conns[kv[2]]
      assert(conn, where .. ": an account index entry points to no connection: " .. kv[2])
      assert(conn.rec.connector .. "\0" .. conn.rec.unique_id == kv[1], where .. ": an account entry points to another account's connection")
    end
    for _, kv in ipairs(txn:list("secrets")) do
      assert(out.conns[kv[1]], where .. ": sealed secrets without a connection: " .. kv[1])
    end
    for _, kv in ipairs(txn:list("leases")) do
      local lease = cjson.decode(kv[2])
      assert(type(lease.owner) == "string" and type(lease.expires) == "number", where .. ": a damaged lease")
      out.leases[kv[1]] = lease
    end
  end)
  txn:abort()
  env:close()
  if not ok then error(failure, 0) end
  return out
end

-- `connrt list --json` opens the store and shows every connection.
local function list_ok(home, where, n)
  local res = h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home, CONNRT_KEY = KEY_HEX } })
  assert.equal(0, res.code, where .. ": connrt list fails: " .. res.stderr)
  local conns = cjson.decode(res.stdout)
  assert.equal(n, #conns, where .. ": connrt list shows another number of connections")
  local by_id = {}
  for _, c in ipairs(conns) do by_id[c.id] = c end
  return by_id
end

-- "pwrite64: 2; fdatasync: 1; ..." and how many of those kills hit an LMDB commit
local function calls_line(calls)
  local n = 0
  for k, v in pairs(calls) do if COMMIT_CALLS[k] then n = n + v end end
  local parts = {}
  for k, v in pairs(calls) do parts[#parts + 1] = ("%s: %d"):format(k, v) end
  table.sort(parts)
  return ("%s (%d inside a store write: pwrite64, writev, fdatasync)"):format(table.concat(parts, "; "), n)
end

local function tally_line(t, order)
  local parts = {}
  for _, k in ipairs(order) do if t[k] then parts[#parts + 1] = ("%s: %d"):format(k, t[k]) end end
  for k, v in pairs(t) do
    local listed = false
    for _, o in ipairs(order) do if o == k then listed = true end end
    if not listed then parts[#parts + 1] = ("%s: %d"):format(k, v) end
  end
  return table.concat(parts, "; ")
end

describe("crash safety: SIGKILL at random moments #integration #crash", function()
  local tmp, redirect, connector_path, browser, long, rotating

  setup(function()
    math.randomseed(SEED)
    say("CRASH_SEED=%d (rerun: CRASH_SEED=%d lua5.4 /usr/bin/busted spec/crash_spec.lua)", SEED, SEED)
    tmp = h.tmpdir()
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    connector_path = tmp .. "/crash-oidc.lua"
    h.write(connector_path, CONNECTOR)
    browser = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua"
    -- both take token and userinfo requests 10 ms late and answer them 10 ms after
    -- acting on them, so that kills land in those requests on either side
    long = h.start_server({ redirect = redirect, args = "--latency 20" })
    rotating = h.start_server({ redirect = redirect, args = "--rotate --latency 20" })
  end)

  teardown(function()
    for _, server in ipairs({ long, rotating }) do if server then server.stop() end end
    h.rmdir(tmp)
  end)

  local function env_for(home, user, log)
    return { CONNRT_HOME = home, CONNRT_KEY = KEY_HEX, CONNRT_REDIRECT_URL = redirect, CONNRT_BROWSER = browser,
      CONNRT_CLIENT_SECRET = SECRET, SIGNIN_USER = user, SIGNIN_LOG = log }
  end

  -- (a sign-in under strace on a busy machine took over 10 s once: the connect then timed
  -- out before the write a test waits to kill it in)
  local function connect_args(server)
    return { "run", connector_path, "--field", "server=" .. server.issuer, "--client-id", "connrt-basic",
      "--timeout", "30", "--json" }
  end

  -- Waits for the browser a connect started (if it started one) to finish; returns its log.
  local function browser_finished(log, url_shown)
    if not url_shown then return "" end
    local started_by = sys.monotime() + 0.5 * h.SLOW
    local deadline = sys.monotime() + 5 * h.SLOW
    while true do
      local text = h.read(log)
      if text and (text:find("landing", 1, true) or text:find("error", 1, true)) then return text end
      if (not text and sys.monotime() > started_by) or sys.monotime() > deadline then return text or "" end
      sys.sleep(0.01)
    end
  end

  -- An undisturbed connect (or reconnect) of `user`; returns the connection id and the run.
  local function connect(server, home, user, wrap)
    local log = tmp .. "/browser-" .. math.random(1e9) .. ".log"
    local res = run_killed(connect_args(server), env_for(home, user, log), nil, wrap)
    browser_finished(log, true)
    os.remove(log)
    assert.equal(0, res.code, "connecting " .. user .. ": " .. res.stderr)
    return cjson.decode(res.stdout).id, res
  end

  -- Where kills are drawn: half over the span of the last undisturbed runs of the same
  -- command (a median of up to 7, kept up to date as the trials go, since the machine's
  -- load changes), half over its part from when the token request reached the server,
  -- where the code exchange, the test API and the store write (or the refresh grant and
  -- its save) take a few tens of milliseconds (the servers are 20 ms slow) after a
  -- start-up and a sign-in that take most of the run. window.add(run, server) after
  -- each undisturbed run.
  local function new_window()
    local spans, late = {}, {}
    local w = {}
    function w.add(run, server)
      spans[#spans + 1] = run.elapsed
      late[#late + 1] = stats(server).at.token / 1000 - run.started
      if #spans > 7 then table.remove(spans, 1) table.remove(late, 1) end
    end
    function w.bounds()
      local span = median(spans)
      return span, math.min(span, math.max(0, median(late) - 0.005))
    end
    function w.draw()
      local span, from = w.bounds()
      if math.random() < 0.5 then return math.random() * span end
      return from + math.random() * (span - from)
    end
    function w.describe()
      local span, from = w.bounds()
      return ("an undisturbed run takes %.0f ms, its token request comes at %.0f ms"):format(span * 1000, from * 1000 + 5)
    end
    return w
  end

  -- Kills `n` connects at random moments in the store `home`: reconnects of john (an
  -- update in place) and connects of new accounts, in turn. After each: the store opens
  -- and every connection is whole; the others are as they were; the trial's account is
  -- as it was or whole with live tokens of its own; a fresh connect of it works and
  -- lands on the same connection.
  local function connect_kills(server, home, n, label, wrap)
    local john = connect(server, home, "john", wrap)
    local window = new_window()
    for i = 1, 3 do
      local _, res = connect(server, home, i % 2 == 0 and "john" or (label:gsub("%W", "") .. "warm" .. i), wrap)
      window.add(res, server)
    end
    say("%s: at first %s", label, window.describe())

    local phases, calls, kills, trials = {}, {}, 0, 0
    local before = inspect(home, label .. ": before the kills")
    while kills < n and trials < n * 3 do
      trials = trials + 1
      local user = trials % 2 == 1 and "john" or (label:gsub("%W", "") .. trials)
      local where = ("%s trial %d (%s, CRASH_SEED=%d)"):format(label, trials, user, SEED)
      local log = tmp .. "/browser-" .. trials .. ".log"
      local s0 = stats(server)
      local delay = window.draw()
      local res = run_killed(connect_args(server), env_for(home, user, log), delay, wrap)
      if os.getenv("CRASH_DEBUG") then say("%s: delay %.1f ms, ran %.1f ms, exit %s", where, delay * 1000, res.elapsed * 1000, res.code) end
      local url_shown = res.stderr:find("/auth?", 1, true) ~= nil
      local seen = browser_finished(log, url_shown)
      os.remove(log)
      local s1 = settled(server)
      local after = inspect(home, where)

      -- old or new, never half
      local trial_id
      for id, c in pairs(after.conns) do
        local old = before.conns[id]
        if c.rec.unique_id == user then
          trial_id = id
        else
          assert(old, where .. ": a connection appeared for another account: " .. id)
          assert.equal(old.secrets.access_token, c.secrets.access_token, where .. ": another connection changed")
          assert.equal(old.rec.updated_at, c.rec.updated_at, where .. ": another connection changed")
        end
      end
      for id in pairs(before.conns) do assert(after.conns[id], where .. ": a connection vanished: " .. id) end
      local saved = false
      if trial_id then
        local c, old = after.conns[trial_id], before.conns[trial_id]
        if old then
          local same = c.secrets.access_token == old.secrets.access_token
          assert.equal(same, c.secrets.refresh_token == old.secrets.refresh_token, where .. ": half of the tokens changed")
          if same then
            assert.is_true(c.rec.updated_at == old.rec.updated_at and c.rec.expires_at == old.rec.expires_at,
              where .. ": the record is newer than its secrets")
          end
          saved = not same
        else
          saved = true
        end
        -- the stored token is a live one and belongs to this account
        assert.equal(user, (whoami(server, c.secrets.access_token)), where .. ": the stored token is not this account's")
      end
      list_ok(home, where, after.n)

      if res.killed then
        kills = kills + 1
        calls[res.syscall] = (calls[res.syscall] or 0) + 1
        local exchanged = (s1.grants.authorization_code or 0) > (s0.grants.authorization_code or 0)
        local tested = s1.userinfo > s0.userinfo
        local phase
        if not url_shown then
          phase = "start-up, before the listener"
        elseif not saved and COMMIT_CALLS[res.syscall] then
          phase = "inside the store write, before it commits"
        elseif not exchanged and (not seen:find("callback", 1, true) or seen:find("connect to server", 1, true)) then
          phase = "listening, the user signing in"
        elseif not exchanged then
          phase = "callback taken, code exchange under way"
        elseif not tested then
          phase = "code exchanged, before the test API"
        elseif not saved then
          phase = "test API and naming, before the store write"
        else
          phase = "store written, answering the browser"
        end
        phases[phase] = (phases[phase] or 0) + 1
        if os.getenv("CRASH_DEBUG") then say("%s: %s (%s)", where, phase, res.syscall) end
      else
        assert.equal(0, res.code, where .. ": a connect that was not killed failed: " .. res.stderr)
        assert.is_true(saved, where .. ": a finished connect saved nothing")
      end

      -- a fresh connect of the same account works and lands on the same connection
      local id, again = connect(server, home, user, wrap)
      window.add(again, server)
      if trial_id then assert.equal(trial_id, id, where .. ": reconnecting made a second connection") end
      before = inspect(home, where .. ", after reconnecting")
      local n_user = 0
      for _, c in pairs(before.conns) do if c.rec.unique_id == user then n_user = n_user + 1 end end
      assert.equal(1, n_user, where .. ": the account has more than one connection")
    end

    -- every connection works: `connrt token` gives a live token for its own account
    local by_id = list_ok(home, label .. ": after the kills", before.n)
    assert.is_table(by_id[john])
    for id, c in pairs(before.conns) do
      local res = h.connrt({ "token", id }, { env = { CONNRT_HOME = home, CONNRT_KEY = KEY_HEX } })
      assert.equal(0, res.code, res.stderr)
      assert.equal(c.rec.unique_id, (whoami(server, (res.stdout:gsub("%s+$", "")))))
    end
    say("%s: %d kills in %d trials (the others finished first), each followed by a reconnect; by phase: %s", label,
      kills, trials, tally_line(phases, { "start-up, before the listener", "listening, the user signing in",
        "callback taken, code exchange under way", "code exchanged, before the test API",
        "test API and naming, before the store write", "inside the store write, before it commits",
        "store written, answering the browser" }))
    say("%s: the system call at the kill: %s", label, calls_line(calls))
    assert.is_true(kills >= n, ("%s: only %d kills landed in %d trials"):format(label, kills, trials))
  end

  -- Kills `n` refreshes at random moments (connrt refresh, token and request with every
  -- token due, in turn) of john's connection at the rotating server. After each: the
  -- store opens and the connection is whole, with the old tokens or the new pair, never
  -- one of each; the next refresh works, or (only when a killed process had spent the
  -- refresh token) is refused with "needs reconnecting", the connection is marked, and
  -- `connrt run` restores it in place; a request through it then works; no lease is left.
  local function refresh_kills(server, home, n, label, wrap)
    local id = connect(server, home, "john")
    local env = { CONNRT_HOME = home, CONNRT_KEY = KEY_HEX }
    -- `token` and `request` refresh a token that is due: within the margin, which is
    -- never more than half the token's lifetime. The record is made to say so (through
    -- the store, with the key): the token expires in 5 s and was issued an hour ago.
    local due_script = home .. "-due.lua"
    h.write(due_script, [[
      local st = require("connrt.store").open()
      local rec = st:get(arg[1])
      local now = os.time()
      st:save_tokens(arg[1], { access_token = st:secrets(rec).access_token, expires_at = now + 5, issued_at = now - 3600 })
      st:close()
    ]])
    local function make_due()
      local res = h.connrt({ "script", due_script, id }, { env = env })
      assert.equal(0, res.code, "making the token due: " .. res.stderr)
    end
    local ways = {
      { name = "refresh", args = { "refresh", id }, env = env },
      { name = "token", args = { "token", id }, env = env, due = true },
      { name = "request", args = { "request", id, "/me" }, env = env, due = true },
    }
    local window = new_window()
    for i = 1, 6 do
      local w = ways[(i - 1) % #ways + 1]
      if w.due then make_due() end
      local res = run_killed(w.args, w.env, nil, wrap)
      assert.equal(0, res.code, w.name .. ": " .. res.stderr)
      window.add(res, server)
    end
    say("%s: at first %s", label, window.describe())

    local phases, calls, kills, trials = {}, {}, 0, 0
    local reconnects, lease_waits, max_next = 0, {}, 0
    local before = inspect(home, label .. ": before the kills")
    while kills < n and trials < n * 3 do
      trials = trials + 1
      local w = ways[(trials - 1) % #ways + 1]
      local where = ("%s trial %d (%s, CRASH_SEED=%d)"):format(label, trials, w.name, SEED)
      if w.due then
        make_due()
        before = inspect(home, where .. ", made due")
      end
      local old = before.conns[id]
      local s0 = stats(server)
      local delay = window.draw()
      local res = run_killed(w.args, w.env, delay, wrap)
      if os.getenv("CRASH_DEBUG") then say("%s: delay %.1f ms, ran %.1f ms, exit %s", where, delay * 1000, res.elapsed * 1000, res.code) end
      local s1 = settled(server)
      local after = inspect(home, where)
      assert.equal(1, after.n, where .. ": the number of connections changed")
      local c = after.conns[id]
      -- old or new, never half: with rotation a new access token comes with a new refresh token
      local same = c.secrets.access_token == old.secrets.access_token
      assert.equal(same, c.secrets.refresh_token == old.secrets.refresh_token, where .. ": half of the tokens changed")
      if same then
        assert.is_true(c.rec.expires_at == old.rec.expires_at and c.rec.refreshed_at == old.rec.refreshed_at,
          where .. ": the record is newer than its secrets")
      else
        assert.is_true(c.rec.expires_at >= old.rec.expires_at, where .. ": the new expiry is older")
        assert.is_nil(c.rec.needs_reconnect, where)
      end
      local spent = (s1.grants.refresh_token or 0) > (s0.grants.refresh_token or 0)
      local leased = after.leases[id] ~= nil
      list_ok(home, where, 1)

      if res.killed then
        kills = kills + 1
        calls[res.syscall] = (calls[res.syscall] or 0) + 1
        local phase
        local writing = COMMIT_CALLS[res.syscall]
        if not leased and not spent and same then
          phase = writing and "inside the lease's write" or "before the lease"
        elseif leased and not spent and same then
          phase = "in the lease, before the grant"
        elseif leased and spent and same then
          phase = writing and "inside the save's write, before it commits" or "in the lease, grant spent, before the save"
        elseif leased and not same then
          phase = writing and "inside the lease release's write" or "saved, lease not yet given back"
        elseif not leased and not same then
          phase = "after the save and release"
        else
          phase = "no lease, grant spent, nothing saved"
        end
        phases[phase] = (phases[phase] or 0) + 1
      else
        assert.equal(0, res.code, where .. ": a refresh that was not killed failed: " .. res.stderr)
        assert.is_false(same, where .. ": a finished refresh saved nothing")
        window.add(res, server)
      end

      -- the next process refreshes (taking over a lease the killed one left), or says
      -- the connection needs reconnecting
      local t0 = sys.monotime()
      local nxt = h.connrt({ "refresh", id }, { env = env })
      local took = sys.monotime() - t0
      max_next = math.max(max_next, took)
      if leased then lease_waits[#lease_waits + 1] = took end
      -- a dead holder's lease is taken over at once, not after its 30 s
      assert.is_true(took < 10 * h.SLOW, ("%s: the next refresh took %.1f s"):format(where, took))
      if nxt.code ~= 0 then
        assert.equal(5, nxt.code, where .. ": the next refresh: " .. nxt.stderr)
        assert.matches("invalid_grant", nxt.stderr, 1, true)
        assert.matches("needs reconnecting: run `connrt run", nxt.stderr, 1, true)
        assert.is_true(spent and same, where .. ": the refresh token was refused though no killed refresh had spent it")
        assert.is_true(list_ok(home, where, 1)[id].needs_reconnect, where .. ": the connection is not marked")
        -- a fresh connect restores it in place
        assert.equal(id, (connect(server, home, "john")))
        reconnects = reconnects + 1
        nxt = h.connrt({ "refresh", id }, { env = env })
        assert.equal(0, nxt.code, where .. ": refresh after reconnecting: " .. nxt.stderr)
        assert.is_nil(list_ok(home, where, 1)[id].needs_reconnect)
      end
      -- and a request through it works
      local req = h.connrt({ "request", id, "/me" }, { env = env })
      assert.equal(0, req.code, where .. ": a request after the refresh: " .. req.stderr)
      assert.equal("john", cjson.decode(req.stdout).sub)
      before = inspect(home, where .. ", after the next refresh")
      assert.is_nil(before.leases[id], where .. ": a lease outlived its holder")
    end
    table.sort(lease_waits)
    say("%s: %d kills in %d trials, %d reconnects (the killed process had spent the refresh token); by phase: %s",
      label, kills, trials, reconnects, tally_line(phases, { "before the lease", "inside the lease's write",
        "in the lease, before the grant", "in the lease, grant spent, before the save",
        "inside the save's write, before it commits", "saved, lease not yet given back",
        "inside the lease release's write", "after the save and release" }))
    say("%s: the system call at the kill: %s", label, calls_line(calls))
    say("%s: a lease left by a killed holder: the next refresh took at most %.0f ms (%d cases); the slowest next refresh %.0f ms",
      label, (lease_waits[#lease_waits] or 0) * 1000, #lease_waits, max_next * 1000)
    assert.is_true(kills >= n, ("%s: only %d kills landed in %d trials"):format(label, kills, trials))
  end

  it("keeps every connection whole when connect is killed", function()
    connect_kills(long, tmp .. "/connect-home", CONNECT_KILLS, "connect")
  end)

  it("keeps the connection whole and usable when refresh is killed (refresh token rotation)", function()
    refresh_kills(rotating, tmp .. "/refresh-home", REFRESH_KILLS, "refresh")
  end)

  it("keeps connections whole when the kill lands inside a store write (commits slowed by strace)", function()
    if not strace_works() then
      pending("strace cannot trace here")
      return
    end
    connect_kills(long, tmp .. "/write-connect-home", WRITE_KILLS // 3, "connect in store writes", STRACE)
    refresh_kills(rotating, tmp .. "/write-refresh-home", WRITE_KILLS - WRITE_KILLS // 3, "refresh in store writes", STRACE)
  end)

  it("lets a refresher waiting on the lease take over when the holder is killed", function()
    local home = tmp .. "/rival-home"
    local id = connect(rotating, home, "john")
    local env = { CONNRT_HOME = home, CONNRT_KEY = KEY_HEX }
    local window = new_window()
    for _ = 1, 3 do
      local res = run_killed({ "refresh", id }, env)
      assert.equal(0, res.code, res.stderr)
      window.add(res, rotating)
    end
    local kills, outcomes, slowest = 0, {}, 0
    local before = inspect(home, "rival: before")
    for trial = 1, RIVAL_KILLS * 3 do
      if kills >= RIVAL_KILLS then break end
      local where = ("rival trial %d (CRASH_SEED=%d)"):format(trial, SEED)
      local s0 = stats(rotating)
      local res = run_killed({ "refresh", id }, env, window.draw(), nil, { "refresh", id })
      slowest = math.max(slowest, res.elapsed)
      -- the second process never waits out the lease of the killed one
      assert.is_true(res.elapsed < 10 * h.SLOW, ("%s: took %.1f s"):format(where, res.elapsed))
      local after = inspect(home, where)
      assert.is_true(after.leases[id] == nil or res.killed, where .. ": a lease outlived both processes")
      local c, old = after.conns[id], before.conns[id]
      local same = c.secrets.access_token == old.secrets.access_token
      assert.equal(same, c.secrets.refresh_token == old.secrets.refresh_token, where .. ": half of the tokens changed")
      if res.killed then kills = kills + 1 end
      local outcome
      if res.rival.code == 0 then
        outcome = "refreshed"
        assert.is_false(same, where .. ": the second process succeeded but nothing new is stored")
      else
        -- refused only because the killed process had spent the rotated refresh token
        assert.equal(5, res.rival.code, where .. ": the second process: " .. res.rival.stderr)
        assert.matches("needs reconnecting", res.rival.stderr, 1, true)
        assert.is_true(res.killed, where .. ": refused though no process was killed")
        assert.is_true((settled(rotating).grants.refresh_token or 0) > (s0.grants.refresh_token or 0), where)
        assert.is_true(list_ok(home, where, 1)[id].needs_reconnect, where .. ": not marked")
        outcome = "needs reconnect"
      end
      outcomes[outcome] = (outcomes[outcome] or 0) + 1
      -- the next refresh takes over any lease the killed one left, and works or is refused
      local t0 = sys.monotime()
      local nxt = h.connrt({ "refresh", id }, { env = env })
      assert.is_true(sys.monotime() - t0 < 10 * h.SLOW, where .. ": the next refresh waited")
      if nxt.code ~= 0 then
        assert.equal(5, nxt.code, where .. ": the next refresh: " .. nxt.stderr)
        assert.matches("needs reconnecting", nxt.stderr, 1, true)
        assert.is_true(res.killed, where)
        assert.equal(id, (connect(rotating, home, "john")))
        nxt = h.connrt({ "refresh", id }, { env = env })
        assert.equal(0, nxt.code, where .. ": refresh after reconnecting: " .. nxt.stderr)
      end
      before = inspect(home, where .. ", after")
    end
    local pairs_run = 0
    for _, v in pairs(outcomes) do pairs_run = pairs_run + v end
    say("rival: %d kills of the first of two refreshers started 5 ms apart, in %d pairs; the second: %s; slowest pair %.0f ms",
      kills, pairs_run, tally_line(outcomes, { "refreshed", "needs reconnect" }), slowest * 1000)
    assert.is_true(kills >= RIVAL_KILLS, ("only %d kills"):format(kills))
  end)

  it("leaves the key file whole or absent when the first connect is killed writing it", function()
    if not strace_works() then
      pending("strace cannot trace here")
      return
    end
    -- without CONNRT_KEY, the first connect makes the store's key file
    local function keyless_env(home)
      local env = env_for(home, "john", tmp .. "/key-browser.log")
      env.CONNRT_KEY = nil
      return env
    end
    -- a probe: the how-manieth write() of the process writes into the store directory
    local probe_home, probe_log = tmp .. "/key-probe-home", tmp .. "/key-probe.strace"
    local res = run_killed(connect_args(long), keyless_env(probe_home), nil,
      { "strace", "-o", probe_log, "-y", "-e", "trace=write" })
    browser_finished(tmp .. "/key-browser.log", true)
    os.remove(tmp .. "/key-browser.log")
    assert.equal(0, res.code, res.stderr)
    local nth = 0
    for line in (h.read(probe_log) or ""):gmatch("[^\n]+") do
      if line:find("^write%(") then
        nth = nth + 1
        if line:find(probe_home, 1, true) then break end
      end
    end
    assert.is_true(nth > 0 and (h.read(probe_log) or ""):find(probe_home, 1, true) ~= nil, "no write into the store directory")
    -- the connect again in a fresh store, that write held up 6 s and the process killed
    -- in it (reaching it takes a few tenths of a second, seconds on a busy machine: the
    -- kill waits until the process is seen in it)
    local home = tmp .. "/key-home"
    res = run_killed(connect_args(long), keyless_env(home), "write",
      { "strace", "-o", "/dev/null", "-e", "trace=write", "-e", ("inject=write:delay_enter=6000000:when=%d"):format(nth) })
    browser_finished(tmp .. "/key-browser.log", res.stderr:find("/auth?", 1, true) ~= nil)
    os.remove(tmp .. "/key-browser.log")
    assert.is_true(res.killed, "not killed: " .. res.stderr)
    assert.equal("write", res.syscall)
    local key = h.read(home .. "/key")
    assert.is_true(key == nil or key:match("^%x+\n$") ~= nil and #key == 65, "a partial key file: " .. #(key or ""))
    -- the next connect makes (or uses) the key and works
    res = run_killed(connect_args(long), keyless_env(home))
    browser_finished(tmp .. "/key-browser.log", true)
    os.remove(tmp .. "/key-browser.log")
    assert.equal(0, res.code, "the connect after the kill: " .. res.stderr)
    local id = cjson.decode(res.stdout).id
    local tok = h.connrt({ "token", id }, { env = { CONNRT_HOME = home } })
    assert.equal(0, tok.code, tok.stderr)
    assert.equal("john", (whoami(long, (tok.stdout:gsub("%s+$", "")))))
  end)

  it("frees the reader slots of processes killed inside a read transaction while the store is open elsewhere", function()
    local home = tmp .. "/reader-home"
    local id = connect(long, home, "john")
    -- this process keeps the store open, as a pipeline or a `connrt run` waiting for a
    -- sign-in does, so LMDB never starts its reader table afresh
    local env = assert(lmdb.open(home, DBS, {}))
    local child = ("package.cpath = %q .. package.cpath\n"):format(h.BUILD .. "/?.so;") .. ([[
      local env = assert(require("connrt.lmdb").open(%q, { "connections", "secrets", "accounts", "clients",
        "connectors", "leases", "meta" }, {}))
      local txn = env:begin(false)
      assert(txn:get("connections", %q))
      os.execute("kill -KILL $PPID") -- dies inside the read transaction
    ]]):format(home, id)
    h.write(tmp .. "/reader.lua", child)
    -- more processes than LMDB has reader slots (126) die inside a read transaction
    local ok, err = pcall(function()
      local script = ("for i in $(seq 130); do %s %s >/dev/null 2>&1; done"):format(h.LUA, h.shell_quote(tmp .. "/reader.lua"))
      os.execute(script)
      local res = h.connrt({ "token", id }, { env = { CONNRT_HOME = home, CONNRT_KEY = KEY_HEX } })
      assert.equal(0, res.code, "after 130 readers were killed: " .. res.stderr)
      assert.equal("john", (whoami(long, (res.stdout:gsub("%s+$", "")))))
      list_ok(home, "after 130 readers were killed", 1)
      -- and the process that kept the store open can still read it
      local txn = env:begin(false)
      assert.is_string(txn:get("connections", id))
      txn:abort()
    end)
    env:close()
    if not ok then error(err, 0) end
  end)

  it("takes over the lease of a killed refresher at once, and waits for a live one", function()
    local home = tmp .. "/lease-home"
    local id = connect(rotating, home, "john")
    assert(sys.write_private(home .. "/key", KEY_HEX .. "\n")) -- the key, for this process's store.lua
    local st = require("connrt.store").open(home)
    -- a holder that is alive (this process) keeps the lease until it expires
    assert.equal(1, st:acquire_lease(id, "spec", 1.5)) -- the lease's first fencing token
    local t0 = sys.monotime()
    local res = h.connrt({ "refresh", id }, { env = { CONNRT_HOME = home, CONNRT_KEY = KEY_HEX } })
    local waited = sys.monotime() - t0
    assert.equal(0, res.code, res.stderr)
    assert.is_true(waited >= 1.2, ("the refresh did not wait for a live holder (%.2f s)"):format(waited))
    -- a lease in the old form (no holder process) is kept until it expires, too
    local lmdb_env = st.b.env -- this spec is LMDB's: the backend's environment
    local txn = lmdb_env:begin(true)
    txn:put("leases", id, cjson.encode({ owner = "1-0x0", expires = sys.time() + 1.5 }))
    txn:commit()
    t0 = sys.monotime()
    res = h.connrt({ "refresh", id }, { env = { CONNRT_HOME = home, CONNRT_KEY = KEY_HEX } })
    waited = sys.monotime() - t0
    assert.equal(0, res.code, res.stderr)
    assert.is_true(waited >= 1.2, ("the refresh did not wait for an old-form lease (%.2f s)"):format(waited))
    st:close()
    say("lease: a live holder's 1.5 s lease delayed the next refresh %.2f s", waited)
  end)
end)
