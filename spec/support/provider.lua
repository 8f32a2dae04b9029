-- The loopback provider of spec/support/provider.mjs, its connector, and a connect
-- through it with the scripted browser, for the specs of what a store, a connector or a
-- provider must not make connrt do.
local cjson = require("cjson")
local h = require("support.helpers")

local M = {}

M.CLIENT_ID, M.CLIENT_SECRET = "trusty-client", "trusty-secret-5c1e0a"
M.DBS = { "connections", "secrets", "accounts", "clients", "connectors", "leases", "meta" }

local client = require("connrt.http").client()

--- Starts the provider. Returns {origin, log = function() -> requests, mode = function(t),
-- stop}.
function M.start()
  local s = h.start_node("spec/support/provider.mjs")
  local p = cjson.decode(s.line)
  p.stop = s.stop
  p.log = function() return cjson.decode(assert(client:request({ url = p.origin .. "/_log" })).body) end
  p.mode = function(t)
    local q = {}
    for k, v in pairs(t) do q[#q + 1] = k .. "=" .. tostring(v) end
    assert(client:request({ url = p.origin .. "/_mode?" .. table.concat(q, "&") }).status == 200)
  end
  return p
end

--- The connector of the provider: a value from the token response (api_base) starts the
-- first allowed URL, a field (tenant) is in the second and in a header, `region` is a
-- kept value in a header. `extra` is added to the table.
function M.connector(extra)
  return ([[return {
  id = "trusty", title = "Trusty",
  fields = { { key = "server", required = true }, { key = "tenant", default = "t1" } },
  authorize_url = "{{server}}/auth", token_url = "{{server}}/token", revoke_url = "{{server}}/revoke",
  client_auth = "basic",
  values = { "api_base", "region" },
  test = "/me", name = "{{name}}", unique_id = "{{id}}",
  allowed_urls = { "{{api_base}}", "{{server}}/t/{{tenant}}" },
  request = { headers = { Authorization = "Bearer {{access_token}}", ["X-Tenant"] = "{{tenant}}",
    ["X-Region"] = "{{region}}" } },
  %s
}
]]):format(extra or "")
end

--- The environment of a connrt that uses the store in `home`, plus `extra`.
function M.env(home, extra)
  local e = { CONNRT_HOME = home, CONNRT_CLIENT_SECRET = M.CLIENT_SECRET,
    CONNRT_BROWSER = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua",
    CONNRT_REDIRECT_URL = ("http://127.0.0.1:%d/callback"):format(h.free_port()) }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

--- `connrt run PATH` against provider `p` into `home`. Returns the result of h.connrt.
function M.run(p, path, home, args)
  local argv = { "run", path, "--field", "server=" .. p.origin, "--client-id", M.CLIENT_ID, "--json", "--timeout", "20" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return h.connrt(argv, { env = M.env(home) })
end

--- Connects the connector at `path` in a fresh store; returns the store and the id.
function M.connect(p, path)
  local home = h.tmpdir()
  local res = M.run(p, path, home)
  assert(res.code == 0, res.stderr)
  return home, cjson.decode(res.stdout).id
end

--- Runs fn(txn) in a write transaction on the store in `home`, through the LMDB module
-- alone (what a process that can write data.mdb but has no key can do).
function M.write(home, fn)
  local env = assert(require("connrt.lmdb").open(home, M.DBS, {}))
  local txn = env:begin(true)
  local ok, err = pcall(fn, txn)
  if ok then txn:commit() else txn:abort() end
  env:close()
  assert(ok, err)
end

--- Reads `db`/`key` from the store in `home`.
function M.read(home, db, key)
  local env = assert(require("connrt.lmdb").open(home, M.DBS, {}))
  local txn = env:begin(false)
  local v = txn:get(db, key)
  txn:abort()
  env:close()
  return v
end

--- Changes connection `id`'s plain record in place with fn(rec).
function M.edit_record(home, id, fn)
  M.write(home, function(txn)
    local rec = cjson.decode(assert(txn:get("connections", id)))
    fn(rec)
    txn:put("connections", id, cjson.encode(rec))
  end)
end

return M
