-- luacheck: std +busted
-- `connrt proxy` in front of a real upstream: Debian's nginx (spec/support/nginx.lua),
-- started by the spec with a configuration of its own on loopback, over plain http and
-- over TLS with the test CA; the connections' tokens from the real authorization server.
-- Callers in three languages (curl, Python's urllib, Node's fetch) send their own
-- Authorization, which must be dropped; nginx's log shows the one it received (nginx
-- answers 400 to two), and that nothing was sent for a refused request: the allowed-URL
-- bypass cases of spec/url_spec.lua (spec/support/url_cases.lua) as Connrt-Target values,
-- and requests without the proxy key on a TCP listener.
local cjson = require("cjson")
local h = require("support.helpers")
local nginx = require("support.nginx")
local proxy = require("support.proxy")

local TLS = h.ROOT .. "/spec/fixtures/tls/"
local CA = { CONNRT_CA_BUNDLE = TLS .. "ca.pem" }
local CALLER = "Bearer caller-own-7f3a" -- the caller's Authorization: never forwarded

describe("connrt proxy in front of nginx #integration", function()
  local tmp, server, ng, home, cases
  local expect = {} -- connection -> the Authorization nginx must receive
  local upstream = {} -- connection -> {port, prefix}: where its first allowed URL is

  local function connector(id, allowed)
    local quoted = {}
    for i, u in ipairs(allowed) do quoted[i] = ("%q"):format(u) end
    local path = tmp .. "/" .. id .. ".lua"
    h.write(path, ([[return {
      id = "%s", auth = "client_credentials", client_auth = "basic",
      token_url = "%s/token", scopes = { "api" },
      test = "/whoami", name = "{{client_id}} (%s)", unique_id = "{{client_id}}-%s",
      allowed_urls = { %s },
      request = { headers = { Authorization = "Bearer {{access_token}}" } },
    }]]):format(id, server.issuer, id, id, table.concat(quoted, ", ")))
    return path
  end

  setup(function()
    tmp = h.tmpdir()
    server = h.start_server({ redirect = "http://127.0.0.1:8400/callback" })
    ng = nginx.start()
    home = h.tmpdir()
    -- url_spec's hosts, mapped onto nginx: the https API is nginx's TLS listener under /v1,
    -- the loopback service its plain one; every other port or loopback host in the cases
    -- is one of nginx's too, so that a request sent there would show in its log
    cases = require("support.url_cases").cases({ api = "localhost", port = ":" .. ng.tls_port,
      xport = ":" .. ng.tls_port, wrongport = ":" .. ng.port, near = "127.0.0.1",
      loop = "127.0.0.1:" .. ng.port, loop_port = "127.0.0.1:" .. ng.tls_port, loop_host = "127.0.0.2:" .. ng.port })
    for id, allowed in pairs({ plain = { ng.base .. "/" }, tls = cases.allowed }) do
      local res = h.connrt({ "run", connector(id, allowed), "--client-id", "connrt-basic" },
        { env = { CONNRT_HOME = home, CONNRT_CLIENT_SECRET = "basic-secret", CONNRT_CA_BUNDLE = CA.CONNRT_CA_BUNDLE } })
      assert.equal(0, res.code, res.stderr)
      res = h.connrt({ "token", id }, { env = { CONNRT_HOME = home } })
      assert.equal(0, res.code, res.stderr)
      expect[id] = "Bearer " .. res.stdout:match("^(%S+)\n$")
    end
    upstream.plain = { port = tostring(ng.port), prefix = "" }
    upstream.tls = { port = tostring(ng.tls_port), prefix = "/v1" }
  end)

  teardown(function()
    proxy.stop_all()
    if ng then ng.stop() end
    if server then server.stop() end
    h.rmdir(home)
    h.rmdir(tmp)
  end)

  -- The log entry of the one request for `uri` (waited for).
  local function logged(uri)
    local found
    for _, e in ipairs(ng.wait_for(function(e) return e.uri == uri end)) do
      if e.uri == uri then
        assert.is_nil(found, "two requests logged for " .. uri)
        found = e
      end
    end
    return found
  end

  -- Runs fn, then sends a marker request that is allowed; asserts that nginx logged
  -- nothing between the two (one nginx worker: entries are in the order served).
  local marker_n = 0
  local function nothing_sent(p, fn)
    local before = #ng.log()
    fn()
    marker_n = marker_n + 1
    local tail = "/marker?n=" .. marker_n
    local code = proxy.curl(p, "/plain" .. tail)
    assert.equal(200, code)
    local log = ng.wait_for(function(e) return e.uri == tail end)
    assert.equal(tail, log[before + 1].uri, "nginx received a request it should not have: "
      .. cjson.encode(log[before + 1]))
    assert.equal(before + 1, #log)
  end

  -- No request nginx received carried the caller's credentials.
  local function never_the_callers()
    for _, e in ipairs(ng.log()) do
      assert.is_nil(e.authorization:find("caller", 1, true), cjson.encode(e))
    end
  end

  describe("on a unix socket", function()
    local p
    setup(function() p = proxy.start(home, { "--socket", tmp .. "/proxy.sock" }, CA) end)
    teardown(function() if p then p.stop() end end)

    it("sends curl's requests to nginx over http and TLS with the connection's Authorization, not the caller's", function()
      for _, id in ipairs({ "plain", "tls" }) do
        local code, body = proxy.curl(p, "/" .. id .. "/echo?from=curl-unix&to=" .. id, {
          headers = { "Authorization: " .. CALLER, "X-Custom: kept" } })
        assert.equal(200, code, body)
        assert.equal(expect[id], body)
        local e = logged(upstream[id].prefix .. "/echo?from=curl-unix&to=" .. id)
        assert.equal(upstream[id].port, e.server_port)
        assert.equal("GET", e.method)
        assert.equal(expect[id], e.authorization)
        assert.equal("kept", e.x_custom)
      end
      never_the_callers()
    end)

    it("refuses nginx's TLS certificate when the CA it trusts did not sign it, sending nothing", function()
      local q = proxy.start(home, { "--socket", tmp .. "/other-ca.sock" }, { CONNRT_CA_BUNDLE = TLS .. "other-ca.pem" })
      nothing_sent(q, function()
        local code, body = proxy.curl(q, "/tls/echo?from=other-ca")
        assert.equal(502, code, body)
        assert.matches("certificate", cjson.decode(body).message)
      end)
      q.stop()
    end)

    it("removes hop-by-hop headers both ways", function()
      for _, id in ipairs({ "plain", "tls" }) do
        local code, body, head = proxy.curl(p, "/" .. id .. "/hop?to=" .. id, { headers = {
          "Connection: X-Hop", "X-Hop: 1", "Keep-Alive: timeout=5", "TE: trailers", "Trailer: X-Trailing",
          "Proxy-Authorization: Basic eDp5", "X-Custom: kept" } })
        assert.equal(200, code, body)
        assert.equal("hop\n", body)
        -- to nginx: none of them, the others kept
        local e = logged(upstream[id].prefix .. "/hop?to=" .. id)
        assert.equal(upstream[id].port, e.server_port)
        for _, name in ipairs({ "x_hop", "keep_alive", "te", "trailer", "proxy_authorization", "upgrade" }) do
          assert.equal("", e[name], name .. " reached nginx")
        end
        assert.is_nil(e.connection:lower():find("x-hop", 1, true))
        assert.equal("kept", e.x_custom)
        assert.equal(expect[id], e.authorization)
        -- from nginx: X-Fine only, none of those its Connection header names or that are
        -- hop-by-hop by definition
        local lower = head:lower()
        assert.matches("\nx%-fine: 1\r\n", lower)
        for _, name in ipairs({ "x-hop-resp:", "upgrade:", "proxy-authenticate:", "trailer:", "keep-alive: timeout=" }) do
          assert.is_nil(lower:find("\n" .. name, 1, true), name .. " reached the caller:\n" .. head)
        end
        for value in lower:gmatch("\nconnection:([^\r\n]*)") do
          assert.is_nil(value:find("x-hop-resp", 1, true), head)
        end
      end
    end)

    it("refuses url_spec's bypass cases given as Connrt-Target with 403 and a JSON error, sending nothing", function()
      assert.is_true(#cases.refused >= 25)
      nothing_sent(p, function()
        for _, target in ipairs(cases.refused) do
          local code, body = proxy.curl(p, "/tls", { headers = { "Connrt-Target: " .. target } })
          assert.equal(403, code, target .. ": " .. tostring(body))
          local ok, doc = pcall(cjson.decode, body)
          assert.is_true(ok, target .. ": not JSON: " .. tostring(body))
          assert.equal("refused", doc.error, target)
          assert.is_string(doc.message)
        end
      end)
    end)

    it("sends url_spec's allowed cases given as Connrt-Target, each once", function()
      local before = #ng.log()
      for _, target in ipairs(cases.ok) do
        local code, body = proxy.curl(p, "/tls", { headers = { "Connrt-Target: " .. target } })
        assert.equal(200, code, target .. ": " .. tostring(body))
        assert.equal(expect.tls, body, target)
      end
      local log = ng.wait_count(before + #cases.ok)
      assert.equal(before + #cases.ok, #log)
      for i = before + 1, #log do assert.equal(expect.tls, log[i].authorization) end
    end)
  end)

  describe("on TCP", function()
    local p
    setup(function()
      p = proxy.start(home, { "--listen", "127.0.0.1:0", "--key-file", tmp .. "/proxy.key" }, CA)
      assert.equal(64, #p.key)
    end)
    teardown(function() if p then p.stop() end end)

    -- A client in another language: its script reads the key from the key file (not
    -- from its command line) unless keyfile is "-". Returns {status, body}.
    local function client(kind, path, keyfile)
      local base = "http://" .. p.info.listen
      local cmd
      if kind == "python" then
        h.write(tmp .. "/client.py", [[
import json, sys, urllib.request, urllib.error
base, keyfile, path, auth = sys.argv[1:5]
headers = {"Authorization": auth}
if keyfile != "-":
    headers["Connrt-Key"] = open(keyfile).read().strip()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from the environment
try:
    with opener.open(urllib.request.Request(base + path, headers=headers), timeout=60) as r:
        status, body = r.status, r.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
print(json.dumps({"status": status, "body": body.decode()}))
]])
        cmd = "python3 " .. tmp .. "/client.py"
      else
        h.write(tmp .. "/client.mjs", [[
import fs from 'node:fs';
const [base, keyfile, path, auth] = process.argv.slice(2);
const headers = { Authorization: auth };
if (keyfile !== '-') headers['Connrt-Key'] = fs.readFileSync(keyfile, 'utf8').trim();
const r = await fetch(base + path, { headers });
console.log(JSON.stringify({ status: r.status, body: await r.text() }));
]])
        cmd = "node " .. tmp .. "/client.mjs"
      end
      local f = io.popen(("%s %s %s %s %s 2>&1"):format(cmd, h.shell_quote(base), h.shell_quote(keyfile),
        h.shell_quote(path), h.shell_quote(CALLER)))
      local out = f:read("a")
      f:close()
      local ok, doc = pcall(cjson.decode, out)
      assert.is_true(ok, kind .. ": " .. out)
      return doc
    end

    it("serves curl, Python's urllib and Node's fetch with the key, over http and TLS to nginx", function()
      for _, id in ipairs({ "plain", "tls" }) do
        local code, body = proxy.curl(p, "/" .. id .. "/echo?from=curl-tcp&to=" .. id, { headers = { "Authorization: " .. CALLER } })
        assert.equal(200, code, body)
        assert.equal(expect[id], body)
        for _, kind in ipairs({ "python", "node" }) do
          local doc = client(kind, "/" .. id .. "/echo?from=" .. kind .. "&to=" .. id, p.info.key_file)
          assert.equal(200, doc.status, kind .. " " .. id .. ": " .. doc.body)
          assert.equal(expect[id], doc.body, kind .. " " .. id)
        end
        for _, from in ipairs({ "curl-tcp", "python", "node" }) do
          local e = logged(upstream[id].prefix .. "/echo?from=" .. from .. "&to=" .. id)
          assert.equal(upstream[id].port, e.server_port)
          assert.equal(expect[id], e.authorization, from)
        end
      end
      never_the_callers()
    end)

    it("answers 401 without the key, sending nothing", function()
      nothing_sent(p, function()
        for _, key in ipairs({ false, ("0"):rep(64), "short", p.key:sub(1, 63) }) do
          local code, body = proxy.curl(p, "/plain/echo?from=nokey", { key = key })
          assert.equal(401, code, key and ("Connrt-Key: " .. key) or "no Connrt-Key")
          assert.equal("unauthorized", cjson.decode(body).error)
        end
        for _, kind in ipairs({ "python", "node" }) do
          local doc = client(kind, "/tls/echo?from=nokey-" .. kind, "-")
          assert.equal(401, doc.status, kind)
          assert.equal("unauthorized", cjson.decode(doc.body).error)
        end
      end)
    end)
  end)
end)
