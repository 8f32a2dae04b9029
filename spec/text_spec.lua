-- luacheck: std +busted
-- lua/connrt/text.lua: trimming, titles, control characters and header lines of outside
-- text (their linearity on adversarial input is spec/linear_spec.lua's).
local cjson = require("cjson")
local text = require("connrt.text")

describe("textscan.find_all", function()
  local find_all = require("connrt.textscan").find_all

  it("finds every occurrence of each needle, needle by needle, resuming after each hit", function()
    assert.same({ 1, 3, 5, 7, 9, 11, 12, 12 }, find_all("abc.abc.abcd", { "abc", "d" }))
    assert.same({ 1, 2, 3, 4 }, find_all("aaaaa", { "aa" })) -- not overlapping
    assert.same({}, find_all("short", { "longer than the text" }))
    assert.same({}, find_all("", { "x" }))
    assert.same({ 2, 3 }, find_all("a\0b\0", { "\0b" })) -- bytes, NUL included
    assert.same({}, find_all("text", { "" })) -- an empty needle finds nothing
    assert.same({ 1, 4 }, find_all("%.*[", { "%.*[" })) -- no pattern characters
  end)

  it("refuses a needle that is not a string, naming where it is", function()
    local ok, err = pcall(find_all, "text", { "a", 2 })
    assert.is_false(ok)
    assert.matches("needles%[2%] is not a string", err)
  end)
end)

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

  it("returns printable ASCII as it is and escapes each byte just outside it, wherever it stands", function()
    local plain = {}
    for b = 0x20, 0x7E do plain[#plain + 1] = string.char(b) end
    plain = table.concat(plain)
    assert.equal(plain, text.escape_controls(plain))
    for _, b in ipairs({ 0x00, 0x1F, 0x7F }) do
      for _, at in ipairs({ 1, 40, #plain + 1 }) do
        local s = plain:sub(1, at - 1) .. string.char(b) .. plain:sub(at)
        assert.equal(plain:sub(1, at - 1) .. ("\\u%04x"):format(b) .. plain:sub(at), text.escape_controls(s))
      end
    end
    -- the first byte above ASCII: broken UTF-8 alone, a C1 control as U+0085
    assert.equal("a\\u0080b", text.escape_controls("a\128b"))
    assert.equal("a\\u0085b", text.escape_controls("a\194\133b"))
  end)

  it("escapes bidi embeddings, overrides and isolates and the line and paragraph separators (M2)", function()
    -- U+202E RIGHT-TO-LEFT OVERRIDE makes "evil\u202eexe.txt" read "eviltxt.exe"
    assert.equal("evil\\u202etxt.exe", text.escape_controls("evil\226\128\174txt.exe"))
    local all = {}
    for cp = 0x202A, 0x202E do all[#all + 1] = cp end
    for cp = 0x2066, 0x2069 do all[#all + 1] = cp end
    all[#all + 1], all[#all + 1] = 0x2028, 0x2029
    for _, cp in ipairs(all) do
      assert.equal(("a\\u%04xb"):format(cp), text.escape_controls("a" .. utf8.char(cp) .. "b"))
    end
    -- and every other character that hides, joins or reorders text: the marks (LRM, RLM,
    -- ALM), zero-width characters, the soft hyphen, fillers, the BOM and tag characters
    for _, cp in ipairs({ 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x061C, 0x00AD, 0x180E, 0x2060, 0x2064, 0x206A,
        0x206F, 0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0xFEFF, 0xFFF9 }) do
      assert.equal(("a\\u%04xb"):format(cp), text.escape_controls("a" .. utf8.char(cp) .. "b"))
    end
    -- beyond the BMP (the tag characters) as JSON spells them, a surrogate pair: a line
    -- that is JSON (connrt request --json) stays the same text to a JSON reader
    for _, case in ipairs({ { 0xE0001, "\\udb40\\udc01" }, { 0xE0041, "\\udb40\\udc41" }, { 0xE007F, "\\udb40\\udc7f" } }) do
      local shown = text.escape_controls("a" .. utf8.char(case[1]) .. "b")
      assert.equal("a" .. case[2] .. "b", shown)
      assert.equal("a" .. utf8.char(case[1]) .. "b", require("cjson").decode('"' .. shown .. '"'))
    end
    -- their neighbours are text: U+2027, U+202F (narrow no-break space), U+2065 (unassigned), U+2014
    for _, cp in ipairs({ 0x2027, 0x202F, 0x2014, 0x00AE, 0x0627, 0x1161, 0x2801, 0xFEFE, 0xE0080, 0x4E2D }) do
      local s = "a" .. utf8.char(cp) .. "b"
      assert.equal(s, text.escape_controls(s))
    end
    -- in a log line as printed
    assert.equal("name: Ada\\u2066x\\u2069 \\u2028next", text.escape_controls("name: Ada\226\129\166x\226\129\169 \226\128\168next"))
  end)

  it("keeps a line of JSON valid JSON of the same value", function()
    for _, v in ipairs({ "esc \27[2J", "c1 \194\155", "tab\tnl\n", "del\127", "rlo \226\128\174", "ls \226\128\168" }) do
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

  it("reads a whole file, and says why not for a missing file or a directory", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert.is_true(os.execute("mkdir " .. dir))
    local f = assert(io.open(dir .. "/f", "wb"))
    f:write("a\0b\r\n")
    f:close()
    assert.equal("a\0b\r\n", text.read_file(dir .. "/f"))
    local none, why = text.read_file(dir .. "/missing")
    assert.is_nil(none)
    assert.matches(dir .. "/missing: No such file", why, 1, true)
    none, why = text.read_file(dir)
    assert.is_nil(none)
    assert.matches(dir .. ": Is a directory", why, 1, true)
    os.execute("rm -rf " .. dir)
  end)
end)
