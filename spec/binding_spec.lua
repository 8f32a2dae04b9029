-- luacheck: std +busted
-- What decides where credentials go is authenticated under the key (issue 13, item 3):
-- a process that can write data.mdb but has no key changes a connection's plain record
-- (allowed URLs, token, refresh and revoke URLs, fields, kept values, client id, token
-- type, scope, the connector's hash), its stored connector source, or the remembered
-- client id, and the next `connrt request`, `token`, `refresh` or `revoke` fails as a
-- store error naming the connection, with nothing sent to the provider or anywhere else.
-- A real connection made through the real flow, a real LMDB store, written with the LMDB
-- module alone; the provider and an attacker's server both count what they receive.
local cjson = require("cjson")
local crypto = require("connrt.crypto")
local h = require("support.helpers")
local prov = require("support.provider")

describe("the plain record is bound to the sealed secrets #integration", function()
  local p, evil, tmp, path, base_home, id

  setup(function()
    tmp = h.tmpdir()
    p = prov.start()
    evil = h.start_upstream()
    path = tmp .. "/trusty.lua"
    h.write(path, prov.connector())
    base_home, id = prov.connect(p, path)
  end)

  teardown(function()
    if p then p.stop() end
    if evil then evil.stop() end
    h.rmdir(tmp)
    h.rmdir(base_home)
  end)

  -- A copy of the connected store to change.
  local function copy()
    local dir = h.tmpdir()
    assert(os.execute(("cp -a %s/. %s/"):format(h.shell_quote(base_home), h.shell_quote(dir))))
    return dir
  end

  local function run(home, args) return h.connrt(args, { env = prov.env(home) }) end

  -- Runs `args` on a store changed by `change`, and checks that it fails as a store error
  -- naming the connection and that neither the provider nor the attacker heard anything.
  local function refused(change, args, says)
    local home = copy()
    change(home)
    local heard, evil_heard = #p.log(), #evil.log()
    local res = run(home, args)
    assert.equal(8, res.code, res.stderr)
    assert.matches("connection " .. id .. ": ", res.stderr, 1, true)
    assert.matches(says or "does not match its sealed secrets", res.stderr, 1, true)
    assert.is_nil(res.stderr:find("traceback", 1, true))
    assert.equal(heard, #p.log(), "the provider was sent something")
    assert.equal(evil_heard, #evil.log(), "the attacker was sent something")
    h.rmdir(home)
  end

  it("works when nothing was changed (the control: the same commands send what they should)", function()
    local home = copy()
    local heard = #p.log()
    local res = run(home, { "request", id, "/me" })
    assert.equal(0, res.code, res.stderr)
    assert.equal("User One", cjson.decode(res.stdout).name)
    assert.equal(0, run(home, { "token", id }).code)
    res = run(home, { "refresh", id })
    assert.equal(0, res.code, res.stderr)
    assert.equal(heard + 2, #p.log())
    h.rmdir(home)
  end)

  -- each field that decides where or how credentials are sent, as an attacker would set it
  local CHANGES = {
    { "allowed_urls[1] to another host", function(r, e) r.allowed_urls[1] = e .. "/api" end },
    { "allowed_urls, one added", function(r, e) r.allowed_urls[#r.allowed_urls + 1] = e end },
    { "urls.token_url", function(r, e) r.urls.token_url = e .. "/token" end },
    { "urls.revoke_url", function(r, e) r.urls.revoke_url = e .. "/revoke" end },
    { "urls.refresh_url, added", function(r, e) r.urls.refresh_url = e .. "/refresh" end },
    { "a kept value used in an allowed URL (values.api_base)", function(r, e) r.values.api_base = e .. "/api" end },
    { "a kept value used in a header (values.region)", function(r) r.values.region = "us" end },
    { "a value added", function(r) r.values.extra = "x" end },
    { "a field (fields.tenant, in an allowed URL and a header)", function(r) r.fields.tenant = "t2" end },
    { "a field added", function(r) r.fields.server2 = "x" end },
    { "client_id", function(r) r.client_id = "evil-client" end },
    { "client_auth", function(r) r.client_auth = "body" end },
    { "token_type", function(r) r.token_type = "Evil" end },
    { "scope", function(r) r.scope = "admin" end },
    { "expires_at (to force refreshes)", function(r) r.expires_at = 1 end },
    { "auth", function(r) r.auth = "client_credentials" end },
    { "connector_path", function(r) r.connector_path = "/tmp/evil.lua" end },
    { "connector_hash", function(r) r.connector_hash = crypto.hex(crypto.sha256("return {}")) end },
    { "the record's id", function(r) r.id = "someone-else" end, "damaged record in the store (it says it is someone-else)" },
  }
  for _, ch in ipairs(CHANGES) do
    for _, args in ipairs({ { "request", "ID", "/me" }, { "token", "ID" }, { "refresh", "ID" } }) do
      it(ch[1] .. ": connrt " .. args[1] .. " fails, names the connection and sends nothing", function()
        local argv = {}
        for i, a in ipairs(args) do argv[i] = a == "ID" and id or a end
        refused(function(home) prov.edit_record(home, id, function(r) ch[2](r, evil.base) end) end, argv, ch[3])
      end)
    end
  end

  it("a changed allowed URL is not shown as real: connrt show fails as the commands that would use it", function()
    refused(function(home) prov.edit_record(home, id, function(r) r.allowed_urls[1] = evil.base .. "/api" end) end,
      { "show", id })
  end)

  it("a changed revoke URL: connrt revoke fails and revokes nothing, anywhere", function()
    refused(function(home) prov.edit_record(home, id, function(r) r.urls.revoke_url = evil.base .. "/revoke" end) end,
      { "revoke", id })
  end)

  it("status fields connrt sets without the key (needs_reconnect, last_error) are not bound", function()
    local home = copy()
    prov.edit_record(home, id, function(r) r.needs_reconnect, r.last_error = true, "invalid_grant" end)
    local res = run(home, { "request", id, "/me" })
    assert.equal(0, res.code, res.stderr)
    h.rmdir(home)
  end)

  it("sealed secrets moved from another connection do not open", function()
    local home = h.tmpdir()
    local res = prov.run(p, path, home)
    assert.equal(0, res.code, res.stderr)
    h.write(tmp .. "/trusty2.lua", (prov.connector():gsub('id = "trusty"', 'id = "trusty2"')))
    res = prov.run(p, tmp .. "/trusty2.lua", home)
    assert.equal(0, res.code, res.stderr)
    local other = cjson.decode(res.stdout).id
    local mine = cjson.decode(h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } }).stdout)[1].id
    prov.write(home, function(txn) txn:put("secrets", mine, txn:get("secrets", other)) end)
    res = run(home, { "request", mine, "/me" })
    assert.equal(8, res.code, res.stderr)
    assert.matches("cannot decrypt connection " .. mine, res.stderr, 1, true)
    h.rmdir(home)
  end)

  describe("the stored connector source", function()
    -- a source that sends the token elsewhere
    local function evil_source()
      return prov.connector():gsub('allowed_urls = { "{{api_base}}"', ('allowed_urls = { "%s"'):format(evil.base))
    end

    for _, args in ipairs({ { "request", "ID", "/me" }, { "token", "ID" }, { "refresh", "ID" } }) do
      it("rewritten under its hash: connrt " .. args[1] .. " fails before it is loaded", function()
        local argv = {}
        for i, a in ipairs(args) do argv[i] = a == "ID" and id or a end
        refused(function(home)
          local rec = cjson.decode(prov.read(home, "connections", id))
          prov.write(home, function(txn) txn:put("connectors", rec.connector_hash, evil_source()) end)
        end, argv, "its connector's source in the store")
      end)
    end

    it("stored under its own hash with the record pointed at it: the record's binding refuses it", function()
      refused(function(home)
        local src = evil_source()
        local hash = crypto.hex(crypto.sha256(src))
        prov.write(home, function(txn) txn:put("connectors", hash, src) end)
        prov.edit_record(home, id, function(r) r.connector_hash = hash end)
      end, { "request", id, "/me" })
    end)

    it("a byte changed in it: refused", function()
      refused(function(home)
        local rec = cjson.decode(prov.read(home, "connections", id))
        prov.write(home, function(txn)
          local src = txn:get("connectors", rec.connector_hash)
          txn:put("connectors", rec.connector_hash, src:sub(1, -2) .. " ")
        end)
      end, { "token", id }, "not the one it was connected with")
    end)
  end)

  describe("the remembered client credentials", function()
    it("a changed client id is a store error naming the connector, and no sign-in starts", function()
      local home = copy()
      prov.write(home, function(txn)
        local c = cjson.decode(txn:get("clients", "trusty"))
        c.client_id = "evil-client"
        txn:put("clients", "trusty", cjson.encode(c))
      end)
      local heard = #p.log()
      local res = h.connrt({ "run", path, "--field", "server=" .. p.origin, "--timeout", "5" },
        { env = prov.env(home, { CONNRT_CLIENT_SECRET = "" }) })
      assert.equal(8, res.code, res.stderr)
      assert.matches("the client credentials remembered for trusty in the store " .. home
        .. " do not match their sealed client id", res.stderr, 1, true)
      assert.equal(heard, #p.log())
      -- unchanged, they are used
      local good = copy()
      res = h.connrt({ "run", path, "--field", "server=" .. p.origin, "--timeout", "20" },
        { env = prov.env(good, { CONNRT_CLIENT_SECRET = "" }) })
      assert.equal(0, res.code, res.stderr)
      h.rmdir(home)
      h.rmdir(good)
    end)
  end)

  describe("a store written before bindings (meta version 1)", function()
    -- What the previous version wrote: secrets sealed without a binding, a client secret
    -- sealed without its client id, and version 1.
    local function unbind(home)
      local key = crypto.unhex((h.read(home .. "/key"):gsub("%s+$", "")))
      prov.write(home, function(txn)
        for _, kv in ipairs(txn:list("secrets")) do
          local aad = "connection/" .. kv[1]
          local s = cjson.decode(crypto.open(key, crypto.b64decode(kv[2]), aad))
          s.bound = nil
          txn:put("secrets", kv[1], crypto.b64encode(crypto.seal(key, cjson.encode(s), aad)))
        end
        for _, kv in ipairs(txn:list("clients")) do
          local c = cjson.decode(kv[2])
          local aad = "client/" .. kv[1]
          local s = cjson.decode(crypto.open(key, crypto.b64decode(c.sealed), aad))
          s.client_id = nil
          c.sealed = crypto.b64encode(crypto.seal(key, cjson.encode(s), aad))
          txn:put("clients", kv[1], cjson.encode(c))
        end
        txn:put("meta", "version", "1")
        txn:put("meta", "keycheck", crypto.seal(key, "connrt key check v1", "meta/keycheck"))
      end)
    end

    it("put back by someone without the key (an old snapshot with a changed record) is not bound on use", function()
      -- the attack of a review: the old key check, the old unbound secrets and a record
      -- pointing elsewhere, written into a bound store; the next use must not bind them
      local home = copy()
      local old = copy()
      unbind(old)
      local legacy, check = prov.read(old, "secrets", id), prov.read(old, "meta", "keycheck")
      h.rmdir(old)
      prov.write(home, function(txn)
        local rec = cjson.decode(txn:get("connections", id))
        rec.allowed_urls[1] = evil.base
        txn:put("connections", id, cjson.encode(rec))
        txn:put("secrets", id, legacy)
        txn:put("meta", "version", "1")
        txn:put("meta", "keycheck", check)
      end)
      for _, args in ipairs({ { "request", id, "/me" }, { "token", id }, { "refresh", id } }) do
        local res = run(home, args)
        assert.equal(8, res.code, res.stderr)
      end
      h.rmdir(home)
      assert.same({}, evil.log())
    end)

    it("is not bound again when someone without the key sets the version back to 1", function()
      -- the old version's sealed secrets of this connection, put back with a changed
      -- record and version "1": the key check (sealed) says the store is bound, so the
      -- record is refused, not re-bound
      local home = copy()
      local key = crypto.unhex((h.read(home .. "/key"):gsub("%s+$", "")))
      local aad = "connection/" .. id
      local sealed = prov.read(home, "secrets", id)
      local s = cjson.decode(crypto.open(key, crypto.b64decode(sealed), aad))
      s.bound = nil
      local unbound = crypto.b64encode(crypto.seal(key, cjson.encode(s), aad)) -- a copy kept from before the binding
      prov.write(home, function(txn)
        local rec = cjson.decode(txn:get("connections", id))
        rec.allowed_urls[1] = evil.base
        txn:put("connections", id, cjson.encode(rec))
        txn:put("secrets", id, unbound)
        txn:put("meta", "version", "1")
      end)
      local res = run(home, { "request", id, "/me" })
      h.rmdir(home)
      assert.equal(8, res.code, res.stderr)
      assert.matches(id, res.stderr, 1, true)
      assert.same({}, evil.log())
    end)

    it("is bound by connrt store migrate only (not by list or any use), then works and refuses changes", function()
      local home = copy()
      unbind(home)
      assert.equal(0, h.connrt({ "list" }, { env = { CONNRT_HOME = home } }).code)
      assert.equal("1", prov.read(home, "meta", "version")) -- list has no key: it binds nothing
      -- a use does not bind it either: an old snapshot put back by someone without the key
      -- would be bound with whatever they changed (trust on first use, on their timing)
      local res = run(home, { "token", id })
      assert.equal(8, res.code, res.stderr)
      assert.matches("connrt store migrate binds them as they are now", res.stderr, 1, true)
      assert.equal("1", prov.read(home, "meta", "version"))
      res = run(home, { "store", "migrate" })
      assert.equal(0, res.code, res.stderr)
      assert.matches("they are bound now, as they were found", res.stderr, 1, true)
      assert.equal("2", prov.read(home, "meta", "version"))
      res = run(home, { "token", id })
      assert.equal(0, res.code, res.stderr)
      res = run(home, { "request", id, "/me" })
      assert.equal(0, res.code, res.stderr)
      local st = require("connrt.store").open(home)
      assert.equal(prov.CLIENT_ID, st:client("trusty").client_id)
      st:close()
      h.rmdir(home)

      refused(function(dir)
        unbind(dir)
        assert.equal(0, run(dir, { "store", "migrate" }).code)
        prov.edit_record(dir, id, function(r) r.allowed_urls[1] = evil.base .. "/api" end)
      end, { "request", id, "/me" })
    end)

    it("after that, sealed secrets without a binding (an old copy put back) are refused", function()
      refused(function(home)
        local old = copy()
        unbind(old)
        local legacy = prov.read(old, "secrets", id)
        h.rmdir(old)
        prov.write(home, function(txn) txn:put("secrets", id, legacy) end)
      end, { "token", id })
    end)
  end)
end)
