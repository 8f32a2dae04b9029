-- luacheck: std +busted
-- `connrt proxy` (lua/connrt/proxy.lua, src/api/httpd.c), with real processes: curl,
-- Python's urllib and Node's fetch through the proxy to upstream APIs on loopback that
-- record every request (spec/support/echo-server.js), the real authorization server for
-- refreshes; refusals of every kind with the upstream's log proving nothing was sent.
local cjson = require("cjson")
local h = require("support.helpers")
local proxies = require("support.proxy")
local sys = require("connrt.sys")

local API_KEY = "sk-proxy-5ecret-k3y"

describe("connrt proxy (integration) #integration", function()
  local tmp, server, api, other, home, client

  local function grants()
    return cjson.decode(assert(client:request({ url = server.issuer .. "/test/stats" })).body).grants
      .client_credentials or 0
  end

  local function write_connector(name, text)
    local path = tmp .. "/" .. name .. ".lua"
    h.write(path, text)
    return path
  end

  local function machine_connector(id, base)
    return write_connector(id, ([[return {
      id = "%s", auth = "client_credentials", client_auth = "basic",
      token_url = "%s/token", scopes = { "api" },
      test = "/api/whoami", name = "{{client_id}} (%s)", unique_id = "{{client_id}}",
      allowed_urls = { "%s/api" },
      request = { headers = { Authorization = "Bearer {{access_token}}" } },
    }]]):format(id, server.issuer, id, base))
  end

  setup(function()
    tmp = h.tmpdir()
    client = require("connrt.http").client()
    server = h.start_server({ redirect = "http://127.0.0.1:8400/callback", args = "--access-ttl 6" })
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    other = h.start_upstream()
    home = h.tmpdir()
    local res = h.connrt({ "run", write_connector("keyed", h.keyed_connector(api.base)), "--field", "api_key=" .. API_KEY },
      { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    res = h.connrt({ "run", machine_connector("machine", api.base), "--client-id", "connrt-basic" },
      { env = { CONNRT_HOME = home, CONNRT_CLIENT_SECRET = "basic-secret" } })
    assert.equal(0, res.code, res.stderr)
  end)

  teardown(function()
    -- proxies still running (a test failed before its own stop): killed before the
    -- servers stop, so none outlives the spec holding their pipes open
    proxies.stop_all()
    for _, s in ipairs({ server, api, other }) do if s then s.stop() end end
    h.rmdir(home)
    h.rmdir(tmp)
  end)

  -- Starts a proxy on the store `home` (support/proxy.lua); returns { pid, info (its
  -- ready line), err = function() -> its standard error, stop = function(signal) -> exit
  -- status }.
  local function start_proxy(args, env)
    return proxies.start(home, args, env)
  end

  -- curl through the proxy's unix socket; returns status, body, headers text.
  local function curl(p, path, extra)
    local dir = h.tmpdir()
    local args = {}
    for _, a in ipairs(extra or {}) do args[#args + 1] = h.shell_quote(a) end
    local cmd = ("curl -s -o %s/body -D %s/head -w '%%{http_code}' --unix-socket %s %s %s >%s/code"):format(dir, dir,
      h.shell_quote(p.info.socket), table.concat(args, " "), h.shell_quote("http://proxy" .. path), dir)
    os.execute(cmd)
    local code, body, head = tonumber(h.read(dir .. "/code")), h.read(dir .. "/body"), h.read(dir .. "/head")
    h.rmdir(dir)
    return code, body, head
  end

  local function count_log(up, pred)
    local n = 0
    for _, r in ipairs(up.log()) do if pred(r) then n = n + 1 end end
    return n
  end

  describe("on a unix socket", function()
    local p
    setup(function() p = start_proxy({ "--socket", tmp .. "/proxy.sock", "--workers", "4" }) end)
    teardown(function() if p then p.stop() end end)

    it("is a socket only its owner can use", function()
      assert.equal(tmp .. "/proxy.sock", p.info.socket)
      assert.equal(384, sys.mode(p.info.socket)) -- 0600
    end)

    it("forwards to the connection's first allowed URL with its credentials, not the caller's", function()
      local code, body = curl(p, "/keyed/echo?a=1&b=two", { "-H", "Authorization: Bearer caller-token",
        "-H", "X-Custom: kept" })
      assert.equal(200, code, body)
      local got = cjson.decode(body)
      assert.equal("/echo?a=1&b=two", got.url)
      assert.equal(API_KEY, got.headers["x-api-key"])
      assert.is_nil(got.headers.authorization)
      assert.equal("kept", got.headers["x-custom"])
      -- a POST body, and a token connection by its connector id
      code, body = curl(p, "/machine/x", { "-d", "hello=world" })
      assert.equal(200, code, body)
      got = cjson.decode(body)
      assert.equal("POST", got.method)
      assert.equal("/api/x", got.url)
      assert.equal("hello=world", got.body)
      assert.matches("^Bearer ", got.headers.authorization)
      -- nothing of the secrets in the proxy's log lines
      assert.is_nil(p.err():find(API_KEY, 1, true))
      assert.matches("GET /keyed/echo 200", p.err(), 1, true)
      assert.is_nil(p.err():find("b=two", 1, true))
    end)

    it("answers the upstream's status, and drops hop-by-hop headers both ways", function()
      local code, body, head = curl(p, "/keyed/headers?X-Fine=1&Upgrade=h2c&Keep-Alive=timeout%3D5",
        { "-H", "Connection: X-Hop-Secret", "-H", "X-Hop-Secret: 1", "-H", "Proxy-Authorization: Basic eDp5" })
      assert.equal(200, code, body)
      assert.matches("\nX%-Fine: 1\r\n", head)
      assert.is_nil(head:lower():find("upgrade:", 1, true))
      assert.is_nil(head:lower():find("keep-alive: timeout", 1, true))
      local last = api.log()[#api.log()]
      assert.is_nil(last.headers["x-hop-secret"])
      assert.is_nil(last.headers["proxy-authorization"])
      code = curl(p, "/keyed/status/418")
      assert.equal(418, code)
    end)

    describe("refuses what connrt request refuses, sending nothing", function()
      local function nothing_sent_to_other(fn)
        local before = #other.log()
        fn()
        assert.equal(before, #other.log())
      end

      it("a Connrt-Target outside the allowed URLs", function()
        nothing_sent_to_other(function()
          local code, body = curl(p, "/keyed", { "-H", "Connrt-Target: " .. other.base .. "/echo" })
          assert.equal(403, code)
          local doc = cjson.decode(body)
          assert.equal("refused", doc.error)
          assert.matches("nothing was sent", doc.message, 1, true)
        end)
        -- and one inside them is sent
        local code = curl(p, "/keyed", { "-H", "Connrt-Target: " .. api.base .. "/echo" })
        assert.equal(200, code)
      end)

      it("a redirect out of the allowed URLs", function()
        nothing_sent_to_other(function()
          local code, body = curl(p, "/keyed/redirect?to=" .. other.base .. "/echo")
          assert.equal(403, code, body)
          assert.equal("refused", cjson.decode(body).error)
        end)
      end)

      it("encoded and dot-segment paths that would climb out of the allowed path", function()
        local before = #api.log()
        for _, path in ipairs({ "/machine/%2e%2e/echo", "/machine/..%2fecho", "/machine/%2E%2E%2Fecho",
            "/machine/x%5c..%5c..%5cecho" }) do
          local code, body = curl(p, path, { "--path-as-is" })
          assert.is_true(code == 403 or code == 400, path .. ": " .. tostring(code) .. " " .. tostring(body))
        end
        local code = curl(p, "/machine/../../keyed/echo", { "--path-as-is" })
        assert.is_true(code == 403 or code == 400 or code == 404, tostring(code))
        -- nothing reached the upstream outside /api
        for i = before + 1, #api.log() do assert.matches("^/api", api.log()[i].url) end
      end)

      it("an absolute-form request target and a Host header", function()
        nothing_sent_to_other(function()
          -- the request line a forward proxy gets: GET http://host/path HTTP/1.1
          h.write(tmp .. "/abs.py", ([[
import socket
s = socket.socket(socket.AF_UNIX)
s.connect(%q)
s.sendall(b"GET %s/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode())
]]):format(p.info.socket, other.base))
          local f = io.popen("python3 " .. tmp .. "/abs.py 2>&1")
          assert.matches("^HTTP/1.1 400", f:read("a"))
          f:close()
          -- a Host header names nothing: the request still goes to the connection's URL
          local code, body = curl(p, "/keyed/echo", { "-H", "Host: " .. other.base:gsub("^http://", "") })
          assert.equal(200, code)
          assert.equal(api.base:gsub("^http://", ""), cjson.decode(body).headers.host)
        end)
      end)

      it("Connrt-Target given twice", function()
        nothing_sent_to_other(function()
          local code, body = curl(p, "/keyed", { "-H", "Connrt-Target;", "-H", "Connrt-Target: " .. other.base .. "/echo" })
          assert.equal(400, code, body)
          assert.matches("Connrt-Target given 2 times", cjson.decode(body).message, 1, true)
        end)
      end)

      it("a connection that does not exist, or a path without one", function()
        local code, body = curl(p, "/nosuch/echo")
        assert.equal(404, code)
        assert.equal("notfound", cjson.decode(body).error)
        assert.equal(404, (curl(p, "/")))
      end)
    end)

    it("answers 413 to a body over the limit, sending nothing", function()
      local q = start_proxy({ "--socket", tmp .. "/small.sock", "--workers", "1", "--max-body", "1000" })
      local before = #api.log()
      local big = tmp .. "/big"
      h.write(big, ("x"):rep(5000))
      local code = curl(q, "/keyed/echo", { "--data-binary", "@" .. big })
      assert.equal(413, code)
      code = curl(q, "/keyed/echo", { "--data-binary", "small" })
      assert.equal(200, code)
      assert.equal(before + 1, #api.log())
      q.stop()
    end)

    describe("answers from the HTTP parser and hostile peers", function()
      local q
      setup(function()
        q = start_proxy({ "--socket", tmp .. "/refusing.sock", "--workers", "1", "--max-body", "1000" })
      end)
      teardown(function() if q then q.stop() end end)

      -- Sends `text` (or each text of an array, 0.3 s apart) on a connection of its own
      -- and reads until the proxy closes it (or 5 s pass); returns the statuses of the
      -- answers, in order, and what was read.
      local function raw(text)
        local fd = assert(sys.unix_connect(q.info.socket))
        for i, piece in ipairs(type(text) == "table" and text or { text }) do
          if i > 1 then sys.sleep(0.3) end
          sys.write(fd, piece)
        end
        local got, deadline = {}, sys.monotime() + 5
        while sys.monotime() < deadline and sys.readable(fd, 0.2) do
          local chunk = sys.read(fd, 65536)
          if not chunk or chunk == "" then break end
          got[#got + 1] = chunk
        end
        sys.close(fd)
        local all, statuses = table.concat(got), {}
        for st in all:gmatch("HTTP/[%d.-]+ (%d%d%d) ") do statuses[#statuses + 1] = tonumber(st) end
        return statuses, all
      end

      local function metrics_until(pattern)
        local text
        for _ = 1, 50 do -- published at most every PUBLISH_EVERY seconds
          text = select(2, curl(q, "/_connrt/metrics"))
          if text:find(pattern, 1, true) then break end
          sys.sleep(0.1)
        end
        return text
      end

      local function unknown(class)
        local text = select(2, curl(q, "/_connrt/metrics"))
        return tonumber(text:match('connrt_proxy_requests_total{connection="unknown",class="' .. class .. '"} (%d+)')) or 0
      end

      it("logs and counts each, first on its connection or after other answers", function()
        local before = #api.log()
        local get = "GET /keyed/echo HTTP/1.1\r\nHost: x\r\n\r\n"
        local cases = {
          { "GARBAGE\r\n\r\n", { 400 } },
          { "GET /keyed/echo HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("y"):rep(70000) .. "\r\n\r\n", { 400 } },
          { "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" .. ("x"):rep(5000), { 413 } },
          { "TRACE /keyed/echo HTTP/1.1\r\nHost: x\r\n\r\n", { 501 } },
          { "TRACE / HTTP/1.10\r\n\r\n", { 501 } }, -- evhttp answers in the version it was given
          { "TRACE / HTTP/1.-1\r\n\r\n", { 501 } },
          { "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nExpect: nothing\r\nContent-Length: 5\r\n\r\n", { 417 } },
          -- on a keep-alive connection, after an answer of the handler's (pipelined)
          { get .. "TRACE / HTTP/1.1\r\n\r\n", { 200, 501 } },
          { get .. "GARBAGE\r\n\r\n", { 200, 400 } },
          { get .. "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n", { 200, 413 } },
          -- after 100 Continue (not an answer: never counted)
          { { "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
            "zz\r\n" }, { 100, 413 } },
          -- two answers of the handler's, then a refusal, the requests 0.3 s apart
          { { get, get, "TRACE / HTTP/1.1\r\n\r\n" }, { 200, 200, 501 } },
        }
        local c4, c5 = unknown("4xx"), unknown("5xx")
        for _, c in ipairs(cases) do
          assert.same(c[2], (raw(c[1])), type(c[1]) == "string" and c[1]:sub(1, 40) or c[1][1]:sub(1, 40))
        end
        -- 4xx: 400 x3, 413 x3, 417; 5xx: 501 x5
        local text = metrics_until('"unknown",class="5xx"} ' .. (c5 + 5))
        assert.matches('connrt_proxy_requests_total{connection="unknown",class="4xx"} ' .. (c4 + 7), text, 1, true)
        assert.matches('connrt_proxy_requests_total{connection="unknown",class="5xx"} ' .. (c5 + 5), text, 1, true)
        assert.equal(before + 5, #api.log()) -- the GETs before a refusal, nothing else
        local err = q.err()
        local _, n400 = err:gsub("connrt proxy: %- %- 400 refused: a malformed request line or head", "")
        local _, n413 = err:gsub("connrt proxy: %- %- 413 refused: a body over %-%-max%-body", "")
        local _, n501 = err:gsub("connrt proxy: %- %- 501 refused: a method the proxy does not serve", "")
        assert.same({ 3, 3, 5 }, { n400, n413, n501 })
        assert.matches("connrt proxy: - - 417 refused: an Expect header other than 100-continue", err, 1, true)
        assert.is_nil(err:find(" 100 ", 1, true))
      end)

      it("counts what it answers itself for no connection: a bad path, its own endpoints", function()
        local c4 = unknown("4xx")
        assert.equal(404, (curl(q, "/")))
        assert.equal(404, (curl(q, "/_connrt/nothing")))
        assert.same({ 400 }, (raw("GET http://elsewhere/keyed/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")))
        local text = metrics_until('"unknown",class="4xx"} ' .. (c4 + 3))
        assert.matches('connrt_proxy_requests_total{connection="unknown",class="4xx"} ' .. (c4 + 3), text, 1, true)
      end)

      it("refuses a request whose framing cannot be trusted, and closes its connection", function()
        local before = #api.log()
        local statuses, all = raw("POST /keyed/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n"
          .. "abcdeGET /keyed/echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.same({ 400 }, statuses)
        assert.matches("Content-Length given twice", all, 1, true)
        statuses = raw("POST /keyed/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
          .. "5\r\nabcde\r\n0\r\n\r\n")
        assert.same({ 400 }, statuses)
        -- a body the parser did not read as a body, behind which a second request hides
        -- (each would reach the upstream with the connection's credentials)
        local hidden = "GET /keyed/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        for _, head in ipairs({
          "HEAD /keyed/echo HTTP/1.1\r\nHost: x\r\nContent-Length: " .. #hidden .. "\r\n\r\n",
          "HEAD /keyed/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
          "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
          "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
          "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
          "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nContent-Length: +" .. #hidden .. "\r\n\r\n",
          "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nContent-Length : " .. #hidden .. "\r\n\r\n",
          "POST /keyed/echo HTTP/1.1\r\nHost: x\r\nContent-Length\t: " .. #hidden .. "\r\n\r\n",
        }) do
          statuses, all = raw(head .. hidden)
          assert.same({ 400 }, statuses, head)
          assert.matches("Connection: close", all, 1, true)
        end
        -- the same length twice is one length
        statuses = raw("POST /keyed/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n"
          .. "Connection: close\r\n\r\nabc")
        assert.same({ 200 }, statuses)
        assert.equal(before + 1, #api.log())
        -- sent on as it came: no Content-Type the client did not give
        local last = api.log()[#api.log()]
        assert.equal("abc", last.body)
        assert.is_nil(last.headers["content-type"])
      end)

      it("logs a path with spaces with them encoded, so the status stays the fourth field", function()
        raw("GET /nope 200 0.1ms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert.matches("connrt proxy: GET /nope%20200%200.1ms 404 ", q.err(), 1, true)
      end)

      it("passes no Connrt-* header on, either way, and adds no Content-Type of its own", function()
        local code, _, head = curl(q, "/keyed/headers?Connrt-Error=needs_reconnect&Connrt-Other=x&X-Kept=yes",
          { "-H", "Connrt-Whatever: secret-ish" })
        assert.equal(200, code)
        assert.matches("X-Kept: yes", head, 1, true)
        assert.is_nil(head:lower():find("connrt-", 1, true))
        assert.is_nil(head:lower():find("content-type", 1, true))
        local last = api.log()[#api.log()]
        assert.is_nil(last.headers["connrt-whatever"])
        -- and `connrt request` through it says what the direct path says: no error
        local res = h.connrt({ "request", "keyed", "/headers?Connrt-Error=needs_reconnect" },
          { env = { CONNRT_HOME = home, CONNRT_PROXY = q.info.socket } })
        assert.equal(0, res.code, res.stderr)
      end)

      it("reads no more than it holds from a client whose answer is being written", function()
        -- a streamed answer the client does not read, while it sends 64 MiB: the worker
        -- must leave what it cannot use in the socket, not in its memory
        local worker = proxies.children(q.pid)[1]
        local function rss()
          local f = assert(io.open("/proc/" .. worker .. "/status"))
          local kb = tonumber(f:read("a"):match("VmRSS:%s+(%d+)"))
          f:close()
          return kb
        end
        local before = rss()
        local script = tmp .. "/flood.py"
        h.write(script, [[
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"GET /keyed/stream?n=200000000 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(1)
s.settimeout(3)
sent, junk = 0, b"A" * 65536
try:
    while sent < 64 << 20:
        sent += s.send(junk)
except socket.timeout:
    pass
print(sent)
sys.stdout.flush()
time.sleep(1)
]])
        local f = io.popen("python3 " .. h.shell_quote(script) .. " " .. h.shell_quote(q.info.socket))
        local sent = tonumber(f:read("a"))
        f:close()
        assert(sent, "the flood script said nothing")
        local grown = rss() - before
        assert.is_true(sent < 16 * 1024 * 1024, "the client sent " .. sent .. " bytes unhindered")
        assert.is_true(grown < 32 * 1024, "the worker grew by " .. grown .. " KiB")
        -- and the worker still serves
        assert.equal(200, (curl(q, "/keyed/echo")))
      end)
    end)

    it("serves 256 concurrent clients", function()
      local dir = h.tmpdir()
      local cfg = {}
      for i = 1, 256 do
        cfg[#cfg + 1] = ('url = "http://proxy/keyed/echo?n=%d"\noutput = "%s/o%d"\n'):format(i, dir, i)
      end
      h.write(dir .. "/cfg", table.concat(cfg))
      local before = count_log(api, function(r) return r.url:match("^/echo%?n=") end)
      local ok = os.execute(("curl -s --parallel --parallel-immediate --parallel-max 256 --unix-socket %s -K %s "
        .. "-w '%%{http_code}\\n' >%s/codes 2>/dev/null"):format(h.shell_quote(p.info.socket), dir .. "/cfg", dir))
      assert.is_true(ok)
      local n = 0
      for c in (h.read(dir .. "/codes") or ""):gmatch("%d+") do
        assert.equal("200", c)
        n = n + 1
      end
      assert.equal(256, n)
      assert.equal(before + 256, count_log(api, function(r) return r.url:match("^/echo%?n=") end))
      h.rmdir(dir)
    end)

    it("a slow upstream does not delay another request", function()
      local dir = h.tmpdir()
      os.execute(("(curl -s -o /dev/null -w '%%{http_code}' --unix-socket %s http://proxy/keyed/slow >%s/slow) &")
        :format(h.shell_quote(p.info.socket), dir))
      sys.sleep(0.3)
      local t0 = sys.monotime()
      local code = curl(p, "/machine/fast")
      local took = sys.monotime() - t0
      assert.equal(200, code)
      assert.is_true(took < 1.5, "the fast request took " .. took .. " s")
      for _ = 1, 100 do
        if (h.read(dir .. "/slow") or "") ~= "" then break end
        sys.sleep(0.1)
      end
      assert.equal("200", h.read(dir .. "/slow"))
      h.rmdir(dir)
    end)

    it("says each connection's status at /_connrt/health and counts at /_connrt/metrics, without secrets", function()
      local code, body = curl(p, "/_connrt/health")
      assert.equal(200, code)
      local doc = cjson.decode(body)
      assert.equal("ok", doc.status)
      local ids = {}
      for _, c in ipairs(doc.connections) do ids[#ids + 1] = c.connector end
      table.sort(ids)
      assert.same({ "keyed", "machine" }, ids)
      assert.is_nil(body:find(API_KEY, 1, true))
      curl(p, "/keyed/echo")
      local text
      code, text = curl(p, "/_connrt/metrics")
      assert.equal(200, code)
      assert.matches('connrt_proxy_requests_total{connection="keyed%-%x+",class="2xx"} %d+', text)
      assert.matches('connrt_proxy_upstream_seconds_bucket{le="+Inf"} ', text, 1, true)
      assert.matches("# TYPE connrt_proxy_refreshes_total counter", text, 1, true)
      assert.is_nil(text:find(API_KEY, 1, true))
    end)
  end)

  describe("on TCP", function()
    local p, key
    setup(function()
      p = start_proxy({ "--listen", "127.0.0.1:0", "--key-file", tmp .. "/proxy.key", "--workers", "2" })
      key = h.read(p.info.key_file):match("^(%x+)\n$")
    end)
    teardown(function() if p then p.stop() end end)

    it("writes its key 0600 and never prints it", function()
      assert.equal(tmp .. "/proxy.key", p.info.key_file)
      assert.equal(384, sys.mode(p.info.key_file))
      assert.equal(64, #key)
      -- nor logs it: a client that puts it in a path (as a connection's name or in the
      -- rest of the path), with the key or without it
      for _, path in ipairs({ "/keyed/echo/" .. key, "/" .. key .. "/x" }) do
        for _, extra in ipairs({ "-H 'Connrt-Key: " .. key .. "'", "" }) do
          local f = io.popen(("curl -s -o /dev/null %s http://%s%s"):format(extra, p.info.listen, path))
          f:read("a")
          f:close()
        end
      end
      for _ = 1, 100 do
        if select(2, p.err():gsub("\n", "")) >= 4 then break end
        sys.sleep(0.05)
      end
      assert.matches("GET /keyed/echo/[redacted] 404", p.err(), 1, true)
      assert.matches("GET /[redacted]/x 401", p.err(), 1, true)
      assert.is_nil(p.err():find(key, 1, true))
    end)

    it("replaces no file it did not create: an existing --key-file is refused, one put in its place is kept", function()
      -- a --key-file that names an existing file (here a copy of the store's key): exit 2,
      -- the file as it was
      local existing = tmp .. "/existing.key"
      local store_key = h.read(home .. "/key")
      h.write(existing, store_key)
      local res = h.connrt({ "proxy", "--listen", "127.0.0.1:0", "--key-file", existing }, { env = { CONNRT_HOME = home },
        timeout = 30 })
      assert.equal(2, res.code, res.stderr)
      assert.matches("the key file " .. existing .. " exists", res.stderr, 1, true)
      assert.equal(store_key, h.read(existing))
      -- the store's own key file named as --key-file: refused, untouched
      res = h.connrt({ "proxy", "--listen", "127.0.0.1:0", "--key-file", home .. "/key" }, { env = { CONNRT_HOME = home },
        timeout = 30 })
      assert.equal(2, res.code, res.stderr)
      assert.equal(store_key, h.read(home .. "/key"))
      -- a file put in place of the proxy's key file while it runs is not removed at stop;
      -- its own is
      local q = start_proxy({ "--listen", "127.0.0.1:0", "--key-file", tmp .. "/own.key", "--workers", "1" })
      assert.equal(0, q.stop())
      assert.is_nil(h.read(tmp .. "/own.key"))
      q = start_proxy({ "--listen", "127.0.0.1:0", "--key-file", tmp .. "/own.key", "--workers", "1" })
      h.write(tmp .. "/other.key", "not the proxy's\n")
      assert.is_true(os.rename(tmp .. "/other.key", tmp .. "/own.key"))
      assert.equal(0, q.stop())
      assert.equal("not the proxy's\n", h.read(tmp .. "/own.key"))
      os.remove(tmp .. "/own.key")
      -- the default file (proxy.key in the store's directory) left by a proxy that was
      -- killed: replaced
      h.write(home .. "/proxy.key", ("0"):rep(64) .. "\n")
      q = start_proxy({ "--listen", "127.0.0.1:0", "--workers", "1" })
      assert.equal(home .. "/proxy.key", q.info.key_file)
      assert.not_equal(("0"):rep(64) .. "\n", h.read(home .. "/proxy.key"))
      assert.equal(0, q.stop())
      assert.is_nil(h.read(home .. "/proxy.key"))
    end)

    it("answers 401 without the key, forwarding nothing", function()
      local before = #api.log()
      for _, extra in ipairs({ "", "-H 'Connrt-Key: " .. ("0"):rep(64) .. "'", "-H 'Connrt-Key: short'" }) do
        local cmd = ("curl -s -o /dev/null -w '%%{http_code}' %s http://%s/keyed/echo"):format(extra, p.info.listen)
        local f = io.popen(cmd)
        assert.equal("401", f:read("a"))
        f:close()
      end
      assert.equal(before, #api.log())
    end)

    it("serves curl, Python's urllib and Node's fetch with the key", function()
      local base = "http://" .. p.info.listen
      local f = io.popen(("curl -s -H 'Connrt-Key: %s' %s/keyed/echo?from=curl"):format(key, base))
      assert.equal("/echo?from=curl", cjson.decode(f:read("a")).url)
      f:close()
      local py = ([[
import json, urllib.request
req = urllib.request.Request("%s/machine/py?from=python", headers={"Connrt-Key": "%s"})
print(json.load(urllib.request.urlopen(req))["url"])
]]):format(base, key)
      h.write(tmp .. "/client.py", py)
      f = io.popen("python3 " .. tmp .. "/client.py 2>&1")
      assert.equal("/api/py?from=python\n", f:read("a"))
      f:close()
      local js = ([[
const r = await fetch("%s/keyed/echo?from=node", { method: "POST", body: "n=1", headers: { "Connrt-Key": "%s" } });
const doc = await r.json();
console.log(r.status, doc.url, doc.body);
]]):format(base, key)
      h.write(tmp .. "/client.mjs", js)
      f = io.popen("node " .. tmp .. "/client.mjs 2>&1")
      assert.equal("200 /echo?from=node n=1\n", f:read("a"))
      f:close()
    end)
  end)

  describe("tokens", function()
    local thome
    -- a store of its own: these specs make tokens expire
    before_each(function()
      thome = h.tmpdir()
      local res = h.connrt({ "run", machine_connector("tok", api.base), "--client-id", "connrt-basic" },
        { env = { CONNRT_HOME = thome, CONNRT_CLIENT_SECRET = "basic-secret" } })
      assert.equal(0, res.code, res.stderr)
    end)
    after_each(function() h.rmdir(thome) end)

    local function proxy_in(h_, args, env)
      local saved = home
      home = h_
      local p = start_proxy(args, env)
      home = saved
      return p
    end

    it("refreshes once on an upstream 401 and retries once", function()
      local p = proxy_in(thome, { "--socket", tmp .. "/t1.sock", "--workers", "1" })
      assert.equal(200, (curl(p, "/tok/warm")))
      local up = h.start_upstream()
      -- an upstream that says 401: the proxy refreshes once, retries once, answers the 401
      local c2 = write_connector("tok401", ([[return {
        id = "tok401", auth = "client_credentials", client_auth = "basic", token_url = "%s/token", scopes = { "api" },
        test = "/echo", name = "t401", unique_id = "{{client_id}}-401", allowed_urls = { "%s/" },
        request = { headers = { Authorization = "Bearer {{access_token}}" } } }]]):format(server.issuer, up.base))
      assert.equal(0, h.connrt({ "run", c2, "--client-id", "connrt-basic" },
        { env = { CONNRT_HOME = thome, CONNRT_CLIENT_SECRET = "basic-secret" } }).code)
      local before = grants()
      local code = curl(p, "/tok401/status/401")
      assert.equal(401, code)
      assert.equal(before + 1, grants())
      assert.equal(2, count_log(up, function(r) return r.url == "/status/401" end))
      local _, text = curl(p, "/_connrt/metrics")
      assert.matches('connrt_proxy_refreshes_total{connection="tok401%-%x+"} 1', text)
      up.stop()
      p.stop()
    end)

    it("refreshes in the background before the token expires", function()
      local p = proxy_in(thome, { "--socket", tmp .. "/t2.sock", "--workers", "2" })
      local before = grants()
      -- a 6 s token: refreshed within its last 3 + 1.5 s, with no request at all (waited
      -- for until well after it expired: the point is that it happens, not how soon)
      for _ = 1, 300 do
        if grants() >= before + 1 then break end
        sys.sleep(0.05)
      end
      assert.is_true(grants() >= before + 1, "no background refresh")
      -- and requests then find a fresh token: none of them refreshes
      local after = grants()
      for _ = 1, 3 do assert.equal(200, (curl(p, "/tok/x"))) end
      assert.equal(after, grants())
      p.stop()
    end)

    it("never refreshes a token just refreshed again, however far ahead --refresh-ahead says (review 27)", function()
      -- a 6 s token and --refresh-ahead far beyond its lifetime: refreshed once it is half
      -- gone (margin included), not on every tick
      local before = grants()
      local p = proxy_in(thome, { "--socket", tmp .. "/t4.sock", "--workers", "1", "--refresh-ahead", "7200" })
      sys.sleep(4.5)
      local n = grants() - before
      p.stop()
      assert.is_true(n <= 2, n .. " refreshes in 4.5 s")
    end)

    it("shares one refresh with 20 CLI processes on an expired connection", function()
      sys.sleep(6.3) -- the token expired, and no proxy refreshed it in the background
      -- refreshed only once expired (margin 0, nothing ahead): one refresh is the whole story
      local p = proxy_in(thome, { "--socket", tmp .. "/t3.sock", "--workers", "4", "--refresh-ahead", "0" },
        { CONNRT_REFRESH_MARGIN = "0" })
      local before = grants()
      local dir = h.tmpdir()
      local script = {}
      for i = 1, 8 do
        script[#script + 1] = ("curl -s -o /dev/null -w '%%{http_code}' --unix-socket %s http://p/tok/x >%s/p%d &")
          :format(h.shell_quote(p.info.socket), dir, i)
      end
      for i = 1, 20 do
        script[#script + 1] = ("CONNRT_HOME=%s CONNRT_REFRESH_MARGIN=0 %s request tok /x >/dev/null 2>&1; echo $? >%s/c%d &")
          :format(thome, h.CONNRT, dir, i)
      end
      script[#script + 1] = "wait"
      os.execute(table.concat(script, "\n"))
      for i = 1, 8 do assert.equal("200", h.read(dir .. "/p" .. i)) end
      for i = 1, 20 do assert.equal("0\n", h.read(dir .. "/c" .. i)) end
      assert.equal(before + 1, grants())
      h.rmdir(dir)
      p.stop()
    end)

    it("answers 503 saying how to reconnect a connection that needs it", function()
      local st = require("connrt.store").open(thome)
      local rec = st:find("tok")
      st:mark(rec.id, { needs_reconnect = true, last_error = "refused" })
      st:close()
      local p = proxy_in(thome, { "--socket", tmp .. "/t4.sock", "--workers", "1" })
      local code, body = curl(p, "/tok/x")
      assert.equal(503, code)
      local doc = cjson.decode(body)
      assert.equal("needs_reconnect", doc.error)
      assert.matches("connrt run", doc.reconnect, 1, true)
      p.stop()
    end)
  end)

  describe("follows the store while it runs", function()
    -- a store of its own, changed by CLI processes while one worker serves it
    local fhome, p
    before_each(function() fhome = h.tmpdir() end)
    after_each(function()
      if p then p.stop() end
      p = nil
      h.rmdir(fhome)
    end)
    local function cli(args, env)
      env = env or {}
      env.CONNRT_HOME = fhome
      local res = h.connrt(args, { env = env })
      assert.equal(0, res.code, res.stderr)
      -- the proxy starts once the store has a connection to serve
      if not p then
        local saved = home
        home = fhome
        p = start_proxy({ "--socket", tmp .. "/f.sock", "--workers", "1" })
        home = saved
      end
      return res
    end
    local function sent_key_to(up)
      return count_log(up, function(r) return r.headers["x-api-key"] == API_KEY end)
    end

    it("forgets a deleted connection: 404, and its secret is sent nowhere", function()
      cli({ "run", write_connector("fk", h.keyed_connector(api.base)), "--field", "api_key=" .. API_KEY })
      assert.equal(200, (curl(p, "/keyed/echo")))
      cli({ "run", machine_connector("fm", api.base), "--client-id", "connrt-basic" },
        { CONNRT_CLIENT_SECRET = "basic-secret" })
      assert.equal(200, (curl(p, "/_connrt/token/fm")))
      local before = sent_key_to(api)
      cli({ "delete", "keyed" })
      cli({ "delete", "fm" })
      local code, body = curl(p, "/keyed/echo")
      assert.equal(404, code)
      assert.equal("notfound", cjson.decode(body).error)
      assert.equal(before, sent_key_to(api))
      code, body = curl(p, "/_connrt/token/fm")
      assert.equal(404, code)
      assert.equal("notfound", cjson.decode(body).error)
      -- connected again (a new id): served again, without a SIGHUP
      cli({ "run", write_connector("fk", h.keyed_connector(api.base)), "--field", "api_key=" .. API_KEY })
      assert.equal(200, (curl(p, "/keyed/echo")))
    end)

    -- the keyed connector, allowed both upstreams
    local function keyed_on_both()
      return (h.keyed_connector(api.base):gsub('allowed_urls = { "([^"]*)" }',
        ('allowed_urls = { "%%1", "%s/" }'):format(other.base)))
    end

    it("sends to the allowed URLs as `connrt update` left them", function()
      local both = keyed_on_both()
      local path = write_connector("fu", both)
      cli({ "run", path, "--field", "api_key=" .. API_KEY })
      local target = { "-H", "Connrt-Target: " .. other.base .. "/echo" }
      assert.equal(200, (curl(p, "/keyed", target)))
      local before = sent_key_to(other)
      assert.is_true(before >= 1)
      write_connector("fu", h.keyed_connector(api.base))
      cli({ "update", "keyed", path })
      local code, body = curl(p, "/keyed", target)
      assert.equal(403, code)
      assert.equal("refused", cjson.decode(body).error)
      assert.equal(before, sent_key_to(other))
      assert.equal(200, (curl(p, "/keyed/echo")))
    end)

    it("sends to the allowed URLs as `connrt update` left them while requests keep coming", function()
      -- a worker busy with requests on a keep-alive connection while the store changes:
      -- no request after the update may go by the record it read before (a skipped read
      -- that took a write's first moment for nothing new: LMDB shows a commit in its meta
      -- page a moment before a read transaction can see it)
      local both_path = write_connector("fb", keyed_on_both())
      local narrow_path = write_connector("fn", h.keyed_connector(api.base))
      cli({ "run", both_path, "--field", "api_key=" .. API_KEY })
      local dir = h.tmpdir()
      h.write(dir .. "/hammer.py", ([[
import os, socket
s = socket.socket(socket.AF_UNIX)
s.connect(%q)
f = s.makefile("rb")
open(%q, "w").close()
while not os.path.exists(%q):
    s.sendall(b"GET /keyed/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    n = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    if not line:
        break
    f.read(n)
]]):format(p.info.socket, dir .. "/ready", dir .. "/stop"))
      os.execute(("python3 %s/hammer.py &"):format(dir))
      for _ = 1, 400 do
        if h.read(dir .. "/ready") then break end
        sys.sleep(0.05)
      end
      local target = { "-H", "Connrt-Target: " .. other.base .. "/echo" }
      local before = sent_key_to(other)
      for _ = 1, 8 do
        cli({ "update", "keyed", narrow_path })
        local code = curl(p, "/keyed", target)
        assert.equal(403, code)
        cli({ "update", "keyed", both_path, "--replace" })
        assert.equal(200, (curl(p, "/keyed", target)))
        before = before + 1
      end
      h.write(dir .. "/stop", "")
      assert.equal(before, sent_key_to(other))
      h.rmdir(dir)
    end)

    it("takes up the key a `connrt rekey` wrote to the key file, without a SIGHUP", function()
      cli({ "run", write_connector("fx", h.keyed_connector(api.base)), "--field", "api_key=" .. API_KEY })
      assert.equal(200, (curl(p, "/keyed/echo")))
      local before = sent_key_to(api)
      cli({ "rekey" }, { CONNRT_NEW_KEY = ("5e"):rep(32) })
      assert.equal(("5e"):rep(32) .. "\n", h.read(fhome .. "/key"))
      for _ = 1, 3 do assert.equal(200, (curl(p, "/keyed/echo"))) end
      assert.equal(before + 3, sent_key_to(api))
      -- and a change made after it is followed as before
      cli({ "delete", "keyed" })
      assert.equal(404, (curl(p, "/keyed/echo")))
    end)

    it("refuses every request, saying why, once the store is rekeyed under a CONNRT_KEY it was started with", function()
      cli({ "run", write_connector("fy", h.keyed_connector(api.base)), "--field", "api_key=" .. API_KEY })
      local key = h.read(fhome .. "/key"):gsub("%s+$", "")
      local q = proxies.start(fhome, { "--socket", tmp .. "/fy.sock", "--workers", "1" }, { CONNRT_KEY = key })
      assert.equal(200, (curl(q, "/keyed/echo")))
      local before = sent_key_to(api)
      cli({ "rekey" }, { CONNRT_NEW_KEY = ("6f"):rep(32) })
      for _ = 1, 3 do
        local code, body = curl(q, "/keyed/echo")
        assert.equal(500, code)
        local doc = cjson.decode(body)
        assert.equal("store", doc.error)
        assert.equal("wrong_key", doc.reason)
        assert.matches("start it again with the new key", doc.message, 1, true)
      end
      assert.equal(before, sent_key_to(api)) -- the record it had open is never used again
      assert.equal(0, q.stop())
    end)

    it("reads the store again before a redirect hop: a change made while the upstream answered decides", function()
      local both = keyed_on_both()
      local path = write_connector("fw", both)
      cli({ "run", path, "--field", "api_key=" .. API_KEY })
      local function held()
        local r = assert(client:request({ url = other.base .. "/held" }))
        return cjson.decode(r.body).held
      end
      -- a request held at the upstream; meanwhile `connrt update` removes that origin
      -- (then `connrt delete` the connection); the upstream then redirects within its
      -- own origin: the hop is refused, nothing more is sent there
      for _, change in ipairs({ "update", "delete" }) do
        local out = h.tmpdir()
        os.execute(("curl -s --unix-socket %s -H %s -o %s/body -w '%%{http_code}' http://proxy/keyed >%s/code &"):format(
          h.shell_quote(p.info.socket), h.shell_quote("Connrt-Target: " .. other.base .. "/hold?id=" .. change), out,
          out))
        local deadline = sys.monotime() + 20
        while #held() == 0 do
          assert(sys.monotime() < deadline, "the request never reached the upstream")
          sys.sleep(0.02)
        end
        local before = sent_key_to(other)
        if change == "update" then
          write_connector("fw", h.keyed_connector(api.base))
          cli({ "update", "keyed", path })
        else
          cli({ "delete", "keyed" })
        end
        assert(client:request({ url = other.base .. "/release?id=" .. change .. "&status=302&location=/echo" }))
        deadline = sys.monotime() + 20
        while not (h.read(out .. "/code") or ""):match("%d%d%d") do
          assert(sys.monotime() < deadline, "no answer through the proxy")
          sys.sleep(0.05)
        end
        local code = tonumber(h.read(out .. "/code"))
        assert.equal(change == "update" and 403 or 404, code, h.read(out .. "/body"))
        assert.equal(before, sent_key_to(other))
        h.rmdir(out)
        if change == "update" then -- connected again with both origins, for the next round
          write_connector("fw", both)
          cli({ "update", "keyed", path, "--replace" })
        end
      end
    end)

    it("uses the tokens another process's refresh saved", function()
      cli({ "run", machine_connector("fr", api.base), "--client-id", "connrt-basic" },
        { CONNRT_CLIENT_SECRET = "basic-secret" })
      local code, old = curl(p, "/_connrt/token/fr")
      assert.equal(200, code)
      assert.equal(200, (curl(p, "/fr/echo")))
      cli({ "refresh", "fr" })
      local new = cli({ "token", "fr" }).stdout
      assert.are_not.equal(old, new)
      local _, got = curl(p, "/_connrt/token/fr")
      assert.equal(new, got)
      local _, body = curl(p, "/fr/echo")
      assert.equal("Bearer " .. new:gsub("\n$", ""), cjson.decode(body).headers.authorization)
    end)

    it("asks again what a connector's id names after a write: a second connection makes it ambiguous, as for the CLI",
      function()
      cli({ "run", machine_connector("fa", api.base), "--client-id", "connrt-basic" },
        { CONNRT_CLIENT_SECRET = "basic-secret" })
      assert.equal(200, (curl(p, "/fa/echo")))
      local first = cjson.decode(cli({ "list", "--json" }).stdout)[1].id
      -- a second connection of the same connector (another client, so another account)
      cli({ "run", machine_connector("fa", api.base), "--client-id", "connrt-shortcode" },
        { CONNRT_CLIENT_SECRET = "short-secret" })
      local second
      for _, c in ipairs(cjson.decode(cli({ "list", "--json" }).stdout)) do
        if c.id ~= first then second = c.id end
      end
      assert.is_string(second)
      local before = #api.log()
      local code, body = curl(p, "/fa/echo")
      assert.equal(400, code, body)
      local doc = cjson.decode(body)
      assert.equal("usage", doc.error)
      assert.equal("ambiguous", doc.reason)
      assert.matches(first, doc.message, 1, true)
      assert.matches(second, doc.message, 1, true)
      assert.equal(400, (curl(p, "/_connrt/token/fa")))
      assert.equal(before, #api.log())
      -- the CLI says the same of the name
      local res = h.connrt({ "request", "fa", "/echo" }, { env = { CONNRT_HOME = fhome } })
      assert.equal(2, res.code, res.stderr)
      local via = h.connrt({ "request", "fa", "/echo" }, { env = { CONNRT_HOME = fhome, CONNRT_PROXY = p.info.socket } })
      assert.equal(2, via.code, via.stderr)
      assert.equal(res.stderr, via.stderr)
      -- by id, each is served; and once the first is gone the name is the second's
      assert.equal(200, (curl(p, "/" .. second .. "/echo")))
      cli({ "delete", first })
      local _, tok = curl(p, "/_connrt/token/fa")
      assert.equal(cli({ "token", second }).stdout, tok)
      assert.equal(200, (curl(p, "/fa/echo")))
    end)

    it("counts requests for connections it does not serve under one metrics label", function()
      cli({ "run", write_connector("fn", h.keyed_connector(api.base)), "--field", "api_key=" .. API_KEY })
      for i = 1, 5 do assert.equal(404, (curl(p, "/nosuch-" .. i .. "/x"))) end
      local _, text = curl(p, "/_connrt/metrics")
      assert.is_nil(text:find("nosuch", 1, true))
      assert.matches('connrt_proxy_requests_total{connection="unknown",class="4xx"} 5', text, 1, true)
    end)
  end)

  describe("workers", function()
    -- the workers a proxy started: its ready log line says, and its child processes count
    local function workers(p)
      local said
      for _ = 1, 100 do
        said = tonumber(p.err():match("listening on [^\n]* with (%d+) workers"))
        if said then break end
        sys.sleep(0.05)
      end
      return said, #proxies.children(p.pid)
    end
    local function nproc(wrap)
      local f = io.popen(table.concat(wrap or {}, " ") .. " nproc")
      local n = tonumber(f:read("a"))
      f:close()
      return n
    end

    it("starts one per CPU it may use by default, at least 2", function()
      local p = start_proxy({ "--socket", tmp .. "/w1.sock" })
      -- (a cgroup's CPU quota counts too: proxy_worker_spec reads it from fixtures)
      local cpus = math.min(nproc(), require("connrt.proxy").cgroup_cpus() or math.huge)
      local want = math.min(math.max(cpus, 2), 64)
      local said, children = workers(p)
      assert.equal(want, said)
      assert.equal(want, children)
      assert.equal(0, p.stop())
      -- on one CPU (its affinity: taskset, a container's cpuset), still two
      local one = { "taskset", "-c", "0" }
      assert.equal(1, nproc(one))
      p = proxies.start(home, { "--socket", tmp .. "/w2.sock" }, nil, one)
      said, children = workers(p)
      assert.equal(2, said)
      assert.equal(2, children)
      assert.equal(0, p.stop())
    end)

    it("starts a worker that died again, which takes up its counts: the metrics never go down", function()
      local p = start_proxy({ "--socket", tmp .. "/w4.sock", "--workers", "1" })
      local function served()
        local _, text = curl(p, "/_connrt/metrics")
        return tonumber(text:match('connrt_proxy_requests_total{connection="[^"]*",class="2xx"} (%d+)')) or 0
      end
      for _ = 1, 5 do assert.equal(200, (curl(p, "/keyed/keyed/me"))) end
      assert.equal(5, served())
      local old = proxies.children(p.pid)[1]
      os.execute("kill -KILL " .. old)
      local new
      for _ = 1, 100 do
        new = proxies.children(p.pid)[1]
        if new and new ~= old then break end
        sys.sleep(0.05)
      end
      assert.is_true(new ~= nil and new ~= old, "no worker in its place")
      assert.equal(200, (curl(p, "/keyed/keyed/me")))
      assert.equal(6, served())
      assert.equal(0, p.stop())
    end)

    it("starts as many as --workers says", function()
      local p = start_proxy({ "--socket", tmp .. "/w3.sock", "--workers", "3" })
      local said, children = workers(p)
      assert.equal(3, said)
      assert.equal(3, children)
      assert.equal(0, p.stop())
    end)
  end)

  describe("signals", function()
    it("SIGTERM finishes the requests in flight, then stops accepting and exits 0", function()
      local p = start_proxy({ "--socket", tmp .. "/s1.sock", "--workers", "2" })
      local dir = h.tmpdir()
      os.execute(("(curl -s -o %s/body -w '%%{http_code}' --unix-socket %s http://p/keyed/slow >%s/code) &"):format(dir,
        h.shell_quote(p.info.socket), dir))
      sys.sleep(0.5)
      local sock = p.info.socket
      assert.equal(0, p.stop("TERM"))
      assert.equal("200", h.read(dir .. "/code"))
      assert.is_nil(h.read(sock)) -- the socket is gone: nothing accepts any more
      assert.matches("finishing the requests in flight", p.stderr, 1, true)
      h.rmdir(dir)
    end)

    it("SIGHUP re-reads the store's connection list", function()
      local hhome = h.tmpdir()
      assert.equal(0, h.connrt({ "run", write_connector("k2", h.keyed_connector(api.base)), "--field", "api_key=" .. API_KEY },
        { env = { CONNRT_HOME = hhome } }).code)
      local saved = home
      home = hhome
      local p = start_proxy({ "--socket", tmp .. "/s2.sock", "--workers", "1" })
      home = saved
      assert.equal(200, (curl(p, "/keyed/echo")))
      assert.equal(0, h.connrt({ "delete", "keyed" }, { env = { CONNRT_HOME = hhome } }).code)
      os.execute("kill -HUP " .. p.pid)
      sys.sleep(0.5)
      assert.equal(404, (curl(p, "/keyed/echo")))
      p.stop()
      h.rmdir(hhome)
    end)
  end)

  describe("to a TLS upstream", function()
    it("verifies it with the test CA, keeps the connection alive and refuses other CAs' servers", function()
      local TLS = h.ROOT .. "/spec/fixtures/tls/"
      local tls = h.start_node("spec/support/echo-server.js", "600", ("ECHO_TLS_CERT=%s ECHO_TLS_KEY=%s ECHO_API_KEY=%s")
        :format(TLS .. "server.pem", TLS .. "server.key", API_KEY))
      local base = "https://localhost:" .. tonumber(tls.line)
      local thome = h.tmpdir()
      local res = h.connrt({ "run", write_connector("tlskeyed", h.keyed_connector(base)), "--field", "api_key=" .. API_KEY },
        { env = { CONNRT_HOME = thome, CONNRT_CA_BUNDLE = TLS .. "ca.pem" } })
      assert.equal(0, res.code, res.stderr)
      local saved = home
      home = thome
      local p = start_proxy({ "--socket", tmp .. "/tls.sock", "--workers", "1" }, { CONNRT_CA_BUNDLE = TLS .. "ca.pem" })
      local q = start_proxy({ "--socket", tmp .. "/tls2.sock", "--workers", "1" },
        { CONNRT_CA_BUNDLE = TLS .. "other-ca.pem" })
      home = saved
      local ports = {}
      for i = 1, 3 do
        local code, body = curl(p, "/keyed/echo?n=" .. i)
        assert.equal(200, code, body)
        ports[cjson.decode(body).port] = true
      end
      -- one upstream connection (one client port) for all three: no new TCP or TLS handshake
      local n = 0
      for _ in pairs(ports) do n = n + 1 end
      assert.equal(1, n)
      local code, body = curl(q, "/keyed/echo")
      assert.equal(502, code)
      assert.matches("certificate", cjson.decode(body).message)
      p.stop()
      q.stop()
      tls.stop()
      h.rmdir(thome)
    end)
  end)

  describe("connrt request and token through CONNRT_PROXY", function()
    local p
    setup(function() p = start_proxy({ "--socket", tmp .. "/cli.sock", "--workers", "2" }) end)
    teardown(function() if p then p.stop() end end)

    local function both(args)
      local direct = h.connrt(args, { env = { CONNRT_HOME = home }, timeout = 30 })
      local via = h.connrt(args, { env = { CONNRT_HOME = home, CONNRT_PROXY = p.info.socket }, timeout = 30 })
      return direct, via
    end

    it("gives the same output, refusals and exit statuses as the direct path", function()
      local before = #api.log()
      for _, args in ipairs({
        { "request", "keyed", "/status/404" },
        { "request", "keyed", "http://evil.example.com/x" },
        { "request", "keyed", "/keyed/me" },
        { "request", "machine", "POST", "/x", "--json-body", '{"a":[1,2]}', "--json" },
        { "request", "nosuch", "/x" },
        { "request", "keyed", "GET", "/echo", "-d", "a=1" },
        { "token", "keyed" },
      }) do
        local direct, via = both(args)
        assert.equal(direct.code, via.code, table.concat(args, " ") .. ": " .. via.stderr)
        assert.equal(direct.stderr, via.stderr, table.concat(args, " "))
        if args[2] == "machine" then
          -- the echo differs in its connection details only
          local d, v = cjson.decode(direct.stdout), cjson.decode(via.stdout)
          assert.equal(d.status, v.status)
          assert.same(d.body.body, v.body.body)
          assert.equal(d.body.url, v.body.url)
        else
          assert.equal(direct.stdout, via.stdout, table.concat(args, " "))
        end
      end
      -- headers as the direct path shows them: a repeated one joined (--json) or one line
      -- each (--include), no Date the upstream did not send, none of the proxy's own, its
      -- Content-Length and hop-by-hop ones as it sent them
      for _, q in ipairs({ "Set-Cookie=a%3D1&Set-Cookie=b%3D2&_nodate=1", "Set-Cookie=a%3D1&Set-Cookie=b%3D2" }) do
        for _, flag in ipairs({ "--json", "--include" }) do
          local args = { "request", "keyed", "/headers?" .. q, flag }
          local direct, via = both(args)
          assert.equal(0, via.code, via.stderr)
          if flag == "--json" then
            local d, v = cjson.decode(direct.stdout).headers, cjson.decode(via.stdout).headers
            assert.equal("a=1, b=2", d["set-cookie"])
            assert.equal(d["set-cookie"], v["set-cookie"])
            assert.equal(d.date == nil, v.date == nil, q)
          else
            -- the same lines in the same order (a Date's value aside: two requests)
            local function lines(text)
              return (text:gsub("\n[Dd]ate: [^\r\n]*", "\nDate: -"))
            end
            assert.equal(lines(direct.stdout), lines(via.stdout), q)
          end
        end
      end
      -- the URL on standard error is redacted as the direct path redacts it, though this
      -- process never reads the connection's secrets (the proxy shows it)
      for _, u in ipairs({ "/status/404?q=" .. API_KEY, "/echo/" .. API_KEY .. "/x",
          "/echo?k=" .. API_KEY:gsub("%-", "%%2D") }) do
        local d, v = both({ "request", "keyed", u })
        assert.equal(d.code, v.code, v.stderr)
        assert.equal(d.stderr, v.stderr, u)
        assert.is_nil(v.stderr:find(API_KEY, 1, true), u)
        assert.matches("[redacted]", v.stderr, 1, true)
      end
      -- a header the proxy would not pass on (the caller's Authorization, its
      -- Accept-Encoding) goes direct, where it is sent
      local before_auth = #api.log()
      local _, auth = both({ "request", "keyed", "/echo", "-H", "Authorization: Bearer mine", "--json" })
      assert.equal(0, auth.code, auth.stderr)
      assert.equal("Bearer mine", cjson.decode(auth.stdout).body.headers.authorization)
      assert.equal(before_auth + 2, #api.log())
      -- --verbose goes direct: its trace of the exchange is the direct path's
      local traced, traced_via = both({ "-v", "request", "keyed", "/keyed/me" })
      assert.equal(0, traced_via.code, traced_via.stderr)
      assert.matches("\n> GET ", "\n" .. traced_via.stderr)
      assert.equal(select(2, traced.stderr:gsub("\n", "")), select(2, traced_via.stderr:gsub("\n", "")))
      -- and so does `connrt -v token` (a refresh's trace is the direct path's): the proxy
      -- is not asked
      local function asked() return select(2, p.err():gsub("/_connrt/token/", "")) end
      local asked_before = asked()
      local _, token_via = both({ "-v", "token", "machine" })
      assert.equal(0, token_via.code, token_via.stderr)
      sys.sleep(0.3) -- (a line the proxy would write once its answer is out)
      assert.equal(asked_before, asked())
      local _, token_plain = both({ "token", "machine" })
      assert.equal(0, token_plain.code, token_plain.stderr)
      for _ = 1, 50 do
        if asked() > asked_before then break end
        sys.sleep(0.05)
      end
      assert.equal(asked_before + 1, asked()) -- (the check can fail)
      -- -d is a form either way, and a Content-Type given wins either way
      for _, extra in ipairs({ {}, { "-H", "Content-Type: text/plain" } }) do
        local args = { "request", "keyed", "POST", "/echo", "-d", "a=1", "--json" }
        for _, x in ipairs(extra) do args[#args + 1] = x end
        local direct, via = both(args)
        assert.equal(0, via.code, via.stderr)
        local d, v = cjson.decode(direct.stdout).body, cjson.decode(via.stdout).body
        assert.equal(extra[2] and "text/plain" or "application/x-www-form-urlencoded", d.headers["content-type"])
        assert.equal(d.headers["content-type"], v.headers["content-type"])
        assert.same({ "a=1", "a=1" }, { d.body, v.body })
      end
      -- the echoed key is redacted through the proxy as it is directly
      local _, via = both({ "request", "keyed", "/echo" })
      assert.is_nil(via.stdout:find(API_KEY, 1, true))
      assert.matches('"x-api-key":"[redacted]"', via.stdout, 1, true)
      assert.is_true(#api.log() > before)
      -- a token, by the proxy, is the one the direct path gives. Its tokens live 6 s
      -- (--access-ttl), so a refresh may fall between two calls (make sanitize is slow):
      -- compare only a try whose direct reads before and after agree.
      local compared = false
      for _ = 1, 5 do
        local before_tok = h.connrt({ "token", "machine" }, { env = { CONNRT_HOME = home } })
        local res = h.connrt({ "token", "machine" }, { env = { CONNRT_HOME = home, CONNRT_PROXY = p.info.socket } })
        local after_tok = h.connrt({ "token", "machine" }, { env = { CONNRT_HOME = home } })
        assert.equal(0, res.code, res.stderr)
        assert.equal(0, before_tok.code, before_tok.stderr)
        if before_tok.stdout == after_tok.stdout then
          assert.equal(before_tok.stdout, res.stdout)
          compared = true
          break
        end
      end
      assert.is_true(compared, "the token changed during each of 5 tries")
    end)

    it("goes direct, with a notice, when the proxy's HTTP parser refuses the request (nothing was sent)", function()
      local small = start_proxy({ "--socket", tmp .. "/cli-small.sock", "--workers", "1", "--max-body", "1000" })
      local before = #api.log()
      local args = { "request", "keyed", "POST", "/echo", "-d", ("b"):rep(5000), "--json" }
      local direct = h.connrt(args, { env = { CONNRT_HOME = home } })
      local via = h.connrt(args, { env = { CONNRT_HOME = home, CONNRT_PROXY = small.info.socket } })
      small.stop()
      assert.equal(0, via.code, via.stderr)
      assert.matches("CONNRT_PROXY=" .. small.info.socket:gsub("%p", "%%%0")
        .. ": the proxy refused the request itself %(413%); going direct\n", via.stderr)
      local d, v = cjson.decode(direct.stdout), cjson.decode(via.stdout)
      assert.same({ 200, ("b"):rep(5000) }, { v.status, v.body.body })
      assert.equal(d.body.body, v.body.body)
      assert.equal(before + 2, #api.log()) -- once each: the proxy sent nothing
      -- a head over the proxy's limit: its 400 is read whole (the proxy drains what the
      -- client still sends before it closes, so the socket is not reset under the answer)
      for _ = 1, 3 do
        local big = { "request", "keyed", "/keyed/me", "-H", "X-Big: " .. ("y"):rep(70000) }
        local bd = h.connrt(big, { env = { CONNRT_HOME = home } })
        local bv = h.connrt(big, { env = { CONNRT_HOME = home, CONNRT_PROXY = p.info.socket } })
        assert.equal(bd.code, bv.code, bv.stderr)
        assert.matches("the proxy refused the request itself (400); going direct", bv.stderr, 1, true)
        assert.equal(bd.stdout, bv.stdout)
      end
      -- and a forwarded answer shows none of the proxy's own headers
      local inc = h.connrt({ "request", "keyed", "/keyed/me", "--include" },
        { env = { CONNRT_HOME = home, CONNRT_PROXY = p.info.socket } })
      assert.equal(0, inc.code, inc.stderr)
      assert.is_nil(inc.stdout:lower():find("connrt-", 1, true))
    end)

    it("loads neither the store nor libcurl", function()
      local dir = h.tmpdir()
      local traced = "" -- make sanitize: no leak check under ptrace (h.ptrace_env)
      for k, v in pairs(h.ptrace_env()) do traced = traced .. k .. "=" .. h.shell_quote(v) .. " " end
      local ok = os.execute(("cd %s && %sCONNRT_HOME=%s CONNRT_PROXY=%s strace -f -e trace=openat -o %s/trace %s request keyed "
        .. "/echo >%s/out 2>&1"):format(h.ROOT, traced, home, p.info.socket, dir, h.CONNRT, dir))
      assert.is_true(ok, h.read(dir .. "/out"))
      local trace = h.read(dir .. "/trace")
      assert.matches("connrt", trace, 1, true)
      assert.is_nil(trace:find("libcurl", 1, true))
      assert.is_nil(trace:find("data.mdb", 1, true))
      assert.is_nil(trace:find("lmdb.so", 1, true))
      h.rmdir(dir)
    end)

    it("falls back to the direct path, with a one-line notice, when the proxy is gone", function()
      local res = h.connrt({ "request", "keyed", "/keyed/me" }, { env = { CONNRT_HOME = home,
        CONNRT_PROXY = tmp .. "/no-proxy.sock" } })
      assert.equal(0, res.code, res.stderr)
      assert.matches("^connrt: CONNRT_PROXY=" .. (tmp .. "/no-proxy.sock"):gsub("%p", "%%%0")
        .. ": cannot connect to [^\n]*; going direct\n200 /keyed/me\n$", res.stderr)
      assert.equal("Key Holder", cjson.decode(res.stdout).name)
    end)
  end)

  describe("bad command lines start nothing", function()
    it("refuses bad options and unknown connections", function()
      local res = h.connrt({ "proxy", "--listen", "nowhere" }, { env = { CONNRT_HOME = home }, timeout = 10 })
      assert.equal(2, res.code)
      assert.matches("--listen nowhere: expected HOST:PORT", res.stderr, 1, true)
      -- an address of the right shape that is none: a usage error too (review 27)
      for _, v in ipairs({ "999.1.1.1:8700", "[::1::2]:8700", "1.2.3:8700" }) do
        res = h.connrt({ "proxy", "--listen", v }, { env = { CONNRT_HOME = home }, timeout = 10 })
        assert.equal(2, res.code, v .. ": " .. res.stderr)
        assert.matches("--listen " .. v .. ": ", res.stderr, 1, true)
        assert.matches("is not an IP address", res.stderr, 1, true)
      end
      res = h.connrt({ "proxy", "--workers", "0" }, { env = { CONNRT_HOME = home }, timeout = 10 })
      assert.equal(2, res.code)
      local before = h.snapshot(home)
      for _, v in ipairs({ "0", "x", "1.5" }) do
        res = h.connrt({ "proxy", "--idle", v }, { env = { CONNRT_HOME = home }, timeout = 10 })
        assert.equal(2, res.code)
        assert.matches("--idle " .. v .. ": expected a number from 1 to 86400", res.stderr, 1, true)
      end
      assert.same(before, h.snapshot(home))
      res = h.connrt({ "proxy", "--connection", "nosuch" }, { env = { CONNRT_HOME = home }, timeout = 10 })
      assert.equal(9, res.code)
      res = h.connrt({ "proxy", "--listen", "127.0.0.1:1", "--socket", "x" }, { env = { CONNRT_HOME = home }, timeout = 10 })
      assert.equal(2, res.code)
    end)

    it("serves only the --connection it was given", function()
      local p = start_proxy({ "--socket", tmp .. "/c1.sock", "--workers", "1", "--connection", "keyed" })
      assert.equal(200, (curl(p, "/keyed/echo")))
      local code, body = curl(p, "/machine/x")
      assert.equal(404, code)
      assert.matches("not served by this proxy", cjson.decode(body).message, 1, true)
      p.stop()
    end)
  end)
end)

describe("connrt proxy's metrics in shared memory", function()
  it("are folded into one series, and say so, rather than outgrow a worker's slot", function()
    local proxy = require("connrt.proxy")
    -- src/api/httpd.c's slots (in the connrt binary only), as the workers use them: a
    -- put that does not fit is refused
    local slots = {}
    local shm = {
      put = function(_, i, text)
        if #text > proxy.METRICS_SLOT then return false end
        slots[i] = text
        return true
      end,
      get = function(_, i) return slots[i] end,
    }
    local w = proxy.new_worker(1, { workers = 2 }, shm)
    -- series for 3,000 connections: more than the slot holds
    for i = 1, 3000 do w.metrics.requests[("conn-%012x\t2xx"):format(i)] = 1 end
    w.metrics.refreshes["conn-000000000001"] = 2
    w:publish(true)
    local text = shm:get(1)
    assert.truthy(text, "the worker's slot was never written")
    local doc = cjson.decode(text)
    assert.equal(3000, doc.requests["other\t2xx"])
    assert.equal(2, doc.refreshes.other)
    local prom = proxy.prometheus({ doc })
    assert.matches('connrt_proxy_requests_total{connection="other",class="2xx"} 3000', prom, 1, true)
    assert.matches("connrt_proxy_metrics_folded 1\n", prom, 1, true)
    -- what the worker counts from now on goes there too, and reaches the slot
    w:count_request("conn-000000000001", "2xx")
    w:publish(true)
    assert.equal(3001, cjson.decode(shm:get(1)).requests["other\t2xx"])
  end)
end)
