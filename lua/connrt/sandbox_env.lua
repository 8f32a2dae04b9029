--- sandbox_env.lua - the globals a connector sees. Runs inside each connector's own Lua
-- state (src/api/sandbox.c), never in the runtime's, and returns the environment table
-- the connector's chunk gets as _ENV.
--
-- What is here: the pure Lua libraries (string with bounded pattern matching, table,
-- math, utf8, a few of os's clock functions) and connrt's helpers (json, base64,
-- base64url, url encoding). What is not: io, os.execute and the rest of os, require, load,
-- dofile, debug, coroutine, collectgarbage, print. setmetatable refuses __gc. The helpers
-- are loaded here, inside the box, so a connector that replaces a function of its string
-- library changes only what its own helpers do.
local inner = require("connrt.sandbox.inner")
local b64 = require("connrt.base64")
local url = require("connrt.url")

local cjson -- cjson.safe, loaded on first use (most connectors never parse JSON)
local function json() cjson = cjson or require("cjson.safe") return cjson end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  pcall = pcall, xpcall = xpcall, rawequal = rawequal, rawget = rawget, rawlen = rawlen,
  rawset = rawset, select = select, setmetatable = inner.setmetatable, getmetatable = getmetatable,
  tonumber = tonumber, tostring = tostring, type = type, _VERSION = _VERSION,
  string = copy(string), table = copy(table), math = copy(math), utf8 = copy(utf8),
  os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime },
  connrt = {
    json = {
      decode = function(s) return json().decode(s) end,
      encode = function(v) return json().encode(v) end,
      null = inner.null,
    },
    base64 = { encode = b64.encode, decode = b64.decode },
    base64url = { encode = b64.url_encode, decode = b64.url_decode },
    url = {
      encode = url.encode, decode = url.decode,
      form_encode = url.form_encode, form_decode = url.form_decode,
      parse = url.parse, build = url.build,
    },
  },
}
env._G = env

return env
