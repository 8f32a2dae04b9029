-- luacheck: std +busted
local connector = require("connrt.connector")
local crypto = require("connrt.crypto")
local oauth = require("connrt.oauth")
local url = require("connrt.url")

local function raw(status, ctype, body)
  return { status = status, header = { ["content-type"] = ctype }, body = body }
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return e.message or tostring(e), e.kind
end

describe("oauth", function()
  it("makes state of 256 random bits, fresh every time", function()
    local a, b = oauth.new_state(), oauth.new_state()
    assert.equal(43, #a)
    assert.not_equal(a, b)
    assert.equal(32, #crypto.b64url_decode(a))
  end)

  it("makes a PKCE verifier of 32 random bytes and its S256 challenge", function()
    local v, ch = oauth.new_pkce()
    assert.equal(43, #v)
    assert.equal(32, #crypto.b64url_decode(v))
    assert.equal(crypto.b64url_encode(crypto.sha256(v)), ch)
    assert.not_equal(v, (oauth.new_pkce()))
  end)

  it("hex-encodes the S256 challenge where the connector says pkce_encoding = \"hex\" (TikTok)", function()
    local v, ch = oauth.new_pkce("hex")
    assert.equal(43, #v)
    assert.equal(crypto.hex(crypto.sha256(v)), ch)
    assert.matches("^%x+$", ch)
    assert.equal(64, #ch)
  end)

  describe("authorization URL", function()
    local c = connector.load_source([[return {
      id = "x", fields = { { key = "region" } },
      authorize_url = "https://{{region}}.auth.example.com/authorize?tenant=a",
      scopes = { "read", "write" }, scope_separator = ",",
      authorize_params = { access_type = "offline", hint = "{{region}} only" },
      token_url = "https://auth.example.com/token", test = "/me", name = "n", unique_id = "u",
      allowed_urls = { "https://api.example.com" } }]], "x.lua")

    it("carries everything the flow needs, and keeps the URL's own query", function()
      local u = oauth.authorize_url(c, { fields = { region = "eu" }, client_id = "cid",
        redirect_uri = "http://127.0.0.1:8400/callback", state = "S", challenge = "C" })
      local base, query = u:match("^([^?]+)%?(.*)$")
      assert.equal("https://eu.auth.example.com/authorize", base)
      local q = url.form_decode(query)
      assert.same({ tenant = "a", response_type = "code", client_id = "cid",
        redirect_uri = "http://127.0.0.1:8400/callback", scope = "read,write", state = "S",
        code_challenge = "C", code_challenge_method = "S256", access_type = "offline", hint = "eu only" }, q)
    end)

    it("sends the client id under the connector's client_id_param, and refuses it as --param", function()
      local t = connector.load_source([[return { id = "t", authorize_url = "https://a.example.com/a",
        client_id_param = "client_key", token_url = "https://a.example.com/t", client_auth = "body", test = "/me",
        name = "n", unique_id = "u", allowed_urls = { "https://api.example.com" } }]], "t.lua")
      local u = oauth.authorize_url(t, { fields = {}, client_id = "cid", redirect_uri = "http://127.0.0.1:8400/callback",
        state = "S", challenge = "C" })
      local q = url.form_decode(u:match("%?(.*)$"))
      assert.equal("cid", q.client_key)
      assert.is_nil(q.client_id)
      local msg, kind = err_of(oauth.authorize_url, t, { fields = {}, client_id = "cid",
        redirect_uri = "http://127.0.0.1:8400/callback", state = "S", challenge = "C", params = { { "client_key", "x" } } })
      assert.equal("usage", kind)
      assert.matches("--param client_key: connrt sets this parameter itself", msg, 1, true)
      local req = oauth.token_request(t, "https://a.example.com/t", { fields = {}, client_id = "cid", client_secret = "sec" },
        { { "grant_type", "authorization_code" } })
      assert.same({ grant_type = "authorization_code", client_key = "cid", client_secret = "sec" },
        (url.form_decode(req.body)))
    end)

    it("sends the connector's redirect_uri (eBay's RuName, from a field) instead of the redirect URL", function()
      local e = connector.load_source([[return { id = "e", fields = { { key = "runame", required = true } },
        authorize_url = "https://a.example.com/a", redirect_uri = "{{runame}}", token_url = "https://a.example.com/t",
        test = "/me", name = "n", unique_id = "u", allowed_urls = { "https://api.example.com" } }]], "e.lua")
      local u = oauth.authorize_url(e, { fields = { runame = "Ada_L-Ada-connrt-abc" }, client_id = "cid",
        redirect_uri = "http://127.0.0.1:8400/callback", state = "S", challenge = "C" })
      assert.equal("Ada_L-Ada-connrt-abc", url.form_decode(u:match("%?(.*)$")).redirect_uri)
      assert.equal("Ada_L-Ada-connrt-abc", oauth.sent_redirect_uri(e, { runame = "Ada_L-Ada-connrt-abc" }, "http://x/cb"))
      -- without the key, the redirect URL itself
      assert.equal("http://127.0.0.1:8400/callback", oauth.sent_redirect_uri(c, {}, "http://127.0.0.1:8400/callback"))
    end)

    it("leaves PKCE out when the connector turns it off", function()
      c.pkce = false
      local u = oauth.authorize_url(c, { fields = { region = "eu" }, client_id = "cid",
        redirect_uri = "http://127.0.0.1:8400/callback", state = "S", challenge = "C" })
      c.pkce = true
      assert.is_nil(u:find("code_challenge", 1, true))
    end)
  end)

  describe("token request", function()
    local base = [[return { id = "x", authorize_url = "https://a.example.com/a", token_url = "https://a.example.com/t",
      test = "/me", name = "n", unique_id = "u", allowed_urls = { "https://api.example.com" },
      token_params = { audience = "api" }, client_auth = "%s" }]]

    it("authenticates with HTTP Basic, form-encoding id and secret first (RFC 6749 2.3.1)", function()
      local c = connector.load_source(base:format("basic"), "x.lua")
      local req = oauth.token_request(c, "https://a.example.com/t", { fields = {}, client_id = "id:1",
        client_secret = "s p" }, { { "grant_type", "authorization_code" } })
      local auth
      for _, hdr in ipairs(req.headers) do if hdr[1] == "Authorization" then auth = hdr[2] end end
      assert.equal("Basic " .. crypto.b64encode("id%3A1:s%20p"), auth)
      assert.equal("grant_type=authorization_code&audience=api", req.body)
    end)

    it("authenticates in the body", function()
      local c = connector.load_source(base:format("body"), "x.lua")
      local req = oauth.token_request(c, "https://a.example.com/t", { fields = {}, client_id = "id",
        client_secret = "sec" }, { { "grant_type", "authorization_code" } })
      assert.same({ grant_type = "authorization_code", audience = "api", client_id = "id", client_secret = "sec" },
        (url.form_decode(req.body)))
      for _, hdr in ipairs(req.headers) do assert.not_equal("Authorization", hdr[1]) end
    end)
  end)

  describe("token normalization", function()
    it("reads a JSON token response and computes the expiry", function()
      local t = oauth.normalize(raw(200, "application/json",
        '{"access_token":"at1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt1","instance_url":"https://x",'
        .. '"other":"dropped"}'), "token endpoint", { values = { "instance_url" } })
      assert.equal("at1", t.access_token)
      assert.equal("rt1", t.refresh_token)
      assert.equal(3600, t.expires_in)
      assert.is_true(math.abs(t.expires_at - (os.time() + 3600)) <= 1)
      assert.same({ instance_url = "https://x" }, t.values) -- declared values only
    end)

    it("takes expires_in as a string, and no expires_in at all", function()
      assert.equal(60, oauth.normalize(raw(200, "application/json", '{"access_token":"a","expires_in":"60"}'), "t").expires_in)
      local t = oauth.normalize(raw(200, "application/json", '{"access_token":"a"}'), "t")
      assert.is_nil(t.expires_at)
    end)

    it("reads a form-encoded token response", function()
      local t = oauth.normalize(raw(200, "application/x-www-form-urlencoded", "access_token=gho_1&scope=repo&token_type=bearer"), "t")
      assert.equal("gho_1", t.access_token)
      assert.equal("repo", t.scope)
    end)

    it("reports the provider's error code and description", function()
      local msg, kind = err_of(oauth.normalize, raw(400, "application/json",
        '{"error":"invalid_grant","error_description":"code expired"}'), "token endpoint https://a/t")
      assert.equal("provider", kind)
      assert.equal("token endpoint https://a/t answered 400: invalid_grant: code expired", msg)
    end)

    it("reports an error sent with status 200", function()
      local msg = err_of(oauth.normalize, raw(200, "application/x-www-form-urlencoded",
        "error=bad_verification_code&error_description=The+code+is+wrong"), "t")
      assert.equal("t answered 200: bad_verification_code: The code is wrong", msg)
    end)

    it("reports an HTML page with its title, not its body", function()
      local msg = err_of(oauth.normalize, raw(502, "text/html; charset=utf-8",
        "<html><title>Bad Gateway</title><body>secret stuff</body></html>"), "t")
      assert.equal("t answered 502 with text/html, not a token response (page title: Bad Gateway)", msg)
    end)

    it("refuses a response without an access token, or with a bad expires_in", function()
      assert.matches("has no access_token", err_of(oauth.normalize, raw(200, "application/json", '{"token_type":"bearer"}'), "t"))
      assert.matches("expires_in is not a number", err_of(oauth.normalize,
        raw(200, "application/json", '{"access_token":"a","expires_in":"soon"}'), "t"))
    end)

    it("registers the tokens it sees as secrets, so they are never printed", function()
      oauth.normalize(raw(200, "application/json", '{"access_token":"very-secret-at","refresh_token":"very-secret-rt"}'), "t")
      local log = require("connrt.log")
      assert.equal("a=[redacted] r=[redacted]", log.redact("a=very-secret-at r=very-secret-rt"))
    end)
  end)
end)
