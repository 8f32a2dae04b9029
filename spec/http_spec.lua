-- luacheck: std +busted
-- connrt.http against a real local server (spec/support/echo-server.js): methods, headers
-- and binary bodies as sent, statuses as answers, no redirect following, cookies, timeouts,
-- transport failures as nil, message, code, the body cap and connection reuse.
local http = require "connrt.http"
local crypto = require "connrt.crypto"
local sys = require "connrt.sys"
local cjson = require "cjson"

-- First value of the response header `name` (case-insensitive), or nil.
local function header(resp, name)
  for _, h in ipairs(resp.headers) do
    if h.name:lower() == name:lower() then return h.value end
  end
end

-- The request as the echo server saw it.
local function echoed(resp)
  assert.equal(200, resp.status)
  local e = cjson.decode(resp.body)
  e.raw_body = assert(crypto.b64decode(e.body_base64))
  return e
end

describe("connrt.http", function()
  local server, base

  setup(function()
    server = assert(io.popen("node spec/support/echo-server.js", "r"))
    local port = server:read("l")
    assert(port and port:match("^%d+$"), "the echo server did not start")
    base = "http://127.0.0.1:" .. port
  end)

  teardown(function()
    if base then
      local c = http.client()
      c:request { url = base .. "/exit" }
      c:close()
    end
    if server then server:close() end
  end)

  describe("requests", function()
    local client
    before_each(function() client = http.client() end)
    after_each(function() client:close() end)

    it("sends a GET with its headers and query", function()
      local resp = assert(client:request {
        url = base .. "/echo?x=1&y=two",
        headers = { "X-Test: hello", "Authorization: Bearer t0k3n" },
      })
      local e = echoed(resp)
      assert.equal("GET", e.method)
      assert.equal("/echo?x=1&y=two", e.url)
      assert.equal("hello", e.headers["x-test"])
      assert.equal("Bearer t0k3n", e.headers.authorization)
      assert.equal("connrt/" .. require("connrt.build").version, e.headers["user-agent"])
      assert.is_string(e.headers["accept-encoding"])
      assert.equal("", e.raw_body)
      assert.equal(base .. "/echo?x=1&y=two", resp.url)
    end)

    it("sends a POST with a binary body byte for byte", function()
      local body = "a\0b\0\0\255\1\r\n" .. crypto.random(4096) .. "\0"
      local e = echoed(assert(client:request {
        method = "POST",
        url = base .. "/echo",
        headers = { "Content-Type: application/octet-stream" },
        body = body,
      }))
      assert.equal("POST", e.method)
      assert.equal(body, e.raw_body)
      assert.equal(tostring(#body), e.headers["content-length"])
      assert.equal("application/octet-stream", e.headers["content-type"])
    end)

    it("sends other methods, with or without a body", function()
      local e = echoed(assert(client:request { method = "PUT", url = base .. "/echo", body = "put-body" }))
      assert.equal("PUT", e.method)
      assert.equal("put-body", e.raw_body)
      e = echoed(assert(client:request { method = "DELETE", url = base .. "/echo" }))
      assert.equal("DELETE", e.method)
      assert.equal("", e.raw_body)
      e = echoed(assert(client:request { method = "POST", url = base .. "/echo" }))
      assert.equal("POST", e.method)
      assert.equal("0", e.headers["content-length"])
    end)

    it("sends HEAD without reading a body", function()
      local resp = assert(client:request { method = "HEAD", url = base .. "/echo" })
      assert.equal(200, resp.status)
      assert.equal("", resp.body)
      assert.equal("application/json", header(resp, "Content-Type"))
    end)

    it("does not carry a body or method over to the next request", function()
      echoed(assert(client:request { method = "PATCH", url = base .. "/echo", body = "first" }))
      local e = echoed(assert(client:request { url = base .. "/echo" }))
      assert.equal("GET", e.method)
      assert.equal("", e.raw_body)
      assert.is_nil(e.headers["content-length"])
      assert(client:request { method = "HEAD", url = base .. "/echo" })
      e = echoed(assert(client:request { url = base .. "/echo" }))
      assert.equal("GET", e.method)
      assert.matches('"method":"GET"', assert(client:request { url = base .. "/echo" }).body)
    end)

    it("never asks for 100-continue, even for a large body", function()
      local body = ("z"):rep(2 * 1024 * 1024)
      local e = echoed(assert(client:request { method = "POST", url = base .. "/echo", body = body }))
      assert.is_nil(e.headers.expect)
      assert.equal(#body, #e.raw_body)
    end)

    it("returns error statuses instead of raising", function()
      for _, status in ipairs { 404, 500, 401, 204 } do
        local resp = assert(client:request { url = base .. "/status/" .. status })
        assert.equal(status, resp.status)
      end
      local resp = client:request { url = base .. "/status/404" }
      assert.equal("status 404\n", resp.body)
    end)

    it("does not follow redirects", function()
      local resp = assert(client:request { url = base .. "/redirect" })
      assert.equal(302, resp.status)
      assert.equal("/echo", header(resp, "Location"))
      assert.equal(base .. "/redirect", resp.url)
      assert.equal("", resp.body)
    end)

    it("returns the response headers in order, with names as sent", function()
      local resp = assert(client:request {
        url = base .. "/headers?X-First=1&x-second=two%20words&X-Third-Header=3&X-First=again",
      })
      local got = {}
      for _, h in ipairs(resp.headers) do
        assert.is_nil(h.name:find("^HTTP/"))
        assert.is_nil(h.value:find("[\r\n]"))
        if h.name:lower():find("^x%-") then got[#got + 1] = h.name .. "=" .. h.value end
      end
      assert.same({ "X-First=1", "x-second=two words", "X-Third-Header=3", "X-First=again" }, got)
    end)

    it("returns the headers as a map too: names lowercased, repeated values joined in order", function()
      local resp = assert(client:request {
        url = base .. "/headers?X-First=1&x-second=two%20words&X-Third-Header=3&X-First=again&X-Empty=&x-empty=",
      })
      assert.equal("1, again", resp.header["x-first"])
      assert.equal("two words", resp.header["x-second"])
      assert.equal("3", resp.header["x-third-header"])
      assert.equal(", ", resp.header["x-empty"])
      assert.is_nil(resp.header["X-First"])
      -- every header of the list is in the map, under its lowercased name
      for _, h in ipairs(resp.headers) do
        assert.truthy(resp.header[h.name:lower()]:find(h.value, 1, true), h.name)
      end
    end)

    it("returns only the final response's headers after an interim 103", function()
      local resp = assert(client:request { url = base .. "/early-hints" })
      assert.equal(200, resp.status)
      assert.equal("final\n", resp.body)
      assert.equal("yes", header(resp, "X-Final"))
      assert.is_nil(header(resp, "Link"))
    end)

    it("decodes a compressed body", function()
      local resp = assert(client:request { url = base .. "/gzip" })
      assert.equal(200, resp.status)
      assert.equal("gzip", header(resp, "Content-Encoding"))
      assert.equal(("hello, compressed world\n"):rep(100), resp.body)
    end)

    it("reuses one connection across 50 requests", function()
      local ports = {}
      for i = 1, 50 do
        local e = echoed(assert(client:request { url = base .. "/echo?n=" .. i }))
        assert.equal("/echo?n=" .. i, e.url)
        ports[e.port] = true
      end
      local n = 0
      for _ in pairs(ports) do n = n + 1 end
      assert.equal(1, n)
    end)

    it("keeps working after a transport failure", function()
      assert.is_nil(client:request { url = "http://127.0.0.1:1/x" })
      echoed(assert(client:request { url = base .. "/echo" }))
    end)
  end)

  describe("options", function()
    it("sends a configured user agent", function()
      local c <close> = http.client { user_agent = "spec-agent/2" }
      assert.equal("spec-agent/2", echoed(assert(c:request { url = base .. "/echo" })).headers["user-agent"])
    end)

    it("sends cookies back when the cookie engine is on", function()
      local c <close> = http.client { cookies = true }
      local resp = assert(c:request { url = base .. "/set-cookie" })
      assert.matches("^sid=abc", header(resp, "Set-Cookie"))
      assert.equal("sid=abc", echoed(assert(c:request { url = base .. "/echo" })).headers.cookie)
    end)

    it("does not keep cookies when the cookie engine is off", function()
      for _, opts in ipairs { { cookies = false }, {} } do
        local c <close> = http.client(opts)
        local resp = assert(c:request { url = base .. "/set-cookie" })
        assert.matches("^sid=abc", header(resp, "Set-Cookie"))
        assert.is_nil(echoed(assert(c:request { url = base .. "/echo" })).headers.cookie)
      end
    end)

    it("times out a slow answer, per request or per client", function()
      for _, case in ipairs {
        { client = {}, req = { timeout = 1 } },
        { client = { timeout = 1 }, req = {} },
      } do
        local c <close> = http.client(case.client)
        case.req.url = base .. "/slow?token=hidden"
        local start = sys.monotime()
        local resp, msg, code = c:request(case.req)
        local elapsed = sys.monotime() - start
        assert.is_nil(resp)
        assert.equal("timeout", code)
        assert.matches("^GET http://127%.0%.0%.1:%d+/slow: ", msg)
        assert.is_nil(msg:find("hidden", 1, true))
        assert.is_true(elapsed >= 0.9 and elapsed < 2.5, "elapsed " .. elapsed)
      end
    end)

    it("caps the response body", function()
      local c <close> = http.client { max_body = 1024 * 1024 }
      local resp, msg, code = c:request { url = base .. "/big" }
      assert.is_nil(resp)
      assert.equal("too_big", code)
      assert.matches("^GET http://127%.0%.0%.1:%d+/big: response body larger than 1048576 bytes$", msg)

      local exact <close> = http.client { max_body = 2000000 }
      assert.equal(2000000, #assert(exact:request { url = base .. "/big" }).body)
      local default <close> = http.client()
      local big = assert(default:request { url = base .. "/big" }).body
      assert.equal(("x"):rep(2000000), big)
    end)

    it("reports an unusable CA bundle as a TLS failure", function()
      local c <close> = http.client { ca_bundle = "/nonexistent/ca.pem" }
      local resp, msg, code = c:request { url = base:gsub("^http:", "https:") .. "/" }
      assert.is_nil(resp)
      assert.equal("tls", code)
      assert.is_string(msg)
    end)
  end)

  describe("transport failures", function()
    local client
    before_each(function() client = http.client { timeout = 10 } end)
    after_each(function() client:close() end)

    it("reports a refused connection with the URL but not its query", function()
      local resp, msg, code = client:request { url = "http://127.0.0.1:1/x?code=secret" }
      assert.is_nil(resp)
      assert.equal("connect", code)
      assert.matches("^GET http://127%.0%.0%.1:1/x: Couldn't connect to server %(.*127%.0%.0%.1.*%)$", msg)
      assert.is_nil(msg:find("secret", 1, true))
    end)

    it("names the method in the message", function()
      local _, msg = client:request { method = "POST", url = "http://127.0.0.1:1/token", body = "a=b" }
      assert.matches("^POST http://127%.0%.0%.1:1/token: ", msg)
    end)

    it("refuses schemes other than http and https", function()
      for _, url in ipairs { "ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/" } do
        local resp, msg, code = client:request { url = url }
        assert.is_nil(resp, url)
        assert.equal("protocol", code, url)
        assert.is_string(msg)
      end
    end)

    it("reports a TLS handshake with a plain HTTP server as tls", function()
      local resp, msg, code = client:request { url = base:gsub("^http:", "https:") .. "/echo" }
      assert.is_nil(resp)
      assert.equal("tls", code)
      assert.matches("^GET https://127%.0%.0%.1:%d+/echo: ", msg)
    end)

    it("reports an unknown host as resolve", function()
      local resp, _, code = client:request { url = "http://connrt-spec.invalid/" }
      assert.is_nil(resp)
      assert.equal("resolve", code)
    end)
  end)

  describe("programmer errors", function()
    local client
    before_each(function() client = http.client() end)
    after_each(function() client:close() end)

    it("raises for bad requests", function()
      assert.has_error(function() client:request {} end)
      assert.has_error(function() client:request { url = 42 } end)
      assert.has_error(function() client:request() end)
      assert.has_error(function() client:request { url = base, headers = "X: y" } end)
      assert.has_error(function() client:request { url = base, headers = { 42 } } end)
      assert.has_error(function() client:request { url = base, headers = { "X: a\r\nY: b" } } end)
      assert.has_error(function() client:request { url = base, method = "GET /x HTTP/1.1\r\n" } end)
      assert.has_error(function() client:request { url = base, body = "x" } end)
      assert.has_error(function() client:request { url = base, method = "POST", body = 1 } end)
      assert.has_error(function() client:request { url = base, timeout = -1 } end)
    end)

    it("names the missing url", function()
      local ok, err = pcall(client.request, client, { method = "GET" })
      assert.is_false(ok)
      assert.matches("url is required", err)
    end)

    it("raises for bad client options", function()
      assert.has_error(function() http.client { timeout = "soon" } end)
      assert.has_error(function() http.client { connect_timeout = 0 } end)
      assert.has_error(function() http.client { cookies = "yes" } end)
      assert.has_error(function() http.client { ca_bundle = 1 } end)
      assert.has_error(function() http.client { max_body = 1.5 } end)
      assert.has_error(function() http.client "opts" end)
    end)

    it("can be closed twice and refuses requests once closed", function()
      local c = http.client()
      c:close()
      c:close()
      local ok, err = pcall(c.request, c, { url = base .. "/echo" })
      assert.is_false(ok)
      assert.matches("closed", err)
      do
        local scoped <close> = c -- __close on an already closed client is harmless
        assert.is_not_nil(scoped)
      end
    end)
  end)

  it("reports the libcurl version", function()
    assert.matches("libcurl/%d+%.%d+", http.version())
  end)
end)
