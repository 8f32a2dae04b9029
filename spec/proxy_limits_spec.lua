-- luacheck: std +busted
-- `connrt proxy` out of file descriptors (src/api/httpd.c): clients holding connections
-- open up to a worker's limit must not make it call accept() in a loop (libevent 2.1
-- would, at full CPU, printing a warning each time); it pauses accepting, serves what
-- is open, and accepts again once descriptors are free; and it can answer then, though a
-- connection that closed while waiting to be accepted still takes a descriptor for a
-- moment when it is (the worker opened its store and loaded what a request needs before
-- serving, while it had descriptors); a request that cannot open what it needs is a 503
-- that says why. A client that trickles its request (a byte within each --idle, the whole
-- far past it) would hold a descriptor for ever: it is closed. Real processes: a proxy
-- whose worker is left 4 descriptors (or 1) once it serves (prlimit), 300 idle clients on
-- its socket, a trickling one.
local h = require("support.helpers")
local proxy = require("support.proxy")
local sys = require("connrt.sys")

-- The listing of the worker's descriptors once it holds still (read every 0.2 s until
-- two readings agree): a connection a client just closed may not be closed by the
-- worker yet on a busy machine.
local function settled_fds(worker)
  local function listing()
    local l = io.popen(("ls /proc/%d/fd"):format(worker))
    local text = l:read("a")
    l:close()
    return text
  end
  local now, before = listing(), nil
  while now ~= before do
    sys.sleep(0.2)
    before, now = now, listing()
  end
  return now
end

-- A proxy with one worker, serving (its first answer given, and that client's connection
-- closed: the same descriptors twice), and the worker's pid.
local function serving(home, socket, extra)
  local args = { "--socket", socket, "--workers", "1" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local p = proxy.start(home, args)
  local q = io.popen("pgrep -P " .. p.pid)
  local worker = tonumber(q:read("a"))
  q:close()
  assert(worker, "the proxy's worker")
  assert.equal(200, (proxy.curl(p, "/_connrt/metrics")))
  settled_fds(worker)
  return p, worker
end

-- The soft descriptor limit that leaves the worker exactly `free` descriptors: a limit
-- caps a new descriptor's number, not how many are open, so it is set just above the
-- free-th unused number (a runner may have left the worker descriptors far above).
local function limit_leaving(worker, free)
  -- the descriptors once they hold still: a connection a client just closed may not be
  -- closed by the worker yet (a busy machine), and one that closes after the count
  -- would leave a number below the limit free
  local text = settled_fds(worker)
  local used = {}
  for n in text:gmatch("%d+") do used[tonumber(n)] = true end
  local fd = -1
  while free > 0 do
    fd = fd + 1
    if not used[fd] then free = free - 1 end
  end
  return fd + 1
end

describe("connrt proxy at its limits: descriptors, slow clients #integration", function()
  local home, tmp, api

  setup(function()
    home, tmp = h.tmpdir(), h.tmpdir()
    api = h.start_upstream({ ECHO_API_KEY = "limits-k3y-0123456789" })
    local keyed = tmp .. "/keyed.lua"
    h.write(keyed, h.keyed_connector(api.base))
    local res = h.connrt({ "run", keyed, "--field", "api_key=limits-k3y-0123456789" }, { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
  end)

  teardown(function()
    proxy.stop_all()
    if api then api.stop() end
    h.rmdir(home)
    h.rmdir(tmp)
  end)

  it("pauses accepting instead of spinning, and serves again once clients leave", function()
    local p, worker = serving(home, tmp .. "/p.sock")
    -- 4 descriptors left
    local limit = limit_leaving(worker, 4)
    assert.is_true(os.execute(("prlimit --nofile=%d:%d --pid %d"):format(limit, limit, worker)))
    local held = {}
    for i = 1, 300 do held[i] = assert(sys.unix_connect(p.info.socket)) end
    sys.sleep(1) -- the worker meets its limit with clients still waiting to be accepted
    for i = 1, 300 do sys.close(held[i]) end
    local status, body = proxy.curl(p, "/_connrt/health", { args = { "--max-time", "30" } })
    assert.equal(200, status, body)
    local _, warnings = p.err():gsub("Too many open files", "")
    assert.equal(0, warnings)
    assert.equal(0, p.stop("TERM"))
  end)

  it("closes a client that sends its request a byte at a time past --idle, not one that is quick or silent", function()
    local p = proxy.start(home, { "--socket", tmp .. "/slow.sock", "--workers", "1", "--idle", "2" })
    local head = "GET /keyed/keyed/me HTTP/1.1\r\nHost: x\r\n\r\n"
    -- one byte every 0.5 s: each within --idle, the whole far past it
    local slow = assert(sys.unix_connect(p.info.socket))
    local closed_after
    local started = sys.monotime()
    for i = 1, #head do
      if not sys.write(slow, head:sub(i, i)) then closed_after = i break end
      if sys.readable(slow, 0.5) then
        local got = sys.read(slow, 4096)
        if got == "" or got == nil then closed_after = i break end
      end
    end
    sys.close(slow)
    assert(closed_after, "the trickling client was never closed")
    local took = sys.monotime() - started
    assert.is_true(took < 8, tostring(took))
    -- a silent client is evhttp's idle timeout's: closed, and not reported
    local silent = assert(sys.unix_connect(p.info.socket))
    assert.is_true(sys.readable(silent, 10))
    assert.equal("", sys.read(silent, 4096) or "")
    sys.close(silent)
    -- and a quick one is served
    assert.equal(200, (proxy.curl(p, "/keyed/keyed/me")))
    local err = p.err()
    local _, n408 = err:gsub("connrt proxy: %- %- 408 refused: no whole request within %-%-idle seconds", "")
    assert.equal(1, n408, err)
    assert.equal(0, p.stop("TERM"))
  end)

  it("keeps nothing a client sends after its connection was refused and closed", function()
    local p, worker = serving(home, tmp .. "/flood.sock")
    local function hwm()
      local f = assert(io.open(("/proc/%d/status"):format(worker)))
      local kb = tonumber(f:read("a"):match("VmHWM:%s*(%d+)"))
      f:close()
      return kb
    end
    local before = hwm()
    -- 4 clients, each a malformed head (evhttp answers 400 and closes) and then 1 MiB
    -- writes until the socket refuses
    h.write(tmp .. "/flood.py", ([[
import socket, threading
def one():
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX)
        s.connect(%q)
        s.sendall(b"BAD\r\n\r\n")
        chunk = b"z" * (1 << 20)
        try:
            for _ in range(400):
                s.sendall(chunk)
        except OSError:
            pass
        s.close()
ts = [threading.Thread(target=one) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("done")
]]):format(p.info.socket))
    local f = io.popen("timeout 120 python3 " .. tmp .. "/flood.py 2>&1")
    local out = f:read("a")
    f:close()
    assert.matches("done", out, 1, true)
    local grew = hwm() - before
    assert.is_true(grew < 32 * 1024, ("the worker's peak grew by %d KiB"):format(grew))
    assert.equal(200, (proxy.curl(p, "/_connrt/health")))
    assert.equal(0, p.stop("TERM"))
  end)

  it("answers 503 naming the open file limit when a request cannot open what it needs, and 200 once it can", function()
    local p, worker = serving(home, tmp .. "/q.sock")
    local q = io.popen(("prlimit --nofile --noheadings --raw --output HARD --pid %d"):format(worker))
    local hard = q:read("n")
    q:close()
    -- one descriptor left: the client's connection, and nothing for the upstream's
    assert.is_true(os.execute(("prlimit --nofile=%d:%d --pid %d"):format(limit_leaving(worker, 1), hard, worker)))
    local status, body, head = proxy.curl(p, "/keyed/keyed/me")
    assert.equal(503, status, body .. p.err())
    local doc = require("cjson").decode(body)
    assert.same({ "failed", "out_of_descriptors" }, { doc.error, doc.reason })
    assert.matches("open file limit", doc.message)
    assert.matches("\nRetry%-After: 1\r", head)
    assert.not_matches("internal error", p.err())
    assert.is_true(os.execute(("prlimit --nofile=%d:%d --pid %d"):format(hard, hard, worker)))
    assert.equal(200, (proxy.curl(p, "/keyed/keyed/me")))
    assert.equal(0, p.stop("TERM"))
  end)

  it("answers a redirect hop it cannot connect for at the limit as what it is: the first hop went out", function()
    -- a second upstream, and a connection allowed both: the first hop (on a kept upstream
    -- connection) answers 302 to the second, whose connect finds no descriptor
    local api2 = h.start_upstream({ ECHO_API_KEY = "limits-k3y-0123456789" })
    local conn = h.keyed_connector(api.base):gsub('id = "keyed"', 'id = "twohop"')
      :gsub('allowed_urls = { "[^"]*" }', ('allowed_urls = { "%s", "%s" }'):format(api.base, api2.base))
    h.write(tmp .. "/twohop.lua", conn)
    local res = h.connrt({ "run", tmp .. "/twohop.lua", "--field", "api_key=limits-k3y-0123456789" },
      { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    local p, worker = serving(home, tmp .. "/hop.sock")
    assert.equal(200, (proxy.curl(p, "/twohop/keyed/me"))) -- the connection opened, an upstream connection kept
    local q = io.popen(("prlimit --nofile --noheadings --raw --output HARD --pid %d"):format(worker))
    local hard = q:read("n")
    q:close()
    assert.is_true(os.execute(("prlimit --nofile=%d:%d --pid %d"):format(limit_leaving(worker, 1), hard, worker)))
    local before = #api.log()
    local status, body, head = proxy.curl(p, "/twohop/redirect?to=" .. api2.base .. "/echo")
    assert.equal(before + 1, #api.log()) -- the first hop went out
    assert.equal(502, status, body)
    assert.is_nil(head:lower():find("retry-after", 1, true))
    assert.equal(0, p.stop("TERM"))
    api2.stop()
  end)

  it("answers a failure after the request went upstream as what it is, near the limit too (no Retry-After)", function()
    local p, worker = serving(home, tmp .. "/late.sock", { "--timeout", "1" })
    assert.equal(200, (proxy.curl(p, "/keyed/keyed/me"))) -- the connection opened
    local q = io.popen(("prlimit --nofile --noheadings --raw --output HARD --pid %d"):format(worker))
    local hard = q:read("n")
    q:close()
    -- 4 left: the client's connection, an upstream one, and fewer than the 8 of the probe
    assert.is_true(os.execute(("prlimit --nofile=%d:%d --pid %d"):format(limit_leaving(worker, 4), hard, worker)))
    local status, body, head = proxy.curl(p, "/keyed/slow") -- sent, then no answer within 1 s
    assert.equal(504, status, body)
    assert.equal("timeout", require("cjson").decode(body).reason)
    assert.is_nil(head:lower():find("retry-after", 1, true))
    assert.equal(0, p.stop("TERM"))
  end)
end)
