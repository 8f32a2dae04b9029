-- luacheck: std +busted
-- How much a provider's answer may make connrt keep (issue 13, item 12; the bounds are
-- in lua/connrt/limits.lua): a token endpoint's answer over 1 MiB is refused before it is
-- parsed, at connect and at refresh; a kept value over 4 KiB, a scope over 16 KiB, a token
-- over 64 KiB and a connection over 256 KiB are refused; each is a provider error (exit
-- 5) that names the endpoint and the limit, and nothing is stored. Extra keys beyond the
-- declared values, however many, are dropped rather than kept, and a connector declares
-- at most 64 values. A real loopback provider (spec/support/provider.mjs).
local cjson = require("cjson")
local h = require("support.helpers")
local limits = require("connrt.limits")
local prov = require("support.provider")

describe("limits on what a provider's answer makes connrt keep #integration", function()
  local p, tmp, path

  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
    path = tmp .. "/trusty.lua"
    h.write(path, prov.connector())
  end)
  teardown(function()
    if p then p.stop() end
    h.rmdir(tmp)
  end)
  after_each(function() p.mode({ tok = "ok", refresh = "ok", size = 0, count = 0 }) end)

  local function list(home)
    return h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } }).stdout
  end

  -- A connect whose token response is shaped by `mode`: must fail with `code` and say `says`.
  local function refused(mode, says, code, connector_path)
    p.mode(mode)
    local home = h.tmpdir()
    local res = prov.run(p, connector_path or path, home)
    assert.equal(code or 5, res.code, res.stderr)
    assert.matches(says, res.stderr, 1, true)
    assert.is_nil(res.stderr:find("traceback", 1, true))
    assert.equal("[]\n", list(home))
    h.rmdir(home)
  end

  it("a token response of 3 MB (under the general 64 MiB limit) is refused before it is parsed", function()
    refused({ tok = "big", size = 3 * 1000 * 1000 }, "token endpoint " .. p.origin .. "/token: POST " .. p.origin
      .. "/token answered with a body larger than " .. limits.TOKEN_BODY .. " bytes")
  end)

  it("a token response just over 1 MiB is refused, one just under it is taken", function()
    refused({ tok = "big", size = limits.TOKEN_BODY }, "larger than 1048576 bytes")
    p.mode({ tok = "big", size = limits.TOKEN_BODY - 1024 })
    local home = h.tmpdir()
    local res = prov.run(p, path, home)
    assert.equal(0, res.code, res.stderr)
    -- the filler was not declared: not kept
    assert.is_true(#list(home) < 4096, #list(home))
    h.rmdir(home)
  end)

  it("a refresh answered with 3 MB is refused and the connection is left as it was", function()
    local home, id = prov.connect(p, path)
    local st = require("connrt.store").open(home)
    local before = st:secrets(st:get(id))
    st:close()
    local shown = h.connrt({ "show", id, "--json" }, { env = { CONNRT_HOME = home } }).stdout
    p.mode({ refresh = "big", size = 3 * 1000 * 1000 })
    local res = h.connrt({ "refresh", id }, { env = prov.env(home) })
    assert.equal(5, res.code, res.stderr)
    assert.matches("refresh at " .. p.origin .. "/token: POST " .. p.origin .. "/token answered with a body larger "
      .. "than 1048576 bytes", res.stderr, 1, true)
    st = require("connrt.store").open(home)
    assert.same(before, st:secrets(st:get(id)))
    st:close()
    assert.same(cjson.decode(shown), cjson.decode(h.connrt({ "show", id, "--json" }, { env = { CONNRT_HOME = home } }).stdout))
    h.rmdir(home)
  end)

  it("60,000 extra keys (under 1 MiB) are dropped, not kept: the record stays small", function()
    p.mode({ tok = "manykeys", count = 60000 })
    local home = h.tmpdir()
    local res = prov.run(p, path, home)
    assert.equal(0, res.code, res.stderr)
    local l = list(home)
    assert.is_true(#l < 4096, "the record is " .. #l .. " bytes")
    assert.same({ api_base = p.origin .. "/api", region = "eu" }, cjson.decode(l)[1].values)
    h.rmdir(home)
  end)

  it("a connector declaring more than 64 values is refused (exit 3)", function()
    local names = {}
    for i = 1, limits.VALUES + 1 do names[i] = '"v' .. i .. '"' end
    local many = tmp .. "/many.lua"
    h.write(many, prov.connector("values = { " .. table.concat(names, ", ") .. ", \"api_base\" },"))
    refused({}, "key 'values': has 66 entries, more than the 64 allowed", 3, many)
    local res = h.connrt({ "check", many })
    assert.are_not.equal(0, res.code)
    assert.matches("values: has 66 entries, more than the 64 allowed", res.stdout .. res.stderr, 1, true)
  end)

  it("a kept value over 4 KiB", function()
    refused({ tok = "bigvalue", size = limits.VALUE_BYTES + 1 }, "token endpoint " .. p.origin .. "/token: value region is "
      .. (limits.VALUE_BYTES + 1) .. " bytes, more than the 4096 bytes connrt keeps; nothing was stored")
  end)

  it("a scope over 16 KiB", function()
    refused({ tok = "bigscope", size = limits.SCOPE_BYTES + 1 }, "token endpoint " .. p.origin .. "/token: scope is "
      .. (limits.SCOPE_BYTES + 1) .. " bytes, more than the 16384 bytes connrt keeps")
  end)

  it("an access token over 64 KiB", function()
    refused({ tok = "bigtoken", size = limits.TOKEN_BYTES }, "token endpoint " .. p.origin .. "/token: the access token is "
      .. (limits.TOKEN_BYTES + 3) .. " bytes, more than the 65536 bytes connrt keeps")
  end)

  it("a connection over 256 KiB in all (62 values of 4 KiB and a scope of 16 KiB, each within its own limit)", function()
    local names = {}
    for i = 0, 61 do names[#names + 1] = '"v' .. i .. '"' end
    local wide = tmp .. "/wide.lua"
    h.write(wide, prov.connector("values = { \"api_base\", \"region\", " .. table.concat(names, ", ") .. " },"))
    refused({ tok = "wide", count = 62, size = limits.VALUE_BYTES }, "token endpoint " .. p.origin .. "/token: the "
      .. "connection would keep ", 5, wide)
    refused({ tok = "wide", count = 62, size = limits.VALUE_BYTES }, "more than the 262144 bytes connrt keeps for one; "
      .. "nothing was stored", 5, wide)
  end)
end)

describe("connrt.http: a limit for one request", function()
  local api
  setup(function() api = h.start_upstream() end)
  teardown(function() if api then api.stop() end end)

  it("max_body refuses a larger body for that request only", function()
    local client = require("connrt.http").client()
    local resp, err = client:request({ url = api.base .. "/big", max_body = 1024 * 1024 })
    assert.is_nil(resp)
    assert.equal("GET " .. api.base .. "/big: response body larger than 1048576 bytes", err)
    resp = client:request({ url = api.base .. "/big" }) -- the client's own limit again (64 MiB)
    assert.equal(200, resp.status)
    assert.equal(2000000, #resp.body)
    assert.has_error(function() client:request({ url = api.base .. "/big", max_body = -1 }) end,
      "http request: max_body must be a byte count (an integer >= 0)")
  end)
end)
