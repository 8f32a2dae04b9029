-- luacheck: std +busted
-- lua/connrt/format.lua: relative times with fixed clocks, and aligned tables measured
-- as a terminal shows text (UTF-8, wide and combining characters), with control
-- characters made harmless.
local format = require("connrt.format")

local NOW = 1700000000
local MIN, HOUR, DAY = 60, 3600, 86400

describe("format.ago", function()
  it("says how long ago or how long until, in whole units rounded down", function()
    assert.equal("5 min ago", format.ago(NOW - 5 * MIN, NOW))
    assert.equal("5 min ago", format.ago(NOW - 5 * MIN - 59, NOW))
    assert.equal("in 42 min", format.ago(NOW + 42 * MIN, NOW))
    assert.equal("30 s ago", format.ago(NOW - 30, NOW))
    assert.equal("in 3 h", format.ago(NOW + 3 * HOUR + 59 * MIN, NOW))
    assert.equal("2 days ago", format.ago(NOW - 2 * DAY, NOW))
    assert.equal("in 400 days", format.ago(NOW + 400 * DAY, NOW))
  end)

  it("switches units at 1 min, 1 h and 2 days", function()
    assert.equal("59 s ago", format.ago(NOW - 59, NOW))
    assert.equal("1 min ago", format.ago(NOW - 60, NOW))
    assert.equal("59 min ago", format.ago(NOW - 3599, NOW))
    assert.equal("1 h ago", format.ago(NOW - 3600, NOW))
    assert.equal("47 h ago", format.ago(NOW - 48 * HOUR + 1, NOW))
    assert.equal("2 days ago", format.ago(NOW - 48 * HOUR, NOW))
  end)

  it("says just now within a second, and never for no time", function()
    assert.equal("just now", format.ago(NOW, NOW))
    assert.equal("just now", format.ago(NOW + 0.5, NOW))
    assert.equal("never", format.ago(nil, NOW))
  end)

  it("uses the clock when no now is given", function()
    assert.equal("just now", format.ago(os.time()))
    assert.equal("in 2 h", format.ago(os.time() + 2 * HOUR + 30))
  end)
end)

describe("format.expiry", function()
  it("says when a token expires, or since when it has expired", function()
    assert.equal("in 42 min", format.expiry(NOW + 42 * MIN + 59, NOW))
    assert.equal("in 3 h", format.expiry(NOW + 3 * HOUR, NOW))
    assert.equal("in 2 days", format.expiry(NOW + 2 * DAY + 5 * HOUR, NOW))
    assert.equal("in 1 s", format.expiry(NOW + 1, NOW))
    assert.equal("expired 5 min ago", format.expiry(NOW - 5 * MIN, NOW))
    assert.equal("expired 3 days ago", format.expiry(NOW - 3 * DAY, NOW))
    assert.equal("expired just now", format.expiry(NOW, NOW))
  end)

  it("says unknown for a token without an expiry (the provider did not say)", function()
    assert.equal("unknown", format.expiry(nil, NOW))
  end)
end)

describe("format.utc", function()
  it("writes ISO 8601 in UTC, never for no time", function()
    assert.equal("2023-11-14T22:13:20Z", format.utc(NOW))
    assert.equal("1970-01-01T00:00:00Z", format.utc(0))
    assert.equal("never", format.utc(nil))
  end)
end)

describe("format.value", function()
  it("writes a kept integer without a decimal point, other values as they are", function()
    assert.equal("8726400", format.value(8726400.0))
    assert.equal("8726400", format.value(8726400))
    assert.equal("1.5", format.value(1.5))
    assert.equal("true", format.value(true))
    assert.equal("eu", format.value("eu"))
  end)
end)

describe("format.width and format.clean", function()
  it("counts terminal columns, not bytes", function()
    assert.equal(3, format.width("abc"))
    assert.equal(3, format.width("Zoë"))            -- 4 bytes
    assert.equal(4, format.width("日本"))            -- wide: 2 columns each
    assert.equal(1, format.width("e\u{301}"))       -- e + combining acute accent
    assert.equal(2, format.width("\u{1F600}"))      -- an emoji
    assert.equal(0, format.width(""))
  end)

  it("replaces control characters and bytes that are not UTF-8", function()
    assert.equal("evil?[31mred", format.clean("evil\27[31mred"))
    assert.equal("two?lines?", format.clean("two\nlines\r"))
    assert.equal("a?b", format.clean("a\127b"))
    assert.equal("c1?", format.clean("c1\u{9B}"))
    assert.equal("evil?txt.exe ?x? a?b", format.clean("evil\u{202E}txt.exe \u{2066}x\u{2069} a\u{2028}b"))
    assert.equal("a?b?c?d?e", format.clean("a\u{200F}b\u{FEFF}c\u{E0041}d\u{3164}e"))
    assert.equal("\u{4E2D}\u{6587}", format.clean("\u{4E2D}\u{6587}"))
    assert.equal("\u{202F}\u{2027}\u{2070}", format.clean("\u{202F}\u{2027}\u{2070}"))
    assert.equal("bad?byte", format.clean("bad\255byte"))
    assert.equal("cut??", format.clean("cut\xE6\x97")) -- a truncated 3-byte character
    assert.equal("??", format.clean("\xC0\xAF"))       -- an overlong "/": two bad bytes
    assert.equal("???", format.clean("\xED\xA0\x80"))  -- a UTF-16 surrogate
    assert.equal("Zoë 日本", format.clean("Zoë 日本"))
    assert.equal("", format.clean(nil))
    assert.equal("42", format.clean(42))
  end)
end)

describe("format.table", function()
  it("aligns columns under a header, two spaces apart, without trailing spaces", function()
    local out = format.table({
      { "ID", "CONNECTOR", "NAME", "STATUS", "EXPIRES" },
      { "github-0a1b2c3d", "github", "octocat", "ok", "in 42 min" },
      { "local-oidc-1a2b3c4d", "local-oidc", "John's Account", "needs reconnect", "expired 5 min ago" },
    })
    assert.equal(table.concat({
      "ID                   CONNECTOR   NAME            STATUS           EXPIRES",
      "github-0a1b2c3d      github      octocat         ok               in 42 min",
      "local-oidc-1a2b3c4d  local-oidc  John's Account  needs reconnect  expired 5 min ago",
    }, "\n"), out)
  end)

  it("measures UTF-8 text by what a terminal shows", function()
    local out = format.table({
      { "NAME", "ACCOUNT" },
      { "Zoë", "z@example.com" },
      { "日本", "jp@example.com" },
      { "Rene\u{301}", "r@example.com" },
      { "x", "x@example.com" },
    })
    assert.equal(table.concat({
      "NAME  ACCOUNT",
      "Zoë   z@example.com",
      "日本  jp@example.com",
      "Rene\u{301}  r@example.com",
      "x     x@example.com",
    }, "\n"), out)
    -- every account starts at column 7, whatever the bytes before it
    for line in out:gmatch("[^\n]+") do
      assert.equal(6, format.width(line:match("^(.-)%S+$")), line)
    end
  end)

  it("shows missing cells as empty, and numbers as text", function()
    local out = format.table({ { "A", "B", "C" }, { "x" }, { 1, nil, 3 } })
    assert.equal("A  B  C\nx\n1     3", out)
  end)

  it("keeps a hostile name from breaking the table or the terminal", function()
    local out = format.table({ { "NAME", "STATUS" }, { "Mallory\n\27[2Jroot", "ok" }, { "Bob", "ok" } })
    assert.is_nil(out:find("\27", 1, true))
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(3, #lines)
    assert.equal("Mallory??[2Jroot  ok", lines[2])
    assert.equal("Bob               ok", lines[3])
  end)

  it("renders a header alone and no rows at all", function()
    assert.equal("ID  NAME", format.table({ { "ID", "NAME" } }))
    assert.equal("", format.table({}))
  end)
end)
