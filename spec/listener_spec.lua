-- luacheck: std +busted
-- connrt.listener: the loopback redirect listener, driven by real HTTP and raw TCP
-- clients (node, started in the background while the spec blocks in accept).
local cjson = require "cjson"
local listener = require "connrt.listener"
local sys = require "connrt.sys"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- The client: mode "http" makes one request with node's http module and reports the
-- status, headers and body (hex); mode "raw" connects, writes `data` (latin1), ends its
-- side if `finish`, and reports every byte it got until the server closed. Results go to P.out atomically.
local CLIENT = [[
const fs = require('fs'), http = require('http'), net = require('net');
const P = JSON.parse(process.argv[2]);
let reported = false;
function done(r) {
  if (reported) return;
  reported = true;
  fs.writeFileSync(P.out + '.tmp', JSON.stringify(r));
  fs.renameSync(P.out + '.tmp', P.out);
}
setTimeout(() => process.exit(3), 30000).unref();
setTimeout(() => {
  if (P.mode === 'http') {
    const req = http.request({ host: P.host, port: P.port, path: P.path, method: P.method || 'GET',
                               headers: P.headers || {}, agent: false }, res => {
      const chunks = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode, reason: res.statusMessage, headers: res.headers,
                                 body: Buffer.concat(chunks).toString('hex') }));
    });
    req.on('error', e => done({ error: e.code || e.message }));
    req.end();
  } else {
    const chunks = [];
    const s = net.connect(P.port, P.host, () => {
      if (P.data) s.write(Buffer.from(P.data, 'latin1'));
      if (P.finish) s.end(); // half-close: the server sees the end of the request
    });
    s.on('data', c => chunks.push(c));
    s.on('error', e => done({ error: e.code, got: Buffer.concat(chunks).toString('latin1') }));
    s.on('end', () => { done({ got: Buffer.concat(chunks).toString('latin1') }); s.destroy(); });
  }
}, P.delay || 0);
]]

local dir, script, serial

-- Starts a client in the background; returns a function that waits for its report.
local function client(params)
  serial = serial + 1
  local out = ("%s/client%d.json"):format(dir, serial)
  params.out = out
  params.host = params.host or "127.0.0.1"
  local log = out .. ".log"
  assert(os.execute(("node %s %s >%s 2>&1 &"):format(script, shell_quote(cjson.encode(params)), log)))
  return function()
    local deadline = sys.monotime() + 20
    repeat
      local s = read(out)
      if s then return cjson.decode(s) end
      sys.sleep(0.02)
    until sys.monotime() > deadline
    error("the client reported nothing; its log: " .. (read(log) or ""))
  end, out
end

local function open_local()
  local l, err = listener.open("127.0.0.1", 0)
  assert(l, err)
  return l
end

-- Whether this machine has an IPv6 loopback.
local has_ipv6 = (function()
  local l = listener.open("::1", 0)
  if l then l:close() end
  return l ~= nil
end)()

describe("connrt.listener", function()
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(sys.mkdir(dir, 448))
    script = dir .. "/client.js"
    local f = assert(io.open(script, "wb"))
    f:write(CLIENT)
    f:close()
    serial = 0
  end)

  after_each(function()
    if dir and dir:match("^/tmp/") then os.execute("rm -rf " .. shell_quote(dir)) end
  end)

  it("binds a real free port when asked for port 0", function()
    local a, b = open_local(), open_local()
    finally(function() a:close(); b:close() end)
    local pa, pb = a:port(), b:port()
    assert.is_true(math.type(pa) == "integer" and pa > 0 and pa <= 65535)
    assert.is_true(pb > 0 and pb ~= pa)
    -- and the port is really taken: nobody else can listen there
    local c, err = listener.open("127.0.0.1", pa)
    assert.is_nil(c)
    assert.truthy(err:find("127.0.0.1:" .. pa, 1, true))
  end)

  it("parses a callback request and sends the response the client sees", function()
    local l = open_local()
    finally(function() l:close() end)
    local port = l:port()
    local result = client({ mode = "http", port = port, delay = 200, path = "/callback?code=a&state=b",
      headers = { ["X-Multi"] = { "one", "two" }, ["X-Spaced"] = "  padded value  " } })
    local req, err = l:accept(5)
    assert(req, err)
    assert.equal("GET", req.method)
    assert.equal("/callback?code=a&state=b", req.target)
    assert.equal("/callback", req.path)
    assert.equal("code=a&state=b", req.query)
    assert.equal("127.0.0.1:" .. port, req.headers.host)
    assert.equal("one, two", req.headers["x-multi"])
    assert.equal("padded value", req.headers["x-spaced"])
    assert.is_nil(req.headers["X-Multi"])
    assert.truthy(req.peer:match("^127%.0%.0%.1:%d+$"))
    assert.is_true(tonumber(req.peer:match(":(%d+)$")) > 0)

    assert.is_true(req:respond(200, { ["Content-Type"] = "text/plain", ["X-Reply"] = "yes" }, "hello\n"))
    local got = result()
    assert.is_nil(got.error)
    assert.equal(200, got.status)
    assert.equal("OK", got.reason)
    assert.equal("yes", got.headers["x-reply"])
    assert.equal("text/plain", got.headers["content-type"])
    assert.equal("6", got.headers["content-length"])
    assert.equal("close", got.headers.connection)
    assert.equal(hex("hello\n"), got.body)
    assert.error_matches(function() req:respond(200, nil, "again") end, "already answered")
  end)

  it("sends redirects, error statuses and large binary bodies", function()
    local l = open_local()
    finally(function() l:close() end)
    local body = {}
    for i = 1, 200000 do body[i] = string.char(i % 256) end
    body = table.concat(body) -- far more than a socket buffer: partial writes
    local cases = {
      { 302, { Location = "/done" }, "", "Found" },
      { 404, nil, "nothing here", "Not Found" },
      { 405, { Allow = "GET" }, "", "Method Not Allowed" },
      { 500, {}, body, "Internal Server Error" },
    }
    for _, case in ipairs(cases) do
      local result = client({ mode = "http", port = l:port(), delay = 100, path = "/x", method = "POST" })
      local req = assert(l:accept(5))
      assert.equal("POST", req.method)
      assert.is_true(req:respond(case[1], case[2], case[3]))
      local got = result()
      assert.is_nil(got.error)
      assert.equal(case[1], got.status)
      assert.equal(case[4], got.reason)
      assert.equal(tostring(#case[3]), got.headers["content-length"])
      assert.equal(hex(case[3]), got.body)
      for k, v in pairs(case[2] or {}) do assert.equal(v, got.headers[k:lower()]) end
    end
  end)

  it("refuses response headers that would inject or override framing, and stays answerable", function()
    local l = open_local()
    finally(function() l:close() end)
    local result = client({ mode = "http", port = l:port(), delay = 100, path = "/" })
    local req = assert(l:accept(5))
    assert.error_matches(function() req:respond(200, { ["X-A"] = "a\r\nInjected: 1" }, "") end, "control character")
    assert.error_matches(function() req:respond(200, { ["Bad Name"] = "x" }, "") end, "bad header name")
    assert.error_matches(function() req:respond(200, { ["Content-Length"] = "1" }, "") end, "set by the listener")
    assert.is_true(req:respond(403, nil, "no"))
    local got = result()
    assert.equal(403, got.status)
    assert.is_nil(got.headers.injected)
    assert.equal(hex("no"), got.body)
  end)

  it("returns nil, \"timeout\" when nothing comes, after at least the time given", function()
    local l = open_local()
    finally(function() l:close() end)
    for _, t in ipairs({ 0.3, 0 }) do
      local t0 = sys.monotime()
      local req, err = l:accept(t)
      assert.is_nil(req)
      assert.equal("timeout", err)
      assert.is_true(sys.monotime() - t0 >= t)
    end
  end)

  it("answers malformed and oversized requests with 400 and 431 and keeps waiting", function()
    local l = open_local()
    finally(function() l:close() end)
    local port = l:port()
    local bad = {
      { "GARBAGE\r\n\r\n", 400 },
      { "GET /x HTTP/2.0\r\n\r\n", 400 },
      { "GET  /x HTTP/1.1\r\n\r\n", 400 },
      { "GET /x HTTP/1.1\r\nNo colon here\r\n\r\n", 400 },
      { "GET /x HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400 },
      { "GET /x HTTP/1.1\r\nX-Big: " .. string.rep("a", 20000) .. "\r\n\r\n", 431 },
      { "GET /half HTTP/1.1\r\nHost: x\r\n", 400, finish = true }, -- ends before the blank line
    }
    local results = {}
    for i, b in ipairs(bad) do
      results[i] = client({ mode = "raw", port = port, delay = 50, data = b[1], finish = b.finish })
    end
    local good = client({ mode = "http", port = port, delay = 1000, path = "/good?x=1" })
    local req, err = l:accept(5)
    assert(req, err)
    assert.equal("/good", req.path)
    assert.equal("x=1", req.query)
    req:respond(200, nil, "ok")
    assert.equal(200, good().status)
    for i, b in ipairs(bad) do
      local got = results[i]()
      local status = tonumber(got.got:match("^HTTP/1%.1 (%d+) "))
      assert.equal(b[2], status)
      assert.truthy(got.got:find("\r\nConnection: close\r\n", 1, true))
      local len = tonumber(got.got:match("\r\nContent%-Length: (%d+)\r\n"))
      local body = got.got:match("\r\n\r\n(.*)$")
      assert.is_true(len > 0)
      assert.equal(len, #body)
    end
  end)

  it("does not let an idle connection hold up the callback, and answers it 408 at its deadline", function()
    local l = open_local()
    finally(function() l:close() end)
    local port = l:port()
    local silent, silent_out = client({ mode = "raw", port = port })
    local partial = client({ mode = "raw", port = port, data = "GET /slow HTTP/1.1\r\nHost: x\r\n" })
    local first = client({ mode = "http", port = port, delay = 300, path = "/first" })
    local req = assert(l:accept(5))
    assert.equal("/first", req.path)
    req:respond(200, nil, "ok")
    assert.equal(200, first().status)
    assert.is_nil(read(silent_out)) -- not answered yet: still within its deadline

    -- the next good request comes after the idle connections' 5 s deadline
    local second = client({ mode = "http", port = port, delay = 5600, path = "/second" })
    req = assert(l:accept(10))
    assert.equal("/second", req.path)
    req:respond(200, nil, "ok")
    assert.equal(200, second().status)
    for _, wait in ipairs({ silent, partial }) do
      local got = wait()
      assert.equal("408", got.got:match("^HTTP/1%.1 (%d+) Request Timeout\r\n"))
    end
  end)

  it("lets a flood of silent connections give way to the real callback", function()
    local l = open_local()
    finally(function() l:close() end)
    local port = l:port()
    -- more silent clients than the listener reads at once (8), then the browser
    -- (bash's /dev/tcp: connecting costs nothing, unlike starting node twelve times)
    for _ = 1, 12 do
      os.execute(("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; sleep 8' >/dev/null 2>&1 &"):format(port))
    end
    sys.sleep(0.3)
    local real = client({ mode = "http", port = port, delay = 200, path = "/real" })
    -- before the silent ones' 5 s deadline: the oldest gave way to the newest
    local req = assert(l:accept(4))
    assert.equal("/real", req.path)
    req:respond(200, nil, "ok")
    assert.equal(200, real().status)
  end)

  it("answers a request while it waits through the loop: the client that left data unread gets all", function()
    local l = open_local()
    finally(function() l:close() end)
    local port = l:port()
    -- a client that sends 64 KB more than its head and keeps its connection open
    local lingering = client({ mode = "raw", port = port,
      data = "GET /wrong HTTP/1.1\r\nHost: x\r\n\r\n" .. string.rep("a", 65536) })
    local req = assert(l:accept(5))
    assert.equal("/wrong", req.path)
    -- while the listener waits, respond hands the connection back: l:accept's loop
    -- sends what the socket did not take at once and drains the client (see
    -- abuse_spec.lua for what lingering in respond once cost the real callback)
    assert.is_true(req:respond(400, { ["Content-Type"] = "text/plain" }, "wrong state"))
    local good = client({ mode = "http", port = port, delay = 100, path = "/good" })
    req = assert(l:accept(5))
    assert.equal("/good", req.path)
    l:close() -- the wait is over (as flow/browser.lua does): the callback's answer is sent and lingered in respond
    assert.is_true(req:respond(200, nil, "ok"))
    assert.equal(200, good().status)
    -- and the rejected client got its whole answer
    local got = lingering()
    assert.equal("400", (got.got or ""):match("^HTTP/1%.1 (%d+) Bad Request\r\n"), got.error)
    assert.equal("wrong state", got.got:match("\r\n\r\n(.*)$"))
  end)

  it("sends an answer larger than the socket takes at once from the loop while it waits", function()
    local l = open_local()
    finally(function() l:close() end)
    local body = string.rep("0123456789abcdef", 512 * 1024) -- 8 MB
    local result, out = client({ mode = "http", port = l:port(), delay = 100, path = "/big" })
    local req = assert(l:accept(5))
    assert.is_true(req:respond(500, nil, body))
    for _ = 1, 200 do -- the rest goes out while the listener waits for the next request
      assert.is_nil(l:accept(0.05))
      if read(out) then break end
    end
    local got = result()
    assert.equal(500, got.status)
    assert.equal(#body * 2, #got.body) -- hex
    assert.equal(hex(body:sub(-16)), got.body:sub(-32))
  end)

  it("closes the connection of a request dropped without a response", function()
    local l = open_local()
    finally(function() l:close() end)
    local result = client({ mode = "http", port = l:port(), delay = 100, path = "/" })
    do
      local req <close> = assert(l:accept(5))
      assert.equal("/", req.path)
    end
    assert.equal("ECONNRESET", result().error) -- node: "socket hang up"
  end)

  it("fails to bind a port already in use, naming host and port", function()
    local l = open_local()
    finally(function() l:close() end)
    local port = l:port()
    local again, err = listener.open("127.0.0.1", port)
    assert.is_nil(again)
    assert.equal(("cannot listen on 127.0.0.1:%d: Address already in use"):format(port), err)
  end)

  it("refuses a host that is not an IP literal and a port out of range", function()
    local l, err = listener.open("localhost", 0)
    assert.is_nil(l)
    assert.truthy(err:find("cannot listen on localhost:0", 1, true))
    assert.has_error(function() listener.open("127.0.0.1", 70000) end)
  end)

  it("closes on l:close(), on <close> and twice harmlessly; a closed listener raises", function()
    local port
    do
      local l <close> = open_local()
      port = l:port()
    end
    local l = assert(listener.open("127.0.0.1", port)) -- free again
    l:close()
    l:close()
    assert.error_matches(function() l:accept(0) end, "closed")
    assert.error_matches(function() l:port() end, "closed")
  end)

  if has_ipv6 then
    it("listens on the IPv6 loopback ::1", function()
      local l = assert(listener.open("::1", 0))
      finally(function() l:close() end)
      local port = l:port()
      local result = client({ mode = "http", host = "::1", port = port, delay = 200, path = "/callback?code=6" })
      local req = assert(l:accept(5))
      assert.equal("/callback", req.path)
      assert.equal("code=6", req.query)
      assert.equal("[::1]:" .. port, req.headers.host)
      assert.truthy(req.peer:match("^%[::1%]:%d+$"))
      req:respond(200, nil, "v6")
      assert.equal(hex("v6"), result().body)
      local again, err = listener.open("::1", port)
      assert.is_nil(again)
      assert.truthy(err:find("[::1]:" .. port, 1, true))
    end)
  else
    pending("listens on the IPv6 loopback ::1 (this machine has none)")
  end
end)
