-- luacheck: std +busted
-- `connrt request` and `connrt token` through CONNRT_PROXY (lua/connrt/via_proxy.lua):
-- against a real `connrt proxy`, only what the direct path would resolve is handed over,
-- with the direct path's exit statuses; against a hostile or stuck peer on the socket
-- (spec/support/hostile_proxy.py), a clear error of a documented kind or the fallback,
-- never a traceback, a hang or unbounded memory.
local cjson = require("cjson")
local h = require("support.helpers")
local proxies = require("support.proxy")
local sys = require("connrt.sys")

local API_KEY = "sk-via-proxy-k3y"

describe("connrt request and token through CONNRT_PROXY #integration", function()
  local tmp, api, home, p

  setup(function()
    tmp = h.tmpdir()
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    home = h.tmpdir()
    local path = tmp .. "/keyed.lua"
    h.write(path, h.keyed_connector(api.base))
    local res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    p = proxies.start(home, { "--socket", tmp .. "/proxy.sock", "--workers", "1" })
  end)

  teardown(function()
    if p then p.stop() end
    proxies.stop_all()
    if api then api.stop() end
    h.rmdir(home)
    h.rmdir(tmp)
  end)

  local function run(args, socket, opts)
    opts = opts or {}
    return h.connrt(args, { env = { CONNRT_HOME = home, CONNRT_PROXY = socket }, timeout = opts.timeout or 60,
      max_rss = opts.max_rss })
  end

  -- A hostile peer on a socket of its own, in `mode` (see hostile_proxy.py); returns its
  -- socket and a function that stops it.
  local function hostile(mode, arg)
    local dir = h.tmpdir()
    local sock = dir .. "/hostile.sock"
    os.execute(("python3 %s/spec/support/hostile_proxy.py %s %s %s >%s/out 2>&1 & echo $! >%s/pid"):format(
      h.shell_quote(h.ROOT), h.shell_quote(sock), mode, h.shell_quote(arg or ""), dir, dir))
    for _ = 1, 200 do
      if (h.read(dir .. "/out") or ""):find("ready", 1, true) then break end
      sys.sleep(0.05)
    end
    assert.matches("ready", h.read(dir .. "/out") or "", 1, true)
    local pid = tonumber(h.read(dir .. "/pid"))
    return sock, function()
      os.execute(("kill %d"):format(pid))
      h.rmdir(dir)
    end
  end

  -- A peer that answers every request with `text`.
  local function answering(text)
    local file = tmp .. "/answer-" .. tostring(#text)
    h.write(file, text)
    return hostile("answer", file)
  end

  local function no_traceback(res)
    assert.is_nil(res.stderr:find("traceback", 1, true), res.stderr)
    assert.is_nil(res.stderr:find("attempt to", 1, true), res.stderr)
    assert.is_nil(res.stderr:find("is not one of kind", 1, true), res.stderr)
  end

  describe("hands over only what the direct path would resolve (A, E)", function()
    it("never reaches the proxy's own /_connrt/, another connection or another path", function()
      for _, args in ipairs({
        { "request", "_connrt", "/health" },
        { "request", "_connrt", "/token/keyed" },
        { "request", "keyed/..", "/keyed/me" },
        { "request", "keyed?a=b", "/keyed/me" },
        { "request", "keyed/keyed", "/me" },
        { "request", "..", "/keyed/me" },
        { "request", "", "/keyed/me" },
        { "request", "keyed", "/keyed/me with space" },
        { "request", "keyed", "/keyed/me" },
      }) do
        local direct = h.connrt(args, { env = { CONNRT_HOME = home }, timeout = 60 })
        local via = run(args, p.info.socket)
        local what = table.concat(args, " ")
        assert.equal(direct.code, via.code, what .. ": " .. via.stderr)
        assert.equal(direct.stdout, via.stdout, what)
        assert.is_nil(via.stdout:find("connections", 1, true), what)
      end
    end)

    it("sends a header that means something to the proxy or the framing the direct path's way", function()
      for _, args in ipairs({
        { "request", "keyed", "/keyed/me", "-H", "Connrt-Target: " .. api.base .. "/keyed/me" },
        { "request", "keyed", "POST", "/keyed/me", "-H", "Connrt-Json: 1", "-d", "notjson" },
        { "request", "keyed", "/keyed/me", "-H", "Content-Length: 5" },
        { "request", "keyed", "POST", "/keyed/me", "-H", "Transfer-Encoding: chunked", "-d", "x" },
        { "request", "keyed", "/keyed/me", "-H", "Host: evil.example" },
        { "request", "keyed", "/keyed/me", "-H", "Connection: keep-alive" },
        { "request", "keyed", "/keyed/me", "-H", "X-Two: a\r\nConnrt-Target: http://evil.example/" },
      }) do
        local direct = h.connrt(args, { env = { CONNRT_HOME = home }, timeout = 60 })
        local via = run(args, p.info.socket)
        local what = table.concat(args, " ")
        no_traceback(via)
        assert.equal(direct.code, via.code, what .. ": " .. via.stderr .. " / direct: " .. direct.stderr)
        assert.equal(direct.stdout, via.stdout, what)
      end
    end)

    it("shows no header of its connection to the proxy, only the upstream's own (--json)", function()
      local via = run({ "--json", "request", "keyed", "/keyed/me" }, p.info.socket)
      local direct = h.connrt({ "--json", "request", "keyed", "/keyed/me" }, { env = { CONNRT_HOME = home } })
      assert.equal(0, via.code, via.stderr)
      local doc, ddoc = cjson.decode(via.stdout), cjson.decode(direct.stdout)
      assert.equal(200, doc.status)
      assert.equal("Key Holder", doc.body.name)
      -- the upstream's Connection (to the proxy, as to connrt directly), not the proxy's
      -- "close" to this process
      assert.equal(ddoc.headers.connection, doc.headers.connection)
      assert.not_equal("close", doc.headers.connection)
      for name in pairs(doc.headers) do assert.is_nil(name:find("^connrt%-"), name) end
    end)

    it("the proxy answers none of its own paths for a reserved or dot-segment connection name", function()
      for _, case in ipairs({ { "/../_connrt/health", {} }, { "/./_connrt/health", {} },
          { "/_connrt/health", { "-X", "POST" } } }) do
        local args = { "--path-as-is" }
        for _, a in ipairs(case[2]) do args[#args + 1] = a end
        local code, body = proxies.curl(p, case[1], { args = args })
        assert.equal(404, code, case[1])
        assert.is_nil(body:find("keyed", 1, true), case[1])
        assert.matches("no connection in the path", body, 1, true)
      end
    end)
  end)

  describe("a hostile proxy's answer (B)", function()
    it("is a network error naming the socket unless it is one of the proxy's errors", function()
      for _, case in ipairs({ { "failed", "42" }, { "failed", "true" }, { "ok", '{"message":"m"}' },
          { "interrupted", '{"message":"m"}' }, { "memory", '{"message":"m"}' }, { "failed", '{"message":{"a":1}}' },
          { "failed", '{"message":"m","reason":{}}' }, { "failed", "not json" } }) do
        local sock, stop = answering(("HTTP/1.1 500 Oops\r\nConnrt-Error: %s\r\nContent-Length: %d\r\n\r\n%s"):format(
          case[1], #case[2], case[2]))
        local res = run({ "request", "keyed", "/keyed/me" }, sock)
        stop()
        local what = case[1] .. " " .. case[2]
        no_traceback(res)
        assert.equal(6, res.code, what .. ": " .. res.stderr)
        assert.matches("CONNRT_PROXY " .. sock, res.stderr, 1, true)
        assert.is_nil(res.stderr:find("table: 0x", 1, true), what)
        assert.equal("", res.stdout, what)
      end
    end)

    it("shows its own URL, with parts hidden at most, whatever URL the proxy says to show", function()
      for shown, want in pairs({
        ["/keyed/me?q=[redacted]"] = "/keyed/me?q=[redacted]",
        ["/keyed/[redacted]?q=x"] = "/keyed/[redacted]?q=x",
        ["/elsewhere"] = "/keyed/me?q=x",
        ["/keyed/me?q=x\27[2J"] = "/keyed/me?q=x",
        ["[redacted]evil"] = "/keyed/me?q=x",
        ["/keyed/me?q=x[redacted]more"] = "/keyed/me?q=x",
      }) do
        local sock, stop = answering("HTTP/1.1 200 OK\r\nConnrt-Shown: body\r\nConnrt-Shown-Url: " .. shown
          .. "\r\nContent-Length: 2\r\n\r\nok")
        local res = run({ "request", "keyed", "/keyed/me?q=x" }, sock)
        stop()
        no_traceback(res)
        assert.equal(0, res.code, res.stderr)
        assert.equal("200 " .. want .. "\n", res.stderr, shown)
      end
    end)

    it("takes an answer only as the upstream's rendered for the output asked, and never sends it again", function()
      for _, case in ipairs({ { "200 OK", "" }, { "302 Found", "" }, { "500 Oops", "" },
          { "200 OK", "Connrt-Shown: json\r\n" }, { "200 OK", "Connrt-Shown: body\r\n" } }) do
        local sock, stop = answering(("HTTP/1.1 %s\r\n%sContent-Length: 2\r\n\r\nok"):format(case[1], case[2]))
        local before = #api.log()
        local res = run({ "request", "keyed", "POST", "/keyed/me", "-d", "x=1", "-i" }, sock)
        stop()
        no_traceback(res)
        assert.equal(6, res.code, case[1] .. ": " .. res.stderr)
        assert.matches("not an answer of connrt proxy", res.stderr, 1, true)
        assert.is_nil(res.stderr:find("going direct", 1, true))
        assert.equal("", res.stdout)
        assert.equal(before, #api.log())
      end
      -- the refusals of the proxy's own HTTP parser (nothing was sent): the direct path
      local sock, stop = answering("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\nno")
      local res = run({ "request", "keyed", "/keyed/me" }, sock)
      stop()
      assert.equal(0, res.code, res.stderr)
      assert.matches("the proxy refused the request itself (413); going direct", res.stderr, 1, true)
      assert.equal("Key Holder", cjson.decode(res.stdout).name)
    end)

    it("is a network error when its status or length cannot be read as such", function()
      for _, head in ipairs({ "HTTP/1.1 200 OK\r\nConnrt-Shown: body\r\nContent-Length: 1e400",
          "HTTP/1.1 200 OK\r\nConnrt-Shown: body\r\nContent-Length: 1.5",
          "HTTP/1.1 200 OK\r\nConnrt-Shown: body\r\nContent-Length: 0x2",
          "HTTP/1.1 200 OK\r\nConnrt-Shown: body\r\nContent-Length: -3",
          "HTTP/1.1 000 OK\r\nConnrt-Shown: body\r\nContent-Length: 2",
          "HTTP/1.1 101 Switching\r\nConnrt-Shown: body\r\nContent-Length: 2",
          "HTTP/1.1 200 OK\r\nConnrt-Shown: body\r\nContent-Length: 99999999999999999999999",
          "HTTP/1.1 2000 OK\r\nConnrt-Shown: body\r\nContent-Length: 3",
          "HTTP/1.1 200 OK\r\nConnrt-Shown: body\r\nTransfer-Encoding: chunked" }) do
        local sock, stop = answering(head .. "\r\n\r\nabc")
        local res = run({ "request", "keyed", "/keyed/me" }, sock)
        local tok = run({ "token", "keyed" }, sock)
        stop()
        for _, r in ipairs({ res, tok }) do
          no_traceback(r)
          assert.equal(6, r.code, head .. ": " .. r.stderr)
          assert.is_nil(r.stderr:find("internal error", 1, true), r.stderr)
          assert.equal("", r.stdout)
        end
      end
    end)

    it("served by another user: not taken, nothing sent to it, and the command goes direct", function()
      local id = io.popen("id -u")
      local root = id:read("*l") == "0"
      id:close()
      if not root or not os.execute("command -v setpriv >/dev/null") then
        pending("needs root and setpriv, to serve a socket as another user")
        return
      end
      local dir = h.tmpdir()
      os.execute("chmod 0777 " .. h.shell_quote(dir))
      local sock = dir .. "/other.sock"
      -- the script copied where that user can read it, run by the system's python3
      h.write(dir .. "/hostile_proxy.py", h.read(h.ROOT .. "/spec/support/hostile_proxy.py"))
      os.execute(("setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 %s/hostile_proxy.py %s "
        .. "record %s >%s/out 2>&1 & echo $! >%s/pid"):format(dir, h.shell_quote(sock), h.shell_quote(dir .. "/got"),
        dir, dir))
      for _ = 1, 200 do
        if (h.read(dir .. "/out") or ""):find("ready", 1, true) then break end
        sys.sleep(0.05)
      end
      local res = run({ "request", "keyed", "/keyed/me", "-H", "X-Private: p-r-i-v" }, sock)
      local tok = run({ "token", "keyed" }, sock)
      os.execute(("kill %d"):format(tonumber(h.read(dir .. "/pid"))))
      local got, out = h.read(dir .. "/got") or "", h.read(dir .. "/out") or ""
      h.rmdir(dir)
      assert.matches("ready", out, 1, true)
      assert.equal(0, res.code, res.stderr)
      assert.matches("is served by another user (uid 65534), not taken; going direct", res.stderr, 1, true)
      assert.equal("Key Holder", cjson.decode(res.stdout).name)
      -- (a fields connection has no token: the direct path's answer)
      assert.matches("is served by another user (uid 65534), not taken; going direct", tok.stderr, 1, true)
      assert.equal("", got)
    end)

    it("reads only JSON's own numbers in --json-body, and fails when its output cannot be written", function()
      for _, socket in ipairs({ false, p.info.socket }) do
        -- sent as written (cjson would write 14 digits: 1.2345678901235e+19)
        local text = '{"id":12345678901234567890,"f":3.141592653589793,"i":9007199254740993}'
        local sent = run({ "request", "keyed", "POST", "/keyed/me", "--json-body", text }, socket or nil)
        assert.equal(0, sent.code, sent.stderr)
        local log = api.log()
        assert.equal(text, log[#log].body)
        for _, bad in ipairs({ '{"a":0x41}', '[1.]', '{"a":-.5}', '{"a":012}', '["a\tb"]', '{"a":NaN}', '["\255"]' }) do
          local res = run({ "request", "keyed", "POST", "/keyed/me", "--json-body", bad }, socket or nil)
          assert.equal(2, res.code, bad .. ": " .. res.stderr)
          assert.matches("--json-body: not valid JSON", res.stderr, 1, true)
        end
        local dir = h.tmpdir()
        os.execute(("cd %s && CONNRT_HOME=%s %s %s request keyed /keyed/me >/dev/full 2>%s/err; echo $? >%s/rc"):format(
          h.shell_quote(h.ROOT), h.shell_quote(home), socket and ("CONNRT_PROXY=" .. h.shell_quote(socket)) or "",
          h.shell_quote(h.CONNRT), dir, dir))
        local rc, err = h.read(dir .. "/rc"), h.read(dir .. "/err")
        h.rmdir(dir)
        assert.equal("1\n", rc, err)
        assert.matches("cannot write to standard output", err, 1, true)
      end
    end)

    it("the proxy's own controls given twice are refused, nothing sent", function()
      local before = #api.log()
      for _, name in ipairs({ "Connrt-Json", "Connrt-Cli" }) do
        local code, body = proxies.curl(p, "/keyed/keyed/me", { args = { "-X", "POST", "-d", "{}", "-H", name .. ": 1",
          "-H", name .. ": x" } })
        assert.equal(400, code, body)
        assert.matches(name .. " given 2 times", body, 1, true)
      end
      assert.equal(before, #api.log())
    end)

    it("takes the proxy's own errors with their kind and reason", function()
      local body = '{"error":"usage","message":"give the URL once","reason":"ambiguous"}'
      local sock, stop = answering(("HTTP/1.1 400 Bad\r\nConnrt-Error: usage\r\nContent-Length: %d\r\n\r\n%s"):format(
        #body, body))
      local res = run({ "--json", "request", "keyed", "/keyed/me" }, sock)
      stop()
      assert.equal(2, res.code, res.stderr)
      assert.matches('"reason":"ambiguous"', res.stderr, 1, true)
      assert.matches("give the URL once", res.stderr, 1, true)
    end)
  end)

  describe("a stuck proxy (C)", function()
    it("that never accepts: the connect gives up and the command goes direct with a notice", function()
      local sock, stop = hostile("stuck")
      local res = run({ "request", "keyed", "/keyed/me" }, sock)
      stop()
      assert.equal(0, res.code, res.stderr)
      assert.matches("^connrt: CONNRT_PROXY=[^\n]*; going direct\n200 /keyed/me\n$", res.stderr)
      assert.equal("Key Holder", cjson.decode(res.stdout).name)
    end)

    it("that reads the request and says nothing: a network error, not the direct path", function()
      local sock, stop = hostile("close")
      local before = #api.log()
      local res = run({ "request", "keyed", "/keyed/me" }, sock)
      stop()
      no_traceback(res)
      assert.equal(6, res.code, res.stderr)
      assert.is_nil(res.stderr:find("going direct", 1, true))
      assert.equal(before, #api.log())
    end)

    it("that trickles its answer: one deadline for the whole exchange", function()
      local sock, stop = hostile("trickle")
      -- via_proxy in a Lua of its own, its deadline made short (600 s in the command)
      local code = ([[package.path = "lua/?.lua;" .. package.path
        package.cpath = %q .. "/?.so;" .. package.cpath
        local via = require("connrt.via_proxy")
        via.TIMEOUT = 1
        local ok, err = pcall(via.exchange, %q, "GET /keyed/me HTTP/1.1\r\nHost: x", nil, 1000)
        io.write(tostring(ok), " ", tostring(type(err) == "table" and err.kind), " ",
          tostring(type(err) == "table" and err.reason))]]):format(h.BUILD, sock)
      h.write(tmp .. "/trickle.lua", code)
      local dir = h.tmpdir()
      os.execute(("cd %s && timeout -s KILL %d %s %s >%s/out 2>&1"):format(h.shell_quote(h.ROOT), 60 * h.SLOW, h.LUA,
        h.shell_quote(tmp .. "/trickle.lua"), dir))
      local out = h.read(dir .. "/out")
      h.rmdir(dir)
      stop()
      assert.equal("false network timeout", out)
    end)
  end)

  describe("a proxy's answer is bounded (D)", function()
    it("in its headers' length, read in linear time", function()
      local sock, stop = answering("HTTP/1.1 200 OK\r\nX-A: a" .. (" "):rep(250000) .. "b\r\nConnrt-Shown: include"
        .. "\r\nContent-Length: 2\r\n\r\nok")
      local res = run({ "request", "keyed", "/keyed/me", "--include" }, sock, { timeout = 60 })
      stop()
      assert.equal(0, res.code, res.stderr)
      assert.equal("ok", res.stdout)
    end)

    it("in its body's size, within the direct path's limits, and never held whole", function()
      -- not the upstream's: refused at its head, the body never read
      local sock, stop = hostile("big", tostring(80 * 1024 * 1024))
      local res = run({ "request", "keyed", "/keyed/me" }, sock, { max_rss = true })
      local tok = run({ "token", "keyed" }, sock, { max_rss = true })
      stop()
      no_traceback(res)
      assert.equal(6, res.code, res.stderr)
      assert.is_true(res.max_rss_kb < 100 * 1024, tostring(res.max_rss_kb))
      assert.equal(5, tok.code, tok.stderr)
      assert.matches("larger than connrt takes", tok.stderr, 1, true)
      assert.equal("", tok.stdout)
      assert.is_true(tok.max_rss_kb < 100 * 1024, tostring(tok.max_rss_kb))
      -- the upstream's, rendered: printed as it comes, in memory far below its size
      sock, stop = hostile("bigshown", tostring(48 * 1024 * 1024))
      res = run({ "request", "keyed", "/keyed/me" }, sock, { max_rss = true })
      stop()
      assert.equal(0, res.code, res.stderr)
      assert.equal(48 * 1024 * 1024, #res.stdout)
      -- (AddressSanitizer keeps freed memory in quarantine: its peak says nothing there)
      if not os.getenv("ASAN_OPTIONS") then assert.is_true(res.max_rss_kb < 40 * 1024, tostring(res.max_rss_kb)) end
    end)

    it("rendered in a worker that serves the others meanwhile", function()
      -- `connrt request --json` of a JSON body of 300,000 strings with percent and JSON
      -- escapes: seconds of checking each token in the proxy's one worker, which lets its
      -- other requests in between; as it came, and (a NaN first: not JSON as RFC 8259
      -- writes it) written again from what cjson read
      for round, case in ipairs({ { "[", '"body":["ab%2541\\/cd","ab%2541\\/cd",' },
          { "[NaN,", '"body":[null,"ab%2541\\/cd","ab%2541\\/cd",' } }) do
        local dir = h.tmpdir()
        local target = ("/repeat?round=%d&type=application/json&head=%s&unit=%%22ab%%252541%%5C%%2Fcd%%22%%2C"
          .. "&n=300000&tail=1]"):format(round, case[1])
        os.execute(("cd %s && env CONNRT_HOME=%s CONNRT_PROXY=%s %s request keyed GET %s --json >%s/out 2>%s/err; "
          .. "echo $? >%s/rc.tmp; mv %s/rc.tmp %s/rc) &"):format(h.shell_quote(h.ROOT), h.shell_quote(home),
          h.shell_quote(tmp .. "/proxy.sock"), h.shell_quote(h.CONNRT), h.shell_quote(target), dir, dir, dir, dir, dir)
          :gsub("^cd", "(cd"))
        -- once the upstream has it, and a moment for its answer to come: it is being checked
        local asked = false
        for _ = 1, 600 do
          asked = run({ "request", "keyed", "GET", "/log" }, tmp .. "/proxy.sock").stdout:find("round=" .. round, 1, true)
          if asked then break end
          sys.sleep(0.05)
        end
        assert.truthy(asked, "the upstream was never asked")
        sys.sleep(0.3)
        local res = run({ "request", "keyed", "/keyed/me" }, tmp .. "/proxy.sock")
        assert.equal(0, res.code, res.stderr)
        assert.is_nil(h.read(dir .. "/rc"), case[1] .. ": the small request waited for the large one: "
          .. tostring(h.read(dir .. "/err")))
        for _ = 1, 1200 do
          if h.read(dir .. "/rc") then break end
          sys.sleep(0.1)
        end
        assert.equal("0\n", h.read(dir .. "/rc"), h.read(dir .. "/err"))
        assert.matches(case[2], h.read(dir .. "/out"), 1, true)
        h.rmdir(dir)
      end
    end)

    it("cut short: fewer bytes than its Content-Length is a network error, never part of a token", function()
      local sock, stop = answering("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nPARTIALTOKEN")
      local res = run({ "token", "keyed" }, sock)
      local req = run({ "request", "keyed", "/keyed/me" }, sock)
      stop()
      no_traceback(res)
      assert.equal(6, res.code, res.stderr)
      assert.equal("", res.stdout)
      assert.matches("the answer was cut short (12 of its 100 bytes)", res.stderr, 1, true)
      assert.equal(6, req.code, req.stderr)
      assert.equal("", req.stdout)
    end)

    it("and a token is one printable line, as the direct path takes one", function()
      for _, body in ipairs({ "\27[31mevil\n", "one\ntwo\n", "\n", "", "tab\there\n" }) do
        local sock, stop = answering(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"):format(
          #body, body))
        local res = run({ "token", "keyed" }, sock)
        stop()
        no_traceback(res)
        assert.equal(6, res.code, ("%q: %s"):format(body, res.stderr))
        assert.equal("", res.stdout)
        assert.matches("not a token", res.stderr, 1, true)
      end
      local sock, stop = answering("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ntok-1234\n")
      local res = run({ "token", "keyed" }, sock)
      stop()
      assert.equal(0, res.code, res.stderr)
      assert.equal("tok-1234\n", res.stdout)
    end)
  end)

  describe("takes only calls that are its own to make, as the direct path would make them (review 20)", function()
    -- (the echo server's answer names the port its client sent from: not compared)
    local function same(args, via_env, what)
      local direct = h.connrt(args, { env = via_env, timeout = 60 })
      local env = { CONNRT_PROXY = p.info.socket }
      for k, v in pairs(via_env) do env[k] = v end
      local via = h.connrt(args, { env = env, timeout = 60 })
      no_traceback(via)
      assert.equal(direct.code, via.code, what .. ": " .. via.stderr .. " / direct: " .. direct.stderr)
      direct.stdout, via.stdout = direct.stdout:gsub(',"port":%d+', ""), via.stdout:gsub(',"port":%d+', "")
      assert.equal(direct.stdout, via.stdout, what)
      return direct, via
    end

    it("for another store or key than the command's it goes direct, with a notice", function()
      local empty = h.tmpdir()
      local key = h.read(home .. "/key"):match("^(%x+)")
      local wrong = ("0"):rep(64)
      for _, case in ipairs({
          { "--store", { "--store", empty, "request", "keyed", "/keyed/me" }, { CONNRT_HOME = home } },
          { "CONNRT_HOME", { "request", "keyed", "/keyed/me" }, { CONNRT_HOME = empty } },
          { "CONNRT_STORE", { "token", "keyed" }, { CONNRT_HOME = home, CONNRT_STORE = empty } },
          { "a wrong CONNRT_KEY", { "request", "keyed", "/keyed/me" }, { CONNRT_HOME = home, CONNRT_KEY = wrong } },
          { "a CONNRT_KEY that is no key", { "token", "keyed" }, { CONNRT_HOME = home, CONNRT_KEY = "zz" } },
          { "a wrong CONNRT_KEY beside the right CONNRT_KEY_FILE", { "request", "keyed", "/keyed/me" },
            { CONNRT_HOME = home, CONNRT_KEY = wrong, CONNRT_KEY_FILE = home .. "/key" } } }) do
        local direct, via = same(case[2], case[3], case[1])
        assert.matches("going direct", via.stderr, 1, true)
        assert.is_nil(direct.stderr:find("going direct", 1, true))
      end
      h.rmdir(empty)
      -- the key the proxy holds, given as CONNRT_KEY: the same key, served
      local served = run({ "request", "keyed", "/keyed/me" }, p.info.socket)
      local same_key = h.connrt({ "request", "keyed", "/keyed/me" }, { env = { CONNRT_HOME = home, CONNRT_KEY = key,
        CONNRT_PROXY = p.info.socket } })
      assert.equal(0, same_key.code, same_key.stderr)
      assert.equal(served.stdout, same_key.stdout)
      assert.is_nil(same_key.stderr:find("going direct", 1, true), same_key.stderr)
      -- a key file or store directory open to others: the direct path refuses it (and the
      -- command goes there), whatever the proxy opened before
      -- (the mode put back before any check, so a failure leaves the store as it was)
      for _, case in ipairs({ { home .. "/key", "0644", "0600" }, { home, "0755", "0700" } }) do
        assert.is_true(os.execute(("chmod %s %s"):format(case[2], h.shell_quote(case[1]))))
        local args = { "request", "keyed", "/keyed/me" }
        local direct = h.connrt(args, { env = { CONNRT_HOME = home }, timeout = 60 })
        local via = h.connrt(args, { env = { CONNRT_HOME = home, CONNRT_PROXY = p.info.socket }, timeout = 60 })
        assert.is_true(os.execute(("chmod %s %s"):format(case[3], h.shell_quote(case[1]))))
        assert.equal(8, direct.code, direct.stderr)
        assert.equal(direct.code, via.code, via.stderr)
        assert.equal(direct.stdout, via.stdout)
        assert.matches("going direct", via.stderr, 1, true)
      end
      -- a proxy that has its key from CONNRT_KEY serves a command with that key, in hex or
      -- in base64, and refuses one with another
      local sock = tmp .. "/keyed-env.sock"
      local q = proxies.start(home, { "--socket", sock, "--workers", "1" }, { CONNRT_KEY = key })
      local b64 = require("connrt.crypto").b64encode(require("connrt.crypto").unhex(key))
      for _, k in ipairs({ key, b64 }) do
        local res = h.connrt({ "request", "keyed", "/keyed/me" }, { env = { CONNRT_HOME = home, CONNRT_KEY = k,
          CONNRT_PROXY = sock } })
        assert.equal(0, res.code, res.stderr)
        assert.is_nil(res.stderr:find("going direct", 1, true), res.stderr)
      end
      -- a command on the key file, which holds that key: the same key, served too
      local res = h.connrt({ "request", "keyed", "/keyed/me" }, { env = { CONNRT_HOME = home, CONNRT_PROXY = sock } })
      assert.equal(0, res.code, res.stderr)
      assert.is_nil(res.stderr:find("going direct", 1, true), res.stderr)
      q.stop()
    end)

    it("for other settings in the command's environment than the proxy's it goes direct (review 27)", function()
      local args = { "request", "keyed", "/keyed/me" }
      for _, case in ipairs({
          -- another CA bundle: the command's trust, not the proxy's
          { "CONNRT_CA_BUNDLE", "/nonexistent/ca.pem" },
          -- a sandbox limit the direct path refuses (exit 2)
          { "CONNRT_CONNECTOR_CPU", "999999" },
          -- libcurl's proxy variable: the direct path sends through it (here nothing listens)
          { "http_proxy", "http://127.0.0.1:9" },
          { "CONNRT_REFRESH_MARGIN", "30" },
          -- a libpq variable, listed by prefix
          { "PGSSLMODE", "verify-full" } }) do
        local direct, via = same(args, { CONNRT_HOME = home, [case[1]] = case[2] }, case[1])
        assert.matches("(other_settings); going direct", via.stderr, 1, true)
        assert.is_nil(direct.stderr:find("going direct", 1, true))
      end
      -- (the cases can fail: two of them are the direct path's errors)
      assert.equal(2, h.connrt(args, { env = { CONNRT_HOME = home, CONNRT_CONNECTOR_CPU = "999999" } }).code)
      assert.equal(6, h.connrt(args, { env = { CONNRT_HOME = home, http_proxy = "http://127.0.0.1:9" } }).code)
      -- the proxy's own settings, and an empty variable as an unset one: served
      local q = proxies.start(home, { "--socket", tmp .. "/settings.sock", "--workers", "1" },
        { CONNRT_REFRESH_MARGIN = "30", PGSSLMODE = "verify-full" })
      for _, env in ipairs({ { CONNRT_REFRESH_MARGIN = "30", PGSSLMODE = "verify-full", http_proxy = "" } }) do
        env.CONNRT_HOME, env.CONNRT_PROXY = home, q.info.socket
        local res = h.connrt(args, { env = env })
        assert.equal(0, res.code, res.stderr)
        assert.is_nil(res.stderr:find("going direct", 1, true), res.stderr)
      end
      assert.equal(0, q.stop())
    end)

    it("compares what the store and key files hold, not only where they are: one replaced under it goes direct", function()
      local args = { "request", "keyed", "/keyed/me" }
      -- (the two runs only: checked by `agree` once the files are put back, so a failure
      -- leaves the store as it was)
      local function both()
        return h.connrt(args, { env = { CONNRT_HOME = home }, timeout = 60 }), run(args, p.info.socket)
      end
      local function agree(what, direct, via)
        assert.equal(direct.code, via.code, what .. ": " .. via.stderr)
        assert.equal(direct.stdout, via.stdout, what)
      end
      local direct, via = both()
      agree("as started", direct, via)
      assert.equal(0, via.code, via.stderr)
      assert.is_nil(via.stderr:find("going direct", 1, true), via.stderr)
      -- the key file rewritten in place with the key it held (its times and inode changed):
      -- the same key, served
      local key_text = h.read(home .. "/key")
      h.write(home .. "/key", key_text)
      direct, via = both()
      agree("the same key written again", direct, via)
      assert.is_nil(via.stderr:find("going direct", 1, true), via.stderr)
      -- the key file replaced by another key, not by `connrt rekey`: the direct path cannot
      -- open the store with it (exit 8), and the command says so too, not what the
      -- proxy's old key opens (put back before any check)
      local aside = tmp .. "/key-aside"
      assert.is_true(os.rename(home .. "/key", aside))
      h.write(home .. "/key", ("1f"):rep(32) .. "\n")
      os.execute("chmod 600 " .. h.shell_quote(home .. "/key"))
      direct, via = both()
      assert.is_true(os.rename(aside, home .. "/key"))
      agree("another key in the key file", direct, via)
      assert.equal(8, direct.code, direct.stderr)
      assert.matches("(other_store); going direct", via.stderr, 1, true)
      -- the store directory replaced by a copy in which the connection was deleted: the
      -- command goes to the copy, as the direct path does (put back before any check)
      local copy, old = tmp .. "/home-copy", tmp .. "/home-old"
      assert.is_true(os.execute(("cp -a %s %s"):format(h.shell_quote(home), h.shell_quote(copy))))
      local del = h.connrt({ "delete", "keyed" }, { env = { CONNRT_HOME = copy } })
      assert.equal(0, del.code, del.stderr)
      assert.is_true(os.rename(home, old))
      assert.is_true(os.rename(copy, home))
      direct, via = both()
      assert.is_true(os.rename(home, copy))
      assert.is_true(os.rename(old, home))
      h.rmdir(copy)
      agree("the store directory replaced", direct, via)
      assert.not_equal(0, direct.code)
      assert.matches("(other_store); going direct", via.stderr, 1, true)
      -- put back: served again, by the proxy
      direct, via = both()
      agree("put back", direct, via)
      assert.equal(0, via.code, via.stderr)
      assert.is_nil(via.stderr:find("going direct", 1, true), via.stderr)
    end)

    it("takes up a `connrt rekey` for the command too: served with the new key, not sent direct", function()
      local rhome = h.tmpdir()
      local path = tmp .. "/keyed-rekey.lua"
      h.write(path, h.keyed_connector(api.base))
      local res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = { CONNRT_HOME = rhome } })
      assert.equal(0, res.code, res.stderr)
      local sock = tmp .. "/rekey.sock"
      local q = proxies.start(rhome, { "--socket", sock, "--workers", "1" })
      local env = { CONNRT_HOME = rhome, CONNRT_PROXY = sock }
      res = h.connrt({ "request", "keyed", "/keyed/me" }, { env = env })
      assert.equal(0, res.code, res.stderr)
      res = h.connrt({ "rekey" }, { env = { CONNRT_HOME = rhome, CONNRT_NEW_KEY = ("5e"):rep(32) } })
      assert.equal(0, res.code, res.stderr)
      for _ = 1, 2 do
        res = h.connrt({ "request", "keyed", "/keyed/me" }, { env = env })
        assert.equal(0, res.code, res.stderr)
        assert.is_nil(res.stderr:find("going direct", 1, true), res.stderr)
      end
      assert.equal(0, q.stop())
      h.rmdir(rhome)
    end)

    it("a store rekeyed under the CONNRT_KEY the proxy and the command share: the direct path's error", function()
      local rhome = h.tmpdir()
      local path = tmp .. "/keyed-rekey-env.lua"
      h.write(path, h.keyed_connector(api.base))
      local old_key = ("3c"):rep(32)
      local env = { CONNRT_HOME = rhome, CONNRT_KEY = old_key }
      local res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = env })
      assert.equal(0, res.code, res.stderr)
      local sock = tmp .. "/rekey-env.sock"
      local q = proxies.start(rhome, { "--socket", sock, "--workers", "1" }, { CONNRT_KEY = old_key })
      local via_env = { CONNRT_HOME = rhome, CONNRT_KEY = old_key, CONNRT_PROXY = sock }
      res = h.connrt({ "request", "keyed", "/keyed/me" }, { env = via_env })
      assert.equal(0, res.code, res.stderr)
      assert.is_nil(res.stderr:find("going direct", 1, true), res.stderr)
      res = h.connrt({ "rekey" }, { env = { CONNRT_HOME = rhome, CONNRT_KEY = old_key, CONNRT_NEW_KEY = ("4d"):rep(32) } })
      assert.equal(0, res.code, res.stderr)
      -- the old key opens the store no more, through the proxy or not: exit 8 and the
      -- direct path's message, after the notice
      for _, args in ipairs({ { "request", "keyed", "/keyed/me" }, { "token", "keyed" } }) do
        local direct = h.connrt(args, { env = env })
        local via = h.connrt(args, { env = via_env })
        assert.equal(8, direct.code, direct.stderr)
        assert.equal(direct.code, via.code, via.stderr)
        assert.equal(direct.stdout, via.stdout)
        assert.matches("(other_store); going direct", via.stderr, 1, true)
        assert.equal(direct.stderr, (via.stderr:gsub("^connrt: CONNRT_PROXY=[^\n]*going direct\n", "")))
      end
      assert.equal(0, q.stop())
      h.rmdir(rhome)
    end)

    it("names each store and key apart, one store however it is spelled, and no secret (store.selection)", function()
      local script = tmp .. "/selection.lua"
      h.write(script, 'io.write(tostring(require("connrt.store").selection()))')
      local dir = h.tmpdir()
      -- (a store directory is told by its data file, a key file by the key it holds)
      local KEY_A, KEY_B, KEY_C, KEY_D = ("ab"):rep(32), ("cd"):rep(32), ("12"):rep(32), ("34"):rep(32)
      os.execute(("mkdir -p %s/a %s/b && ln -s a %s/link && echo %s >%s/a/key && echo %s >%s/b/key && touch %s/a/data.mdb "
        .. "%s/b/data.mdb && chmod 700 %s/a %s/b && chmod 600 %s/a/key %s/b/key %s/a/data.mdb %s/b/data.mdb"):format(dir,
        dir, dir, KEY_C, dir, KEY_D, dir, dir, dir, dir, dir, dir, dir, dir, dir))
      local b64 = require("connrt.crypto").b64encode(require("connrt.crypto").unhex(KEY_A))
      local PG = "postgres://u:Pg-S3cretPass@db.example/connrt?sslmode=require"
      local function selection(env)
        local res = h.connrt({ "script", script }, { env = env })
        assert.equal(0, res.code, res.stderr)
        assert.is_nil(res.stdout:find("S3cret", 1, true), res.stdout)
        assert.is_nil(res.stdout:lower():find(KEY_A, 1, true), res.stdout)
        return res.stdout
      end
      -- each of these opens another store, or with another key or role: all differ
      local apart = {
        { CONNRT_HOME = dir .. "/a" }, { CONNRT_HOME = dir .. "/b" }, { CONNRT_HOME = dir .. "/a", CONNRT_KEY = KEY_A },
        { CONNRT_HOME = dir .. "/a", CONNRT_KEY = KEY_B }, { CONNRT_HOME = dir .. "/a", CONNRT_KEY_FILE = dir .. "/b/key" },
        { CONNRT_STORE = PG, CONNRT_KEY = KEY_A }, { CONNRT_STORE = PG:gsub("S3cret", "S3cret2"), CONNRT_KEY = KEY_A },
        { CONNRT_STORE = PG:gsub("u:", "v:"), CONNRT_KEY = KEY_A },
        { CONNRT_STORE = PG .. "&options=-c%20search_path%3Dother", CONNRT_KEY = KEY_A },
        { CONNRT_STORE = PG, CONNRT_KEY = KEY_A, PGUSER = "other" },
        { CONNRT_STORE = PG, CONNRT_KEY = KEY_A, PGOPTIONS = "-c search_path=other" },
        { CONNRT_STORE = PG, CONNRT_KEY = KEY_A, PGPASSWORD = "Pg-S3cretOther" },
        { CONNRT_STORE = "postgresql://u@/connrt?host=/run/a", CONNRT_KEY = KEY_A },
        { CONNRT_STORE = "postgresql://u@/connrt?host=/run/b", CONNRT_KEY = KEY_A },
        { CONNRT_STORE = "postgresql://u:Pg-S3cret?Pass@db.example/connrt", CONNRT_KEY = KEY_A },
      }
      local seen = {}
      for i, env in ipairs(apart) do
        local sel = selection(env)
        assert.is_true(sel ~= "nil", i .. ": " .. sel)
        assert.is_nil(seen[sel], ("%d and %s: %s"):format(i, tostring(seen[sel]), sel))
        seen[sel] = i
      end
      -- each of these is the same store and key: all agree (CONNRT_KEY is the key even
      -- where CONNRT_KEY_FILE is set, as the store takes it)
      for _, group in ipairs({
          { { CONNRT_HOME = dir .. "/a" }, { CONNRT_HOME = dir .. "/link" }, { CONNRT_HOME = dir .. "/a/" },
            { CONNRT_HOME = dir .. "/b/../a/." }, { CONNRT_HOME = dir .. "/a", CONNRT_KEY_FILE = dir .. "/link/key" },
            { CONNRT_STORE = dir .. "/a" } },
          { { CONNRT_HOME = dir .. "/a", CONNRT_KEY = KEY_A }, { CONNRT_HOME = dir .. "/a", CONNRT_KEY = b64 },
            { CONNRT_HOME = dir .. "/a", CONNRT_KEY = KEY_A:upper(), CONNRT_KEY_FILE = dir .. "/b/key" } },
          -- a key is the key whether it comes from CONNRT_KEY or a key file
          { { CONNRT_HOME = dir .. "/a", CONNRT_KEY_FILE = dir .. "/b/key" }, { CONNRT_HOME = dir .. "/a", CONNRT_KEY = KEY_D } },
        }) do
        local first = selection(group[1])
        for i = 2, #group do assert.equal(first, selection(group[i]), i) end
      end
      -- a directory replaced by another (its data file is another file), a key file
      -- rewritten with another key: another selection
      local before_a = selection({ CONNRT_HOME = dir .. "/a" })
      assert.is_true(os.execute(("cp -a %s/a %s/a2 && mv %s/a %s/a1 && mv %s/a2 %s/a"):format(dir, dir, dir, dir, dir, dir)))
      local replaced = selection({ CONNRT_HOME = dir .. "/a" })
      assert.not_equal(before_a, replaced)
      h.write(dir .. "/a/key", KEY_A .. "\n")
      assert.not_equal(replaced, selection({ CONNRT_HOME = dir .. "/a" }))
      -- none that cannot be told: a store, data file or key file that does not exist, a
      -- key that is none
      h.write(dir .. "/b/bad-key", "k\n")
      os.execute(("chmod 600 %s/b/bad-key && mkdir -m 700 %s/empty"):format(dir, dir))
      for _, env in ipairs({ { CONNRT_HOME = dir .. "/none" }, { CONNRT_HOME = dir .. "/a", CONNRT_KEY = "zz" },
          { CONNRT_HOME = dir .. "/a", CONNRT_KEY_FILE = dir .. "/none" },
          { CONNRT_HOME = dir .. "/a", CONNRT_KEY_FILE = dir .. "/b/bad-key" }, { CONNRT_HOME = dir .. "/empty" } }) do
        assert.equal("nil", selection(env))
      end
      h.rmdir(dir)
    end)

    it("a connection marked as needing reconnection, or one it does not serve: the direct path's answer", function()
      local path = tmp .. "/marked.lua"
      h.write(path, (h.keyed_connector(api.base):gsub('id = "keyed"', 'id = "marked"')
        :gsub('test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}",', 'test = "/echo", name = "marked", '
          .. 'unique_id = "marked", hooks = { expired = function(r) return r.status == 403 end },')))
      local env = { CONNRT_HOME = home }
      local res = h.connrt({ "run", path, "--field", "api_key=" .. API_KEY }, { env = env })
      assert.equal(0, res.code, res.stderr)
      -- the hook calls the key expired: a key cannot be refreshed, so the connection is
      -- marked as needing reconnection, and the key still works
      res = h.connrt({ "request", "marked", "/repeat?status=403" }, { env = env })
      assert.equal(5, res.code, res.stderr)
      local direct = same({ "request", "marked", "/keyed/me" }, env, "marked")
      assert.equal(0, direct.code, direct.stderr)
      -- a proxy that serves only `keyed`
      local sock = tmp .. "/only-keyed.sock"
      local q = proxies.start(home, { "--socket", sock, "--workers", "1", "--connection", "keyed" })
      for _, args in ipairs({ { "request", "marked", "/keyed/me" }, { "token", "marked" } }) do
        local d = h.connrt(args, { env = env })
        local via = h.connrt(args, { env = { CONNRT_HOME = home, CONNRT_PROXY = sock } })
        assert.equal(d.code, via.code, via.stderr)
        assert.equal(d.stdout, via.stdout)
        assert.matches("(not_served); going direct", via.stderr, 1, true)
      end
      q.stop()
    end)

    it("waits for an upstream as long as the direct path does, whatever the proxy's --timeout", function()
      local sock = tmp .. "/short.sock"
      local q = proxies.start(home, { "--socket", sock, "--workers", "1", "--timeout", "1" })
      local res = h.connrt({ "request", "keyed", "/slow" }, { env = { CONNRT_HOME = home, CONNRT_PROXY = sock } })
      q.stop()
      assert.equal(0, res.code, res.stderr)
      assert.equal("slow\n", res.stdout)
    end)

    it("sends an empty body as the direct path does, declared (Content-Length: 0)", function()
      for _, method in ipairs({ "PUT", "PATCH", "DELETE", "POST" }) do
        local direct = same({ "request", "keyed", method, "/echo", "-d", "" }, { CONNRT_HOME = home }, method)
        assert.equal(0, direct.code, direct.stderr)
        assert.matches('"content-length":"0"', direct.stdout, 1, true)
      end
    end)

    it("takes Connrt-Cli on its unix socket only: a TCP client keeps to the proxy's limits", function()
      local q = proxies.start(home, { "--listen", "127.0.0.1:0", "--workers", "1" })
      local before = #api.log()
      local st, body = proxies.curl(q, "/keyed/echo", { headers = { "Connrt-Cli: body" } })
      q.stop()
      assert.equal(400, st, body)
      assert.matches("Connrt-Cli is for `connrt request` through the proxy's unix socket", body, 1, true)
      assert.equal(before, #api.log())
    end)

    it("sends the headers the direct path sends: one named close, a value with blanks at its ends", function()
      for _, hdr in ipairs({ "close: 1", "X-T: a  ", "X-T:  a", "X-T: a\t" }) do
        local direct = same({ "request", "keyed", "/echo", "-H", hdr }, { CONNRT_HOME = home }, hdr)
        assert.equal(0, direct.code, direct.stderr)
        assert.matches(hdr:match("^[^:]+"):lower(), direct.stdout:lower(), 1, true)
      end
    end)
  end)
end)
