-- luacheck: std +busted
-- Where a connection's secrets can go (lua/connrt/origins.lua), attacked through the
-- ways around it an adversarial review found (issue 13): a connector that shares the id
-- of another gets a remembered client secret only where that client was given, and
-- neither its exchange_request nor its revoke_request nor an allowed URL rendered from a
-- value takes the secret or a token anywhere else; `connrt update` opens the connector
-- file the connection was made with, wherever it runs, and widens where a connection
-- sends its credentials only with --replace. Every case runs real connects against the
-- loopback provider; a second provider on another port stands for the other origin, and
-- its log must stay empty.
local cjson = require("cjson")
local h = require("support.helpers")
local prov = require("support.provider")

describe("the reach of a connection #integration", function()
  local p, other, tmp
  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
    other = prov.start()
  end)
  teardown(function()
    p.stop()
    other.stop()
    h.rmdir(tmp)
  end)

  local function connector_at(name, extra)
    local path = tmp .. "/" .. name .. ".lua"
    h.write(path, prov.connector(extra and extra:gsub("OTHER", other.origin):gsub("MINE", p.origin)))
    return path
  end

  -- `connrt run PATH` with the client remembered for the connector id (no --client-id,
  -- no client secret in the environment)
  local function run_remembered(path, home)
    local env = prov.env(home)
    env.CONNRT_CLIENT_SECRET = nil
    return h.connrt({ "run", path, "--field", "server=" .. p.origin, "--json", "--timeout", "20" }, { env = env })
  end

  -- what the other origin received since its log had `since` entries
  local function heard_by_other(since)
    local log = other.log()
    local out = {}
    for i = since + 1, #log do out[#out + 1] = log[i] end
    return out
  end

  describe("a remembered client secret", function()
    -- the client is remembered by an honest connect of connector id "trusty"; each case
    -- is a stranger's connector with that id, run without --client-id
    local function remembered()
      local home = h.tmpdir()
      local res = prov.run(p, connector_at("honest"), home)
      assert.equal(0, res.code, res.stderr)
      return home
    end

    it("does not go to an exchange_request at another origin (the URL rendered at the exchange)", function()
      local home = remembered()
      local since = #other.log()
      local path = connector_at("exchanger", [[exchange_request = { url = "OTHER/token",
        form = { client_secret = "{{client_secret}}", token = "{{access_token}}" } },]])
      local res = run_remembered(path, home)
      local heard = heard_by_other(since)
      local list = h.connrt({ "list", "--json" }, { env = prov.env(home) })
      h.rmdir(home)
      assert.equal(0, #heard, "the other origin received " .. #heard .. " requests")
      assert.equal(3, res.code, res.stderr)
      assert.matches("exchange_request.url sends to " .. other.origin, res.stderr, 1, true)
      assert.is_false(res.stderr:find(prov.CLIENT_SECRET, 1, true) ~= nil)
      assert.equal(1, #cjson.decode(list.stdout)) -- the honest connection alone
    end)

    it("does not go to an allowed URL rendered from a value at another origin", function()
      local home = remembered()
      local since = #other.log()
      -- hooks.lookup (the connector's own code) gives the value that starts the first
      -- allowed URL, the one the test API is called under
      local path = connector_at("lookup", [[values = { "api_base", "region", "elsewhere" },
        allowed_urls = { "{{elsewhere}}/api", "{{api_base}}" },
        hooks = { lookup = function() return { elsewhere = "OTHER" } end },]])
      local res = run_remembered(path, home)
      local heard = heard_by_other(since)
      h.rmdir(home)
      assert.equal(0, #heard, "the other origin received " .. #heard .. " requests")
      assert.equal(2, res.code, res.stderr)
      assert.matches("the client remembered for trusty was given for", res.stderr, 1, true)
      assert.matches("would send its secret and tokens to " .. other.origin, res.stderr, 1, true)
      assert.matches("--client-id", res.stderr, 1, true)
    end)
  end)

  describe("a declared request at another origin", function()
    it("is refused by connrt check and connrt run when its origin is fixed text (exit 3)", function()
      for _, key in ipairs({ "exchange_request", "revoke_request" }) do
        local path = connector_at("fixed", ([[authorize_url = "MINE/auth", token_url = "MINE/token",
          revoke_url = nil, allowed_urls = { "MINE/api" },
          %s = { url = "OTHER/x", form = { client_secret = "{{client_secret}}", token = "{{access_token}}" } },]])
          :format(key))
        local check = h.connrt({ "check", path })
        assert.equal(3, check.code, key .. ": " .. check.stdout .. check.stderr)
        assert.matches(key .. ".url sends to " .. other.origin, check.stdout .. check.stderr, 1, true)
        local home = h.tmpdir()
        local since = #other.log()
        local res = prov.run(p, path, home)
        local heard = heard_by_other(since)
        h.rmdir(home)
        assert.equal(0, #heard, key .. ": the other origin received " .. #heard .. " requests")
        assert.equal(3, res.code, res.stderr)
        assert.matches(key .. ".url sends to " .. other.origin, res.stderr, 1, true)
      end
    end)

    it("makes a connect whose revoke_request would reach another origin fail, with nothing saved", function()
      local home = h.tmpdir()
      local since = #other.log()
      local path = connector_at("revoker", [[revoke_url = nil,
        revoke_request = { url = "OTHER/revoke", form = { token = "{{access_token}}" } },]])
      local res = prov.run(p, path, home)
      if res.code == 0 then
        -- what the connection would do later: revoke through its revoke_request
        h.connrt({ "revoke", cjson.decode(res.stdout).id }, { env = prov.env(home) })
      end
      local heard = heard_by_other(since)
      local list = h.connrt({ "list", "--json" }, { env = prov.env(home) })
      h.rmdir(home)
      assert.equal(0, #heard, "the other origin received " .. #heard .. " requests")
      assert.equal(3, res.code, res.stderr)
      assert.matches("revoke_request.url sends to " .. other.origin, res.stderr, 1, true)
      assert.equal(0, #cjson.decode(list.stdout))
    end)
  end)

  it("does not let a connector with the same id and another revoke origin take a connection over", function()
    local home, id = prov.connect(p, connector_at("honest"))
    local before = h.snapshot(home)
    local since = #other.log()
    local path = connector_at("taker", [[revoke_url = nil,
      revoke_request = { url = "OTHER/revoke", form = { token = "{{access_token}}" } },]])
    local res = prov.run(p, path, home)
    local after = h.snapshot(home)
    -- what the connection would do later, had it been taken over
    local revoke = h.connrt({ "revoke", id }, { env = prov.env(home) })
    local heard = heard_by_other(since)
    h.rmdir(home)
    assert.equal(0, #heard, "the other origin received " .. #heard .. " requests")
    assert.equal(3, res.code, res.stderr)
    assert.matches("revoke_request.url sends to " .. other.origin, res.stderr, 1, true)
    assert.same(before, after)
    assert.equal(0, revoke.code, revoke.stderr) -- the honest connection, revoked where it was made
  end)

  describe("connrt update", function()
    -- connrt in directory `dir`
    local function connrt_in(dir, args, env)
      local vars, words = {}, {}
      for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. h.shell_quote(v) end
      for _, a in ipairs(args) do words[#words + 1] = h.shell_quote(a) end
      local out = h.tmpdir()
      local _, _, code = os.execute(("cd %s && env %s %s %s </dev/null >%s/o 2>%s/e"):format(h.shell_quote(dir),
        table.concat(vars, " "), h.shell_quote(h.CONNRT), table.concat(words, " "), out, out))
      local res = { code = code, stdout = h.read(out .. "/o"), stderr = h.read(out .. "/e") }
      h.rmdir(out)
      return res
    end

    local function record(home, id)
      return cjson.decode(prov.read(home, "connections", id))
    end

    it("refuses a connector whose allowed URLs reach another origin, unless --replace (exit 2)", function()
      local home, id = prov.connect(p, connector_at("plain"))
      local wider = connector_at("wider", [[allowed_urls = { "{{api_base}}", "{{server}}/t/{{tenant}}", "OTHER/x" },]])
      local before = h.snapshot(home)
      local res = h.connrt({ "update", id, wider }, { env = prov.env(home) })
      local after = h.snapshot(home)
      local since = #other.log()
      local req = h.connrt({ "request", id, other.origin .. "/x/me" }, { env = prov.env(home) })
      local heard = heard_by_other(since)
      local replaced = h.connrt({ "update", id, wider, "--replace" }, { env = prov.env(home) })
      local rec = record(home, id)
      -- bound again as it now is: show checks the binding, a request uses it
      local show = h.connrt({ "show", id }, { env = prov.env(home) })
      local used = h.connrt({ "request", id, "/me" }, { env = prov.env(home) })
      h.rmdir(home)
      assert.equal(0, #heard, "the other origin received " .. #heard .. " requests")
      assert.equal(2, res.code, res.stderr)
      assert.matches("would send connection " .. id .. "'s credentials to " .. other.origin, res.stderr, 1, true)
      assert.matches("--replace", res.stderr, 1, true)
      assert.same(before, after)
      assert.equal(7, req.code, req.stderr)
      assert.equal(0, replaced.code, replaced.stderr)
      assert.equal(other.origin .. "/x", rec.allowed_urls[3])
      assert.equal(0, show.code, show.stderr)
      assert.equal(0, used.code, used.stderr)
    end)

    it("refuses a revoke_url at another origin (exit 2): a revoke still goes where it went", function()
      local home, id = prov.connect(p, connector_at("plain"))
      local moved = connector_at("moved", [[revoke_url = "OTHER/revoke",]])
      local res = h.connrt({ "update", id, moved }, { env = prov.env(home) })
      local since = #other.log()
      local revoke = h.connrt({ "revoke", id }, { env = prov.env(home) })
      local heard = heard_by_other(since)
      h.rmdir(home)
      assert.equal(0, #heard, "the other origin received " .. #heard .. " requests")
      assert.equal(2, res.code, res.stderr)
      assert.matches("credentials to " .. other.origin, res.stderr, 1, true)
      assert.equal(0, revoke.code, revoke.stderr)
    end)

    it("opens the file the connection was made with, by its real path, from any directory", function()
      local a, b = h.tmpdir(), h.tmpdir()
      h.write(a .. "/trusty.lua", prov.connector())
      -- another directory's file of the same name, which sends the token elsewhere
      h.write(b .. "/trusty.lua", prov.connector(([[allowed_urls = { "%s/api", "{{api_base}}" },]]):format(other.origin)))
      local home = h.tmpdir()
      local env = prov.env(home)
      local res = connrt_in(a, { "run", "trusty.lua", "--field", "server=" .. p.origin, "--client-id", prov.CLIENT_ID,
        "--json", "--timeout", "20" }, env)
      assert.equal(0, res.code, res.stderr)
      local id = cjson.decode(res.stdout).id
      local stored = record(home, id).connector_path
      local up = connrt_in(b, { "update", id }, prov.env(home))
      local since = #other.log()
      connrt_in(b, { "request", id, other.origin .. "/api/me" }, prov.env(home))
      local heard = heard_by_other(since)
      h.rmdir(home)
      h.rmdir(a)
      h.rmdir(b)
      assert.equal(0, #heard, "the other origin received " .. #heard .. " requests")
      assert.equal("/", stored:sub(1, 1), stored)
      assert.equal(a .. "/trusty.lua", stored)
      assert.equal(0, up.code, up.stderr)
      assert.matches("nothing to update", up.stderr, 1, true)
    end)

    it("does not resolve a relative path a connection remembers: the path must be given (exit 2)", function()
      local home, id = prov.connect(p, connector_at("plain"))
      -- a connection from before connrt remembered real paths: its path is relative
      local store = require("connrt.store")
      local st = store.open(home)
      local rec = st:get(id)
      st:update(id, rec.connector_hash, { connector_path = "trusty.lua" }, st:secrets(rec).fields,
        st:connector_source(rec))
      st:close()
      local b = h.tmpdir()
      h.write(b .. "/trusty.lua", prov.connector(([[allowed_urls = { "%s/api", "{{api_base}}" },]]):format(other.origin)))
      local before = h.snapshot(home)
      local res = connrt_in(b, { "update", id }, prov.env(home))
      local after = h.snapshot(home)
      h.rmdir(home)
      h.rmdir(b)
      assert.equal(2, res.code, res.stderr)
      assert.matches("connection " .. id .. " does not remember where its connector file is", res.stderr, 1, true)
      assert.matches("connrt update " .. id .. " CONNECTOR.lua", res.stderr, 1, true)
      assert.same(before, after)
    end)
  end)
end)
