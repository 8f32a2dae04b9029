-- luacheck: std +busted
-- How much a token endpoint may answer (issue 13, item 12; the bound is in
-- lua/connrt/limits.lua): an answer over 1 MiB (well under the general 64 MiB) is refused
-- before it is parsed, at connect and at refresh, as a provider error (exit 5) that names
-- the endpoint and the limit, and nothing is stored. A real loopback provider
-- (spec/support/provider.mjs).
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
