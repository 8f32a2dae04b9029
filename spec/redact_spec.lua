-- luacheck: std +busted
-- The redactor (lua/connrt/log.lua): a secret is hidden in every spelling a server or a
-- program echoes it in (issue 13: a token endpoint's error echoed the form body with
-- client_secret=s3cr%2Bt%2Fx%3Dy%26z), and redacting stays linear in the text (a 6 MB
-- response echoing the token 300,000 times ran past 30 s).
local bounded = require("support.bounded")
local cjson = require("cjson")
local crypto = require("connrt.crypto")

-- A fresh log module per test: the registered secrets are module state.
local function fresh_log()
  package.loaded["connrt.log"] = nil
  local log = require("connrt.log")
  package.loaded["connrt.log"] = nil
  return log
end

local SECRET = "s3cr+t/x=y&z"

-- RFC 3986 percent-encoding with a chosen hex case, leaving `keep` unencoded
local function pct(s, lower, keep)
  return (s:gsub("[^%w%-%._~]", function(c)
    if keep and keep:find(c, 1, true) then return c end
    return (lower and "%%%02x" or "%%%02X"):format(c:byte())
  end))
end

-- every character as \uXXXX (hex case chosen), as an encoder that escapes all would
local function json_u(s, upper)
  local out = {}
  for _, cp in utf8.codes(s) do
    if cp >= 0x10000 then
      local v = cp - 0x10000
      out[#out + 1] = ((upper and "\\u%04X\\u%04X" or "\\u%04x\\u%04x"):format(0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)))
    else
      out[#out + 1] = (upper and "\\u%04X" or "\\u%04x"):format(cp)
    end
  end
  return table.concat(out)
end

local function b64url(s)
  return (crypto.b64encode(s):gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" }))
end

describe("log.redact hides every spelling", function()
  local log
  before_each(function()
    log = fresh_log()
    log.secret(SECRET)
  end)

  it("JSON escapes percent-encoded (JSON in a URL's query, PHP's urlencode(json_encode(...)))", function()
    for _, t in ipairs({ pct(json_u(SECRET)), pct(json_u(SECRET, true), true), pct(pct(json_u(SECRET))),
        pct(pct(pct(json_u(SECRET)))), "q=" .. pct('{"k":"' .. json_u(SECRET) .. '"}'),
        (pct(json_u(SECRET)):gsub("%%20", "+")) }) do
      local shown = log.redact("a " .. t .. " b")
      assert.matches("[redacted]", shown, 1, true)
      assert.is_false(log.shows_secret(shown), shown)
      assert.is_true(log.shows_secret(t), t)
    end
    -- a text of percent-encoded backslashes alone stays as it is
    assert.equal("%5C%5C %5Cn %5Cu00", log.redact("%5C%5C %5Cn %5Cu00"))
  end)

  it("span: the longest spelling, percent-encoded three times over and JSON-escaped, fits in it", function()
    local worst = json_u(pct(pct(pct(SECRET))))
    assert.equal("[redacted]", log.redact(worst))
    assert.is_true(#worst <= log.span())
  end)

  it("line_cut: a newline inside a secret in progress is no place to cut; other newlines are", function()
    local key = "-----BEGIN KEY-----\nAAAA\n\nBBBB\n-----END KEY-----"
    log.secret("\n" .. key .. "\n") -- as read from a file: the value without the newlines is a secret too
    local before = ("z"):rep(200) .. "\nplain line\n"
    local text = before .. key .. "\nmore\n"
    -- the ordinary line goes out at its newline
    assert.equal(#before, log.line_cut(before, #before))
    -- at each newline inside the key, nothing of the key goes out
    local at = #before
    for nl in key:gmatch("()\n") do
      local cut = log.line_cut(text, #before + nl)
      assert.is_true(cut <= #before, nl)
      at = cut
    end
    assert.is_true(at > 0) -- the lines well before the key still go
    -- after the key and its newline (the value as registered ends there), a line that no
    -- secret has
    assert.equal(#text, log.line_cut(text, #text))
    assert.equal(before:sub(1, -2) .. "[redacted]more\n", log.redact(text))
  end)

  it("line_cut: a newline inside a secret written a line at a time, each line encoded, is no place to cut", function()
    for _, eol in ipairs({ "\n", "\r\n" }) do
      local key = ("-----BEGIN KEY-----\nAB+/cd==\nEF/+gh\n-----END KEY-----"):gsub("\n", eol)
      log.secret("\n" .. key .. "\n")
      -- each line percent-encoded (Python's quote, safe=''), JSON-escaped ('/' as '\/'),
      -- or JSON-escaped then percent-encoded, with a newline of its own after it
      for _, enc in ipairs({ function(l) return pct(l) end, function(l) return (l:gsub("/", "\\/")) end,
          function(l) return pct(l):gsub("%%", "\\u0025") end }) do
        local before = ("z"):rep(200) .. "\nplain line\n"
        local parts = {}
        for l in (key .. "\n"):gmatch("(.-)\n") do parts[#parts + 1] = enc(l) end
        local text = before .. table.concat(parts, "\n") .. "\nmore\n"
        assert.equal(#before, log.line_cut(before, #before))
        -- at each newline inside the encoded key, nothing of the key goes out
        local at = #before
        for _ = 1, #parts - 1 do
          at = text:find("\n", at + 1, true)
          assert.is_true(log.line_cut(text, at) <= #before, text:sub(#before + 1, at))
        end
        -- the text whole hides the key (with the newlines around it, as registered)
        assert.equal(before:sub(1, -2) .. "[redacted]more\n", log.redact(text))
      end
    end
    -- a line that no view makes a line of the key goes out at its newline
    local text = "plain %41 \\/ line\n"
    assert.equal(#text, log.line_cut(text, #text))
  end)

  it("tail_cut: where the end of the text begins a secret, in any view", function()
    local function ends(s) return s:sub(log.tail_cut(s) + 1) end
    assert.equal("s3cr+t/", ends("x " .. "s3cr+t/"))
    assert.equal(pct("s3cr+t/x"), ends("q=" .. pct("s3cr+t/x")))
    assert.equal("s3cr%2Bt%2Fx%3", ends("q=s3cr%2Bt%2Fx%3"))           -- an escape cut short
    assert.equal("s3cr+t\\/x=", ends('{"e":"s3cr+t\\/x='))            -- JSON
    assert.equal("s3cr%252Bt", ends("n=s3cr%252Bt"))                  -- twice encoded
    -- a whole secret before it is redacted as always; 3 bytes are too few; no secret: all
    assert.equal("[redacted] s3cr", ends(SECRET .. " s3cr"):gsub("^.-(s3cr)$", "[redacted] %1"))
    assert.equal(7, log.tail_cut("abc s3c"))
    assert.equal(7, log.tail_cut("abc def"))
    assert.equal(0, log.tail_cut("s3cr+t/x=y&"))
    -- never inside a whole secret: a secret that the beginning of another overlaps
    log.secret("zzzz-s3cr")
    local s = "a zzzz-s3cr+t/x"
    assert.equal(2, log.tail_cut(s))
  end)

  it("clip: a text cut for a message never ends in part of a secret, in any spelling", function()
    -- the cut one byte before a secret's end, and inside its percent-encoded spelling
    for _, spelled in ipairs({ SECRET, pct(SECRET), json_u(SECRET) }) do
      local s = ("x"):rep(300 - #spelled + 1) .. spelled .. " tail"
      local cut = log.clip(s, 300)
      -- the x's, then at most the whole "[redacted]" in the secret's place
      assert.equal(("x"):rep(300 - #spelled + 1), (cut:gsub("%[redacted%].*$", "")))
      assert.is_true(#cut <= 300)
      assert.is_nil(cut:find(spelled:sub(1, 6), 1, true), cut)
      assert.equal(cut, log.redact(cut))
    end
    -- the secrets hidden before the cut, which never falls inside a "[redacted]"; a short
    -- text is as it is (printing redacts it)
    assert.equal("", log.clip(SECRET .. ("y"):rep(50), 5))
    assert.equal("[redacted]yy", log.clip(SECRET .. ("y"):rep(50), 12))
    assert.equal("short", log.clip("short", 300))
    assert.equal(("z"):rep(300), log.clip(("z"):rep(1000), 300))
    -- long spellings hidden before the cut make the kept text shorter than the text: a
    -- secret further on must not end up cut inside the first n bytes of it
    local long = json_u(pct(pct(pct(SECRET))))
    local text = (long .. " "):rep(80) .. ("x"):rep(37) .. SECRET .. " end"
    for n = 100, #text - 4, 13 do
      local c = log.clip(text, n)
      assert.is_nil(c:find(SECRET:sub(1, 5), 1, true), n .. ": " .. c)
      assert.is_true(#c <= n)
    end
    -- a non-ASCII secret echoed half in Latin-1, a spelling only once escaped for printing,
    -- cut one byte short of its end
    log.secret("p\u{e4}ssw\u{f6}rd-\u{20ac}x")
    local mixed = "p\xe4ssw\u{f6}rd-\u{20ac}x"
    local cut = log.clip(("x"):rep(300 - #mixed + 1) .. mixed .. " tail", 300)
    assert.is_nil(cut:find("ssw", 1, true), cut)
    assert.is_false(log.shows_secret(cut))
  end)

  it("safe_cut: never inside a secret, and always past the start (secrets back to back)", function()
    local s = ("x"):rep(10) .. SECRET .. ("y"):rep(10)
    local at = log.safe_cut(s, 15)
    assert.equal(10, at)
    assert.equal(log.redact(s), log.redact(s:sub(1, at)) .. log.redact(s:sub(at + 1)))
    assert.equal(15 + #SECRET, log.safe_cut(s, 15 + #SECRET)) -- outside any secret: as asked
    local run = SECRET:rep(50)
    at = log.safe_cut(run, 100)
    assert.is_true(at > 0, "no progress")
    assert.equal(log.redact(run), log.redact(run:sub(1, at)) .. log.redact(run:sub(at + 1)))
  end)

  it("raw, as before", function()
    assert.equal("a [redacted] b", log.redact("a " .. SECRET .. " b"))
  end)

  it("percent-encoded, upper and lower case hex", function()
    assert.equal("client_secret=[redacted]&x=1", log.redact("client_secret=s3cr%2Bt%2Fx%3Dy%26z&x=1"))
    assert.equal("client_secret=[redacted]&x=1", log.redact("client_secret=" .. pct(SECRET, true) .. "&x=1"))
    -- mixed case, and encoders that leave some characters alone (Python's quote keeps '/')
    assert.equal("q=[redacted]", log.redact("q=s3cr%2bt%2Fx%3Dy%26z"))
    assert.equal("q=[redacted]", log.redact("q=" .. pct(SECRET, false, "/")))
    assert.equal("q=[redacted]", log.redact("q=" .. pct(SECRET, false, "+/=")))
    -- every character encoded, unreserved ones too
    assert.equal("q=[redacted]", log.redact("q=" .. SECRET:gsub(".", function(c) return ("%%%02X"):format(c:byte()) end)))
  end)

  it("percent-encoded twice and three times (a URL inside a query parameter of another), hex of either case", function()
    local once = pct(SECRET)
    local twice, thrice = pct(once), pct(pct(once))
    assert.equal("/cb?next=[redacted]&x=1", log.redact("/cb?next=" .. twice .. "&x=1"))
    assert.equal("next=[redacted]", log.redact("next=" .. thrice))
    assert.equal("next=[redacted]", log.redact("next=" .. pct(pct(SECRET, true), false)))
    -- a form-encoded space inside: '+' outside, %2B of the secret's own '+' within
    log.secret("my pass+word")
    assert.equal("u=[redacted]", log.redact("u=" .. pct(pct("my pass+word"))))
    assert.equal("u=[redacted]", log.redact("u=my+pass%252Bword"))
    -- in a JSON echo of a twice-encoded URL
    assert.equal('{"u":"[redacted]"}', log.redact(cjson.encode({ u = twice })))
    -- a fourth layer is not undone (each layer is a pass over the text): the text stays
    local four = pct(thrice)
    assert.equal("next=" .. four, log.redact("next=" .. four))
  end)

  it("form-encoded, '+' for a space", function()
    log.secret("my pass word!")
    assert.equal("password=[redacted]&x=y", log.redact("password=my+pass+word%21&x=y"))
    assert.equal("password=[redacted]&x=y", log.redact("password=my+pass+word!&x=y"))
    assert.equal("a [redacted]", log.redact("a my%20pass%20word%21"))
    -- a '+' that is the secret's own stays a '+' where it was percent-encoded
    assert.equal("client_secret=[redacted]", log.redact("client_secret=s3cr%2Bt%2Fx%3Dy%26z"))
  end)

  it("JSON-escaped: \\/, \\uXXXX of any character, surrogate pairs", function()
    assert.equal('{"error":"[redacted]"}', log.redact(cjson.encode({ error = SECRET })))
    assert.equal('{"e":"[redacted]"}', log.redact('{"e":"' .. json_u(SECRET) .. '"}'))
    assert.equal('{"e":"[redacted]"}', log.redact('{"e":"' .. json_u(SECRET, true) .. '"}'))
    assert.equal('{"e":"[redacted]"}', log.redact('{"e":"s3cr\\u002Bt\\/x\\u003dy\\u0026z"}'))
    log.secret("pässwörd-1")
    assert.equal('"[redacted]"', log.redact('"' .. json_u("pässwörd-1") .. '"'))
    assert.equal('"[redacted]"', log.redact('"p\\u00e4ssw\\u00F6rd-1"'))
    log.secret("key-😀-x\"q")
    assert.equal('"[redacted]"', log.redact('"key-\\ud83d\\ude00-x\\"q"'))
    assert.equal('"[redacted]"', log.redact('"' .. json_u("key-😀-x\"q", true) .. '"'))
    -- an escaped backslash is not the start of an escape
    assert.equal('"s3cr+t\\\\/x=y&z"', log.redact('"s3cr+t\\\\/x=y&z"'))
  end)

  it("a form body quoted in a JSON error (JSON, then percent or form)", function()
    -- Python's quote keeps '/', which a JSON encoder then escapes
    local body = ("grant_type=client_credentials&client_secret=" .. pct(SECRET, false, "/")):gsub("/", "\\/")
    assert.equal('{"error":"invalid_client","echo":"grant_type=client_credentials&client_secret=[redacted]"}',
      log.redact('{"error":"invalid_client","echo":"' .. body .. '"}'))
    log.secret("my pass/word!")
    assert.equal('{"echo":"password=[redacted]"}', log.redact('{"echo":"password=my+pass\\/word%21"}'))
  end)

  it("HTTP Basic base64(id:secret) at every alignment, in both alphabets, never registered as such", function()
    -- the cores are encoded by connrt.crypto when a command has loaded it, else in Lua
    local loaded = package.loaded["connrt.crypto"]
    finally(function() package.loaded["connrt.crypto"] = loaded end)
    for _, with_crypto in ipairs({ true, false }) do
      package.loaded["connrt.crypto"] = with_crypto and loaded or nil
      log = fresh_log()
      log.secret(SECRET)
      for n = 0, 5 do
        local id = ("client-id"):sub(1, n)
        -- as it is, and form-encoded before joining (RFC 6749 client authentication)
        for _, parts in ipairs({ { id, SECRET }, { pct(id), pct(SECRET) } }) do
          local cred = parts[1] .. ":" .. parts[2]
          for _, enc in ipairs({ crypto.b64encode(cred), b64url(cred) }) do
            local out = log.redact("Authorization: Basic " .. enc)
            local before, after = out:match("^Authorization: Basic ([%w+/=_-]*)%[redacted%]([%w+/=_-]*)$")
            assert.is_string(before, out)
            -- left: the characters of the id and ':' (and the one they share with the
            -- secret), and after it at most one shared character and the padding
            assert.is_true(#before <= (8 * (#parts[1] + 1) + 5) // 6, out)
            assert.is_true(#after <= 3, out)
          end
        end
      end
    end
  end)

  it("a base64 secret's own encoding, and a secret in a longer base64 text of a JSON echo", function()
    local tok = "tok-0123456789abcdef"
    log.secret(tok)
    assert.equal("[redacted]", log.redact(crypto.b64encode(tok)))
    local echo = cjson.encode({ authorization = "Basic " .. crypto.b64encode("user:" .. tok) })
    assert.is_nil(log.redact(echo):find(crypto.b64encode("user:" .. tok):sub(8, 20), 1, true))
    assert.matches("[redacted]", log.redact(echo), 1, true)
  end)

  it("registers no base64 core shorter than 6 characters, and random base64 text stays as it is", function()
    local short = fresh_log()
    short.secret("abcd")
    local basic = "Basic " .. crypto.b64encode("x:abcd")
    assert.equal(basic, short.redact(basic))          -- a core of 5 characters: left out
    assert.equal("[redacted]", short.redact("abcd"))   -- the raw secret still goes
    short.secret("abcde")
    assert.matches("[redacted]", short.redact("Basic " .. crypto.b64encode("id:abcde")), 1, true)
    -- 256 KB of base64 text (a fixed seed): none of a 12-byte secret's cores turns up
    local real = fresh_log()
    real.secret("9fQ2-xk81Lp0")
    math.randomseed(42)
    local bytes = {}
    for i = 1, 196608 do bytes[i] = string.char(math.random(0, 255)) end
    local noise = crypto.b64encode(table.concat(bytes))
    assert.equal(noise, real.redact(noise))
    assert.equal(b64url(table.concat(bytes)), real.redact(b64url(table.concat(bytes))))
  end)

  it("hides a secret inside a longer one whole, and overlapping ones together", function()
    log.secret("abcdefgh")
    log.secret("abcdefgh-longer")
    assert.equal("x [redacted] y", log.redact("x abcdefgh-longer y"))
    assert.equal("x [redacted] y [redacted]", log.redact("x abcdefgh-longer y abcdefgh"))
    log.secret("defgh-longer-still")
    assert.equal("x [redacted] z", log.redact("x abcdefgh-longer-still z"))
  end)

  it("as a terminal shows it: escape sequences and overstrikes inside a secret (review 27)", function()
    log.secret("S3cr3tK3yValue_abc123")
    -- grep --color, an OSC 8 hyperlink ended by BEL or by ESC \, a backspace overstrike,
    -- and a character of several bytes struck over
    assert.equal("key=[redacted] end", log.redact("key=S3cr3tK3y\27[01;31m\27[KValue\27[m\27[K_abc123 end"))
    assert.equal("a \27]8;;http://x\7[redacted] b", log.redact("a \27]8;;http://x\7S3cr3tK3y\27]8;;\27\\Value_abc123 b"))
    assert.equal("a [redacted] b", log.redact("a S3cr3tK3y\27]8;;\7Value_abc123 b"))
    assert.equal("[redacted]", log.redact("S3cr3tK3yX\bValue_abc123"))
    assert.equal("([redacted])", log.redact("(S3cr3tK3y\195\164\bValue_abc123)"))
    -- text around them, and escapes without a secret, as they were
    assert.equal("\27[1mbold\27[0m S3cr3tK3y\27[1m_not", log.redact("\27[1mbold\27[0m S3cr3tK3y\27[1m_not"))
    assert.equal("\27[31mred\27[0m [redacted]\27[0m", log.redact("\27[31mred\27[0m S3cr3tK\27[4m3yValue_abc123\27[0m"))
  end)

  it("leaves text without secrets, or without a registered one, as it is", function()
    assert.equal("nothing %2B here \\u0041 +", log.redact("nothing %2B here \\u0041 +"))
    assert.equal("", log.redact(""))
    assert.equal("42", log.redact(42))
  end)
end)

describe("log.tail_cut is bounded by the secrets, not by the text #integration", function()
  it("a 1 MB tail of one repeated byte that begins a secret, and a 1 MB run of escapes", function()
    local res = bounded.run([[
      local log = require("connrt.log")
      log.secret("aaaa" .. ("a"):rep(60) .. "b")
      log.secret("%%%%%%%%%%%%q")
      local s = ("a"):rep(MB)
      assert(log.tail_cut(s) == MB - 64, log.tail_cut(s))
      s = ("%25"):rep(MB // 3)
      assert(log.tail_cut(s) < #s)
    ]], 2 * 1024 * 1024)
    assert.is_true(res.ok, res.why)
  end)
end)

describe("log.redact is linear in the text #integration", function()
  it("redacts a 6 MB response echoing the token 300,000 times, and its JSON- and percent-escaped echoes", function()
    local res = bounded.run([[
      local log = require("connrt.log")
      local tok = "at-0123456789abcd/e+"
      log.secret(tok)
      local text = ("x" .. tok):rep(300000)
      assert(#text > 6000000)
      local out = log.redact(text)
      local _, n = out:gsub("%[redacted%]", "")
      assert(n == 300000, n)
      assert(not out:find(tok, 1, true))
      -- the same count of echoes, JSON-escaped and percent-encoded: 300,000 escapes each
      out = log.redact(('"x' .. tok:gsub("/", "\\/") .. '",'):rep(300000))
      _, n = out:gsub("%[redacted%]", "")
      assert(n == 300000, n)
      out = log.redact(("&t=at-0123456789abcd%2Fe%2B"):rep(300000))
      _, n = out:gsub("%[redacted%]", "")
      assert(n == 300000, n)
    ]], 20 * 1024 * 1024)
    assert.is_true(res.ok, res.why)
  end)

  it("redacts 300,000 echoes encoded three times over, and 7 MB of escapes of escapes", function()
    local res = bounded.run([[
      local log = require("connrt.log")
      log.secret("at-0123456789abcd/e+")
      -- every layer decodes 600,000 escapes
      local out = log.redact(("&t=at-0123456789abcd%25252Fe%25252B"):rep(300000))
      local _, n = out:gsub("%[redacted%]", "")
      assert(n == 300000, n)
      -- no secret in them: '%' all the way down, each layer one pass
      out = log.redact(("%252525"):rep(1000000))
      assert(#out == 7000000)
    ]], 17 * 1024 * 1024)
    assert.is_true(res.ok, res.why)
  end)
end)

describe("a record's text kept in clear (flow/record.lua check_clear)", function()
  it("refuses one a provider made equal to a secret: a token that is the name, a URL holding the secret", function()
    package.loaded["connrt.log"], package.loaded["connrt.flow.record"] = nil, nil
    local log = require("connrt.log")
    local record = require("connrt.flow.record")
    log.secret("Alice Example Longname")
    log.secret("cs-Reg1sterSecret88")
    for _, rec in ipairs({ { name = "Alice Example Longname" }, { client_id = "Alice Example Longname" },
        { urls = { token_url = "https://as.example/tok2?k=cs-Reg1sterSecret88" } },
        { values = { n = 1, region = "cs-Reg1sterSecret88" } } }) do
      local ok, err = pcall(record.check_clear, rec, "token endpoint")
      assert.is_false(ok)
      assert.equal("provider", err.kind)
      assert.matches("would show a secret of it in clear", err.message, 1, true)
    end
    assert.is_true((pcall(record.check_clear, { name = "Alice", urls = { token_url = "https://as.example/t" } }, "x")))
    package.loaded["connrt.log"], package.loaded["connrt.flow.record"] = nil, nil
  end)
end)

describe("an error message as every path prints it (errors.kept_message)", function()
  it("is redacted when no way of printing it shows a secret, else its reason stands in", function()
    package.loaded["connrt.log"] = nil
    local log = require("connrt.log")
    local errors = require("connrt.errors")
    log.secret("pa\\/ssw0rd-X1")
    -- redacted where it is spelled as it is
    assert.equal("refused: [redacted]", errors.kept_message("refused_url", "refused: pa\\/ssw0rd-X1"))
    -- spelled only as JSON writes it ("/" as "\/"): that word hidden, the rest kept
    assert.equal("redirected to [redacted] (refused)",
      errors.kept_message("refused_url", "redirected to https://evil.example/pa/ssw0rd-X1 (refused)"))
    -- spelled so across words: hidden whole, what refused_url means kept
    log.secret("ab\\/cd ef-S3cret")
    local m = errors.kept_message("refused_url", "redirected to https://evil.example/ab/cd ef-S3cret")
    assert.equal("[redacted] (refused_url: " .. errors.reason_says.refused_url, m:sub(1, #"[redacted] (refused_url: "
      + #errors.reason_says.refused_url))
    assert.is_nil(m:find("S3cret", 1, true))
    -- a message with no secret in it is as it was
    assert.equal("no such connection: x", errors.kept_message("no_connection", "no such connection: x"))
    package.loaded["connrt.log"] = nil
  end)
end)

describe("numbers as readers take them (json.reader_number, log.value_shows_secret)", function()
  it("reads the ASCII forms of JSON, Python, JavaScript and C readers", function()
    local json = require("connrt.json")
    for _, case in ipairs({ { "7351986.4e1", 73519864 }, { "+7_351_986.4e1", 73519864 }, { "0x461D2F8", 73519864 },
        { "0x0000000000000000461d2f8", 73519864 }, { "0x8C3A5F.0p3", 73519864 }, { "0x.461D2F8p28", 73519864 },
        { "0x8C3A5Fp00003", 73519864 }, { "0b100011000011101001011111000", 73519864 }, { "0o430351370", 73519864 },
        { "0x122310E854B0CC", 5105105105105100 }, { "7351986.4e1abc", 73519864 }, { "7351986.4e1.", 73519864 },
        { "0x112210F47DE98115", 1234567890123456789 }, { "7351.9864" .. ("0"):rep(400) .. "e4", 73519864 },
        { "0073519864", 73519864 }, { ".5", 0.5 } }) do
      local x = json.reader_number(case[1])
      assert.equal(case[2], x, case[1])
    end
    assert.is_nil(json.reader_number("abc"))
    assert.is_nil(json.reader_number("e5"))
  end)

  it("refuses a kept value for a secret of 8 bytes or more only, and not for a rounding no reader prints", function()
    package.loaded["connrt.log"] = nil
    local log = require("connrt.log")
    log.secret("73519864")
    log.secret("9999")
    assert.is_true(log.value_shows_secret("read 0x461D2F8", true))
    -- a number percent-encoded, as a URL's query carries it
    assert.is_true(log.number_in_text("id=7351986.4e%2B1"))
    assert.equal("[redacted]", log.kept("id=7351986.4e%252B1"))
    -- and so --json hides it in a string of a body
    package.loaded["connrt.shown"] = nil
    local out = require("connrt.shown").stdout({ status = 200, header_list = {}, body = '{"a":"id=7351986.4e%2B1"}',
      json = { a = "id=7351986.4e%2B1" } }, "json")
    assert.is_nil(out:find("7351986", 1, true), out)
    package.loaded["connrt.shown"] = nil
    -- C's strtol(s, NULL, 0) reads a leading zero as octal
    assert.is_true(log.value_shows_secret("0430351370", true))
    assert.is_true(log.number_in_text("id 0430351370 here"))
    assert.is_true(log.value_shows_secret(7351986.4e1, true))
    -- a 4-byte PIN in an id, and 19.99's 17-digit rounding (19.989999999999998); a
    -- shorter secret is refused as a whole word, or a number's whole value
    assert.is_false(log.value_shows_secret("175928847299999063", true))
    log.secret("735198")
    assert.is_true(log.value_shows_secret("735198", true))
    assert.is_true(log.value_shows_secret("t-735198", true))
    assert.is_true(log.value_shows_secret(735198, true))
    assert.is_true(log.value_shows_secret("0x000B37DE", true))
    assert.is_false(log.value_shows_secret("1735198", true))
    assert.is_false(log.value_shows_secret("Pro plan 19.99 EUR"))
    assert.is_false(log.value_shows_secret(19.99))
    -- a cut that would leave a secret's spelling (0x461D2F80 cut after 0x461D2F8)
    local cut = log.clip(("a"):rep(20) .. " 0x461D2F80 " .. ("b"):rep(100), 29)
    assert.is_false(log.number_in_text(cut), cut)
    package.loaded["connrt.log"] = nil
  end)

  it("spells a number's shortest form as Python's repr writes it, at powers of two and subnormal ones too", function()
    -- Python (a real reader, not a table of ours) writes each double: every power of two
    -- (where the gap below is half the gap above, and the correctly rounded 16 digits of
    -- 2^-24 do not read back), every subnormal power, and random doubles
    local h = require("support.helpers")
    local json = require("connrt.json")
    local file = h.tmpdir() .. "/numbers"
    assert.is_true(os.execute(("python3 -c %s > %s"):format(h.shell_quote([[
import random, struct, math
random.seed(17)
vals = [2.0 ** e for e in range(-1074, 1024)]
while len(vals) < 8000:
    v = struct.unpack('<d', struct.pack('<Q', random.getrandbits(64)))[0]
    if math.isfinite(v) and v != 0:
        vals.append(v)
vals += [random.getrandbits(40) * 5e-324 for _ in range(1000)]
for v in vals:
    print(v.hex(), repr(v))
]]), file)))
    -- the same number whatever the exponent's and the zeros' spelling: its digits and
    -- where the point is
    local function norm(t)
      local sign, a, b, e = t:match("^(%-?)(%d+)%.?(%d*)[eE]?([-+]?%d*)$")
      local d = (a .. b):gsub("0+$", "")
      local z = #d:match("^0*")
      return sign .. d:sub(z + 1) .. "e" .. (#a - z + (tonumber(e) or 0))
    end
    local n = 0
    for line in io.lines(file) do
      local hex, repr = line:match("^(%S+) (%S+)$")
      assert.equal(norm(repr), norm(json.number_spellings(tonumber(hex))[2]), line)
      n = n + 1
    end
    assert.is_true(n >= 9000)
    h.rmdir(file:match("^(.*)/"))
    -- a PIN spelled only by 2^-24's shortest form (5.960464477539063e-08)
    package.loaded["connrt.log"] = nil
    local log = require("connrt.log")
    log.secret("77539063")
    assert.is_true(log.value_shows_secret(2 ^ -24, true))
    package.loaded["connrt.log"] = nil
  end)
end)
