-- luacheck: std +busted
-- Trust (issue 13): a provider, a connector or a caller cannot make connrt print escape
-- sequences, inject header lines or fail with an internal error; `connrt` as a real
-- process against the echo server (spec/support/echo-server.js), whose /repeat route
-- plays a provider that answers with anything.
local cjson = require("cjson")
local h = require("support.helpers")
local url = require("connrt.url")

-- A provider's answer, served by /repeat: status, JSON text.
local function answer(api, status, doc)
  return ("%s/repeat?status=%d&type=application/json&head=%s"):format(api.base, status, url.encode(doc))
end

-- A token endpoint's answer that a connection keeps: its text in hex in the URL, which
-- connrt keeps in clear (a URL that spells the token is refused: record.check_clear).
local function token_answer(api, doc)
  return ("%s/repeat?hex&type=application/json&head=%s"):format(api.base,
    (doc:gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
end

describe("what connrt prints and sends stays in its lines #integration", function()
  local api, tmp

  setup(function()
    tmp = h.tmpdir()
    api = h.start_upstream({ ECHO_API_KEY = "k-3f9a2c7e5b1d" })
  end)

  teardown(function()
    if api then api.stop() end
    h.rmdir(tmp)
  end)

  local serial = 0
  -- A client credentials connector whose token endpoint and test API answer as given;
  -- `extra`: more keys (Lua source), `headers`: more request headers (Lua source).
  local function machine(token_url, test_url, extra, headers)
    serial = serial + 1
    local path = ("%s/machine%d.lua"):format(tmp, serial)
    h.write(path, ([[return {
      id = "machine%d", title = "Machine", auth = "client_credentials",
      token_url = %q, test = %q, name = "{{name}}", unique_id = "{{id}}",
      allowed_urls = { %q },
      request = { headers = { Authorization = "Bearer {{access_token}}", %s } },
      %s
    }]]):format(serial, token_url, test_url, api.base .. "/", headers or "", extra or ""))
    return path
  end

  local function run(path, home, args)
    local argv = { "run", path, "--client-id", "c-1" }
    for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
    return h.connrt(argv, { env = { CONNRT_HOME = home or (tmp .. "/home") } })
  end

  local GOOD_TOKEN = '{"access_token":"at-5a7c9e1b3d","token_type":"Bearer","expires_in":3600}'

  -- no control character reaches the terminal but each line's own newline
  local function clean(text)
    assert.is_nil(text:find("[%z\1-\9\11-\31\127]"), text)
    assert.is_nil(text:find("\194[\128-\159]"), text)
  end

  it("escapes a test API's name with ESC[2J and a BEL in run, show and errors", function()
    local home = tmp .. "/names"
    local name = "Evil \27[2J\7 Corp\r\nconnrt: Connected Someone Else \194\155"
    local path = machine(token_answer(api, GOOD_TOKEN), answer(api, 200, cjson.encode({ name = name, id = "acct-1" })))
    local res = run(path, home)
    assert.equal(0, res.code, res.stderr)
    clean(res.stdout .. res.stderr)
    assert.matches("as Evil \\u001b[2J\\u0007 Corp\\u000d\\u000aconnrt: Connected Someone Else \\u009b (acct-1)", res.stdout, 1, true)
    local id = res.stdout:match("(machine%d+%-%x+)")
    res = h.connrt({ "show", id }, { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    clean(res.stdout)
    assert.matches("name               Evil \\u001b[2J\\u0007 Corp", res.stdout, 1, true)
    -- list cleans as it did, --json encodes: the terminal sees no escape either way
    res = h.connrt({ "list" }, { env = { CONNRT_HOME = home } })
    clean(res.stdout)
    res = h.connrt({ "show", id, "--json" }, { env = { CONNRT_HOME = home } })
    clean(res.stdout)
    assert.equal(name, cjson.decode(res.stdout).name)
  end)

  it("escapes an error_description with escape sequences, and a test API's error message", function()
    local desc = "bad client\27]0;pwned\7\27[2J\r\nconnrt: Connected Machine as admin"
    local res = run(machine(answer(api, 401, cjson.encode({ error = "invalid_client", error_description = desc })),
      answer(api, 200, "{}")))
    assert.equal(5, res.code, res.stderr)
    clean(res.stderr)
    assert.matches("answered 401: invalid_client: bad client\\u001b]0;pwned\\u0007\\u001b[2J\\u000d\\u000aconnrt: Connected", res.stderr, 1, true)
    assert.is_nil(res.stderr:find("\nconnrt: Connected", 1, true))
    res = run(machine(answer(api, 200, GOOD_TOKEN), answer(api, 403, cjson.encode({ message = "no\27[31m red\8\8" }))))
    assert.equal(5, res.code, res.stderr)
    clean(res.stderr)
    assert.matches("answered 403: no\\u001b[31m red\\u0008\\u0008; the connection was not saved", res.stderr, 1, true)
  end)

  it("refuses a token with CR or LF as the provider's error, naming it, and saves nothing", function()
    local home = tmp .. "/crlf"
    for _, case in ipairs({
      { '{"access_token":"at-1\\r\\nX-Evil: 1","token_type":"Bearer"}', "the access_token contains a control character (CR)" },
      { '{"access_token":"at-1\\nX-Evil: 1","token_type":"Bearer"}', "the access_token contains a control character (LF)" },
      { '{"access_token":"at-1","refresh_token":"rt\\u0000x","token_type":"Bearer"}',
        "the refresh_token contains a control character (NUL)" },
      { '{"access_token":"at-1","token_type":"Bearer\\r\\nX: y"}', "the token_type contains a control character (CR)" },
    }) do
      local res = run(machine(answer(api, 200, case[1]), answer(api, 200, '{"name":"n","id":"i"}')), home)
      assert.equal(5, res.code, res.stderr)
      assert.matches("token endpoint " .. api.base .. "/repeat", res.stderr, 1, true)
      assert.matches(case[2], res.stderr, 1, true)
      assert.is_nil(res.stderr:find("internal error", 1, true), res.stderr)
      assert.equal("[]", h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } }).stdout:gsub("%s", ""))
    end
  end)

  it("refuses a kept value with LF in a header as the provider's, and a field with CR as the user's", function()
    -- the kept value goes into a header of every request (the test API's first)
    local kept = machine(answer(api, 200, '{"access_token":"at-1","token_type":"Bearer","org":"o-1\\nX-Evil: 1"}'),
      answer(api, 200, '{"name":"n","id":"i"}'), 'values = { "org" },', '["X-Org"] = "{{org}}"')
    local res = run(kept)
    assert.equal(5, res.code, res.stderr)
    assert.matches("request.headers: {{org}}, a value from the provider, contains a control character (LF)", res.stderr, 1, true)
    assert.is_nil(res.stderr:find("internal error", 1, true), res.stderr)

    local keyed = tmp .. "/keyed-crlf.lua"
    h.write(keyed, h.keyed_connector(api.base))
    res = h.connrt({ "run", keyed }, { env = { CONNRT_HOME = tmp .. "/keyed-crlf", CONNRT_FIELD_API_KEY = "k-1\r\nX-Evil: 1" } })
    assert.equal(2, res.code, res.stderr)
    assert.matches("{{api_key}}, which you gave, contains a control character (CR)", res.stderr, 1, true)
    assert.is_nil(res.stderr:find("internal error", 1, true), res.stderr)
  end)

  it("refuses Basic credentials with a control character, from a field, as the user's error", function()
    local basic = tmp .. "/basic-crlf.lua"
    h.write(basic, ([[return {
      id = "basic", auth = "fields",
      fields = { { key = "username", required = true }, { key = "password", secret = true, required = true } },
      test = "/basic/me", name = "{{login}}", unique_id = "{{id}}",
      allowed_urls = { "%s" },
      request = { basic = { username = "{{username}}", password = "{{password}}" } },
    }]]):format(api.base))
    for _, case in ipairs({ { "user\r\nX-Evil: 1", "pass-1", "basic.username: {{username}}", "CR" },
        { "user", "pass\t1", "basic.password: {{password}}", "TAB" } }) do
      local res = h.connrt({ "run", basic }, { env = { CONNRT_HOME = tmp .. "/basic-home",
        CONNRT_FIELD_USERNAME = case[1], CONNRT_FIELD_PASSWORD = case[2] } })
      assert.equal(2, res.code, res.stderr)
      assert.matches(case[3] .. ", which you gave, contains a control character (" .. case[4] .. ")", res.stderr, 1, true)
    end
  end)

  describe("a caller's headers", function()
    local home
    setup(function()
      home = tmp .. "/caller"
      local keyed = tmp .. "/keyed.lua"
      h.write(keyed, h.keyed_connector(api.base))
      local res = h.connrt({ "run", keyed }, { env = { CONNRT_HOME = home, CONNRT_FIELD_API_KEY = "k-3f9a2c7e5b1d" } })
      assert(res.code == 0, res.stderr)
    end)

    it("connrt request -H with CR or LF is a usage error, and nothing is sent", function()
      local before = #api.log()
      for _, hv in ipairs({ "X-A: a\r\nInjected: 1", "X-A: a\nb", "X-A: a\rb", "X-A: \27[2J" }) do
        local res = h.connrt({ "request", "keyed", "/echo", "-H", hv }, { env = { CONNRT_HOME = home } })
        assert.equal(2, res.code, res.stderr)
        assert.matches("^connrt: %-H: the value of header X%-A contains a control character %(%u+%); a header is one line\n$",
          res.stderr)
      end
      -- a tab is a header value's own
      local res = h.connrt({ "request", "keyed", "/echo", "-H", "X-A: a\tb" }, { env = { CONNRT_HOME = home } })
      assert.equal(0, res.code, res.stderr)
      assert.equal("a\tb", cjson.decode(res.stdout).headers["x-a"])
      assert.equal(before + 1, #api.log())
    end)

    it("a C program's header without a colon or with CR or LF is CONNRT_EUSAGE", function()
      local src, bin = tmp .. "/headers.c", tmp .. "/headers"
      h.write(src, [[
#include <stdio.h>
#include <connrt.h>
int main(int argc, char **argv) {
  (void)argc;
  connrt *rt;
  if (connrt_open(&rt, NULL) != CONNRT_OK) return 100;
  const char *headers[] = { argv[1], NULL };
  connrt_response res;
  connrt_code rc = connrt_request(rt, "keyed", "GET", "/echo", headers, NULL, 0, &res);
  if (rc == CONNRT_OK) connrt_response_free(&res);
  printf("%d %s\n", (int)rc, connrt_errmsg(rt));
  connrt_close(rt);
  return 0;
}
]])
      -- the build's library, with the sanitizers' flags when it was built with them
      local san = os.execute(("nm %s/libconnrt.a 2>/dev/null | grep -q __asan_init"):format(h.BUILD))
        and "-fsanitize=address,undefined" or ""
      local cc = ("cc %s -I%s/include -o %s %s %s/libconnrt.a $(pkg-config --libs lua5.4 libcurl openssl lmdb libsodium libpq) 2>&1")
        :format(san, h.ROOT, bin, src, h.BUILD)
      local build = io.popen(cc)
      local log = build:read("a")
      assert(build:close(), cc .. "\n" .. log)
      for _, hv in ipairs({ "NoColon", "X-A: a\r\nInjected: 1" }) do
        local p = io.popen(("CONNRT_HOME=%s %s %s"):format(home, bin, h.shell_quote(hv)))
        local out = p:read("a")
        p:close()
        assert.matches("^2 ", out)
      end
    end)

    it("a pipeline's header or method with CR or LF is a usage error", function()
      local script = tmp .. "/pipe.lua"
      h.write(script, [[
        local c = connrt.connection("keyed")
        local kind = arg[1]
        if kind == "header" then c:get("/echo", { headers = { { "X-A", "a\r\nInjected: 1" } } }) end
        if kind == "name" then c:get("/echo", { headers = { { "X-A\r\nB", "1" } } }) end
        if kind == "method" then c:request({ method = "GET /x HTTP/1.1\r\nX:", url = "/echo" }) end
      ]])
      for _, kind in ipairs({ "header", "name", "method" }) do
        local res = h.connrt({ "run", script, kind }, { env = { CONNRT_HOME = home } })
        assert.equal(2, res.code, res.stderr)
        assert.is_nil(res.stderr:find("internal error", 1, true), res.stderr)
        clean(res.stderr)
      end
    end)
  end)
end)

describe("the browser connrt starts #integration", function()
  local tmp
  setup(function() tmp = h.tmpdir() end)
  teardown(function() h.rmdir(tmp) end)

  it("inherits none of the variables that hold secrets (its env and /proc/self/environ)", function()
    local dump = tmp .. "/dump"
    local script = tmp .. "/browser.sh"
    -- the browser: writes what it inherited, as `env` sees it and as the kernel keeps it
    h.write(script, ('env >%s/env.tmp; tr "\\0" "\\n" </proc/self/environ >%s/environ.tmp; '
      .. 'tr "\\0" "\\n" </proc/$$/environ >%s/shell.tmp; mv %s/env.tmp %s/env; mv %s/environ.tmp %s/environ; '
      .. 'mv %s/shell.tmp %s/shell\n'):format(dump, dump, dump, dump, dump, dump, dump, dump, dump))
    assert(require("connrt.sys").mkdir(dump, 448))
    local secrets = {
      CONNRT_KEY = string.rep("5e", 32), CONNRT_NEW_KEY = string.rep("7a", 32),
      CONNRT_CLIENT_SECRET = "client-secret-9c1f", CONNRT_FIELD_API_TOKEN = "field-token-4d2b",
      PGPASSWORD = "pg-password-6b0e", -- a PostgreSQL store's (libpq reads it)
    }
    local env = { CONNRT_HOME = tmp .. "/home", CONNRT_BROWSER = "sh " .. script, TRUST_CANARY = "passed-on",
      CONNRT_CLIENT_ID = "client-id-1", CONNRT_KEY_FILE = tmp .. "/unused-key",
      CONNRT_REDIRECT_URL = ("http://127.0.0.1:%d/callback"):format(h.free_port()),
      CONNRT_FIELD_SERVER = "http://127.0.0.1:9" } -- the connector's field, read from the environment
    for k, v in pairs(secrets) do env[k] = v end
    local res = h.connrt({ "run", "examples/local-oidc.lua", "--timeout", "3" }, { env = env })
    assert.equal(4, res.code, res.stderr) -- nobody signs in: the wait times out
    local seen
    for _ = 1, 100 do
      seen = h.read(dump .. "/shell")
      if seen then break end
      require("connrt.sys").sleep(0.05)
    end
    for _, name in ipairs({ "env", "environ", "shell" }) do
      local text = h.read(dump .. "/" .. name)
      assert.is_string(text, "the browser wrote no " .. name)
      -- what is passed on is there: the dump is real
      assert.matches("TRUST_CANARY=passed-on\n", text, 1, true)
      assert.matches("CONNRT_CLIENT_ID=client-id-1\n", text, 1, true)
      assert.matches("CONNRT_KEY_FILE=", text, 1, true)
      for k, v in pairs(secrets) do
        assert.is_nil(text:find(k .. "=", 1, true), k .. " reached the browser (" .. name .. ")")
        assert.is_nil(text:find(v, 1, true), k .. "'s value reached the browser (" .. name .. ")")
      end
      assert.is_nil(text:find("CONNRT_FIELD_", 1, true), name)
    end
  end)
end)

describe("a running connrt and a C program using libconnrt #integration", function()
  local tmp, api, as_user
  local sys = require("connrt.sys")
  local KEY = string.rep("3c", 32)

  setup(function()
    tmp = h.tmpdir()
    assert(sys.chmod(tmp, 511)) -- 0777: the processes run as another user below
    api = h.start_upstream({ ECHO_API_KEY = "k-77a1e9c3b5d2" })
    -- root reads every process's memory anyway: the processes run as nobody, and so
    -- does the reader, as a user's other programs would
    local root = (io.popen("id -u"):read("l")) == "0"
    if root and os.execute("setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null") then
      as_user = "setpriv --reuid=65534 --regid=65534 --clear-groups "
    elseif not root then
      as_user = ""
    end
  end)

  teardown(function()
    if api then api.stop() end
    h.rmdir(tmp)
  end)

  -- Starts `program ARGS` as the user in the background, with the core size limit raised
  -- as far as it goes first; returns its pid and a function that reads its stderr.
  local function start(name, program, args, env)
    local dir = tmp .. "/" .. name
    assert(sys.mkdir(dir, 511) and sys.chmod(dir, 511))
    local parts = {}
    for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. h.shell_quote(v) end
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = h.shell_quote(a) end
    local cmd = ("ulimit -c unlimited 2>/dev/null || ulimit -c $(ulimit -H -c); cd %s && exec env %s %s%s %s"):format(
      h.shell_quote(h.ROOT), table.concat(parts, " "), as_user, h.shell_quote(program), table.concat(quoted, " "))
    os.execute(("sh -c %s >%s/out 2>%s/err </dev/null & echo $! >%s/pid"):format(h.shell_quote(cmd), dir, dir, dir))
    local pid = tonumber(h.read(dir .. "/pid"))
    return pid, function() return h.read(dir .. "/err") or "" end
  end

  -- What the kernel says of a running process: its core size limits, the owner of its
  -- /proc entries (root for a process that is not dumpable), its own uid, and whether
  -- the same user can read its environment (where CONNRT_KEY is).
  local function inspect(pid)
    local limits = h.read(("/proc/%d/limits"):format(pid)) or ""
    local status = h.read(("/proc/%d/status"):format(pid)) or ""
    local owner = io.popen(("stat -c %%u /proc/%d/status 2>/dev/null"):format(pid)):read("l")
    local reader = io.popen(("%scat /proc/%d/environ 2>/dev/null | tr '\\0' '\\n'"):format(as_user, pid))
    local environ = reader:read("a")
    reader:close()
    return {
      core = limits:match("Max core file size%s+(%S+)%s+(%S+)"),
      core_hard = select(2, limits:match("Max core file size%s+(%S+)%s+(%S+)")),
      owner = tonumber(owner), uid = tonumber(status:match("\nUid:%s+(%d+)")),
      environ = environ,
    }
  end

  local function check(p, who)
    assert.equal("0", p.core, who .. ": the soft core size limit")
    assert.equal("0", p.core_hard, who .. ": the hard core size limit")
    assert.are_not.equal(0, p.uid, who .. " runs as the user, not root")
    assert.equal(0, p.owner, who .. "'s /proc entries belong to root: it is not dumpable (owned by " .. tostring(p.owner) .. ")")
    assert.equal("", p.environ, who .. "'s environment can be read by the user's other processes")
  end

  it("connrt run waiting for the callback: no core limit, not dumpable, its environ unreadable", function()
    if not as_user then pending("needs setpriv to run as another user than root") return end
    local pid, err = start("run", h.CONNRT, { "run", "examples/local-oidc.lua", "--no-browser", "--timeout", "20",
      "--field", "server=http://127.0.0.1:9", "--client-id", "c-1" }, {
      CONNRT_HOME = tmp .. "/run-home", CONNRT_KEY = KEY,
      CONNRT_REDIRECT_URL = ("http://127.0.0.1:%d/callback"):format(h.free_port()) })
    finally(function() os.execute("kill " .. pid .. " 2>/dev/null") end)
    for _ = 1, 200 do
      if err():find("Waiting for the sign-in", 1, true) then break end
      sys.sleep(0.05)
    end
    assert.matches("Waiting for the sign-in", err(), 1, true)
    check(inspect(pid), "connrt run")
  end)

  it("a C program inside connrt_request: the same, from connrt_open on", function()
    if not as_user then pending("needs setpriv to run as another user than root") return end
    local home = tmp .. "/lib-home"
    local keyed = tmp .. "/keyed.lua"
    h.write(keyed, h.keyed_connector(api.base))
    assert(sys.chmod(keyed, 420))
    os.execute(("%s env CONNRT_HOME=%s CONNRT_KEY=%s CONNRT_FIELD_API_KEY=k-77a1e9c3b5d2 %s run %s >/dev/null 2>&1"):format(
      as_user, home, KEY, h.shell_quote(h.CONNRT), keyed))
    local before = #api.log()
    -- /slow answers after 3 s: the program is inside connrt_request meanwhile
    local pid = start("lib", h.BUILD .. "/examples/pipeline", { "keyed", "/slow" }, { CONNRT_HOME = home, CONNRT_KEY = KEY })
    finally(function() os.execute("kill " .. pid .. " 2>/dev/null") end)
    for _ = 1, 100 do
      if #api.log() > before then break end
      sys.sleep(0.05)
    end
    assert.is_true(#api.log() > before, "the C program sent nothing")
    check(inspect(pid), "the C program")
  end)

  it("a plain lua5.4 program after require \"connrt\"", function()
    if not as_user then pending("needs setpriv to run as another user than root") return end
    local script = tmp .. "/plain.lua"
    h.write(script, ([[
      package.cpath = %q .. "/?.so;" .. package.cpath
      require "connrt"
      local pid = require("connrt.sys").getpid()
      local limits = io.open("/proc/self/limits"):read("a")
      print(limits:match("Max core file size%%s+(%%S+)%%s+(%%S+)"))
      print(io.popen("stat -c %%u /proc/" .. pid .. "/status"):read("l"))
    ]]):format(h.BUILD))
    assert(sys.chmod(script, 420))
    local p = io.popen(("sh -c 'ulimit -c unlimited; cd %s && exec %s%s %s' 2>&1"):format(h.ROOT, as_user, h.LUA, script))
    local out = p:read("a")
    p:close()
    assert.equal("0\t0\n0\n", out)
  end)
end)
