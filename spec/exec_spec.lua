-- luacheck: std +busted
-- `connrt exec` (lua/connrt/exec.lua), with real processes: the credentials in the
-- program's environment and in no process's argv (/proc/PID/cmdline), fresh (an expired
-- token is refreshed first), exit statuses and signals passed through, --mask on both
-- streams in every spelling, and bad command lines refused before anything runs.
local cjson = require("cjson")
local h = require("support.helpers")
local sys = require("connrt.sys")

local API_KEY = "sk-exec-5ecret-k3y"
local SECOND = "pw-second-s3cret"
-- a multi-line secret (as a PEM key is) and one with a blank
local PEM = "-----BEGIN PRIVATE KEY-----\n" .. ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" .. "\n"):rep(6)
  .. "-----END PRIVATE KEY-----"
local BLANK = "pa ss/w+rd!"

-- The variables of a program's environment, from `env -0`'s output.
local function env_of(text)
  local vars = {}
  for entry in text:gmatch("([^%z]*)%z") do
    local k, v = entry:match("^([^=]*)=(.*)$")
    if k then vars[k] = v end
  end
  return vars
end

describe("connrt exec (integration) #integration", function()
  local tmp, server, api, home, client

  local function grants()
    return cjson.decode(assert(client:request({ url = server.issuer .. "/test/stats" })).body).grants
      .client_credentials or 0
  end

  setup(function()
    tmp = h.tmpdir()
    client = require("connrt.http").client()
    server = h.start_server({ redirect = "http://127.0.0.1:8400/callback", args = "--access-ttl 4" })
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    home = h.tmpdir()
    local machine = tmp .. "/machine.lua"
    h.write(machine, ([[return {
      id = "machine", auth = "client_credentials", client_auth = "basic",
      token_url = "%s/token", scopes = { "api" },
      test = "/api/whoami", name = "{{client_id}} (machine)", unique_id = "{{client_id}}",
      allowed_urls = { "%s" },
      request = { headers = { Authorization = "Bearer {{access_token}}" } },
    }]]):format(server.issuer, api.base))
    local res = h.connrt({ "run", machine, "--client-id", "connrt-basic" },
      { env = { CONNRT_HOME = home, CONNRT_CLIENT_SECRET = "basic-secret" } })
    assert.equal(0, res.code, res.stderr)
    local keyed = tmp .. "/keyed.lua"
    h.write(keyed, h.keyed_connector(api.base))
    res = h.connrt({ "run", keyed, "--field", "api_key=" .. API_KEY }, { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    local two = tmp .. "/two.lua"
    h.write(two, ([[return {
      id = "two", auth = "fields",
      fields = { { key = "api_key", secret = true, required = true }, { key = "password", secret = true },
        { key = "user" } },
      test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}2",
      allowed_urls = { "%s" }, request = { headers = { ["X-Api-Key"] = "{{api_key}}" } },
    }]]):format(api.base))
    res = h.connrt({ "run", two, "--field", "api_key=" .. API_KEY, "--field", "password=" .. SECOND,
      "--field", "user=robot" }, { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    -- CONNRT_TOKEN_PEM and CONNRT_TOKEN_PW: the secrets of the masking specs
    local odd = tmp .. "/odd.lua"
    h.write(odd, ([[return {
      id = "odd", auth = "fields",
      fields = { { key = "api_key", secret = true, required = true }, { key = "pem", secret = true },
        { key = "pw", secret = true } },
      test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}3",
      allowed_urls = { "%s" }, request = { headers = { ["X-Api-Key"] = "{{api_key}}" } },
    }]]):format(api.base))
    h.write(tmp .. "/pem.txt", PEM .. "\n")
    -- the key with CRLF line ends, alone in a connection
    local crlf = tmp .. "/crlf.lua"
    h.write(crlf, ([[return {
      id = "crlf", auth = "fields", fields = { { key = "pem", secret = true, required = true } },
      test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}4",
      allowed_urls = { "%s" }, request = { headers = { ["X-Api-Key"] = "%s" } },
    }]]):format(api.base, API_KEY))
    h.write(tmp .. "/crlf.txt", PEM:gsub("\n", "\r\n") .. "\r\n")
    res = h.connrt({ "run", crlf, "--field-file", "pem=" .. tmp .. "/crlf.txt" }, { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    res = h.connrt({ "run", odd, "--field", "api_key=" .. API_KEY, "--field-file", "pem=" .. tmp .. "/pem.txt",
      "--field", "pw=" .. BLANK }, { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
  end)

  teardown(function()
    for _, s in ipairs({ server, api }) do if s then s.stop() end end
    h.rmdir(home)
    h.rmdir(tmp)
  end)

  local function exec(args, env)
    local e = { CONNRT_HOME = home }
    for k, v in pairs(env or {}) do e[k] = v end
    local argv = { "exec" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return h.connrt(argv, { env = e, timeout = 30 })
  end

  -- `odd --mask` running a program that writes `line` and a newline `n` times at once:
  -- passed on as it is (the helper's 30 s guard ends a run that is not linear; no time
  -- is asserted).
  local function flood_passes(line, n)
    local res = exec({ "odd", "--mask", "--", "python3", "-c",
      ("import sys; sys.stdout.write((%q + chr(10)) * %d)"):format(line, n) })
    assert.equal(0, res.code, res.stderr:sub(1, 200))
    assert.equal((line .. "\n"):rep(n), res.stdout)
  end

  it("gives the program a valid token in CONNRT_TOKEN, in its environment only", function()
    -- the token is the connection's own, as `connrt token` gives it: compared across a
    -- try where direct reads before and after agree (a refresh may fall between, when the
    -- suite runs slowly: under make sanitize)
    local function direct()
      return h.connrt({ "token", "machine" }, { env = { CONNRT_HOME = home } }).stdout:match("^(%S+)")
    end
    local compared = false
    for _ = 1, 5 do
      local before = direct()
      local res = exec({ "machine", "--", "env", "-0" })
      assert.equal(0, res.code, res.stderr)
      local token = env_of(res.stdout).CONNRT_TOKEN
      assert.truthy(token and #token > 10)
      if before == direct() then
        assert.equal(before, token)
        compared = true
        break
      end
    end
    assert.is_true(compared, "the token changed during every try")
  end)

  it("keeps connrt's own secrets (CONNRT_KEY, CONNRT_CLIENT_SECRET, fields) out of the program's environment", function()
    local key_home = h.tmpdir()
    local keyhex = ("ab"):rep(32)
    local keyed = tmp .. "/keyed2.lua"
    h.write(keyed, h.keyed_connector(api.base))
    assert.equal(0, h.connrt({ "run", keyed, "--field", "api_key=" .. API_KEY },
      { env = { CONNRT_HOME = key_home, CONNRT_KEY = keyhex } }).code)
    local res = h.connrt({ "exec", "keyed", "--", "env", "-0" }, { env = { CONNRT_HOME = key_home,
      CONNRT_KEY = keyhex, CONNRT_CLIENT_SECRET = "cs-zzz-123", CONNRT_FIELD_API_KEY = "fld-zzz-123", KEEP_ME = "yes" } })
    h.rmdir(key_home)
    assert.equal(0, res.code, res.stderr)
    local vars = env_of(res.stdout)
    assert.equal(API_KEY, vars.CONNRT_TOKEN)
    assert.equal("yes", vars.KEEP_ME)
    assert.is_nil(vars.CONNRT_KEY)
    assert.is_nil(vars.CONNRT_CLIENT_SECRET)
    assert.is_nil(vars.CONNRT_FIELD_API_KEY)
  end)

  it("exports the secret fields of a fields connection, by the names --env gives", function()
    local res = exec({ "--env", "MY_KEY=keyed", "--env", "CREDS=two", "--", "env", "-0" })
    assert.equal(0, res.code, res.stderr)
    local vars = env_of(res.stdout)
    assert.equal(API_KEY, vars.MY_KEY)                -- the one secret field: the name itself
    assert.equal(API_KEY, vars.CREDS_API_KEY)         -- several: NAME_<KEY>
    assert.equal(SECOND, vars.CREDS_PASSWORD)
    assert.is_nil(vars.CREDS_USER)                    -- not a secret field
    assert.is_nil(vars.CONNRT_TOKEN)
    -- several positional connections: CONNRT_TOKEN_<ID>
    res = exec({ "keyed", "machine", "--", "env", "-0" })
    assert.equal(0, res.code, res.stderr)
    vars = env_of(res.stdout)
    assert.equal(API_KEY, vars.CONNRT_TOKEN_KEYED)
    assert.truthy(vars.CONNRT_TOKEN_MACHINE)
  end)

  it("puts no secret in any process's argv while the program runs", function()
    local dir = h.tmpdir()
    -- the program records its pid and environment, then waits to be looked at
    local script = ("echo $$ >%s/pid; env -0 >%s/env; sleep 3"):format(dir, dir)
    local cmd = ("cd %s && CONNRT_HOME=%s %s exec --mask machine --env K=keyed -- sh -c %s >%s/out 2>&1 &"):format(
      h.ROOT, home, h.CONNRT, h.shell_quote(script), dir)
    os.execute(cmd)
    local pid
    for _ = 1, 200 do
      pid = tonumber(h.read(dir .. "/pid") or "")
      if pid and h.read(dir .. "/env") and #h.read(dir .. "/env") > 0 then break end
      sys.sleep(0.05)
    end
    assert.truthy(pid, h.read(dir .. "/out"))
    sys.sleep(0.1)
    local vars = env_of(h.read(dir .. "/env"))
    local token = vars.CONNRT_TOKEN
    assert.truthy(token)
    assert.equal(API_KEY, vars.K)
    -- the program's own environment has them (that is the feature); no argv anywhere has
    local environ = h.read("/proc/" .. pid .. "/environ")
    assert.truthy(environ:find(token, 1, true))
    local seen = 0
    local p = io.popen("ls /proc")
    for name in p:lines() do
      if name:match("^%d+$") then
        local cmdline = h.read("/proc/" .. name .. "/cmdline")
        if cmdline then
          seen = seen + 1
          assert.is_nil(cmdline:find(token, 1, true), "token in the argv of " .. name)
          assert.is_nil(cmdline:find(API_KEY, 1, true), "key in the argv of " .. name)
        end
      end
    end
    p:close()
    assert.truthy(seen > 3)
    os.execute("sleep 3")
    h.rmdir(dir)
  end)

  it("refreshes an expired token before handing it out", function()
    local first = env_of(exec({ "machine", "--", "env", "-0" }).stdout).CONNRT_TOKEN
    local before = grants()
    sys.sleep(4.3) -- the 4 s token expired
    local res = exec({ "machine", "--", "env", "-0" }, { CONNRT_REFRESH_MARGIN = "0" })
    assert.equal(0, res.code, res.stderr)
    local fresh = env_of(res.stdout).CONNRT_TOKEN
    assert.are_not.equal(first, fresh)
    assert.equal(before + 1, grants())
    -- and it is valid: the authorization server says so
    local intro = assert(client:request({ method = "POST", url = server.issuer .. "/token/introspection",
      headers = { "Content-Type: application/x-www-form-urlencoded",
        "Authorization: Basic " .. require("connrt.crypto").b64encode("connrt-basic:basic-secret") },
      body = "token=" .. fresh }))
    assert.is_true(cjson.decode(intro.body).active)
  end)

  it("passes the exit status through, with and without --mask", function()
    assert.equal(3, exec({ "keyed", "--", "sh", "-c", "exit 3" }).code)
    assert.equal(42, exec({ "keyed", "--mask", "--", "sh", "-c", "exit 42" }).code)
    assert.equal(0, exec({ "keyed", "--mask", "--", "true" }).code)
    local res = exec({ "keyed", "--", "no-such-program-x17" })
    assert.equal(127, res.code)
    assert.matches("cannot run no-such-program-x17: No such file or directory", res.stderr, 1, true)
    assert.equal(127, exec({ "keyed", "--mask", "--", "no-such-program-x17" }).code)
    -- with --json, the error line every failure ends with; the status stays the shells'
    for _, args in ipairs({ { "keyed", "--" }, { "keyed", "--mask", "--" } }) do
      table.insert(args, 1, "--json")
      table.insert(args, 2, "exec")
      args[#args + 1] = "no-such-program-x17"
      res = h.connrt(args, { env = { CONNRT_HOME = home } })
      assert.equal(127, res.code)
      local last = res.stderr:match("([^\n]*)\n$")
      assert.matches('^{"error":', last)
      local e = cjson.decode(last).error
      assert.same({ "usage", "bad_argument" }, { e.kind, e.reason })
      assert.matches("cannot run no-such-program-x17", e.message, 1, true)
    end
    res = exec({ "keyed", "--mask", "--", "/etc/passwd" })
    assert.equal(126, res.code)
    assert.matches("cannot run /etc/passwd: Permission denied", res.stderr, 1, true)
  end)

  it("passes standard input and output through unchanged without --mask", function()
    local res = h.connrt({ "exec", "keyed", "--", "sh", "-c", "cat; echo \"$CONNRT_TOKEN\" >&2" },
      { env = { CONNRT_HOME = home }, stdin = "line one\nline two\n" })
    assert.equal(0, res.code)
    assert.equal("line one\nline two\n", res.stdout)
    assert.equal(API_KEY .. "\n", res.stderr) -- without --mask, the program prints what it likes
    -- a --help after -- is the program's, not a request for connrt's help
    res = exec({ "keyed", "--", "sh", "-c", 'echo "arg: $1"', "sh", "--help" })
    assert.equal(0, res.code, res.stderr)
    assert.equal("arg: --help\n", res.stdout)
  end)

  it("--mask replaces every spelling of the secrets on both streams", function()
    local script = table.concat({
      'echo "out: $K"',
      'echo "err: $K" >&2',
      'echo "token: $CONNRT_TOKEN and more"',
      -- percent-encoded, base64 (as HTTP Basic carries it) and JSON-escaped
      'printf "enc: %s\\n" "$(printf %s "$K" | od -An -tx1 | tr -d " \\n" | sed "s/\\(..\\)/%\\1/g")"',
      'printf "b64: %s\\n" "$(printf "user:%s" "$K" | base64 -w0)"',
      -- as a terminal shows it: a colour (grep --color) or a struck-over character inside
      'printf "colour: %s\n" "$(printf %s "$K" | sed "s/^\\(....\\)/\\1\\x1b[01;31m\\x1b[K/")"',
      'printf "overstrike: %s\n" "$(printf %s "$K" | sed "s/^\\(....\\)/\\1X\\x08/")"',
      'printf "partial: %s" "$K" >&2',
    }, "; ")
    local res = exec({ "machine", "--env", "K=keyed", "--mask", "--", "sh", "-c", script })
    assert.equal(0, res.code, res.stderr)
    local all = res.stdout .. res.stderr
    assert.is_nil(all:find(API_KEY, 1, true), all)
    -- (what a terminal shows of it)
    local shown = all:gsub("\27%[[0-?]*[ -/]*[@-~]", ""):gsub(".\b", "")
    assert.is_nil(shown:find(API_KEY, 1, true), shown)
    assert.matches("colour: [redacted]\n", res.stdout, 1, true)
    assert.matches("overstrike: [redacted]\n", res.stdout, 1, true)
    assert.matches("out: [redacted]\n", res.stdout, 1, true)
    assert.matches("token: [redacted] and more\n", res.stdout, 1, true)
    assert.matches("enc: [redacted]\n", res.stdout, 1, true)
    assert.matches("b64: [^\n]*%[redacted%]", res.stdout)
    assert.matches("err: [redacted]\n", res.stderr, 1, true)
    -- the last line without its newline too
    assert.equal("partial: [redacted]", res.stderr:sub(-#"partial: [redacted]"))
    -- without --mask the same program prints them (the test can fail)
    res = exec({ "machine", "--env", "K=keyed", "--", "sh", "-c", script })
    assert.truthy(res.stdout:find(API_KEY, 1, true))
    assert.truthy(res.stdout:find("colour: " .. API_KEY:sub(1, 4) .. "\27[01;31m\27[K" .. API_KEY:sub(5), 1, true))
    assert.truthy(res.stdout:find("overstrike: " .. API_KEY:sub(1, 4) .. "X\b" .. API_KEY:sub(5), 1, true))
  end)

  it("--mask reads a line of megabytes without a newline or a blank in linear time, and masks it", function()
    -- 3 MiB of one line, the secret in it at the first cut (1 MiB), in the middle and at
    -- the end; a quadratic search for the last newline took minutes for one megabyte (the
    -- helper's 30 s guard ends such a run: no time is asserted)
    local script = table.concat({
      'python3 -c "import os,sys; k=os.environ[\'K\']; a=\'A\'*(1024*1024-len(k)//2); '
        .. 'sys.stdout.write(a+k+a+k+a+k+chr(10)); sys.stderr.write(a+k)"',
    })
    local res = exec({ "machine", "--env", "K=keyed", "--mask", "--", "sh", "-c", script })
    assert.equal(0, res.code, res.stderr:sub(1, 200))
    assert.is_nil((res.stdout .. res.stderr):find(API_KEY, 1, true))
    local _, n = res.stdout:gsub("%[redacted%]", "")
    assert.equal(3, n)
    assert.equal("[redacted]", res.stderr:sub(-#"[redacted]"))
    assert.equal(3 * (1024 * 1024 - #API_KEY // 2) + 3 * #"[redacted]" + 1, #res.stdout)
  end)

  it("--mask hides a secret of several lines printed a line at a time, or across a read's end", function()
    -- a line of the key at a time, each its own write and read: no newline inside the key
    -- is a point where what came before goes out
    local lines = 'python3 -c "import os,time\nfor l in os.environ[\'CONNRT_TOKEN_PEM\'].split(chr(10)):'
      .. ' print(l, flush=True); time.sleep(.05)"; echo after'
    local res = exec({ "odd", "--mask", "--", "sh", "-c", lines })
    assert.equal(0, res.code, res.stderr)
    assert.equal("[redacted]\nafter\n", res.stdout)
    -- the key after 65500 bytes: its start at the end of cat's first 64 KiB read, its rest
    -- in the next (the newline before it, in the first read, is where a line would go out)
    local dir = h.tmpdir()
    local file = dir .. "/f"
    local cross = 'python3 -c "print(\'x\'*65500)" >' .. file .. '; printf "%s\\n" "$CONNRT_TOKEN_PEM" >>' .. file
      .. "; cat " .. file
    res = exec({ "odd", "--mask", "--", "sh", "-c", cross })
    h.rmdir(dir)
    assert.equal(0, res.code, res.stderr)
    assert.equal(("x"):rep(65500) .. "\n[redacted]\n", res.stdout)
    -- the lines of the key still go out where the key is not whole, but not where the
    -- output ends with them: that is the beginning of the key (see the spec on ends)
    res = exec({ "odd", "--mask", "--", "sh", "-c", '{ printf "%s\\n" "$CONNRT_TOKEN_PEM" | head -3; echo after; }' })
    assert.equal(0, res.code, res.stderr)
    assert.equal(PEM:match("^[^\n]*\n[^\n]*\n[^\n]*\n") .. "after\n", res.stdout)
    res = exec({ "odd", "--mask", "--", "sh", "-c", 'printf "%s\\n" "$CONNRT_TOKEN_PEM" | head -3' })
    assert.equal(0, res.code, res.stderr)
    assert.equal("[redacted]", res.stdout)
    -- adversarial: 4 MB of lines that each may go on into the key, every read's last
    -- newline one to hold at
    flood_passes(PEM:match("\n([^\n]*)\n"), 80000)
  end)

  it("--mask hides a secret of several lines printed a line at a time, each line encoded", function()
    -- each line of the key percent-encoded (its '+' and '/' escaped, the CRLF key's '\r'
    -- as %0D) or JSON-escaped ('/' as '\/'), in its own write and read, with a newline of
    -- its own: the line is a line of the key only once decoded
    local function lines(encode)
      return 'python3 -c "import os,time,urllib.parse\nt=os.environ[\'CONNRT_TOKEN_PEM\']'
        .. "\nfor l in t.split(chr(10)):"
        .. " print(" .. encode .. ", flush=True); time.sleep(.05)\"; echo after"
    end
    for _, encode in ipairs({ "urllib.parse.quote(l,safe='')", "l.replace('/',chr(92)+'/')" }) do
      local res = exec({ "odd", "--mask", "--", "sh", "-c", lines(encode) })
      assert.equal(0, res.code, res.stderr)
      assert.equal("[redacted]\nafter\n", res.stdout)
    end
    -- the same key with CRLF line ends is a secret of its own (see setup)
    local res = exec({ "keyed", "--env", "CONNRT_TOKEN_PEM=crlf", "--mask", "--", "sh", "-c",
      lines("urllib.parse.quote(l,safe='')") })
    assert.equal(0, res.code, res.stderr)
    assert.equal("[redacted]\nafter\n", res.stdout)
    -- adversarial: 4 MB of lines that each are, percent-decoded, a line that may go on
    -- into the key
    flood_passes((PEM:match("\n([^\n]*)\n"):gsub("[+/]", { ["+"] = "%2B", ["/"] = "%2F" })), 70000)
  end)

  it("--mask: output that ends in the middle of a secret ends with [redacted]", function()
    -- the end of the output: the beginning of a secret ("pa ss/w+rd!") as it is,
    -- percent-encoded (an escape cut short too) and JSON-escaped
    local function ends(expr)
      return { "odd", "--mask", "--", "python3", "-c",
        "import os,sys,urllib.parse as u; t=os.environ['CONNRT_TOKEN_PW']; sys.stdout.write(" .. expr .. ")" }
    end
    local cases = {
      { "'x '+t[:6]", "x [redacted]" },
      { "t+chr(10)+t[:-1]", "[redacted]\n[redacted]" },
      { "'q='+u.quote(t,safe='')[:16]", "q=[redacted]" },
      { "'q='+u.quote(t,safe='')[:13]", "q=[redacted]" },
      { "'{\"e\":\"'+t.replace('/',chr(92)+'/')[:9]", '{"e":"[redacted]' },
      -- text that ends in no secret's beginning (3 bytes are too few) goes as it is
      { "'abc '+t[:3]", "abc pa " },
    }
    for _, c in ipairs(cases) do
      local res = exec(ends(c[1]))
      assert.equal(0, res.code, res.stderr)
      assert.equal(c[2], res.stdout, c[1])
    end
  end)

  it("--mask never cuts a line of over a megabyte inside a secret with a blank", function()
    -- 17 * 64 KiB less 4 bytes, the secret, more: in 64 KiB writes apart, so the reads
    -- end where the writes do and the cut of the long line comes while the secret is
    -- only begun at the end of what was read (its blank the line's last)
    local script = 'python3 -c "import os,sys,time\nk=os.environ[\'CONNRT_TOKEN_PW\']\n'
      .. "d=('A'*(17*65536-4)+k+'B'*100+chr(10)).encode()\n"
      .. 'for i in range(0,len(d),65536): sys.stdout.buffer.write(d[i:i+65536]); sys.stdout.flush(); time.sleep(.05)"'
    local res = exec({ "odd", "--mask", "--", "sh", "-c", script })
    assert.equal(0, res.code, res.stderr)
    assert.is_nil(res.stdout:find("pa", 1, true))
    assert.equal(("A"):rep(17 * 65536 - 4) .. "[redacted]" .. ("B"):rep(100) .. "\n", res.stdout)
  end)

  it("--mask passes lines on as they come, not at the end", function()
    local dir = h.tmpdir()
    local cmd = ("cd %s && CONNRT_HOME=%s %s exec keyed --mask -- sh -c %s >%s/out 2>&1 &"):format(h.ROOT, home,
      h.CONNRT, h.shell_quote('echo "first $CONNRT_TOKEN"; sleep 2; echo second'), dir)
    os.execute(cmd)
    local seen
    for _ = 1, 30 do
      sys.sleep(0.05)
      seen = h.read(dir .. "/out")
      if seen and seen ~= "" then break end
    end
    assert.equal("first [redacted]\n", seen)
    sys.sleep(2.5)
    assert.equal("first [redacted]\nsecond\n", h.read(dir .. "/out"))
    h.rmdir(dir)
  end)

  -- Starts connrt exec in the background; returns its pid and a function that sends it
  -- a signal and returns its exit status and output.
  local function background(args, ready_text)
    local dir = h.tmpdir()
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = h.shell_quote(a) end
    -- a shell starts a background job with SIGINT and SIGQUIT ignored (POSIX), which
    -- connrt keeps ignored; these tests stand for a program started at a terminal, where
    -- they are not (env --default-signal)
    local script = ("cd %s && (CONNRT_HOME=%s env --default-signal=INT,QUIT %s exec %s >%s/out 2>%s/err & "
      .. "echo $! >%s/pid; wait $!; echo $? >%s/rc) &"):format(h.ROOT, home, h.CONNRT, table.concat(quoted, " "), dir,
      dir, dir, dir)
    os.execute(script)
    local pid
    for _ = 1, 200 do
      pid = tonumber(h.read(dir .. "/pid") or "")
      if pid and (h.read(dir .. "/out") or ""):find(ready_text, 1, true) then break end
      sys.sleep(0.05)
    end
    assert.truthy((h.read(dir .. "/out") or ""):find(ready_text, 1, true), h.read(dir .. "/err"))
    return pid, function(signal)
      os.execute(("kill -%s %d"):format(signal, pid))
      local rc
      for _ = 1, 200 do
        rc = tonumber(h.read(dir .. "/rc") or "")
        if rc then break end
        sys.sleep(0.05)
      end
      local out, err = h.read(dir .. "/out"), h.read(dir .. "/err")
      h.rmdir(dir)
      return rc, out, err
    end
  end

  local TRAP = 'trap "echo got $SIG; exit 7" %s; echo ready; while :; do sleep 0.1; done'

  it("--mask passes SIGTERM and SIGINT on to the program and exits as it exits", function()
    for _, sig in ipairs({ "TERM", "INT" }) do
      local _, stop = background({ "keyed", "--mask", "--", "sh", "-c", TRAP:format(sig):gsub("%$SIG", sig) }, "ready")
      local rc, out = stop(sig)
      assert.equal(7, rc, sig)
      assert.equal("ready\ngot " .. sig .. "\n", out)
    end
    -- a program that does not catch it dies of it, and so does connrt (128 + 15 to the shell)
    local _, stop = background({ "keyed", "--mask", "--", "sh", "-c", "echo ready; while :; do sleep 0.1; done" }, "ready")
    assert.equal(143, (stop("TERM")))
  end)

  it("--mask: a signal once the program has ended stops the wait for what it left running", function()
    -- the program leaves a sleep in the background that holds its output pipes; the
    -- sleep outlives the helper's wait for connrt's status, so without the signal
    -- ending connrt no status comes
    local dir = h.tmpdir()
    for _, sig in ipairs({ "TERM", "INT" }) do
      local script = ("sleep 30 & echo $! >%s/sleeper; echo ready; exit 3"):format(dir)
      local _, stop = background({ "keyed", "--mask", "--", "sh", "-c", script }, "ready")
      local rc, out = stop(sig)
      os.execute("kill " .. (h.read(dir .. "/sleeper") or ""):match("%d+"))
      assert.equal(3, rc, sig) -- the program's status: it ended before the signal came
      assert.equal("ready\n", out)
    end
    h.rmdir(dir)
  end)

  it("--mask: a signal that stops the wait with a secret begun at the end passes on [redacted] for it", function()
    -- the program leaves a sleep holding its pipes; what it wrote last, the token
    -- repeated and then its beginning with no newline, is held back until the signal
    local dir = h.tmpdir()
    local script = ("sleep 30 & echo $! >%s/sleeper; "
      .. "python3 -c \"import os; t=os.environ['CONNRT_TOKEN'].encode(); os.write(2, t*3000+t[:16])\"; "
      .. "echo ready; exit 3"):format(dir)
    local _, stop = background({ "keyed", "--mask", "--", "sh", "-c", script }, "ready")
    local rc, _, err = stop("TERM")
    os.execute("kill " .. (h.read(dir .. "/sleeper") or ""):match("%d+"))
    h.rmdir(dir)
    assert.equal(3, rc)
    -- (secrets back to back are hidden as one)
    assert.equal("[redacted][redacted]", err)
  end)

  it("--mask passes SIGALRM on", function()
    local script = 'trap "echo got ALRM; exit 9" ALRM; echo ready; for i in $(seq 200); do sleep 0.05; done; exit 1'
    local _, stop = background({ "keyed", "--mask", "--", "sh", "-c", script }, "ready")
    local rc, out = stop("ALRM")
    assert.equal(9, rc)
    assert.equal("ready\ngot ALRM\n", out)
  end)

  it("--mask: a reader that goes ends the program by SIGPIPE as it would, not connrt alone", function()
    -- `| head -1`: connrt closes the program's pipe, `yes` dies of SIGPIPE, the rest of
    -- the program still runs and its standard error still comes through
    local dir = h.tmpdir()
    h.write(dir .. "/run.sh", ("cd %s && CONNRT_HOME=%s %s exec keyed --mask -- sh -c %s 2>%s/err | head -1 >%s/out\n"
      .. "echo ${PIPESTATUS[0]} >%s/rc\n"):format(h.shell_quote(h.ROOT), h.shell_quote(home), h.shell_quote(h.CONNRT),
      h.shell_quote('yes "$CONNRT_TOKEN"; echo "yes ended" >&2; exit 5'), dir, dir, dir))
    os.execute("timeout -s KILL 30 bash " .. dir .. "/run.sh")
    local head, err, code = h.read(dir .. "/out"), h.read(dir .. "/err"), h.read(dir .. "/rc")
    h.rmdir(dir)
    assert.equal("[redacted]\n", head)
    assert.equal("yes ended\n", err)
    assert.equal("5\n", code)
  end)

  it("--mask: a signal connrt was started ignoring stays ignored, for connrt and the program", function()
    -- nohup's SIGHUP, a shell's `trap '' PIPE`: the program gets them ignored, as it would
    -- without connrt (the program's SigIgn mask in /proc, and what a SIGHUP does)
    local dir = h.tmpdir()
    h.write(dir .. "/run.sh", ("trap '' HUP PIPE; cd %s && CONNRT_HOME=%s %s exec keyed --mask -- sh -c %s >%s/out 2>&1 &\n"
      .. "p=$!; sleep 1; kill -HUP $p; wait $p; echo $? >%s/rc\n"):format(h.shell_quote(h.ROOT), h.shell_quote(home),
      h.shell_quote(h.CONNRT), h.shell_quote("grep SigIgn /proc/self/status; sleep 2; echo survived"), dir, dir))
    os.execute("timeout -s KILL 30 bash " .. dir .. "/run.sh")
    local out, rc = h.read(dir .. "/out"), h.read(dir .. "/rc")
    h.rmdir(dir)
    assert.equal("0\n", rc, out)
    assert.matches("survived", out, 1, true)
    local mask = tonumber(out:match("SigIgn:%s*(%x+)"), 16)
    -- bit n-1 for signal n: SIGHUP 1, SIGPIPE 13
    assert.equal(1, mask & 1, out)
    assert.equal(1, (mask >> 12) & 1, out)
  end)

  it("--mask: a closed standard error loses that output, and the program goes on", function()
    local dir = h.tmpdir()
    os.execute(("cd %s && CONNRT_HOME=%s %s exec keyed --mask -- sh -c %s >%s/out 2>&-; echo $? >%s/rc"):format(
      h.shell_quote(h.ROOT), h.shell_quote(home), h.shell_quote(h.CONNRT),
      h.shell_quote("echo err >&2; sleep 0.1; echo err2 >&2; echo out; exit 3"), dir, dir))
    local out, rc = h.read(dir .. "/out"), h.read(dir .. "/rc")
    h.rmdir(dir)
    assert.equal("3\n", rc)
    assert.equal("out\n", out)
  end)

  it("refuses a credential holding a NUL byte, which an environment variable would cut short", function()
    local nul_home = h.tmpdir()
    local path = tmp .. "/nul.lua"
    h.write(path, ([[return {
      id = "nul", auth = "fields", fields = { { key = "pem", secret = true, required = true }, { key = "pw", secret = true } },
      test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}5",
      allowed_urls = { "%s" }, request = { headers = { ["X-Api-Key"] = "%s" } },
    }]]):format(api.base, API_KEY))
    h.write(tmp .. "/nul.txt", "NULSECRETprefix\0tail")
    local res = h.connrt({ "run", path, "--field-file", "pem=" .. tmp .. "/nul.txt", "--field", "pw=pwpwpwpw" },
      { env = { CONNRT_HOME = nul_home } })
    assert.equal(0, res.code, res.stderr)
    for _, mask in ipairs({ {}, { "--mask" } }) do
      local args = { "exec", "nul" }
      for _, a in ipairs(mask) do args[#args + 1] = a end
      for _, a in ipairs({ "--", "sh", "-c", 'echo "$CONNRT_TOKEN_PEM"' }) do args[#args + 1] = a end
      res = h.connrt(args, { env = { CONNRT_HOME = nul_home }, timeout = 30 })
      assert.equal(5, res.code, res.stderr)
      assert.matches("holds a NUL byte", res.stderr, 1, true)
      assert.is_nil((res.stdout .. res.stderr):find("NULSECRET", 1, true))
    end
    h.rmdir(nul_home)
  end)

  it("without --mask the program is the process: signals reach it directly", function()
    local pid, stop = background({ "keyed", "--", "sh", "-c", TRAP:format("TERM"):gsub("%$SIG", "TERM") }, "ready")
    -- connrt replaced itself: the process connrt started as is the program now
    local cmdline = h.read("/proc/" .. pid .. "/cmdline") or ""
    assert.matches("^sh%z%-c%z", cmdline)
    local rc, out = stop("TERM")
    assert.equal(7, rc)
    assert.equal("ready\ngot TERM\n", out)
  end)

  describe("bad command lines run nothing", function()
    local marker
    before_each(function() marker = tmp .. "/ran" os.remove(marker) end)
    after_each(function() assert.is_nil(h.read(marker)) end)
    local function touch() return { "sh", "-c", "touch " .. marker } end

    it("no command", function()
      local res = exec({ "keyed" })
      assert.equal(2, res.code)
      assert.matches("the command comes after --", res.stderr, 1, true)
      assert.equal(2, exec({ "keyed", "--" }).code)
    end)

    it("no connection named", function()
      local res = exec({ "--", table.unpack(touch()) })
      assert.equal(2, res.code)
      assert.matches("connrt exec needs a connection", res.stderr, 1, true)
    end)

    it("an unknown connection", function()
      local res = exec({ "nosuch", "--", table.unpack(touch()) })
      assert.equal(9, res.code)
      assert.matches("nosuch", res.stderr, 1, true)
    end)

    it("a bad --env", function()
      local res = exec({ "--env", "1BAD=keyed", "--", table.unpack(touch()) })
      assert.equal(2, res.code)
      assert.matches("--env 1BAD=keyed: \"1BAD\" is not an environment variable name", res.stderr, 1, true)
      res = exec({ "--env", "NOID", "--", table.unpack(touch()) })
      assert.equal(2, res.code)
      assert.matches("--env NOID: expected NAME=ID", res.stderr, 1, true)
      res = exec({ "--env", "A=keyed", "--env", "A=machine", "--", table.unpack(touch()) })
      assert.equal(2, res.code)
      assert.matches("A would be set twice", res.stderr, 1, true)
    end)

    it("an unknown option", function()
      local res = exec({ "keyed", "--nope", "--", table.unpack(touch()) })
      assert.equal(2, res.code)
      assert.matches("unknown option --nope", res.stderr, 1, true)
    end)
  end)
end)

-- The store's credentials are connrt's secrets too: a program run by `connrt exec` on a
-- PostgreSQL store gets neither PGPASSWORD nor the password of CONNRT_STORE (the rest of
-- the URL, so a nested connrt reaches the store through ~/.pgpass or PGPASSFILE), and
-- --mask hides the password as it hides the tokens.
describe("connrt exec on a PostgreSQL store #integration #postgres", function()
  local postgres = require("support.postgres")
  local PASSWORD = "pg-Exec-S3cret/9+x"
  local ENV_PASSWORD = "pgpw-env-s3cret-77"
  local pg, tmp, api, env

  setup(function()
    assert(postgres.available(), "PostgreSQL 15 is not installed (make deps installs postgresql-15)")
    pg = postgres.start({ password = PASSWORD })
    tmp = h.tmpdir()
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    local pgpass = tmp .. "/pgpass"
    h.write(pgpass, ("127.0.0.1:%d:%s:%s:%s\n"):format(pg.port, pg.db, pg.role, PASSWORD))
    assert(sys.chmod(pgpass, 384)) -- 0600, or libpq ignores it
    env = { CONNRT_HOME = tmp .. "/home", CONNRT_STORE = pg.url, CONNRT_KEY = ("cd"):rep(32),
      PGPASSWORD = ENV_PASSWORD, PGPASSFILE = pgpass }
    local keyed = tmp .. "/keyed.lua"
    h.write(keyed, h.keyed_connector(api.base))
    local res = h.connrt({ "run", keyed, "--field", "api_key=" .. API_KEY }, { env = env })
    assert.equal(0, res.code, res.stderr)
  end)

  teardown(function()
    if pg then pg.destroy() end
    if api then api.stop() end
    if tmp then h.rmdir(tmp) end
  end)

  it("passes on neither PGPASSWORD nor the password in CONNRT_STORE, and the rest of the URL", function()
    local res = h.connrt({ "exec", "keyed", "--", "env", "-0" }, { env = env, timeout = 30 })
    assert.equal(0, res.code, res.stderr)
    local vars = env_of(res.stdout)
    assert.equal(API_KEY, vars.CONNRT_TOKEN) -- the dump is real
    assert.is_nil(vars.PGPASSWORD)
    assert.equal(("postgres://%s@127.0.0.1:%d/%s"):format(pg.role, pg.port, pg.db), vars.CONNRT_STORE)
    assert.equal(env.PGPASSFILE, vars.PGPASSFILE) -- a path, not a secret
    for _, secret in ipairs({ PASSWORD, postgres.encode(PASSWORD), ENV_PASSWORD }) do
      assert.is_nil(res.stdout:find(secret, 1, true), secret)
    end
    -- nor as a password or sslpassword parameter, however its name is spelled
    local url = ("postgres://%s@127.0.0.1:%d/%s?sslmode=disable&password=%s&pass%%77ord=%s&sslpassword=%s")
      :format(pg.role, pg.port, pg.db, postgres.encode(PASSWORD), postgres.encode(PASSWORD), "pgssl-s3cret-1")
    local e = {}
    for k, v in pairs(env) do e[k] = v end
    e.CONNRT_STORE = url
    res = h.connrt({ "exec", "keyed", "--", "env", "-0" }, { env = e, timeout = 30 })
    assert.equal(0, res.code, res.stderr)
    vars = env_of(res.stdout)
    assert.equal(API_KEY, vars.CONNRT_TOKEN)
    assert.equal(("postgres://%s@127.0.0.1:%d/%s?sslmode=disable"):format(pg.role, pg.port, pg.db), vars.CONNRT_STORE)
    assert.is_nil(res.stdout:find("pgssl-s3cret-1", 1, true))
  end)

  it("lets a nested connrt reach the store without the password (PGPASSFILE)", function()
    local res = h.connrt({ "exec", "keyed", "--", h.CONNRT, "list" }, { env = env, timeout = 30 })
    assert.equal(0, res.code, res.stderr)
    assert.matches("keyed", res.stdout, 1, true)
  end)

  it("--mask hides the store's password in every spelling", function()
    local file = tmp .. "/leak"
    h.write(file, ("pw: %s\nenc: %s\nenv: %s\n"):format(PASSWORD, postgres.encode(PASSWORD), ENV_PASSWORD))
    local res = h.connrt({ "exec", "keyed", "--mask", "--", "cat", file }, { env = env, timeout = 30 })
    assert.equal(0, res.code, res.stderr)
    assert.equal("pw: [redacted]\nenc: [redacted]\nenv: [redacted]\n", res.stdout)
  end)
end)

describe("connrt exec --mask's pump, with the system calls stubbed", function()
  it("closes a pipe once when the reader has gone, though the line then runs past MAX_LINE", function()
    -- the reader has gone (every write fails, EPIPE): the newline's cut closes the pipe;
    -- the long rest of the read must not close the same number again (by then it may
    -- be another file's)
    local closes, reads = {}, { [3] = { "a\n" .. ("x"):rep(100), "" }, [4] = { "" } }
    local stub = {
      spawn_piped = function() return 100, 3, 4 end,
      poll_read = function(open) return { open[1] } end,
      read = function(fd) return table.remove(reads[fd], 1) or "" end,
      close = function(fd) closes[#closes + 1] = fd end,
      caught = function() return {} end,
      wait = function() return "exit", 0 end,
    }
    local saved = {}
    for _, name in ipairs({ "connrt.sys", "connrt.handout", "connrt.exec" }) do saved[name] = package.loaded[name] end
    local stdout = io.stdout
    finally(function()
      for name, v in pairs(saved) do package.loaded[name] = v end
      rawset(io, "stdout", stdout)
    end)
    package.loaded["connrt.sys"] = stub
    package.loaded["connrt.handout"] = { with_connections = function() return {} end }
    package.loaded["connrt.exec"] = nil
    local exec = require("connrt.exec")
    exec.MAX_LINE = 10
    rawset(io, "stdout", { write = function() return nil end, flush = function() return true end })
    local code = exec.run({ { "CONNRT_TOKEN", "x" } }, { "true" }, true)
    rawset(io, "stdout", stdout)
    assert.equal(0, code)
    assert.same({ 3, 4 }, closes)
  end)
end)

describe("sys.exec", function()
  it("runs a program with connrt's environment when it is given none", function()
    local dir = h.tmpdir()
    h.write(dir .. "/run.lua", 'local _, msg = require("connrt.sys").exec({ "sh", "-c", "exit 7" }) error(msg)')
    local res = h.connrt({ "script", dir .. "/run.lua" })
    h.rmdir(dir)
    assert.equal(7, res.code, res.stderr)
  end)
end)
