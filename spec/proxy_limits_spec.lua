-- luacheck: std +busted
-- `connrt proxy` out of file descriptors (src/api/httpd.c): clients holding connections
-- open up to a worker's limit must not make it call accept() in a loop (libevent 2.1
-- would, at full CPU, printing a warning each time); it pauses accepting, serves what
-- is open, and accepts again once descriptors are free; and it can answer then, though a
-- connection that closed while waiting to be accepted still takes a descriptor for a
-- moment when it is (the worker opened its store and loaded what a request needs before
-- serving, while it had descriptors). Real processes: a proxy whose worker is limited to
-- 4 descriptors more than it has open once it serves (prlimit), 300 idle clients on its
-- socket.
local h = require("support.helpers")
local proxy = require("support.proxy")
local sys = require("connrt.sys")

describe("connrt proxy out of descriptors #integration", function()
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
    local p = proxy.start(home, { "--socket", tmp .. "/p.sock", "--workers", "1" })
    local q = io.popen("pgrep -P " .. p.pid)
    local worker = tonumber(q:read("a"))
    q:close()
    assert(worker, "the proxy's worker")
    -- serving (its first answer), then 4 descriptors above what it has open (a runner
    -- may have left it many)
    assert.equal(200, (proxy.curl(p, "/_connrt/metrics")))
    local q2 = io.popen(("ls /proc/%d/fd | wc -l"):format(worker))
    local open = tonumber(q2:read("a"))
    q2:close()
    local limit = open + 4
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
end)
