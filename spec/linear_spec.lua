-- luacheck: std +busted
-- Linear in the input (issue 13): every parser of provider text in the runtime gets a
-- megabyte of input made to make patterns backtrack (long runs of spaces, unclosed tags,
-- repeated <title> openers, runs of '%', '=', '&', '+', '/', escape sequences). Each
-- case runs in a child process under bounds that only catch a hang (spec/support/
-- bounded.lua: an instruction budget of 200 per input byte and 20 s of CPU time); before
-- the fixes, a 6 KB HTML title kept connrt busy for 40 s, and each of these ran for hours.
local bounded = require("support.bounded")
local h = require("support.helpers")

-- Shared by the cases: the token endpoint's parser, expecting a provider error.
local TOKEN = [[
  local oauth = require("connrt.oauth")
  local errors = require("connrt.errors")
  local function answer(ctype, body, status)
    local ok, e = pcall(oauth.normalize, { status = status or 200, header = { ["content-type"] = ctype },
      headers = {}, body = body }, "token endpoint")
    assert(not ok, "a token from that?")
    assert(errors.is(e) and e.kind == "provider", tostring(type(e) == "table" and e.message or e))
    return e.message
  end
]]

-- Inputs of about a megabyte, as Lua expressions.
local RUNS = {
  '(" "):rep(MB)', '("%"):rep(MB)', '("="):rep(MB)', '("&"):rep(MB)', '("+"):rep(MB)', '("/"):rep(MB)',
  '("%2"):rep(MB // 2)', '("a=%&"):rep(MB // 4)', '("a"):rep(MB)', '("<"):rep(MB)', '("\\\\"):rep(MB)',
  '("\\\\u"):rep(MB // 2)', '("\\27[2J"):rep(MB // 4)', '("\\r\\n"):rep(MB // 2)',
  -- JSON escapes percent-encoded, once and twice over ("%5Cu00", "%255C%5Cu")
  '("%5Cu00"):rep(MB // 6)', '("%255C%5Cu"):rep(MB // 10)',
}

local CASES = {
  -- connrt request --json: a provider's JSON body read as it came (json.lua, shown.lua)
  { "a JSON number of a megabyte of zeros between two ones, and of digits", [[
    local json = require("connrt.json")
    assert(json.number_value("1" .. ("0"):rep(MB) .. "1") == nil)
    assert(json.number_value("1." .. ("0"):rep(MB) .. "1e5") == nil)
    assert(json.minified("[1" .. ("0"):rep(MB) .. "1]"))
    assert(json.minified("[" .. ("1,"):rep(MB // 2) .. "1]", function(t) return json.number_value(t) ~= nil end))
  ]] },
  { "connrt request --json: a body whose every token spells a secret", [[
    local log = require("connrt.log")
    log.secret("73519864")
    -- each number and string is written again, hidden; the rest as it came
    local body = "[" .. ('7351986.4e1,"a73519864b",12,'):rep(MB // 30) .. "1]"
    local out = require("connrt.shown").stdout({ status = 200, header_list = {}, body = body,
      json = require("cjson").decode(body) }, "json")
    local head = '{"status":200,"headers":{},"body":["[redacted]","a[redacted]b",12,"[redacted]","a[redacted]b",12,'
    assert(out:sub(1, #head) == head, out:sub(1, #head))
    assert(not out:find("73519864", 1, true))
  ]] },
  { "connrt request --json, a secret of digits: a string of a digit, blanks and a letter, and of numbers", [[
    local log = require("connrt.log")
    log.secret("73519864")
    local shown = require("connrt.shown")
    for _, body in ipairs({ '{"a":"1' .. (" "):rep(MB) .. 'x"}', '{"a":"[' .. ("1,"):rep(MB // 2) .. '1]"}',
        '{"a":"' .. ("+1_0 "):rep(MB // 5) .. '"}' }) do
      local out = shown.stdout({ status = 200, header_list = {}, body = body, json = require("cjson").decode(body) }, "json")
      assert(out:find('"body":{"a":', 1, true), out:sub(1, 200))
    end
  ]] },
  { "a secret of digits: a megabyte of digits as a reader's number, kept, and cut", [[
    local log = require("connrt.log")
    log.secret("73519864")
    local json = require("connrt.json")
    assert(json.reader_number(("1"):rep(MB)) == nil)
    assert(json.reader_number(("1"):rep(MB) .. "x") == nil)
    assert(json.reader_number("0x" .. ("1"):rep(MB)) == nil)
    assert(log.kept(("1"):rep(MB)) == ("1"):rep(MB))
    local out = require("connrt.shown").stdout({ status = 200, header_list = {}, body = '{"a":"' .. ("1"):rep(MB) .. '"}',
      json = { a = ("1"):rep(MB) } }, "json")
    assert(out:find('"body":{"a":"111', 1, true))
    assert(#log.clip(("x"):rep(4 * MB), 2000) == 2000)
    -- a text that shows a secret however it is kept: its first start that does says so
    assert(log.clip("x-7351986.4e1 " .. ("1 "):rep(MB), 2000) == "[redacted]")
  ]] },
  { "a secret of a megabyte of newlines between two letters", [[
    require("connrt.log").secret("a" .. ("\n"):rep(MB) .. "b")
  ]] },
  { "a JSON text of runs of backslashes, quotes and blanks", [[
    local json = require("connrt.json")
    -- (its tokens are checked; their structure is cjson's, which has read the text)
    for _, run in ipairs({ { '"' .. ("\\\\"):rep(MB // 2) .. '"', true }, { ("[ "):rep(MB // 2), true },
        { '"' .. ("\\\""):rep(MB // 2), false }, { ('"a", '):rep(MB // 5), true } }) do
      assert((json.minified(run[1]) ~= nil) == run[2])
    end
  ]] },
  -- the token endpoint: an HTML page instead of a token (title_of)
  { "token endpoint: <title> and a megabyte of spaces, never closed", TOKEN .. [[
    assert(not answer("text/html", "<html><title>" .. (" "):rep(MB)):find("page title", 1, true))
  ]] },
  { "token endpoint: a title between long runs of spaces", TOKEN .. [[
    -- the title is looked for in the first 128 KB, where a page's <head> is
    local msg = answer("text/html", "<html><TITLE>" .. (" "):rep(60000) .. "Sign in" .. ("\t \n"):rep(20000) .. "</title>"
      .. (" "):rep(MB))
    assert(msg:find("(page title: Sign in)", 1, true), msg)
    msg = answer("text/html", "<html><TITLE>" .. (" "):rep(MB // 2) .. "Sign in" .. ("\t"):rep(MB // 2) .. "</title>")
    assert(not msg:find("page title", 1, true), msg)
  ]] },
  { "token endpoint: repeated <title> openers", TOKEN .. [[
    answer("text/html", ("<title>"):rep(MB // 7))
    answer("text/html", ("<TiTlE> \t\r\n"):rep(MB // 11) .. "</title")
  ]] },
  { "token endpoint: unclosed tags and half closers", TOKEN .. [[
    answer("text/html", ("<"):rep(MB))
    answer("text/html", "<title>" .. ("</titl "):rep(MB // 7))
  ]] },
  { "token endpoint: form-encoded and plain answers of runs", TOKEN .. [[
    for _, input in ipairs({ RUNS }) do
      answer("application/x-www-form-urlencoded", input)
      answer("text/plain", input)
      answer("", input)
    end
  ]], 42 },
  { "token endpoint: JSON with a megabyte of spaces in the error and nested arrays", TOKEN .. [[
    local msg = answer("application/json", '{"error":"invalid_grant","error_description":"' .. (" "):rep(MB) .. 'x"}', 400)
    assert(msg:find("invalid_grant", 1, true))
    answer("application/json", ("["):rep(MB))
  ]], 2 },
  -- the callback's query and the --verbose trace of every exchange
  { "callback query: url.form_decode of runs", [[
    local url = require("connrt.url")
    for _, input in ipairs({ RUNS }) do url.form_decode(input) end
  ]], 14 },
  { "trace: request.hide_url of runs in a query", [[
    local request = require("connrt.request")
    for _, input in ipairs({ RUNS }) do request.hide_url("https://x.test/?" .. input) end
    request.hide_url("https://x.test/?" .. ("code=a&"):rep(MB // 7))
  ]], 15 },
  -- Retry-After
  { "Retry-After: connection.retry_after of runs and near-dates", [[
    local connection = require("connrt.connection")
    for _, input in ipairs({ RUNS }) do connection.retry_after(input) end
    connection.retry_after("Mon, 01 Jan 2024 00:00:00 " .. (" "):rep(MB))
    connection.retry_after(("Mon, 1 Jan "):rep(MB // 11))
    connection.retry_after(("1"):rep(MB))
  ]], 17 },
  -- URLs the provider hands back (Salesforce's instance_url) and relative URLs joined to them
  { "url.join: a base with a megabyte of slashes", [[
    local url = require("connrt.url")
    local u = url.join("https://x.test/" .. ("/"):rep(MB) .. "a", "/b")
    assert(u:sub(-3) == "a/b", u:sub(-10))
    url.join("https://x.test/a" .. ("/"):rep(MB), "/b")
  ]], 2 },
  { "url.allowed: paths of runs of encodings a server might decode once more (review 27)", [[
    local url = require("connrt.url")
    local allowed = { "https://x.test/v1" }
    for _, path in ipairs({ ("%25"):rep(MB // 3), "%" .. ("2525"):rep(MB // 4), ("%2525"):rep(MB // 5),
        ("%EF%BC"):rep(MB // 6), ("\226\128"):rep(MB // 2), ("%E0"):rep(MB // 3), ("a%"):rep(MB // 2) }) do
      url.allowed("https://x.test/v1/" .. path, allowed)
    end
    assert(url.allowed("https://x.test/v1/" .. ("%25"):rep(MB // 3) .. "ok", allowed))
  ]], 2 },
  { "allowed_urls rendered with a provider's instance_url of a megabyte of slashes", [[
    local connector = require("connrt.connector")
    local c = connector.load(CONNECTOR)
    local ok = pcall(connector.render_allowed, c, 2, { { instance_url = "https://x.test/" .. ("/"):rep(MB) .. "a" } })
    assert(ok)
    pcall(connector.render_allowed, c, 2, { { instance_url = "https://x.test" .. ("/"):rep(MB) } })
  ]], 4 },
  -- a connector's own text (it may come from a stranger): templates and the secret check
  { "connector templates: unclosed '{{' runs and runs of spaces in placeholders", [[
    local template = require("connrt.template")
    local check = require("connrt.check")
    for _, input in ipairs({ RUNS, ("{{"):rep(MB // 2), ("{{a"):rep(MB // 3), ("{{a}"):rep(MB // 4), ("}}{{"):rep(MB // 4) }) do
      pcall(template.parse, input, "t")
      check.looks_secret(input)
    end
    local parts = template.parse("{{" .. (" "):rep(MB) .. "a" .. (" "):rep(MB) .. "}}", "t")
    assert(parts[1].path == "a", parts[1].path)
    assert(not pcall(template.parse, "{{ a" .. (" "):rep(MB) .. "b }}", "t"))
    assert(not pcall(template.parse, "x{{y" .. ("{"):rep(MB), "t"))
  ]], 44 },
  -- what connrt prints: tables of provider names, and lines through the log
  { "format.table of names with megabyte runs", [[
    local format = require("connrt.format")
    for _, input in ipairs({ RUNS }) do format.table({ { "NAME", "ACCOUNT" }, { input .. "x", "y" } }) end
  ]], 14 },
  { "log lines and text.escape_controls of runs and broken UTF-8", [[
    local log = require("connrt.log")
    local text = require("connrt.text")
    for _, input in ipairs({ RUNS }) do
      log.err("%s", input)
      log.out("%s", input)
      text.escape_controls(input)
    end
    log.err("%s", ("\155"):rep(MB))
    log.err("%s", ("\194\155x"):rep(MB // 3))
  ]], 30 },
  { "log.redact of runs of escapes, with secrets that have special characters", [[
    local log = require("connrt.log")
    log.secret("s3cr+t/x=y&z%20 \"q\"")
    log.secret("tok-" .. ("ab"):rep(20))
    for _, input in ipairs({ RUNS }) do log.redact(input) end
    log.redact(("%25"):rep(MB // 3))
    log.redact(("%2B"):rep(MB // 3))
    log.redact(("\\u00"):rep(MB // 4))
    log.redact(("\\ud83d"):rep(MB // 6))
    log.redact(("s3cr%2Bt"):rep(MB // 8))
    log.redact(("s3cr+t\\/"):rep(MB // 8))
    -- what a terminal does not show (the terminal view): unfinished sequences and
    -- overstrikes, and a run of UTF-8 continuation bytes with no backspace after it
    log.redact(("\27["):rep(MB // 2))
    log.redact(("\27[0;"):rep(MB // 4))
    log.redact(("\27]8;;"):rep(MB // 5))
    log.redact("\27]" .. ("x"):rep(MB))
    log.redact(("x\b"):rep(MB // 2))
    log.redact(("\b"):rep(MB))
    log.redact("\27a" .. ("\128"):rep(MB))
    log.redact(("s3cr\27[1m+t"):rep(MB // 10))
  ]], 20 },
}

-- The test API's answers (flow/test_api.lua's call, with the trace on, so the trace's body parser
-- reads them too), served by the echo server's /repeat. Each is just under the 1 MiB a
-- test API answer may have (limits.API_BODY), so the parsers read all of it.
local API = {
  { "an HTML page with <title> and a megabyte of spaces", "type=text/html&head=%3Chtml%3E%3Ctitle%3E&unit=%20&n=1048500",
    "not JSON" },
  { "an HTML page of repeated <title> openers", "type=text/html&head=%3Chtml%3E&unit=%3Ctitle%3E%20&n=131000", "not JSON" },
  { "a form-encoded answer of a megabyte without '='", "type=application/x-www-form-urlencoded&unit=a&n=1048576" },
  { "a form-encoded answer of runs of '=' and '&'", "type=application/x-www-form-urlencoded&unit=%3D%3D%26&n=349525" },
  { "an error whose JSON message is a megabyte of spaces",
    "status=500&type=application/json&head=%7B%22error%22%3A%22&unit=%20&n=1048500&tail=%22%7D", "answered 500" },
}

describe("parsers of provider text stay linear #integration", function()
  local api, tmp, env_connector

  setup(function()
    tmp = h.tmpdir()
    api = h.start_upstream()
    env_connector = tmp .. "/linear.lua"
    h.write(env_connector, ([[return {
      id = "linear", title = "Linear", auth = "fields",
      fields = { { key = "api_key", secret = true, required = true } },
      test = "/repeat", name = "x", unique_id = "y", values = { "instance_url" },
      allowed_urls = { "%s/", "{{instance_url}}/" },
      request = { headers = { ["X-Api-Key"] = "{{api_key}}" } },
    }]]):format(api.base))
  end)

  teardown(function()
    if api then api.stop() end
    h.rmdir(tmp)
  end)

  local function check(code, mb)
    code = code:gsub("{ RUNS }", function() return "{ " .. table.concat(RUNS, ", ") .. " }" end)
    code = ("local CONNECTOR = %q\n"):format(env_connector) .. code
    local res = bounded.run(code, (mb or 1) * 1024 * 1024)
    assert.is_true(res.ok, res.why)
  end

  for _, case in ipairs(CASES) do
    it(case[1], function() check(case[2], case[3]) end)
  end

  for _, case in ipairs(API) do
    it("test API: " .. case[1], function()
      check(([[
        local test_api = require("connrt.flow.test_api")
        local connector = require("connrt.connector")
        local errors = require("connrt.errors")
        require("connrt.log").verbose = true -- the trace parses the exchange too
        local c = connector.load(CONNECTOR)
        c.test.url = %q
        local ok, e = pcall(test_api.call, c, { {}, { api_key = "k-123456" }, {} }, { %q })
        if %q ~= "" then
          assert(not ok and errors.is(e) and e.kind == "provider", tostring(type(e) == "table" and e.message or e))
          assert(e.message:find(%q, 1, true), e.message:sub(1, 300))
        else
          assert(ok, tostring(type(e) == "table" and e.message or e))
        end
      ]]):format(api.base .. "/repeat?" .. case[2], api.base .. "/", case[3] or "", case[3] or ""), 2)
    end)
  end
end)
