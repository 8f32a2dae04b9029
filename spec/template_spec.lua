-- luacheck: std +busted
local template = require("connrt.template")
local url = require("connrt.url")

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok)
  return e.message or tostring(e)
end

describe("template", function()
  it("fills placeholders from the first layer that has the value", function()
    local s = template.render("{{name}}'s Account", { { other = 1 }, { name = "John" }, { name = "Jane" } }, "name")
    assert.equal("John's Account", s)
  end)

  it("follows dotted paths into nested tables and arrays (0-based)", function()
    local scope = { { user = { email = "j@example.com", emails = { { value = "a" }, { value = "b" } } } } }
    assert.equal("j@example.com", template.render("{{user.email}}", scope, "k"))
    assert.equal("b", template.render("{{ user.emails.1.value }}", scope, "k"))
  end)

  it("prints integers without a decimal point and booleans as words", function()
    assert.equal("42 true 1.5", template.render("{{a}} {{b}} {{c}}", { { a = 42.0, b = true, c = 1.5 } }, "k"))
  end)

  it("names the variable and the key when a value does not exist", function()
    local msg = err_of(template.render, "Bearer {{acess_token}}", { { access_token = "x" } }, "request.headers.Authorization")
    assert.matches("request.headers.Authorization", msg, 1, true)
    assert.matches("{{acess_token}}", msg, 1, true)
    assert.matches("does not exist", msg, 1, true)
  end)

  it("never turns a missing value into an empty string", function()
    assert.has_error(function() template.render("x{{nope}}y", { {} }, "k") end)
  end)

  it("treats JSON null as missing", function()
    local null = require("cjson").null
    assert.has_error(function() template.render("{{a}}", { { a = null } }, "k") end)
    assert.equal("b", template.render("{{a}}", { { a = null }, { a = "b" } }, "k"))
  end)

  it("refuses an object where a single value is needed", function()
    local msg = err_of(template.render, "{{user}}", { { user = { id = 1 } } }, "name")
    assert.matches("not a single value", msg, 1, true)
  end)

  it("reports an unclosed or invalid placeholder with the key", function()
    assert.matches("unique_id", err_of(template.parse, "{{email", "unique_id"), 1, true)
    assert.matches("invalid placeholder", err_of(template.parse, "{{a b}}", "name"), 1, true)
    assert.matches("invalid placeholder", err_of(template.parse, "{{a..b}}", "name"), 1, true)
  end)

  it("lists variables", function()
    assert.same({ "a", "b.c" }, template.variables("{{a}}-{{ b.c }}", "k"))
    assert.same({}, template.variables("plain", "k"))
  end)

  it("applies an encoder to substituted values only", function()
    local s = template.render("https://x.test/{{p}}?q=1", { { p = "a/b c" } }, "k", url.encode)
    assert.equal("https://x.test/a%2Fb%20c?q=1", s)
  end)

  it("renders nested tables of templates", function()
    local out = template.render_table({ h = { A = "{{x}}" }, n = 3 }, { { x = "y" } }, "request")
    assert.same({ h = { A = "y" }, n = 3 }, out)
  end)
end)
