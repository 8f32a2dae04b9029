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

  describe("namespaces", function()
    -- a kept value `id` beside the test API's `id` (Salesforce), a field and a value
    -- named alike in other layers
    local scope = template.scope({
      token = { access_token = "at-1", scope = "read" }, client = { client_id = "cid" },
      fields = { region = "eu", id = "field-id" }, values = { id = "kept-7", team_id = "T1" },
      test = { id = "u-1", team_id = "T9", token = { id = "tok-9" } },
    })

    it("name one layer each, beside the short form, which keeps its order", function()
      assert.equal("u-1 kept-7 field-id", template.render("{{test.id}} {{values.id}} {{fields.id}}", scope, "name"))
      assert.equal("T9/T1", template.render("{{test.team_id}}/{{values.team_id}}", scope, "name"))
      assert.equal("read eu cid", template.render("{{token.scope}} {{fields.region}} {{client_id}}", scope, "name"))
      assert.equal("field-id T1", template.render("{{id}} {{team_id}}", scope, "name")) -- fields, then values
      assert.equal("tok-9", template.render("{{test.token.id}}", scope, "name"))
    end)

    it("look in their own layer only", function()
      local msg = err_of(template.render, "{{values.region}}", scope, "name")
      assert.matches("{{values.region}} names a value that does not exist (values names here: id, team_id)", msg, 1, true)
      msg = err_of(template.render, "{{token.client_id}}", scope, "request.headers.X")
      assert.matches("{{token.client_id}} names a value that does not exist", msg, 1, true)
    end)

    it("say when their layer is not known where the template is rendered", function()
      local msg = err_of(template.render, "{{test.id}}", template.scope({ fields = {} }), "request.headers.X")
      assert.matches("request.headers.X: {{test.id}} names the test API's answer, which is not known here", msg, 1, true)
    end)

    it("leave a namespace's name alone in the short form (a field called token)", function()
      assert.equal("tv", template.render("{{token}}", template.scope({ token = {}, fields = { token = "tv" } }), "k"))
      assert.same({ "fields", "region" }, { template.split("fields.region") })
      assert.same({ nil, "user" }, { template.split("user.email") })
      assert.same({ nil, "token" }, { template.split("token") })
    end)
  end)
end)
