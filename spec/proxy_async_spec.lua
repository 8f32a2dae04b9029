-- luacheck: std +busted
-- `connrt proxy` with one worker (--workers 1): many requests in flight in it at once, and
-- answers streamed (lua/connrt/proxy.lua, src/api/httpd.c, the loop transfers of
-- src/api/http.c). Real processes: the proxy, an upstream that holds requests until the
-- spec releases them (spec/support/echo-server.js /hold), the authorization server for
-- refreshes, curl and Python clients. Nothing is timed: a request held upstream is known
-- to be in flight from the upstream's own state (/held), not from a clock.
local cjson = require("cjson")
local h = require("support.helpers")
local proxies = require("support.proxy")
local sys = require("connrt.sys")

local API_KEY = "sk-async-5ecret-k3y"

describe("connrt proxy, one worker, many requests in flight #integration", function()
  local tmp, server, api, home, client

  local function grants()
    return cjson.decode(assert(client:request({ url = server.issuer .. "/test/stats" })).body).grants
      .client_credentials or 0
  end

  local function write_connector(name, text)
    local path = tmp .. "/" .. name .. ".lua"
    h.write(path, text)
    return path
  end

  setup(function()
    tmp = h.tmpdir()
    client = require("connrt.http").client()
    server = h.start_server({ redirect = "http://127.0.0.1:8400/callback", args = "--access-ttl 600" })
    api = h.start_upstream({ ECHO_API_KEY = API_KEY })
    home = h.tmpdir()
    local res = h.connrt({ "run", write_connector("keyed", h.keyed_connector(api.base)), "--field", "api_key=" .. API_KEY },
      { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    -- a token connection whose upstream is the holding one: its 401s refresh
    local tok = write_connector("tok", ([[return {
      id = "tok", auth = "client_credentials", client_auth = "basic", token_url = "%s/token", scopes = { "api" },
      test = "/echo", name = "tok", unique_id = "{{client_id}}-tok", allowed_urls = { "%s/" },
      request = { headers = { Authorization = "Bearer {{access_token}}" } } }]]):format(server.issuer, api.base))
    res = h.connrt({ "run", tok, "--client-id", "connrt-basic" },
      { env = { CONNRT_HOME = home, CONNRT_CLIENT_SECRET = "basic-secret" } })
    assert.equal(0, res.code, res.stderr)
  end)

  teardown(function()
    proxies.stop_all() -- before the servers: none outlives the spec holding their pipes
    for _, s in ipairs({ server, api }) do if s then s.stop() end end
    h.rmdir(home)
    h.rmdir(tmp)
  end)

  -- Starts a proxy with one worker (support/proxy.lua); returns { pid, info, worker
  -- (its pid), err, stop }.
  local function start_proxy(args)
    local all = { "--workers", "1" }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    -- under make sanitize: ASan's quarantine would keep every freed piece of a streamed
    -- body resident, which says nothing about what the proxy holds
    local asan = os.getenv("ASAN_OPTIONS")
    local p = proxies.start(home, all, asan and { ASAN_OPTIONS = asan .. ":quarantine_size_mb=1" } or nil)
    local f = io.popen(("pgrep -P %d"):format(p.pid))
    p.worker = tonumber(f:read("*l"))
    f:close()
    return p
  end

  local function held()
    return cjson.decode(assert(client:request({ url = api.base .. "/held" })).body)
  end

  local function wait_held(ids)
    for _ = 1, 600 do
      local now, all = {}, true
      for _, id in ipairs(held().held) do now[id] = true end
      for _, id in ipairs(ids) do all = all and now[id] == true end
      if all then return end
      sys.sleep(0.05)
    end
    error("the upstream never held " .. table.concat(ids, ", "))
  end

  local function release(id, status)
    assert(client:request({ url = ("%s/release?id=%s&status=%d"):format(api.base, id, status or 200) }))
  end

  -- The proxy's standard error once it holds `pattern` (plain text when `plain`), or as it
  -- is after 30 s: the caller's assertion then says what is missing.
  local function err_with(p, pattern, plain)
    for _ = 1, 600 do
      if p.err():find(pattern, 1, plain) then break end
      sys.sleep(0.05)
    end
    return p.err()
  end

  it("sends nothing upstream for a client that left before its request went out (a stopped worker)", function()
    -- a command that gave up while the worker could not take its request (stopped, busy):
    -- the request waits in the socket, its client gone; the worker then finds it
    local p = start_proxy({ "--socket", tmp .. "/stopped.sock" })
    assert.is_true(os.execute("kill -STOP " .. p.worker))
    local script = tmp .. "/gone-before.py"
    h.write(script, [[
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"POST /keyed/echo?marker=gone-before HTTP/1.1\r\nHost: proxy\r\nContent-Length: 4\r\n\r\nbody")
s.close()
]])
    local ok = os.execute(("python3 %s %s"):format(h.shell_quote(script), h.shell_quote(p.info.socket)))
    assert.is_true(os.execute("kill -CONT " .. p.worker))
    assert.is_true(ok)
    assert.matches("POST /keyed/echo 502 [%d.]+ms cut: the client went away",
      err_with(p, "POST /keyed/echo 502 [%d.]+ms cut: the client went away"))
    -- a client that shuts down only its sending side may be reading yet: served (a quick
    -- answer), or, when its upstream takes past the watch's half second, told why, as
    -- what it is (reason client_left), not as an upstream that gave no answer
    local half = tmp .. "/half-close.py"
    h.write(half, [[
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET /keyed/" + sys.argv[2].encode() + b" HTTP/1.0\r\n\r\n")
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
]])
    local function half_closed(path)
      local f = io.popen(("python3 %s %s %s"):format(h.shell_quote(half), h.shell_quote(p.info.socket), h.shell_quote(path)))
      local answer = f:read("a")
      f:close()
      return answer
    end
    assert.matches("^HTTP/1%.%d 200", half_closed("echo?marker=half-closed"))
    local answer = half_closed("slow")
    assert.matches("^HTTP/1%.%d 502", answer)
    local doc = cjson.decode(answer:match("\r\n\r\n(.*)$"))
    assert.equal("client_left", doc.reason, answer)
    assert.matches("not sent, or stopped: the client closed its side of the connection", doc.message, 1, true)
    -- the worker goes on, and a client that stays is answered
    local st, body = proxies.curl(p, "/keyed/echo?marker=stayed")
    assert.equal(200, st, body)
    local seen = cjson.encode(api.log())
    assert.matches("marker=stayed", seen, 1, true)
    assert.is_nil(seen:find("gone-before", 1, true), "the request of a client that had left was sent upstream")
    assert.matches("marker=half-closed", seen, 1, true)
    p.stop()
  end)

  it("serves other requests while one waits for a slow upstream: on a keep-alive connection, a new one and 50 more",
    function()
      local p = start_proxy({ "--socket", tmp .. "/a.sock" })
      -- the client, in this order: a request on a keep-alive connection; one that the
      -- upstream holds; while it is held, a second request on the keep-alive connection, one
      -- on a new connection and 50 on 50 more, all sent before any is read; then whether
      -- the slow one is still held (the upstream's word), and only then its release
      local script = tmp .. "/client.py"
      h.write(script, [[
import http.client, json, socket, sys, time, urllib.request
path, up = sys.argv[1], sys.argv[2]
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
def get(c, target):
    c.request("GET", target)
    r = c.getresponse()
    r.read()
    return r.status
def held():
    return json.load(urllib.request.urlopen(up + "/held"))["held"]
keep = Unix("proxy")
print("keep-alive", get(keep, "/keyed/echo?k=1"))
slow = Unix("proxy")
slow.request("GET", "/keyed/hold?id=slow")
while "slow" not in held():
    time.sleep(0.05)
print("keep-alive again", get(keep, "/keyed/echo?k=2"))
print("new connection", get(Unix("proxy"), "/keyed/echo?k=3"))
many = [Unix("proxy") for _ in range(50)]
for i, c in enumerate(many):
    c.request("GET", "/keyed/echo?m=%d" % i)
ok = 0
for c in many:
    r = c.getresponse()
    r.read()
    ok += r.status == 200
print("many", ok)
print("slow still held", "slow" in held())
urllib.request.urlopen(up + "/release?id=slow")
r = slow.getresponse()
print("slow", r.status, r.read().decode().strip())
]])
      local f = io.popen(("python3 %s %s %s 2>&1"):format(script, h.shell_quote(p.info.socket), api.base))
      local out = f:read("*a")
      f:close()
      assert.equal(table.concat({ "keep-alive 200", "keep-alive again 200", "new connection 200", "many 50",
        "slow still held True", "slow 200 released slow", "" }, "\n"), out)
      assert.equal(0, p.stop())
    end)

  it("serves a burst of 256 concurrent clients", function()
    local p = start_proxy({ "--socket", tmp .. "/b.sock" })
    local dir = h.tmpdir()
    local cfg = {}
    for i = 1, 256 do
      cfg[#cfg + 1] = ('url = "http://proxy/keyed/echo?burst=%d"\noutput = "%s/o%d"\n'):format(i, dir, i)
    end
    h.write(dir .. "/cfg", table.concat(cfg))
    assert.is_true(os.execute(("curl -s --parallel --parallel-immediate --parallel-max 256 --unix-socket %s -K %s "
      .. "-w '%%{http_code}\\n' >%s/codes 2>/dev/null"):format(h.shell_quote(p.info.socket), dir .. "/cfg", dir)))
    local n = 0
    for c in (h.read(dir .. "/codes") or ""):gmatch("%d+") do
      assert.equal("200", c)
      n = n + 1
    end
    assert.equal(256, n)
    for i = 1, 256 do assert.matches('"url":"/echo%?burst=' .. i .. '"', h.read(dir .. "/o" .. i)) end
    h.rmdir(dir)
    assert.equal(0, p.stop())
  end)

  it("streams a 64 MiB answer to a slow client with the worker's memory far below its size", function()
    local p = start_proxy({ "--socket", tmp .. "/c.sock" })
    local dir = h.tmpdir()
    local size = 64 * 1024 * 1024
    local function kb(field)
      return tonumber(h.read(("/proc/%d/status"):format(p.worker)):match(field .. ":%s*(%d+) kB")) * 1024
    end
    -- warm: the worker has served a request (its libraries and the connection are loaded)
    assert.is_true(os.execute(("curl -s -f -o /dev/null --unix-socket %s 'http://proxy/keyed/stream?n=1000'")
      :format(h.shell_quote(p.info.socket))))
    local before = kb("VmRSS")
    -- a client slower than the upstream: without flow control the worker would hold the body
    local ok = os.execute(("curl -s -f --limit-rate 40M -o %s/body --unix-socket %s 'http://proxy/keyed/stream?n=%d'")
      :format(dir, h.shell_quote(p.info.socket), size))
    assert.is_true(ok)
    local f = assert(io.open(dir .. "/body", "rb"))
    local got, bad = 0, false
    while true do
      local piece = f:read(1 << 20)
      if not piece then break end
      got = got + #piece
      if piece:find("[^y]") then bad = true end
    end
    f:close()
    assert.equal(size, got)
    assert.is_false(bad)
    -- the worker's peak resident memory, from the kernel, against what it was before
    local grew = kb("VmHWM") - before
    assert.is_true(grew < size / 4, ("the worker's peak RSS grew by %d bytes"):format(grew))
    h.rmdir(dir)
    assert.equal(0, p.stop())
  end)

  it("cuts the connection of an answer over --max-response, and logs and counts it as an error", function()
    local p = start_proxy({ "--socket", tmp .. "/d.sock", "--max-response", "1000000" })
    local dir = h.tmpdir()
    local sock = h.shell_quote(p.info.socket)
    os.execute(("curl -s -o %s/body -w '%%{http_code}' --unix-socket %s 'http://proxy/keyed/stream?n=3000000' >%s/code; "
      .. "echo $? >%s/rc"):format(dir, sock, dir, dir))
    assert.equal("200", h.read(dir .. "/code"))
    assert.are_not.equal("0\n", h.read(dir .. "/rc")) -- curl saw a transfer that did not end well
    local body = h.read(dir .. "/body") or ""
    assert.is_true(#body <= 1000000, "got " .. #body .. " bytes")
    -- an answer under the limit still passes, on the same worker
    os.execute(("curl -s -o %s/small --unix-socket %s 'http://proxy/keyed/stream?n=500000'"):format(dir, sock))
    assert.equal(500000, #(h.read(dir .. "/small") or ""))
    os.execute(("curl -s -o %s/metrics --unix-socket %s http://proxy/_connrt/metrics"):format(dir, sock))
    assert.matches('connrt_proxy_requests_total{connection="keyed[^"]*",class="error"} 1', h.read(dir .. "/metrics"))
    h.rmdir(dir)
    assert.equal(0, p.stop())
    assert.matches("GET /keyed/stream 200 [%d.]+ms cut: the answer is larger than the limit", p.stderr)
  end)

  it("stops the upstream transfer of a client that leaves mid-answer, and goes on serving", function()
    local p = start_proxy({ "--socket", tmp .. "/g.sock" })
    local sock = h.shell_quote(p.info.socket)
    -- the client reads 100 kB of 64 MiB and goes
    os.execute(("curl -s --unix-socket %s 'http://proxy/keyed/stream?n=67108864' 2>/dev/null | head -c 100000 >/dev/null")
      :format(sock))
    assert.matches("GET /keyed/stream 200 [%d.]+ms cut: the client", err_with(p, "cut: the client", true))
    assert.is_true(os.execute(("curl -s -f -o /dev/null --unix-socket %s http://proxy/keyed/echo"):format(sock)))
    assert.equal(0, p.stop())
    assert.is_nil(p.stderr:find("starting it again", 1, true))
  end)

  -- whole: a small answer of known length (sent in one piece); streamed: 300 kB
  for _, on in ipairs({ "unix", "tcp", "stream" }) do
    it("logs and counts an answer whose client left before it was written as cut, not as sent (" .. on .. ")",
      function()
        local p = start_proxy(on == "tcp" and { "--listen", "127.0.0.1:0" } or { "--socket", tmp .. "/l.sock" })
        -- the client asks, the upstream holds the request, the client goes; then the answer
        -- comes. On TCP the kernel takes an answer to a client that has left without an
        -- error. (Unless the proxy noticed the client gone first, half a second into the
        -- wait, and stopped the upstream request: then it is a 502 that finds the client
        -- gone. Either way, cut.)
        local script = tmp .. "/leave.py"
        h.write(script, [[
import json, socket, sys, time, urllib.request
where, up, key = sys.argv[1], sys.argv[2], sys.argv[3]
if where.startswith("/"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(where)
else:
    s = socket.create_connection(("127.0.0.1", int(where.rsplit(":", 1)[1])))
s.sendall(b"GET /keyed/hold?id=left-" + sys.argv[4].encode() + b" HTTP/1.1\r\nHost: proxy\r\nConnrt-Key: "
          + key.encode() + b"\r\n\r\n")
while "left-" + sys.argv[4] not in json.load(urllib.request.urlopen(up + "/held"))["held"]:
    time.sleep(0.05)
s.close()
]])
        assert.is_true(os.execute(("python3 %s %s %s %s %s"):format(h.shell_quote(script),
          h.shell_quote(p.info.socket or p.info.listen), h.shell_quote(api.base), p.key or "-", on)))
        assert(client:request({ url = ("%s/release?id=left-%s&size=%d"):format(api.base, on, on == "stream" and 300000 or 10) }))
        assert.matches("GET /keyed/hold [25]0[02] [%d.]+ms cut: the client went away",
          err_with(p, "GET /keyed/hold ", true))
        -- the same answer to a client that stays is logged as sent
        local dir = h.tmpdir()
        local curl = on ~= "tcp" and ("curl -s --unix-socket %s http://proxy"):format(h.shell_quote(p.info.socket))
          or ("curl -s -H 'Connrt-Key: %s' http://%s"):format(p.key, p.info.listen)
        os.execute(("%s/keyed/hold?id=stays-%s >%s/body &"):format(curl, on, dir))
        wait_held({ "stays-" .. on })
        release("stays-" .. on)
        assert.matches("GET /keyed/hold 200 [%d.]+ms\n", err_with(p, "GET /keyed/hold 200 [%d.]+ms\n"))
        os.execute(("%s/_connrt/metrics >%s/metrics"):format(curl, dir))
        local metrics = h.read(dir .. "/metrics")
        assert.matches('connrt_proxy_requests_total{connection="keyed[^"]*",class="error"} 1\n', metrics)
        assert.matches('connrt_proxy_requests_total{connection="keyed[^"]*",class="2xx"} 1\n', metrics)
        h.rmdir(dir)
        assert.equal(0, p.stop())
      end)
  end

  it("stops the upstream request of a client that left while it waited (pipelined or not), and logs it as cut",
    function()
      local p = start_proxy({ "--listen", "127.0.0.1:0" })
      local script = tmp .. "/abandon.py"
      -- the client sends its request (and, pipelined, its next one behind it) and goes
      h.write(script, [[
import json, socket, sys, time, urllib.request
host, port = sys.argv[1].rsplit(":", 1)
rid, key = sys.argv[4], sys.argv[3].encode()
s = socket.create_connection((host, int(port)))
req = (b"POST /keyed/hold?id=" + rid.encode() + b" HTTP/1.1\r\nHost: proxy\r\nConnrt-Key: " + key
       + b"\r\nContent-Length: 4\r\n\r\nbody")
if sys.argv[5] == "pipelined":
    req += b"GET /keyed/echo HTTP/1.1\r\nHost: proxy\r\nConnrt-Key: " + key + b"\r\n\r\n"
s.sendall(req)
while rid not in json.load(urllib.request.urlopen(sys.argv[2] + "/held"))["held"]:
    time.sleep(0.05)
s.close()
]])
      for _, how in ipairs({ "alone", "pipelined" }) do
        local rid = "abandoned-" .. how
        assert.is_true(os.execute(("python3 %s %s %s %s %s %s"):format(h.shell_quote(script), p.info.listen,
          h.shell_quote(api.base), p.key, rid, how)))
        -- never released: the upstream sees its request's connection closed by the proxy
        local gone = false
        for _ = 1, 600 do
          gone = not cjson.encode(held().held):find('"' .. rid .. '"', 1, true)
          if gone then break end
          sys.sleep(0.05)
        end
        assert.is_true(gone, "the upstream still holds the request of a client that left (" .. how .. ")")
      end
      local _, n = err_with(p, "POST /keyed/hold 502 [%d.]+ms cut: the client went away\n.*POST /keyed/hold 502")
        :gsub("POST /keyed/hold 502 [%d.]+ms cut: the client went away\n", "")
      assert.equal(2, n)
      -- a client that waits as long is answered (the watch does not cut the living)
      local dir = h.tmpdir()
      os.execute(("curl -s -H 'Connrt-Key: %s' -o %s/body http://%s/keyed/hold?id=patient & echo $! >%s/pid")
        :format(p.key, dir, p.info.listen, dir))
      wait_held({ "patient" })
      sys.sleep(1) -- past the proxy's half second, so that its watch of the client is on
      release("patient")
      for _ = 1, 600 do
        if (h.read(dir .. "/body") or "") ~= "" then break end
        sys.sleep(0.05)
      end
      assert.equal("released patient\n", h.read(dir .. "/body"))
      h.rmdir(dir)
      assert.equal(0, p.stop())
      assert.matches("GET /keyed/hold 200 [%d.]+ms\n", p.stderr)
    end)

  it("serves other requests while one waits for another process's refresh", function()
    local p = start_proxy({ "--socket", tmp .. "/h.sock" })
    local dir = h.tmpdir()
    local sock = h.shell_quote(p.info.socket)
    -- another process holds the connection's lease, as a refreshing one does
    local st = require("connrt.store").open(home)
    local id = st:find("tok").id
    assert.truthy(st:acquire_lease(id, "the-spec", 120))
    finally(function()
      st:release_lease(id, "the-spec")
      st:close()
    end)
    local before = grants()
    -- a 401: the proxy must refresh, and waits for the lease
    os.execute(("(curl -s -o /dev/null -w '%%{http_code}' --unix-socket %s http://proxy/tok/status/401 >%s/tok) &")
      :format(sock, dir))
    for _ = 1, 600 do
      local log = api.log()
      if #log > 0 and log[#log].url == "/status/401" then break end
      sys.sleep(0.05)
    end
    -- while it waits, the worker answers others
    for i = 1, 5 do
      assert.is_true(os.execute(("curl -s -f -o /dev/null --unix-socket %s 'http://proxy/keyed/echo?w=%d'")
        :format(sock, i)))
    end
    assert.equal("", h.read(dir .. "/tok") or "")
    assert.equal(before, grants())
    st:release_lease(id, "the-spec")
    for _ = 1, 600 do
      if (h.read(dir .. "/tok") or "") ~= "" then break end
      sys.sleep(0.05)
    end
    -- then it refreshed, retried once, and passed the upstream's answer on
    assert.equal("401", h.read(dir .. "/tok"))
    assert.equal(before + 1, grants())
    h.rmdir(dir)
    assert.equal(0, p.stop())
  end)

  it("two requests that meet a 401 at once share one refresh, and both are retried once", function()
    local p = start_proxy({ "--socket", tmp .. "/e.sock" })
    local dir = h.tmpdir()
    local sock = h.shell_quote(p.info.socket)
    assert.is_true(os.execute(("curl -s -f -o /dev/null --unix-socket %s http://proxy/tok/echo"):format(sock)))
    local before = grants()
    for _, id in ipairs({ "r1", "r2" }) do
      os.execute(("(curl -s -o %s/%s -w '%%{http_code}' --unix-socket %s 'http://proxy/tok/hold?id=%s' >%s/%s.code) &")
        :format(dir, id, sock, id, dir, id))
    end
    -- both in flight with the same token; both answered 401; each retried once
    wait_held({ "r1", "r2" })
    release("r1", 401)
    release("r2", 401)
    wait_held({ "r1", "r2" })
    assert.equal(before + 1, grants())
    release("r1")
    release("r2")
    for _ = 1, 600 do
      if h.read(dir .. "/r1.code") == "200" and h.read(dir .. "/r2.code") == "200" then break end
      sys.sleep(0.05)
    end
    assert.equal("200", h.read(dir .. "/r1.code"))
    assert.equal("200", h.read(dir .. "/r2.code"))
    assert.equal(before + 1, grants())
    -- the retries carried the new token, which the proxy has since used without refreshing
    assert.is_true(os.execute(("curl -s -f -o /dev/null --unix-socket %s http://proxy/tok/echo"):format(sock)))
    assert.equal(before + 1, grants())
    h.rmdir(dir)
    assert.equal(0, p.stop())
  end)

  it("sends a small answer whose length the upstream gave whole, and streams a larger one (with its length) or a coded one",
    function()
    local p = start_proxy({ "--socket", tmp .. "/g.sock" })
    local dir = h.tmpdir()
    local sock = h.shell_quote(p.info.socket)
    local function get(path, n)
      os.execute(("curl -s -D %s/h%d -o %s/b%d --unix-socket %s 'http://proxy/keyed/%s'"):format(dir, n, dir, n, sock,
        path))
      return (h.read(dir .. "/h" .. n) or ""):lower(), h.read(dir .. "/b" .. n) or ""
    end
    local head, body = get("stream?n=1000", 1)
    assert.matches("content%-length: 1000\r\n", head)
    assert.is_nil(head:find("transfer-encoding", 1, true))
    assert.equal(("y"):rep(1000), body)
    head, body = get("stream?n=200000", 2) -- over 64 KiB: streamed as it comes, with its length
    assert.matches("content%-length: 200000\r\n", head)
    assert.is_nil(head:find("transfer-encoding", 1, true))
    assert.equal(200000, #body)
    head, body = get("stream?n=200000&chunked=1", 4) -- without one: chunked
    assert.matches("transfer%-encoding: chunked", head)
    assert.is_nil(head:find("content-length", 1, true))
    assert.equal(200000, #body)
    -- a gzip answer: the proxy's client decoded it, so the body is plain and says so
    head, body = get("gzip", 3)
    assert.is_nil(head:find("content-encoding", 1, true))
    assert.equal(("hello, compressed world\n"):rep(100), body)
    h.rmdir(dir)
    assert.equal(0, p.stop())
  end)

  it("hands a client that asks for gzip (curl --compressed, Node's http client as fetch asks) a body it can read", function()
    local p = start_proxy({ "--socket", tmp .. "/z.sock" })
    local dir = h.tmpdir()
    local sock = h.shell_quote(p.info.socket)
    local want = ("hello, compressed world\n"):rep(100)
    assert.is_true(os.execute(("curl -sf --compressed -o %s/curl --unix-socket %s http://proxy/keyed/gzip")
      :format(dir, sock)))
    assert.equal(want, h.read(dir .. "/curl"))
    h.write(dir .. "/client.mjs", ([[
      import fs from 'node:fs';
      import http from 'node:http';
      // Node's fetch cannot dial a unix socket: its http client, asking for gzip as fetch does,
      // and decoding what the answer says it is
      import zlib from 'node:zlib';
      http.get({ socketPath: %q, path: '/keyed/gzip', headers: { 'Accept-Encoding': 'gzip, deflate, br' } }, (res) => {
        const parts = [];
        res.on('data', (c) => parts.push(c));
        res.on('end', () => {
          let body = Buffer.concat(parts);
          if (res.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
          fs.writeFileSync(%q, body);
        });
      });
    ]]):format(p.info.socket, dir .. "/node"))
    assert.is_true(os.execute("node " .. dir .. "/client.mjs"))
    assert.equal(want, h.read(dir .. "/node"))
    h.rmdir(dir)
    assert.equal(0, p.stop())
  end)

  it("uses a finished transfer's curl handle again without anything of that request: method, body, headers",
    function()
      local p = start_proxy({ "--socket", tmp .. "/u.sock" })
      local sock = h.shell_quote(p.info.socket)
      local function send(args)
        local f = io.popen(("curl -s --unix-socket %s %s http://proxy/keyed/echo"):format(sock, args))
        local out = f:read("a")
        f:close()
        return cjson.decode(out)
      end
      local first = send("-X POST -H 'X-First: 1' --data-binary 'first body'")
      assert.equal("POST", first.method)
      assert.equal("first body", first.body)
      for _, case in ipairs({ { "", "GET" }, { "-X DELETE", "DELETE" }, { "-X PUT --data-binary second", "PUT" },
          { "", "GET" } }) do
        local e = send(case[1])
        assert.equal(case[2], e.method)
        assert.equal(case[2] == "PUT" and "second" or "", e.body)
        assert.is_nil(e.headers["x-first"])
        if case[2] == "GET" then assert.is_nil(e.headers["content-length"]) end
      end
      assert.equal(0, p.stop())
    end)

  it("cuts an answer over a --max-response below 64 KiB whose length the upstream gave, and serves on", function()
    local p = start_proxy({ "--socket", tmp .. "/m.sock", "--max-response", "1000" })
    local dir = h.tmpdir()
    local sock = h.shell_quote(p.info.socket)
    os.execute(("curl -s -o %s/body --unix-socket %s 'http://proxy/keyed/stream?n=5000'; echo $? >%s/rc")
      :format(dir, sock, dir))
    assert.are_not.equal("0\n", h.read(dir .. "/rc")) -- not taken for a whole answer
    assert.is_true(#(h.read(dir .. "/body") or "") <= 1000)
    os.execute(("curl -s -o %s/small --unix-socket %s 'http://proxy/keyed/stream?n=500'"):format(dir, sock))
    assert.equal(("y"):rep(500), h.read(dir .. "/small"))
    h.rmdir(dir)
    assert.equal(0, p.stop())
    assert.matches("GET /keyed/stream 200 [%d.]+ms cut: the answer is larger than the limit", p.stderr)
  end)

  it("SIGTERM exits at once after a client left before its answer came (the answer is not waited for)", function()
    local p = start_proxy({ "--socket", tmp .. "/l.sock" })
    local dir = h.tmpdir()
    -- a client that sends its request and leaves while the upstream holds the answer
    h.write(dir .. "/leave.py", ([[
import os, socket, time
s = socket.socket(socket.AF_UNIX)
s.connect(%q)
s.sendall(b"GET /keyed/hold?id=gone HTTP/1.1\r\nHost: x\r\n\r\n")
while not os.path.exists(%q):
    time.sleep(0.02)
s.close()
open(%q, "w").close()
]]):format(p.info.socket, dir .. "/leave", dir .. "/left"))
    os.execute(("python3 %s/leave.py &"):format(dir))
    wait_held({ "gone" })
    h.write(dir .. "/leave", "")
    for _ = 1, 400 do
      if h.read(dir .. "/left") then break end
      sys.sleep(0.05)
    end
    release("gone") -- answered into the closed connection
    for _ = 1, 400 do
      if (p.err() or ""):find("GET /keyed/hold 200", 1, true) then break end
      sys.sleep(0.05)
    end
    -- it owes nobody anything: it exits now, not after its 30 s grace (stop waits 20 s)
    assert.equal(0, p.stop())
    h.rmdir(dir)
  end)

  -- A client that sends `first` and then GET /keyed/echo on one connection of proxy `p`,
  -- reads up to 1 KiB (then writes `started` in `dir`) and reads the rest once `go` is
  -- there. SIGTERM reaches the proxy once `ready(dir)` has returned and the worker has
  -- taken it; then `go()` lets the answer come. Returns all the client read.
  local function pipelined_at_term(p, first, ready, go)
    local dir = h.tmpdir()
    h.write(dir .. "/pipe.py", ([[
import os, socket, time
s = socket.socket(socket.AF_UNIX)
s.connect(%q)
s.sendall(b"%s HTTP/1.1\r\nHost: x\r\n\r\nGET /keyed/echo HTTP/1.1\r\nHost: x\r\n\r\n")
s.settimeout(20)
got = s.recv(1024)
open(%q, "w").close()
while not os.path.exists(%q):
    time.sleep(0.02)
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
open(%q, "wb").write(got)
]]):format(p.info.socket, first, dir .. "/started", dir .. "/go", dir .. "/got"))
    os.execute(("python3 %s/pipe.py &"):format(dir))
    ready(dir)
    os.execute(("kill -TERM %d"):format(p.pid))
    -- the master relays the signal; the idle worker takes it at once
    for _ = 1, 200 do
      if (p.err() or ""):find("stopping: finishing", 1, true) then break end
      sys.sleep(0.05)
    end
    sys.sleep(0.5)
    go()
    h.write(dir .. "/go", "")
    assert.equal(0, p.stop())
    local got
    for _ = 1, 200 do
      got = h.read(dir .. "/got")
      if got then break end
      sys.sleep(0.05)
    end
    h.rmdir(dir)
    return assert(got, "the client's read")
  end

  it("SIGTERM: an answer given while stopping says Connection: close, so a request pipelined behind it is known unserved",
    function()
    local p = start_proxy({ "--socket", tmp .. "/pt.sock" })
    local got = pipelined_at_term(p, "GET /keyed/hold?id=piped", function() wait_held({ "piped" }) end,
      function() release("piped") end)
    local _, answers = got:gsub("HTTP/1%.1 %d%d%d ", "")
    assert.equal(1, answers, (got:gsub("\r", "")))
    assert.matches("^HTTP/1%.1 200 ", got)
    assert.matches("\r\nConnection: close\r\n", got)
  end)

  it("SIGTERM: a request pipelined behind an answer streaming since before it is served too, and says close",
    function()
    local p = start_proxy({ "--socket", tmp .. "/ps.sock" })
    -- the stream's head went out before the signal; the proxy holds the rest while the
    -- client does not read (3 MB is far over what sockets buffer)
    local got = pipelined_at_term(p, "GET /keyed/stream?n=3000000", function(dir)
      for _ = 1, 400 do
        if h.read(dir .. "/started") then break end
        sys.sleep(0.05)
      end
    end, function() end)
    local _, answers = got:gsub("HTTP/1%.1 200 ", "")
    assert.equal(2, answers)
    assert.matches("\r\nConnection: close\r\n", got:sub(#got - 2000))
    assert.matches('"url":"/echo"', got:sub(#got - 2000))
  end)

  it("SIGTERM finishes many requests in flight, streamed ones included, then exits 0", function()
    local p = start_proxy({ "--socket", tmp .. "/f.sock" })
    local dir = h.tmpdir()
    local sock = h.shell_quote(p.info.socket)
    local ids = {}
    for i = 1, 10 do
      ids[i] = "t" .. i
      os.execute(("(curl -s -o %s/%s -w '%%{http_code}' --unix-socket %s 'http://proxy/keyed/hold?id=%s' >%s/%s.code) &")
        :format(dir, ids[i], sock, ids[i], dir, ids[i]))
    end
    wait_held(ids)
    os.execute(("kill -TERM %d"):format(p.pid))
    -- released only after the signal: the answers come from a stopping proxy
    for _, id in ipairs(ids) do release(id) end
    assert.equal(0, p.stop())
    for _, id in ipairs(ids) do
      assert.equal("200", h.read(dir .. "/" .. id .. ".code"))
      assert.equal("released " .. id .. "\n", h.read(dir .. "/" .. id))
    end
    h.rmdir(dir)
  end)
end)
