-- luacheck: std +busted
-- The reach of a connection (lua/connrt/origins.lua): one spelling of an origin, so that
-- what a client was given for and what a connector reaches compare as sets.
local origins = require("connrt.origins")

describe("origins", function()
  it("spells an origin one way: scheme, host and port, the default port written out", function()
    assert.equal("https://api.example.com:443", origins.of("https://API.Example.com/v1?x=1"))
    assert.equal("https://api.example.com:443", origins.of("https://api.example.com:443/"))
    assert.equal("http://127.0.0.1:8080", origins.of("http://127.0.0.1:8080/cb"))
    assert.is_nil(origins.of("/relative"))
    assert.is_nil(origins.of(nil))
  end)

  it("gathers the device, token, refresh and revoke URLs and the allowed URLs, not the issuer", function()
    local reach = origins.reach({ issuer = "https://issuer.example", token_url = "https://auth.example/token",
      refresh_url = "https://auth.example/refresh", revoke_url = "https://revoke.example/r" },
      { "https://api.example/v1", [3] = "https://files.example/" }, { "https://login.example/authorize" })
    assert.same({ "https://api.example:443", "https://auth.example:443", "https://files.example:443",
      "https://login.example:443", "https://revoke.example:443" }, reach)
  end)

  it("tells the origins outside a set, and whether a URL is within one", function()
    local given = { "https://a.example:443", "https://b.example:443" }
    assert.same({}, origins.outside({ "https://a.example:443" }, given))
    assert.same({ "https://c.example:443" }, origins.outside({ "https://a.example:443", "https://c.example:443" }, given))
    assert.same({ "https://a.example:443" }, origins.outside({ "https://a.example:443" }, nil))
    assert.is_true(origins.within("https://b.example/x", given))
    local ok, o = origins.within("https://b.example:8443/x", given)
    assert.is_false(ok)
    assert.equal("https://b.example:8443", o)
  end)

  it("reads an origin fixed in a template's text, and none that a value decides", function()
    assert.equal("https://graph.example:443", origins.fixed("https://graph.example/oauth?x={{client_id}}"))
    assert.is_nil(origins.fixed("{{server}}/token"))
    assert.is_nil(origins.fixed("https://{{shop}}.example/admin"))
    assert.is_nil(origins.fixed("/relative/{{x}}"))
  end)
end)
