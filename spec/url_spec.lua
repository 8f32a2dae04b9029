-- luacheck: std +busted
local url = require("connrt.url")

describe("url", function()
  it("parses absolute URLs with default ports and lowercased scheme and host", function()
    local u = assert(url.parse("HTTPS://API.Example.com/v1/me?x=1#f"))
    assert.equal("https", u.scheme)
    assert.equal("api.example.com", u.host)
    assert.equal(443, u.port)
    assert.equal("/v1/me", u.path)
    assert.equal("x=1", u.query)
    assert.equal("f", u.fragment)
    assert.equal(8400, url.parse("http://127.0.0.1:8400/callback").port)
    assert.equal("[::1]", url.parse("http://[::1]:9/x").host)
  end)

  it("refuses malformed URLs with a message naming them", function()
    for _, bad in ipairs({ "ftp://x.test/", "//x.test/", "https://", "https://x.test:0/", "https://x.test:99999/",
      "https://a b.test/", "https://x.test/\n", "https://x%2e.test/", "https://.x.test/", "not a url" }) do
      local u, err = url.parse(bad)
      assert.is_nil(u, bad)
      assert.matches("invalid URL", err, 1, true)
    end
  end)

  it("builds what it parses", function()
    for _, s in ipairs({ "https://x.test/a/b?c=d", "http://127.0.0.1:8400/callback", "https://x.test:8443/" }) do
      assert.equal(s, url.build(url.parse(s)))
    end
  end)

  it("encodes and decodes forms", function()
    assert.equal("a=1&b=x%20y&c=%26%3D%2B", url.form_encode({ { "a", "1" }, { "b", "x y" }, { "c", "&=+" } }))
    assert.equal("a=1&b=2", url.form_encode({ b = "2", a = "1" }))
    local map, list = url.form_decode("a=1&b=x+y&b=2&c=%26")
    assert.same({ a = "1", b = "x y", c = "&" }, map)
    assert.equal(4, #list)
  end)

  it("adds query parameters to URLs with and without a query", function()
    assert.equal("https://x.test/a?b=1", url.add_query("https://x.test/a", { { "b", "1" } }))
    assert.equal("https://x.test/a?z=0&b=1", url.add_query("https://x.test/a?z=0", { { "b", "1" } }))
    assert.equal("https://x.test/a", url.add_query("https://x.test/a", {}))
  end)

  it("joins a relative path to a base URL as a prefix", function()
    assert.equal("https://gitlab.com/api/v4/user", url.join("https://gitlab.com/api/v4", "/user"))
    assert.equal("https://gitlab.com/api/v4/user", url.join("https://gitlab.com/api/v4/", "user"))
    assert.equal("https://o.test/x", url.join("https://gitlab.com/api/v4", "https://o.test/x"))
  end)

  it("resolves dot segments", function()
    assert.equal("/a/c", url.remove_dot_segments("/a/b/../c"))
    assert.equal("/c", url.remove_dot_segments("/a/../../c"))
    assert.equal("/a/", url.remove_dot_segments("/a/b/.."))
    assert.equal("/a/b", url.remove_dot_segments("/a/./b"))
  end)

  it("allows only plain https, or http to loopback hosts", function()
    assert.truthy(url.check_secure("https://x.test/token", "token_url"))
    assert.truthy(url.check_secure("http://127.0.0.1:9/token", "token_url"))
    assert.truthy(url.check_secure("http://localhost:9/token", "token_url"))
    local ok, err = url.check_secure("http://x.test/token", "token_url")
    assert.is_nil(ok)
    assert.matches("token_url http://x.test/token: plain http", err, 1, true)
    assert.is_nil((url.check_secure("https://u:p@x.test/", "token_url")))
  end)

  it("takes as loopback only 127.0.0.0/8 dotted quads, localhost and [::1], never a name that looks like one", function()
    for _, hst in ipairs({ "127.0.0.1", "127.1.2.3", "127.255.255.254", "localhost", "[::1]" }) do
      assert.is_true(url.is_loopback(hst), hst)
    end
    for _, hst in ipairs({ "127.0.0.999", "127.000.0.1", "127.0.0.01", "127.0.0.1.example", "128.0.0.1", "127.0.1",
      "localhost.example", "0x7f.0.0.1" }) do
      assert.is_false(url.is_loopback(hst), hst)
      assert.is_nil((url.check_secure("http://" .. hst .. "/x", "u")), hst)
    end
  end)

  describe("allowed", function()
    -- the cases (spec/support/url_cases.lua) with example hosts; spec/proxy_nginx_spec.lua
    -- sends the same ones through the proxy to a real nginx
    local cases = require("support.url_cases").cases(require("support.url_cases").EXAMPLE)
    local allowed, ok_cases, refused = cases.allowed, cases.ok, cases.refused
    for _, u in ipairs(ok_cases) do
      it("allows " .. u, function() assert.is_true((url.allowed(u, allowed))) end)
    end
    for _, u in ipairs(refused) do
      it("refuses " .. u, function()
        local ok, why = url.allowed(u, allowed)
        assert.is_false(ok)
        assert.is_string(why)
      end)
    end
  end)

  it("says why a dot segment with ;params is refused", function()
    local ok, why = url.allowed("https://api.example.com/v1/x/..;/..;/admin", { "https://api.example.com/v1" })
    assert.is_false(ok)
    assert.matches('dot segment with parameters ("..;")', why, 1, true)
  end)

  it("names a URL without its query and fragment", function()
    assert.equal("https://api.example.com/v1/me", url.without_query("https://api.example.com/v1/me?token=x#f"))
    assert.equal("https://api.example.com/v1/me", url.without_query("https://api.example.com/v1/me#f?x"))
    assert.equal("https://api.example.com/", url.without_query("https://api.example.com/"))
    assert.equal("/a", url.without_query("/a?"))
  end)
end)
