-- luacheck: std +busted
-- lua/connrt/text.lua: trimming, titles, control characters and header lines of outside
-- text (their linearity on adversarial input is spec/linear_spec.lua's).
local cjson = require("cjson")
local text = require("connrt.text")

describe("text", function()
  it("trims whitespace and strips a trailing set", function()
    assert.equal("a b", text.trim(" \t\r\na b \n"))
    assert.equal("", text.trim("  \n "))
    assert.equal("x", text.trim("x"))
    assert.equal("https://x.test", text.rstrip("https://x.test///", "/"))
    assert.equal("", text.rstrip("///", "/"))
    assert.equal("key", text.rstrip("key\r\n\n", "\r\n"))
    assert.equal("a/b", text.rstrip("a/b", "/"))
  end)

  it("finds an HTML title in any case, trimmed, and none when it is not closed", function()
    assert.equal("Sign in", text.html_title("<html><head><TITLE>\n  Sign in \t</Title></head>"))
    assert.equal("", text.html_title("<title></title>"))
    assert.is_nil(text.html_title("<title>open"))
    assert.is_nil(text.html_title("no title </title>"))
    assert.equal("first", text.html_title("<title>first</title><title>second</title>"))
  end)

  it("escapes C0, DEL, C1 and broken UTF-8, and leaves other text as it is", function()
    assert.equal("a\\u001b[2J\\u0007b", text.escape_controls("a\27[2J\7b"))
    assert.equal("x\\u000d\\u000ay\\u0009z\\u007f", text.escape_controls("x\r\ny\tz\127"))
    assert.equal("csi \\u009b and ok \194\160 é 漢 😀", text.escape_controls("csi \194\155 and ok \194\160 é 漢 😀"))
    assert.equal("latin-1 M\\u00fcller, lone \\u009b", text.escape_controls("latin-1 M\252ller, lone \155"))
    assert.equal("nul \\u0000", text.escape_controls("nul \0"))
    local plain = "nothing to do: [] {} \\ / %"
    assert.equal(plain, text.escape_controls(plain))
  end)

  it("keeps a line of JSON valid JSON of the same value", function()
    for _, v in ipairs({ "esc \27[2J", "c1 \194\155", "tab\tnl\n", "del\127" }) do
      local line = cjson.encode({ name = v })
      assert.equal(v, cjson.decode(text.escape_controls(line)).name)
    end
    -- broken UTF-8 becomes the Latin-1 characters its bytes would be
    assert.equal("M\195\188ller", cjson.decode(text.escape_controls(cjson.encode({ n = "M\252ller" }))).n)
  end)

  it("names the first control character", function()
    assert.equal("CR", text.control_char("a\r\nb"))
    assert.equal("LF", text.control_char("a\nb"))
    assert.equal("NUL", text.control_char("a\0b"))
    assert.equal("TAB", text.control_char("a\tb"))
    assert.is_nil(text.control_char("a\tb", true))
    assert.equal("U+0007", text.control_char("\7", true))
    assert.equal("DEL", text.control_char("x\127"))
    assert.is_nil(text.control_char("plain é"))
  end)

  it("says what keeps a name and value from being one header line", function()
    assert.is_nil(text.header_problem("X-Api-Key", "k-1\tk2"))
    assert.is_nil(text.header_problem("X-Count", 5))
    assert.equal("the value of header X-A contains a control character (CR); a header is one line",
      text.header_problem("X-A", "a\r\nInjected: 1"))
    assert.equal('"X A" is not a header name', text.header_problem("X A", "v"))
    assert.equal('"X\\u000d\\u000aB" is not a header name', text.header_problem("X\r\nB", "v"))
    assert.equal("the value of header X-A is a table, not a string", text.header_problem("X-A", {}))
  end)
end)
