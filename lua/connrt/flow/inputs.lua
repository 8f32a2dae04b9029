--- flow/inputs.lua - what the user gives a connect: field values (--field, --field-file,
-- CONNRT_FIELD_<KEY>, defaults, a prompt on a terminal) and the app's client id and
-- secret (flags, --client-secret-file, the environment, or what the store remembers).
-- Every secret read here is registered with log.secret before anything can print it.
local connector = require("connrt.connector")
local errors = require("connrt.errors")
local log = require("connrt.log")
local sys = require("connrt.sys")
local text = require("connrt.text")

local M = {}

-- Reads a line from the terminal, hidden for secrets.
local function prompt(f)
  local label = (f.label or f.key) .. (f.default and (" [" .. f.default .. "]") or "") .. ": "
  if f.secret then return sys.readline_noecho(label) end
  io.stderr:write(label)
  io.stderr:flush()
  return io.stdin:read("l")
end

local function env_name(key)
  return "CONNRT_FIELD_" .. key:upper()
end

local function read_field_file(key, path)
  local v, err = text.read_file(path)
  if not v then errors.raise("usage", "--field-file %s: %s", key, err) end
  return text.rstrip(v, "\r\n")
end

--- Collects field values: --field, --field-file (a file holding the value), the
-- environment (CONNRT_FIELD_<KEY>), then defaults, then a prompt on a terminal (hidden
-- for secrets) for missing required fields. Checks choices and patterns.
function M.collect_fields(c, flags, interactive, files)
  local given = {}
  for k, v in pairs(flags) do given[k] = v end
  for k, path in pairs(files or {}) do
    if given[k] ~= nil then errors.raise("usage", "field %s is given twice (--field and --field-file)", k) end
    given[k] = read_field_file(k, path)
  end
  for k in pairs(given) do
    local known = false
    for _, f in ipairs(c.fields) do if f.key == k then known = true end end
    if not known then
      local keys = {}
      for _, f in ipairs(c.fields) do keys[#keys + 1] = f.key end
      errors.raise("usage", "--field %s: %s has no such field (fields: %s)", k, c.path,
        #keys > 0 and table.concat(keys, ", ") or "none")
    end
  end
  local values, secret = {}, {}
  for _, f in ipairs(c.fields) do
    local v = given[f.key]
    if v == nil then v = os.getenv(env_name(f.key)) end
    if v == nil and interactive and f.required and f.default == nil then
      v = prompt(f)
      if v == "" then v = nil end
    end
    if v == nil then v = f.default end
    if v == nil and f.required then
      errors.raise("usage", "field %s (%s) is required: pass --field %s=VALUE", f.key, f.label or f.key, f.key)
    end
    if v ~= nil then
      if f.secret then
        if v == "" then errors.raise("usage", "field %s: the secret is empty", f.key) end
        log.secret(v)
        secret[f.key] = true
      end
      local ok, why = connector.check_field_value(f, v)
      if not ok then
        if f.secret then why = "the value does not match what the field allows" end
        errors.raise("usage", "field %s: %s", f.key, why)
      end
      values[f.key] = v
    end
  end
  return values, secret
end

local function read_secret_file(path)
  local s, err = text.read_file(path)
  if not s then errors.raise("usage", "--client-secret-file: %s", err) end
  s = text.rstrip(s, "\r\n")
  if s == "" then errors.raise("usage", "--client-secret-file %s is empty", path) end
  return s
end

--- The client id and secret: flags, then CONNRT_CLIENT_ID / CONNRT_CLIENT_SECRET, then
-- what was given for this connector id before (kept sealed in the store, with the
-- origins it was given for: origins.reach): `remembered(reach)` returns it or nil and why
-- not; it is asked only when no id was given. `reach` is the reach of this connector as
-- far as it is known before the sign-in; a remembered client is reused only within what
-- it was given for (the rest is checked in flow/finish.lua, once every allowed URL is
-- known). Returns the id, the secret and, for a remembered client, the origins it was
-- given for.
function M.client_credentials(c, opts, remembered, reach)
  local id = opts.client_id or os.getenv("CONNRT_CLIENT_ID")
  local secret = opts.client_secret
  if opts.client_secret_file then secret = read_secret_file(opts.client_secret_file) end
  secret = secret or os.getenv("CONNRT_CLIENT_SECRET")
  if id == "" then id = nil end
  if secret == "" then secret = nil end
  local why, given
  if not id then
    local saved
    saved, why = remembered(reach)
    if saved then id, secret, given = saved.client_id, secret or saved.client_secret, saved.origins or {} end
  end
  if not id then
    errors.raise("usage", "no client id for %s: pass --client-id or set CONNRT_CLIENT_ID (the app's OAuth client id)%s",
      c.id, why and ("; " .. why) or "")
  end
  log.secret(secret)
  return id, secret, given
end

return M
