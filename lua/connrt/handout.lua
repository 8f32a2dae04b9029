--- handout.lua - a connection's credentials handed to another program, fresh: the
-- environment of `connrt exec`, the answer of `connrt git-credential` and the JSON of
-- `connrt credential-process`. Each hands the credential to a program the user named,
-- never prints it to a terminal or log of connrt's own.
--
-- A token connection hands out its access token, refreshed first when it is within the
-- refresh margin of its expiry (Connection:token: single flight through the store's
-- lease, like every refresh). A connection that connects with fields (API keys,
-- passwords) hands out its secret fields instead.
local errors = require("connrt.errors")

local M = {}

--- Opens the store and each connection of `refs` (ids, or connector ids with one
-- connection), runs `use(conns)` with them open, closes the store whatever happens and
-- returns what `use` returned. The store is closed before the caller goes on: nothing of
-- it is held while another program runs.
function M.with_connections(refs, use)
  local store = require("connrt.store")
  local st = store.open(nil, { existing = "no connection " .. (refs[1] or "") })
  local ok, res = pcall(function()
    local conns = {}
    for i, ref in ipairs(refs) do conns[i] = require("connrt.connection").open(st, ref) end
    return use(conns)
  end)
  st:close()
  if not ok then error(res, 0) end
  return res
end

--- The secret fields of a fields connection, as an array of {key, value} sorted by key.
local function secret_fields(conn)
  local out = {}
  for k, v in pairs(conn.secrets.fields or {}) do out[#out + 1] = { k, v } end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

--- What `conn` hands out: { token = access token, expires_at = seconds | nil } for a
-- token connection (refreshed first when about to expire), or { fields = array of
-- {key, value} } for a connection made of fields. A token connection that has none and
-- cannot get one is an error (exit 1), as for `connrt token`.
function M.credentials(conn)
  if conn.rec.auth == "fields" or (not conn.secrets.access_token and conn.secrets.fields) then
    local fields = secret_fields(conn)
    if #fields == 0 then
      errors.raise("usage", "connection %s has no secret to hand out: its connector (%s) has no secret field",
        conn:id(), conn.rec.connector)
    end
    return { fields = fields }
  end
  local token = conn:token()
  return { token = token, expires_at = conn.rec.expires_at }
end

--- The one secret of `conn` for a program that takes a single value (a password, a
-- token): the access token, or the only secret field. A fields connection with several
-- secret fields is a usage error naming them.
function M.single(conn)
  local cred = M.credentials(conn)
  if cred.token then return cred.token, cred.expires_at end
  if #cred.fields ~= 1 then
    local keys = {}
    for i, f in ipairs(cred.fields) do keys[i] = f[1] end
    errors.raise("usage", "connection %s has %d secret fields (%s): one value cannot carry them", conn:id(),
      #cred.fields, table.concat(keys, ", "))
  end
  return cred.fields[1][2]
end

--- RFC 3339 (UTC) of a time in seconds since the epoch.
function M.rfc3339(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

return M
