-- luacheck: std +busted
-- What a JSON answer may make connrt decode (issue 13, rv13 F14): `connrt request --json`
-- (and a pipeline's r.json) decodes an API's answer into Lua tables, ~100 bytes each, so
-- the 64 MiB an answer may have once took 2 GB and 15 s. An answer of more than
-- limits.JSON_VALUES values is a provider error (exit 5, reason too_big) before it is
-- decoded; the same answer without --json is printed as it is. A real loopback provider
-- (spec/support/provider.mjs, api=bigjson); memory measured with GNU time (max RSS).
local cjson = require("cjson")
local h = require("support.helpers")
local limits = require("connrt.limits")
local prov = require("support.provider")
local proxies = require("support.proxy")

describe("the decoded size of a JSON answer #integration", function()
  local p, tmp, home, id

  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
    local path = tmp .. "/trusty.lua"
    h.write(path, prov.connector())
    home, id = prov.connect(p, path)
  end)
  teardown(function()
    proxies.stop_all()
    p.stop()
    h.rmdir(home)
    h.rmdir(tmp)
  end)
  after_each(function() p.mode({ api = "ok", count = 0 }) end)

  local function request(args)
    local argv = { "request", id, p.origin .. "/api/items" }
    for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
    return h.connrt(argv, { env = { CONNRT_HOME = home }, max_rss = true, timeout = 120 })
  end

  it("refuses to decode 10 million values for --json, within bounded memory", function()
    p.mode({ api = "bigjson", count = 10 * 1000 * 1000 }) -- 30 MB
    local res = request({ "--json" })
    assert.equal(5, res.code, res.stderr)
    assert.matches("answered with JSON of more than " .. limits.JSON_VALUES .. " values", res.stderr, 1, true)
    assert.is_nil(res.stderr:find("traceback", 1, true))
    assert.equal("", res.stdout)
    -- decoded, it took over 1 GB; the answer itself is 30 MB
    assert.is_true(res.max_rss_kb < 400 * 1024, res.max_rss_kb .. " KB")
  end)

  it("through CONNRT_PROXY: the same status line, error and exit status as the direct path", function()
    -- the proxy renders --json's output where the secrets are known; when it cannot, the
    -- command still prints the upstream's status line before the error, as it does direct
    p.mode({ api = "bigjson", count = 2 * 1000 * 1000 })
    local direct = request({ "--json" })
    assert.equal(5, direct.code, direct.stderr)
    local px = proxies.start(home, { "--socket", tmp .. "/proxy.sock", "--workers", "1" })
    local via = h.connrt({ "request", id, p.origin .. "/api/items", "--json" },
      { env = { CONNRT_HOME = home, CONNRT_PROXY = tmp .. "/proxy.sock" }, timeout = 120 })
    px.stop()
    assert.matches("^200 " .. p.origin:gsub("%p", "%%%0") .. "/api/items\n", direct.stderr)
    assert.equal(direct.code, via.code, via.stderr)
    assert.equal(direct.stderr, via.stderr)
    assert.equal("", via.stdout)
  end)

  it("prints the same answer as it is without --json", function()
    p.mode({ api = "bigjson", count = 10 * 1000 * 1000 })
    local res = request()
    assert.equal(0, res.code, res.stderr)
    assert.equal(3 * 10 * 1000 * 1000 + 1, #res.stdout)
  end)

  it("decodes an answer under the bound", function()
    p.mode({ api = "bigjson", count = 100000 })
    local res = request({ "--json" })
    assert.equal(0, res.code, res.stderr)
    assert.equal(100000, #cjson.decode(res.stdout).body)
  end)
end)
