-- luacheck: std +busted
-- Regressions from fuzzing (fuzz/, `make fuzz`): every input a harness found that
-- crashed, fed through the same function, and the hostile inputs the harnesses start
-- from, each with the exact clean outcome: a value of the right shape or one of connrt's
-- own errors with a clear message.
local cjson = require("cjson")
local connector = require("connrt.connector")
local errors = require("connrt.errors")
local listener = require("connrt.listener")
local oauth = require("connrt.oauth")
local template = require("connrt.template")
local url = require("connrt.url")

-- the error object `fn` raises, which must be one of connrt's own
local function raised(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  assert.is_true(errors.is(e), "not a connrt error: " .. tostring(e))
  return e
end

local function raw(status, ctype, body)
  return { status = status, header = { ["content-type"] = ctype }, headers = {}, body = body }
end

local WHERE = "token endpoint https://auth.example.test/token"

describe("fuzz regressions", function()
  describe("token responses (fuzz/token.lua)", function()
    -- found: expires_in that is not a finite integer became a float expiry (inf, nan,
    -- 1e300) that the store cannot encode as JSON and `connrt show` cannot format
    for _, body in ipairs({
      '{"access_token":"a","expires_in":1e300}',
      '{"access_token":"a","expires_in":NaN}',
      '{"access_token":"a","expires_in":Infinity}',
      '{"access_token":"a","expires_in":-Infinity}',
      '{"access_token":"a","expires_in":"1e999"}',
      '{"access_token":"a","expires_in":9007199254740992}',
    }) do
      it("refuses expires_in in " .. body, function()
        local e = raised(oauth.normalize, raw(200, "application/json", body), WHERE)
        assert.equal("provider", e.kind)
        assert.matches("^" .. WHERE:gsub("%p", "%%%0") .. ": expires_in is not a number of seconds: ", e.message)
      end)
    end

    it("refuses a form-encoded expires_in that overflows", function()
      local e = raised(oauth.normalize, raw(200, "application/x-www-form-urlencoded", "access_token=a&expires_in=1e999"), WHERE)
      assert.equal(WHERE .. ": expires_in is not a number of seconds: 1e999", e.message)
    end)

    it("keeps the largest expires_in the clock can hold as an integer", function()
      local tok = oauth.normalize(raw(200, "application/json", '{"access_token":"a","expires_in":9007199254740991}'), WHERE)
      assert.equal(9007199254740991, tok.expires_in)
      assert.equal("integer", math.type(tok.expires_at))
      assert.has_no.errors(function() cjson.encode(tok) end)
    end)

    -- found: a NaN or infinite extra value was kept among the token's values, which the
    -- store then failed to encode ("Cannot serialise number")
    it("leaves NaN and infinite extra values out of the token's values", function()
      local tok = oauth.normalize(raw(200, "application/json",
        '{"access_token":"a","x":NaN,"y":Infinity,"z":-Infinity,"n":1.5,"s":"t","b":false}'), WHERE,
        { values = { "x", "y", "z", "n", "s", "b" } })
      assert.same({ n = 1.5, s = "t", b = false }, tok.values)
      assert.has_no.errors(function() cjson.encode(tok) end)
    end)

    -- found: a token_type or scope that is an object was kept, and shown as "table: 0x..."
    it("refuses a token_type or scope that is not a string", function()
      local e = raised(oauth.normalize, raw(200, "application/json", '{"access_token":"a","token_type":{}}'), WHERE)
      assert.equal(WHERE .. ": token_type is a table, not a string", e.message)
      e = raised(oauth.normalize, raw(200, "application/json", '{"access_token":"a","scope":{"read":true}}'), WHERE)
      assert.equal(WHERE .. ": scope is a table, not a string", e.message)
      e = raised(oauth.normalize, raw(200, "application/json", '{"access_token":"a","scope":["a",1]}'), WHERE)
      assert.equal(WHERE .. ": scope is a table, not a string", e.message)
    end)

    it("takes a scope array of strings as the space-separated list, and a number as text", function()
      local tok = oauth.normalize(raw(200, "application/json",
        '{"access_token":"a","scope":["chat:read","chat:edit"],"token_type":7}'), WHERE)
      assert.equal("chat:read chat:edit", tok.scope)
      assert.equal("7", tok.token_type)
      assert.equal("", oauth.normalize(raw(200, "application/json", '{"access_token":"a","scope":[]}'), WHERE).scope)
    end)

    -- found: "error": null (or false) beside a token was taken for an error, reported as
    -- "answered 200: userdata: (nil)"
    it("takes a token whose error is null or false", function()
      for _, e in ipairs({ "null", "false" }) do
        local tok = oauth.normalize(raw(200, "application/json", '{"access_token":"at","error":' .. e .. '}'), WHERE)
        assert.equal("at", tok.access_token)
      end
    end)

    -- found: an error object (Facebook's shape) was reported as "answered 400: table: 0x..."
    it("names the type and message of an error object", function()
      local e = raised(oauth.normalize, raw(400, "application/json",
        '{"error":{"message":"This authorization code has expired.","type":"OAuthException","code":100}}'), WHERE)
      assert.equal(WHERE .. " answered 400: OAuthException: This authorization code has expired.", e.message)
      e = raised(oauth.normalize, raw(200, "application/json", '{"access_token":"a","error":{}}'), WHERE)
      assert.equal(WHERE .. " answered 200: an error object", e.message)
      e = raised(oauth.normalize, raw(400, "application/json", '{"error":true,"status":400,"message":"Invalid code"}'), WHERE)
      assert.equal(WHERE .. " answered 400: true", e.message)
    end)

    it("refuses hostile bodies with a provider error", function()
      local cases = {
        { 200, "application/json", "", "answered 200 with application/json, not a token response" },
        { 200, "application/json", "[1,2]", ": the response has no access_token" },
        { 200, "application/json", '{"access_token":""}', ": the response has no access_token" },
        { 200, "application/json", '{"access_token":7}', ": access_token is a number, not a string" },
        { 200, "application/json", '{"access_token":"a","refresh_token":[]}', ": refresh_token is a table, not a string" },
        { 200, "application/json", '{"access_token":"a","expires_in":"-1"}', ": expires_in is not a number of seconds: -1" },
        { 200, "application/x-www-form-urlencoded", "access_token=a%ZZ&expires_in=x", ": expires_in is not a number of seconds: x" },
        -- a token goes into header lines: a control character in one is the provider's error
        { 200, "application/x-www-form-urlencoded", "access_token=%00%ZZ", ": the access_token contains a control character (NUL)" },
        { 200, "application/json", '{"access_token":"a\\r\\nb"}', ": the access_token contains a control character (CR)" },
        { 200, "text/html", "<title>" .. ("x"):rep(200) .. "</title>", " (page title: " .. ("x"):rep(80) .. ")" },
        { 500, "", "\0\255", "answered 500 with no content type, not a token response" },
      }
      for _, c in ipairs(cases) do
        local e = raised(oauth.normalize, raw(c[1], c[2] ~= "" and c[2] or nil, c[3]), WHERE)
        assert.equal("provider", e.kind)
        assert.truthy(e.message:find(c[4], 1, true), e.message)
      end
    end)

    it("keeps NUL bytes and percent escapes of a form-encoded response as they decode", function()
      local tok = oauth.normalize(raw(200, "application/x-www-form-urlencoded", "access_token=a%zz+c&x=%41&y=a%00b"), WHERE,
        { values = { "x", "y" } })
      assert.equal("a%zz c", tok.access_token)
      assert.equal("A", tok.values.x)
      assert.equal("a\0b", tok.values.y) -- a kept value; a header it goes into refuses it then
    end)
  end)

  describe("token responses through the shipped connectors' hooks.token_response", function()
    local function fetch(id, status, body)
      local c = connector.load("connectors/" .. id .. ".lua")
      return pcall(oauth.fetch_token, c, nil, WHERE, { status = status, header = {}, headers = {}, body = body })
    end

    -- found: an error that is an object or null was shown as "table: 0x..." or
    -- "userdata: (nil)"; a description that is an object failed mailchimp's hook itself
    -- ("attempt to concatenate a table value")
    it("reports hostile error shapes as provider errors with a clear message", function()
      for _, c in ipairs({
        { "slack", 200, '{"ok":false,"error":{}}', WHERE .. " answered 200: ok is not true" },
        { "slack", 200, '{"ok":false,"error":null}', WHERE .. " answered 200: ok is not true" },
        { "slack", 200, '{"ok":false,"error":"invalid_code"}', WHERE .. " answered 200: invalid_code" },
        { "mailchimp", 200, '{"error":{}}', WHERE .. " answered 200: no error code" },
        { "mailchimp", 400, '{"error":"invalid_grant","error_description":{}}', WHERE .. " answered 400: invalid_grant" },
        { "mailchimp", 400, '{"error":"invalid_grant","error_description":"expired"}', WHERE .. " answered 400: invalid_grant: expired" },
        { "mailchimp", 500, '{}', WHERE .. " answered 500: no error code" },
      }) do
        local ok, e = fetch(c[1], c[2], c[3])
        assert.is_false(ok, c[3])
        assert.is_true(errors.is(e), tostring(e))
        assert.equal("provider", e.kind)
        assert.equal(c[4], e.message)
      end
    end)

    it("takes a mailchimp token whose error is null", function()
      local ok, tok = fetch("mailchimp", 200, '{"access_token":"at","error":null,"expires_in":0}')
      assert.is_true(ok, tostring(tok))
      assert.equal("at", tok.access_token)
      assert.is_nil(tok.expires_in)
    end)
  end)

  describe("templates (fuzz/template.lua)", function()
    local scope = { { a = "x", n = 2.0, list = { "p", "q" }, obj = { k = "v" }, none = cjson.null, ["0"] = "zero" } }

    it("refuses malformed placeholders with a connector error naming them", function()
      for _, c in ipairs({
        { "{{", "'{{' without a matching '}}'" },
        { "{{a}} {{b", "'{{' without a matching '}}'" },
        { "{{ }}", "invalid placeholder {{ }}" },
        { "{{a..b}}", "invalid placeholder {{a..b}}" },
        { "{{{{a}}}}", "invalid placeholder {{{{a}}" },
        { "{{a\0}}", "invalid placeholder {{a\0}}" },
        { "{{.a}}", "invalid placeholder {{.a}}" },
      }) do
        local e = raised(template.render, c[1], scope, "k")
        assert.equal("connector", e.kind)
        assert.truthy(e.message:find(c[2], 1, true), e.message)
      end
    end)

    it("refuses values that are not single values or do not exist", function()
      assert.matches("{{obj}} is an object or array, not a single value", raised(template.render, "{{obj}}", scope, "k").message, 1, true)
      assert.matches("{{none}} names a value that does not exist", raised(template.render, "{{none}}", scope, "k").message, 1, true)
      assert.matches("{{list.2}} names a value that does not exist", raised(template.render, "{{list.2}}", scope, "k").message, 1, true)
    end)

    it("renders hostile but valid templates exactly", function()
      assert.equal("x-q-2-zero-v", template.render("{{a}}-{{ list.1 }}-{{n}}-{{0}}-{{obj.k}}", scope, "k"))
      assert.equal("}} { } \0 %s %1", template.render("}} { } \0 %s %1", scope, "k"))
      assert.equal(("x"):rep(10000), template.render(("{{a}}"):rep(10000), scope, "k"))
    end)
  end)

  describe("URLs and the allowed-URL rule (fuzz/url.lua)", function()
    local allowed = { "https://api.example.com/v1" }

    it("refuses hostile URLs with a message", function()
      for _, s in ipairs({ "https://api.example.com/v1/\0", "https://api.example.com\t/v1", "https://[::1/x",
        "https://api.example.com:/v1", "https://api.example.com:65536/", "https://-a.test/", "https://a..b/",
        "https://a_b%41.test/", "javascript://x.test/", "https:///v1", ("https://a.test/" .. ("%"):rep(5000)) .. " " }) do
        local u, err = url.parse(s)
        assert.is_nil(u, s)
        assert.matches("^invalid URL", err)
      end
    end)

    it("refuses what escapes the allowed path, host or scheme", function()
      for _, s in ipairs({
        "https://api.example.com/v1/../admin", "https://api.example.com/v1/%2e%2e/admin",
        "https://api.example.com/v1/%2E%2e/admin", "https://api.example.com/v1%2fx", "https://api.example.com/v1\\..\\x",
        "https://api.example.com/v10", "https://api.example.com.evil.test/v1", "https://x@api.example.com/v1",
        "http://api.example.com/v1", "https://api.example.com:8443/v1", "https://api.example.com/./v1/../v2",
      }) do
        local ok, why = url.allowed(s, allowed)
        assert.is_false(ok, s)
        assert.equal("string", type(why))
      end
    end)

    -- found (against libcurl): an allowed URL with userinfo matched its host as we read
    -- it, where libcurl reads "https://@@x.test/a" as another host, or none
    it("matches nothing with an allowed URL that carries userinfo", function()
      for _, a in ipairs({ "https://@@@x.test/a", "https://u:p@x.test/a", "https://u@evil.test@x.test/" }) do
        local ok, why = url.allowed("https://x.test/a/b", { a })
        assert.is_false(ok, a)
        assert.equal("it matches none of the allowed URLs", why)
      end
      assert.is_true((url.allowed("https://x.test/a/b", { "https://u@x.test/a", "https://x.test/a" })))
    end)

    it("allows what stays under the allowed path", function()
      for _, s in ipairs({ "https://api.example.com/v1", "https://API.example.com:443/v1/x/../y?q=/../#f",
        "https://api.example.com/v1/./me", "https://api.example.com/v1/a/b/..", "https://api.example.com/v1//x" }) do
        assert.is_true(url.allowed(s, allowed), s)
      end
    end)

    -- found (against RFC 3986's own algorithm): a last "." or ".." after an empty
    -- segment lost a slash ("/v1/a//." became "/v1/a/")
    it("resolves dot segments as RFC 3986 does", function()
      assert.equal("/v1/a//", url.remove_dot_segments("/v1/a//."))
      assert.equal("/a//", url.remove_dot_segments("/a///.."))
      assert.equal("/a/b", url.remove_dot_segments("/a//../b"))
      assert.equal("/", url.remove_dot_segments("/.."))
      assert.equal("/a/", url.remove_dot_segments("/a/."))
      assert.equal("/...", url.remove_dot_segments("/..."))
      assert.equal("/", url.remove_dot_segments("/../../.."))
    end)
  end)

  describe("callback queries (fuzz/callback.lua)", function()
    it("decodes hostile queries into strings only, the first value of a name winning", function()
      local map, list = url.form_decode("state=a&state=b&code=&&=&%=%zz&x=%00%2B+%41&&&y")
      assert.same({ state = "a", code = "", [""] = "", ["%"] = "%zz", x = "\0+ A", y = "" }, map)
      assert.same({ { "state", "a" }, { "state", "b" }, { "code", "" }, { "", "" }, { "%", "%zz" },
        { "x", "\0+ A" }, { "y", "" } }, list)
      local _, again = url.form_decode(url.form_encode(list))
      assert.same(list, again)
    end)

    it("does not take an encoded or look-alike state for the state", function()
      assert.is_nil(url.form_decode("%73tate%3Dabc").state)
      assert.equal("abc", url.form_decode("%73tate=abc").state)
      assert.is_nil(url.form_decode("state%00=abc").state)
      assert.equal("abc&code=x", url.form_decode("state=abc%26code%3Dx").state)
    end)
  end)

  describe("the listener's request head (fuzz/listener.c)", function()
    -- sends raw bytes to the listener from a background bash (its /dev/tcp)
    local function send_raw(port, data)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(data)
      f:close()
      assert(os.execute(("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && cat %s >&3 && cat <&3 >/dev/null; rm -f %s' >/dev/null 2>&1 &")
        :format(port, path, path)))
    end

    local function request_for(data)
      local l = assert(listener.open("127.0.0.1", 0))
      finally(function() l:close() end)
      send_raw(l:port(), data)
      local req, err = l:accept(10)
      assert(req, err)
      local out = { method = req.method, target = req.target, path = req.path, query = req.query, headers = req.headers }
      req:respond(204)
      return out
    end

    -- found: a repeated header whose last value is empty was joined as "P/1.1, " (a value
    -- ending in a blank)
    it("leaves empty values out when it joins a repeated header", function()
      local req = request_for("GET /x HTTP/1.1\r\nX-A: \tP/1.1\r\nX-A: \t\n\r\n")
      assert.equal("P/1.1", req.headers["x-a"])
      req = request_for("GET /x HTTP/1.1\r\nX-A:\r\nx-a: one \r\nX-a:\r\nX-A:  two\r\n\r\n")
      assert.equal("one, two", req.headers["x-a"])
      req = request_for("GET /cb?code=a&state=b HTTP/1.0\nX-E:\n\n")
      assert.equal("", req.headers["x-e"])
      assert.same({ "GET", "/cb?code=a&state=b", "/cb", "code=a&state=b" }, { req.method, req.target, req.path, req.query })
    end)
  end)
end)
