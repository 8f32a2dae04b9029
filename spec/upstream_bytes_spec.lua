-- luacheck: std +busted
-- An upstream's answer read by a libcurl easy handle that carried a transfer before:
-- libcurl 7.88.1 (Debian 12) kept, in such a handle, a pointer to a header of the
-- previous transfer that it had freed, and appended a folded first header line of the
-- next answer to it (a use after free the server chooses: a proxy worker's heap was
-- corrupted and the worker died with every request it had in flight). connrt never lets a
-- handle carry a second transfer (src/api/http.c). The answers come from a real loopback
-- server writing the bytes (spec/support/raw-upstream.mjs); the proxy is a real process;
-- under `make sanitize` the C core runs with ASan (libcurl itself is not instrumented, so
-- the proof is that every answer is a clean one and the worker lives).
local h = require("support.helpers")
local proxy = require("support.proxy")
local http = require("connrt.http")

-- What --json prints as the body of these answers (below).
local SHOWN_BODY = {
  precise = '{"id":12345678901234567890,"f":3.141592653589793}',
  numstr = '{"as_string":"[redacted]","nested":"[redacted]","plain":"x 1","plus":"[redacted]","under":"[redacted]",'
    .. '"deep":"[redacted]","said":"[redacted]","zhex":"[redacted]","stop":"[redacted]","bin":"[redacted]",'
    .. '"oct":"[redacted]","tail":"[redacted]"}',
  commanum = '"[redacted]"',
  keepall = '{"z":1,"k":"x","big":12345678901234567890,"n":"[redacted]","k":2,"s":"a[redacted]b"}',
}

describe("an upstream's folded first header line after earlier answers #integration", function()
  local server, base, home, tmp

  setup(function()
    server = h.start_node("spec/support/raw-upstream.mjs")
    base = "http://127.0.0.1:" .. assert(tonumber(server.line))
    home, tmp = h.tmpdir(), h.tmpdir()
    local keyed = tmp .. "/keyed.lua"
    h.write(keyed, ([[return {
      id = "rawup", title = "Raw upstream", auth = "fields",
      fields = { { key = "api_key", label = "API key", secret = true, required = true } },
      test = "/api/ok", name = "raw", unique_id = "raw",
      allowed_urls = { "%s/api" },
      request = { headers = { Authorization = "Bearer {{api_key}}" } },
    }]]):format(base))
    local res = h.connrt({ "run", keyed, "--field", "api_key=rawup-k3y-0123456789" }, { env = { CONNRT_HOME = home } })
    assert.equal(0, res.code, res.stderr)
    -- more connections of the same connector under other ids, each with a key of a kind
    -- an upstream can spell back in a way of its own
    for _, c in ipairs({
      { "rawsplit", "k3y: s3cr3t, 0123456789abc" }, -- split across a header's name and value, or two lines
      { "rawnum", "73519864" },                     -- digits, which a JSON number can spell
      { "rawlatin", "pässwörd1" },                  -- not ASCII
      { "rawcp", "Großgeheim1" },                   -- a character Windows-1252 and Latin-1 read apart
      { "raweuro", "€uro1234" },                    -- one Windows-1252 has a byte for, Latin-1 none
      { "rawcomma", "1234,5678" },                  -- JSON punctuation: spelled across two values
      { "rawslash", "pa\\/ssw0rd-X1" },             -- JSON's "\/": an echo of "pa/ssw0rd-X1" is it
    }) do
      local path = ("%s/%s.lua"):format(tmp, c[1])
      h.write(path, (h.read(keyed):gsub('id = "rawup"', ('id = "%s"'):format(c[1]))))
      res = h.connrt({ "run", path, "--field", "api_key=" .. c[2] }, { env = { CONNRT_HOME = home } })
      assert.equal(0, res.code, c[1] .. ": " .. res.stderr)
    end
  end)

  teardown(function()
    proxy.stop_all()
    if server then server.stop() end
    h.rmdir(home)
    h.rmdir(tmp)
  end)

  -- the sequence the crash needed: answers on one keep-alive connection, a folded one
  -- between plain ones, each kind twice
  local SEQUENCE = { "ok", "fold", "ok", "foldsp", "ok", "fold", "ok", "foldsp", "ok" }

  it("is one clean answer or error each on a client's requests, and the client goes on", function()
    local c = http.client()
    for i, name in ipairs(SEQUENCE) do
      local resp, msg = c:request({ url = base .. "/api/" .. name })
      if name == "ok" then
        assert.is_table(resp, ("request %d (%s): %s"):format(i, name, tostring(msg)))
        assert.same({ 200, '{"ok":true}' }, { resp.status, resp.body })
      else
        -- libcurl refuses a folded line with nothing to continue, or passes it on
        assert(resp or msg, "an answer or an error")
        if resp then assert.equal(200, resp.status) end
      end
    end
    c:close()
  end)

  it("leaves a proxy worker alive and serving, its answers clean", function()
    local p = proxy.start(home, { "--socket", tmp .. "/p.sock", "--workers", "1" })
    for round = 1, 3 do
      for i, name in ipairs(SEQUENCE) do
        local status, body = proxy.curl(p, "/rawup/" .. name)
        if name == "ok" then
          assert.equal(200, status, ("round %d, request %d: %s\n%s"):format(round, i, tostring(body), p.err()))
          assert.equal('{"ok":true}', body)
        else
          assert.is_true(status == 200 or status == 502, ("round %d, request %d: %s"):format(round, i, tostring(status)))
        end
      end
    end
    -- a header name with a space before its colon is trimmed (here a hop-by-hop one, so
    -- dropped), never passed on as it came
    local st, _, head = proxy.curl(p, "/rawup/spacename")
    assert.equal(200, st)
    assert.is_nil(head:lower():find("transfer-encoding", 1, true), head)
    -- a 101 the request never asked for is no answer to pass on (RFC 9110 15.2.2)
    local status, body = proxy.curl(p, "/rawup/s101", { args = { "--max-time", "20" } })
    assert.equal(502, status, body)
    assert.equal("protocol", require("cjson").decode(body).reason)
    assert.not_matches("internal error", p.err())
    -- connrt request through it shows what the direct path shows: the key in a header's
    -- name redacted (also lowercased, in --json), an odd line as the client took it,
    -- control characters escaped, the key JSON-escaped in a text body redacted in --json
    -- and a key split across a name and its value (-i) or two lines of one name (--json)
    for _, case in ipairs({ { "secname", 0, "-i" }, { "secname", 0, "--json" }, { "odd", 0, "-i" },
        { "escbody", 0, "--json" }, { "splitcolon", 0, "-i", "rawsplit" }, { "splitcomma", 0, "--json", "rawsplit" },
        { "secupper", 0, "--json" }, { "numbody", 0, "--json", "rawnum" }, { "infnum", 0, "--json" },
        { "crvalue", 0, "-i" }, { "crvalue", 0, "--json" }, { "latin1", 0, "-i", "rawlatin" },
        { "latin1", 0, "--json", "rawlatin" }, { "deep", 0, "--json" }, { "precise", 0, "--json" },
        { "dblenc", 0, "--json", "rawlatin" }, { "dblenc", 0, "-i", "rawlatin" }, { "pctlatin", 0, "-i", "rawlatin" },
        { "numdup", 0, "--json", "rawnum" }, { "nanbody", 0, "--json" }, { "bignum", 0, "--json", "rawnum" },
        { "dupjson", 0, "--json" }, { "cp1252", 0, "-i", "rawcp" }, { "bigexp", 0, "--json" },
        { "dupnum", 0, "--json", "rawnum" }, { "euro", 0, "-i", "raweuro" }, { "keepall", 0, "--json", "rawnum" },
        { "redirlatin", 7, "--json", "rawlatin" }, { "redirlatin", 7, "-i", "rawlatin" },
        { "numstr", 0, "--json", "rawnum" }, { "commanum", 0, "--json", "rawcomma" }, { "redirbyte", 7, "--json" },
        { "redirslash", 7, "--json", "rawslash" }, { "redirslash", 7, "-i", "rawslash" } }) do
      local args = { "request", case[4] or "rawup", case[3], "/api/" .. case[1] }
      local direct = h.connrt(args, { env = { CONNRT_HOME = home } })
      local via = h.connrt(args, { env = { CONNRT_HOME = home, CONNRT_PROXY = p.info.socket } })
      assert.equal(case[2], direct.code, direct.stderr)
      assert.equal(direct.code, via.code, via.stderr)
      if case[3] == "--json" and direct.code == 0 then
        -- (the body at the decoder's depth inside the output's object: one level more)
        local json = require("cjson").new()
        json.decode_max_depth(1001)
        assert.same(json.decode(direct.stdout), json.decode(via.stdout), case[1])
      else
        assert.equal(direct.stdout, via.stdout, case[1])
      end
      -- (a message that spells a key only as JSON writes it is hidden whole on both paths)
      assert.equal(direct.stderr, via.stderr, case[1])
      assert.is_nil((direct.stdout .. via.stdout):lower():find("awup-k3y", 1, true), case[1] .. " " .. case[3])
      assert.is_nil((direct.stdout .. via.stdout):find("k3y: s3cr3t, 0123456789abc", 1, true), case[1] .. " " .. case[3])
      assert.is_nil((direct.stdout .. via.stdout):find("73519864", 1, true), case[1] .. " " .. case[3])
      assert.is_nil((direct.stdout .. via.stdout):find("ssw\\u00f6rd1", 1, true), case[1] .. " " .. case[3])
      assert.is_nil((direct.stderr .. via.stderr):find("traceback", 1, true), case[1] .. " " .. case[3])
      if not ({ odd = true, infnum = true, crvalue = true, deep = true, precise = true, nanbody = true,
          numdup = true, dupjson = true, bigexp = true, dupnum = true, redirlatin = true, redirbyte = true, redirslash = true, numstr = true,
          commanum = true })[case[1]] then
        assert.matches("[redacted]", direct.stdout, 1, true)
      end
      -- a number whose exact value takes more than 400 digits (1e999) is not checked: the
      -- body is written again, the number as null, never a traceback
      -- the non-ASCII key in any of its mixed-up spellings ("ssw" is in each, and nowhere
      -- else in these answers)
      assert.is_nil((direct.stdout .. via.stdout):find("73519863.9999999999999", 1, true), case[1])
      if case[4] == "raweuro" then assert.is_nil((direct.stdout .. via.stdout):find("uro1234", 1, true), case[1]) end
      if case[4] == "rawcp" then assert.is_nil((direct.stdout .. via.stdout):find("geheim", 1, true), case[1]) end
      if case[4] == "rawslash" then
        assert.is_nil((direct.stdout .. via.stdout .. direct.stderr .. via.stderr):find("pa\\/ssw0rd", 1, true), case[1])
        assert.matches("[redacted]", via.stderr, 1, true)
      end
      if case[4] == "rawlatin" then
        -- (an error message that quotes the upstream too, shown where the key is known)
        assert.is_nil((direct.stdout .. via.stdout .. direct.stderr .. via.stderr):find("ssw", 1, true), case[1])
      end
      assert.is_nil((direct.stdout .. via.stdout):find("7351986.4e1", 1, true), case[1])
      -- what cjson reads but JSON is not is written again as JSON
      if case[1] == "nanbody" then
        assert.matches('"body":{', via.stdout, 1, true)
        assert.is_nil(via.stdout:find("NaN", 1, true))
        assert.is_nil(via.stdout:find("0x10", 1, true))
      end
      -- what --json prints of the body, the same on both paths: without a secret, its
      -- numbers as written and its keys in order; a number spelled in a string, alone or
      -- in JSON inside it, hidden as a number is; a secret spelled across two values, the
      -- body hidden whole (the line still JSON); a body that holds a secret, only the
      -- tokens that spell it written again
      local shown_body = SHOWN_BODY[case[1]]
      if shown_body then
        assert.matches('"body":' .. shown_body .. "}", via.stdout, 1, true)
        assert.equal(direct.stdout, via.stdout)
      end
      if case[1] == "infnum" then
        local shown = require("cjson").decode(via.stdout).body
        assert.equal(require("cjson").null, shown.a)
        assert.equal(1, shown.b)
      end
      assert.is_nil((direct.stdout .. via.stdout):find("\27", 1, true), case[1])
    end
    assert.equal(0, p.stop("TERM"))
  end)
end)
