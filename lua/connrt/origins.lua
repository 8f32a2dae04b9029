--- origins.lua - where a connection can send its secrets: one answer, used everywhere
-- that answer decides something.
--
-- An origin is `scheme://host:port` (the default port written out). The reach of a
-- connection is the set of origins it can send a token or the client's secret to: those
-- of its device, token, refresh and revoke URLs and of its allowed URLs, rendered (with
-- fields and kept values). The two requests a connector declares as data,
-- exchange_request and revoke_request, carry tokens and the client secret too; their
-- URLs must stay within that set (M.within, checked where they are rendered, and at load
-- time where their origin is fixed text), so the set covers them.
--
-- The reach decides three things: a remembered client id and secret are given to a
-- connector only when its reach is within the origins they were given for (flow/ and
-- Store:client); a connect that would take an existing connection of the same account
-- over with another reach needs --replace (Store:save); `connrt update` that widens a
-- connection's reach needs --replace (update.lua).
local url = require("connrt.url")

local M = {}

--- The keys of a connection's `urls` that credentials are sent to (issuer is only read).
M.URL_KEYS = { "device_url", "token_url", "refresh_url", "revoke_url" }

--- The origin of an absolute URL, or nil.
function M.of(u)
  local p = type(u) == "string" and url.parse(u)
  if not p or not p.scheme or not p.host then return nil end
  return ("%s://%s:%d"):format(p.scheme:lower(), p.host:lower(), p.port)
end

--- The reach of a connection (sorted origins): `urls` holds M.URL_KEYS (rendered),
-- `allowed` the rendered allowed URLs (a table; holes are skipped), `extra` more URLs
-- (the authorize URL, for a client: its id goes there).
function M.reach(urls, allowed, extra)
  local set, out = {}, {}
  local function add(u)
    local o = M.of(u)
    if o and not set[o] then set[o] = true; out[#out + 1] = o end
  end
  for _, k in ipairs(M.URL_KEYS) do add((urls or {})[k]) end
  for _, a in pairs(allowed or {}) do add(a) end
  for _, a in pairs(extra or {}) do add(a) end
  table.sort(out)
  return out
end

--- The origins of `list` that are not in `given` (both lists of origins), in order;
-- empty when `list` is within `given`.
function M.outside(list, given)
  local set, out = {}, {}
  for _, o in ipairs(given or {}) do set[o] = true end
  for _, o in ipairs(list or {}) do if not set[o] then out[#out + 1] = o end end
  return out
end

--- True when the URL `u`'s origin is one of `reach`; else false and the origin (or
-- the URL, when it has none).
function M.within(u, reach)
  local o = M.of(u)
  for _, r in ipairs(reach or {}) do if r == o then return true end end
  return false, o or tostring(u)
end

--- The origin a URL template names in fixed text (no placeholder before its path), or
-- nil when a value decides it.
function M.fixed(text)
  if type(text) ~= "string" then return nil end
  local head = text:match("^[%a][%w+.-]*://[^/?#]*")
  if not head or head:find("{{", 1, true) then return nil end
  return M.of(head .. "/")
end

return M
