-- luacheck: std +busted
-- What the connector adds to a request does not follow a redirect to another origin
-- (issue 13, rv13 F13): the request builder (lua/connrt/request.lua) counts every header
-- and body rendered from the connector's templates as credentials, whatever the kind of
-- request: the test API's own headers and form (a token, the client secret), and what
-- hooks.lookup sends. A header is dropped on a redirect to another allowed origin; a body
-- is never resent there (307/308: refused). A second loopback provider stands for the
-- other origin; what it received is read from its log.
local h = require("support.helpers")
local prov = require("support.provider")

describe("connector credentials on a cross-origin redirect #integration", function()
  local p, other, tmp
  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
    other = prov.start()
  end)
  teardown(function()
    p.stop()
    other.stop()
    h.rmdir(tmp)
  end)

  local function enc(s) return (s:gsub("[^%w]", function(ch) return ("%%%02X"):format(ch:byte()) end)) end

  -- a connector whose allowed URLs include the other provider's /api (and this one's
  -- from a field, known to hooks.lookup); `extra` (with
  -- REDIR(code) standing for a URL of this provider that redirects there) is added to the table
  local function connector_at(name, extra)
    local path = tmp .. "/" .. name .. ".lua"
    extra = extra:gsub("REDIR%((%d+)%)", function(code)
      return p.origin .. "/api/redir?code=" .. code .. "&to=" .. enc(other.origin .. "/api/me")
    end)
    h.write(path, prov.connector(extra .. ',\n  allowed_urls = { "{{api_base}}", "{{server}}/api", "' .. other.origin .. '/api" }'))
    return path
  end

  -- the requests the other origin received during fn()
  local function heard_by_other(fn)
    local since = #other.log()
    local res = fn()
    local log, out = other.log(), {}
    for i = since + 1, #log do out[#out + 1] = log[i] end
    return res, out
  end

  it("does not resend the test API's form (token, client secret) on a 307 to another allowed origin", function()
    local path = connector_at("testform", [[test = { method = "POST", url = "REDIR(307)",
    form = { token = "{{access_token}}", client_secret = "{{client_secret}}" } }]])
    local home = h.tmpdir()
    local res, heard = heard_by_other(function() return prov.run(p, path, home) end)
    h.rmdir(home)
    assert.equal(7, res.code, res.stderr)
    assert.matches("redirected to another origin", res.stderr, 1, true)
    assert.matches("with a 307, which would resend the body", res.stderr, 1, true)
    assert.equal(0, #heard, "the other origin got " .. #heard .. " request(s)")
    -- it did go to the redirecting test API, with the form
    local sent
    for _, r in ipairs(p.log()) do if r.path == "/api/redir" then sent = r end end
    assert.truthy(sent)
    assert.matches("client_secret=" .. prov.CLIENT_SECRET, sent.body, 1, true)
  end)

  it("drops the test API's own headers on a 302 to another allowed origin", function()
    local path = connector_at("testhdr", [[test = { url = "REDIR(302)",
    headers = { ["X-Tok"] = "{{access_token}}", ["X-Plain"] = "plain-value" } }]])
    local home = h.tmpdir()
    local _, heard = heard_by_other(function() return prov.run(p, path, home) end)
    h.rmdir(home)
    assert.equal(1, #heard)
    assert.equal("/api/me", heard[1].path)
    for _, name in ipairs({ "x-tok", "x-plain", "authorization", "x-tenant", "x-region" }) do
      assert.is_nil(heard[1].headers[name], name .. " went to the other origin")
    end
  end)

  it("drops the headers a hooks.lookup request adds on a 302 to another allowed origin", function()
    local path = connector_at("lookuphdr", [[hooks = { lookup = function(api)
    local r = api.request({ url = "REDIR(302)", headers = { ["X-Key"] = "lookup-key-4f2a" } })
    return { region = "r" .. r.status }
  end }]])
    local home = h.tmpdir()
    local res, heard = heard_by_other(function() return prov.run(p, path, home) end)
    h.rmdir(home)
    assert.equal(0, res.code, res.stderr)
    assert.equal(1, #heard, require("cjson").encode(heard) .. res.stderr)
    assert.is_nil(heard[1].headers["x-key"], "x-key went to the other origin")
    assert.is_nil(heard[1].headers.authorization)
  end)

  it("refuses a hooks.lookup body on a 307 to another allowed origin", function()
    local path = connector_at("lookupbody", [[lookup_methods = { "POST" }, hooks = { lookup = function(api)
    api.request({ method = "POST", url = "REDIR(307)", body = "key=lookup-key-77c1" })
    return { region = "r1" }
  end }]])
    local home = h.tmpdir()
    local res, heard = heard_by_other(function() return prov.run(p, path, home) end)
    h.rmdir(home)
    assert.equal(7, res.code, res.stderr)
    assert.matches("which would resend the body", res.stderr, 1, true)
    assert.equal(0, #heard)
  end)
end)
