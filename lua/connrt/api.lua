--- api.lua - the pipeline API: what a Lua pipeline script gets as the global `connrt`
-- under `connrt script SCRIPT.lua`, and what `require "connrt"` returns in a plain lua5.4
-- (through build/connrt.so, see src/api/api.c).
--
--   local gh = connrt.connection("github")         -- an id, or a connector's only one
--   local r = gh:get("/user")                       -- r.status, r.headers, r.body, r.json
--   gh:request{ method = "POST", url = "/repos", json = { name = "x" } }
--   local token = gh:token()                        -- a valid access token
--   for _, c in ipairs(connrt.list()) do print(c.id, c.name) end
--
-- Errors are raised as tables with `kind` (the exit code family), `reason` (what went
-- wrong, for a program to test: "locked", "needs_reconnect", "timeout", ...; errors.lua
-- defines them, docs/errors.md lists them) and `message`; tostring() gives the message.
local connection = require("connrt.connection")
local errors = require("connrt.errors")
local store = require("connrt.store")

local M = {}

M.VERSION = require("connrt.build").version -- the Makefile's VERSION

local opened = {}   -- home -> Store, opened once per process

local function get_store(home)
  home = home or store.where()
  if not opened[home] then opened[home] = store.open(home) end
  return opened[home]
end

--- Opens a connection by id (or by connector id when it has exactly one).
-- opts.home: the store, a directory or a postgres:// URL (default --store, CONNRT_STORE,
-- CONNRT_HOME or the XDG data directory).
function M.connection(ref, opts)
  if type(ref) ~= "string" then errors.raise("usage", "connrt.connection: expected a connection id") end
  return connection.open(get_store(opts and opts.home), ref)
end

--- The stored connections, without secrets.
function M.list(opts)
  local out = {}
  for i, rec in ipairs(get_store(opts and opts.home):list()) do out[i] = connection.public(rec) end
  return out
end

--- Closes the stores this process opened.
function M.close()
  for home, st in pairs(opened) do st:close(); opened[home] = nil end
end

M.errors = errors

return M
