-- luacheck: std +busted
-- The redirect listener under abuse during a real connect (issue 7): while `connrt run`
-- waits for the sign-in, spec/support/hostile.mjs (as the browser) keeps silent
-- connections open, sends oversized request lines and headers, other methods and paths,
-- callbacks with a wrong or no state, garbage, forty of them at once, and tries the port
-- on other addresses; then the real scripted user signs in. The connect must succeed,
-- every hostile request must be answered with the right refusal (or closed), and nothing
-- they sent may be taken as the callback.
local cjson = require("cjson")
local h = require("support.helpers")
local sys = require("connrt.sys")

describe("the listener under abuse during connrt run #integration", function()
  local server, redirect, tmp

  setup(function()
    tmp = h.tmpdir()
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    server = h.start_server({ redirect = redirect })
  end)

  teardown(function()
    if server then server.stop() end
    h.rmdir(tmp)
  end)

  it("answers each hostile request with a refusal, keeps waiting, and connects the real user", function()
    local home = tmp .. "/home"
    local out = tmp .. "/hostile.json"
    local res = h.connrt({ "run", "examples/local-oidc.lua", "--field", "server=" .. server.issuer, "--client-id",
      "connrt-basic", "--timeout", "40", "--json", "--verbose" }, { env = {
        CONNRT_HOME = home, CONNRT_REDIRECT_URL = redirect, CONNRT_CLIENT_SECRET = "basic-secret",
        CONNRT_BROWSER = "node " .. h.ROOT .. "/spec/support/hostile.mjs", CONNRT_BIN = h.CONNRT,
        HOSTILE_OUT = out, SIGNIN_USER = "john",
      } })
    for _ = 1, 100 do
      if h.read(out) then break end
      sys.sleep(0.1)
    end
    assert.equal(0, res.code, res.stderr)
    assert.equal("john@example.com", cjson.decode(res.stdout:match("[^\n]*\n?$")).unique_id)
    local text = h.read(out)
    assert.is_string(text, "the hostile browser wrote nothing")
    local r = cjson.decode(text)
    assert.equal(0, r.browser_exit)
    assert.equal(4, r.silent_connected)
    assert.equal(431, r.long_line)
    assert.equal(431, r.long_headers)
    assert.equal(405, r.post)
    assert.equal(405, r.put)
    assert.equal(404, r.other_path)
    assert.equal(400, r.wrong_state)
    assert.equal(400, r.no_state)
    assert.equal(400, r.garbage)
    assert.equal(400, r.bad_version)
    assert.equal(400, r.nul_in_target)
    -- forty at once: each refused (400) or, when the listener gave its slot to a newer
    -- one before the request arrived, closed; never taken, never left hanging
    local refused = 0
    for _, status in ipairs(r.many) do
      assert.is_true(status == 400 or status == "closed", tostring(status))
      if status == 400 then refused = refused + 1 end
    end
    assert.is_true(refused >= 30, "only " .. refused .. " of 40 were answered")
    -- it listens on the redirect URL's address only
    for addr, status in pairs(r.elsewhere) do
      assert.are_not.equal("connected", status, addr)
    end
    -- the trace shows the refused callbacks came and went while the wait went on
    assert.matches("listener: GET /callback?code=[redacted]&state=forged", res.stderr, 1, true)
    local list = cjson.decode(h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } }).stdout)
    assert.equal(1, #list)
  end)

  it("lets the real callback through while 50 rejected clients leave data unread and stay connected", function()
    -- Each client sends a callback with a forged state and 64 KB more than its head, then
    -- keeps the connection open without reading: the listener used to linger a second
    -- for each before it took the next request, so 45 of them outlasted the sign-in.
    -- With a 30 s timeout, the connect succeeds only if no rejection waits on its client
    -- (50 of them lingering a second each would take 50 s).
    local home = tmp .. "/linger-home"
    local pids = tmp .. "/linger.pids"
    local sent = tmp .. "/linger.sent"
    local port = redirect:match(":(%d+)/")
    local script = tmp .. "/lingerers.sh"
    -- (the head and the data in one write: data that arrives after the answer was never
    -- waited for)
    h.write(script, ([=[
pad=$(head -c 65536 /dev/zero | tr '\0' a)
for i in $(seq 50); do
  (
    exec 3<>/dev/tcp/127.0.0.1/%s || exit 0
    printf 'GET /callback?code=c-%%s&state=forged HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n%%s' "$i" "$pad" >&3
    echo "$i" >>%s
    exec sleep 30
  ) >/dev/null 2>&1 &
  echo $! >>%s
done
# the browser only once every forged request is sent (on a busy machine, starting 50
# clients can take longer than the browser's delay), for at most 20 s
for t in $(seq 200); do
  [ "$(cat %s 2>/dev/null | wc -l)" -ge 50 ] && break
  sleep 0.1
done
exec %s script %s/spec/support/browser.lua "$1"
]=]):format(port, sent, pids, sent, h.CONNRT, h.ROOT))
    finally(function()
      for pid in (h.read(pids) or ""):gmatch("%d+") do os.execute("kill " .. pid .. " 2>/dev/null") end
    end)
    local res = h.connrt({ "run", "examples/local-oidc.lua", "--field", "server=" .. server.issuer, "--client-id",
      "connrt-basic", "--timeout", "30", "--json", "--verbose" }, { env = {
        CONNRT_HOME = home, CONNRT_REDIRECT_URL = redirect, CONNRT_CLIENT_SECRET = "basic-secret",
        CONNRT_BROWSER = "bash " .. script, SIGNIN_USER = "john", SIGNIN_CALLBACK_DELAY = "0.5",
      } })
    assert.equal(0, res.code, res.stderr)
    assert.equal("john@example.com", cjson.decode(res.stdout:match("[^\n]*\n?$")).unique_id)
    -- the forged callbacks did come, and were refused
    local _, refused = res.stderr:gsub("listener: GET /callback%?code=%[redacted%]&state=forged", "")
    assert.is_true(refused >= 45, "only " .. refused .. " forged callbacks reached the flow")
  end)
end)
