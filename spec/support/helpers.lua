-- Helpers for the integration specs: a real authorization server (oidc-provider, from
-- spec/node_modules) on a loopback port, fresh store directories, and `connrt` run as a
-- real process with a scripted user as its browser.
local cjson = require("cjson")
local crypto = require("connrt.crypto")
local sys = require("connrt.sys")

local M = {}

M.ROOT = os.getenv("PWD")
-- The build under test: build/, or another one (make sanitize, make valgrind)
M.BUILD = os.getenv("CONNRT_BUILD") or (M.ROOT .. "/build")
M.CONNRT = M.BUILD .. "/connrt"
-- How much slower than usual the programs under test run (make valgrind says 20); specs
-- multiply the time they give a spawned connrt by it.
M.SLOW = tonumber(os.getenv("CONNRT_SPEC_SLOW")) or 1
-- The command that runs lua5.4 for plain Lua programs using the build's connrt.so (make
-- sanitize preloads the ASan runtime, which an instrumented module needs)
M.LUA = os.getenv("CONNRT_SPEC_LUA") or "lua5.4"

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- CONNRT_SPEC_WRAP: a command prefix every spawned connrt runs under (make valgrind).
-- A script in its place, rather than a prefix in each command line, wraps every use of
-- M.CONNRT alike: as a path, in shell commands and as CONNRT_BROWSER.
local wrap = os.getenv("CONNRT_SPEC_WRAP")
if wrap and wrap ~= "" then
  local script = M.BUILD .. "/wrapped/connrt"
  local text = ("#!/bin/sh\nexec %s %s \"$@\"\n"):format(wrap, M.shell_quote(M.CONNRT))
  -- written once: every spec file loads this module afresh, and a connrt started by an
  -- earlier one may still be reading the script. 0755, like the binary: some specs run
  -- connrt as another user.
  if M.read(script) ~= text then
    sys.mkdir(M.BUILD .. "/wrapped", 493)
    M.write(script, text)
    assert(sys.chmod(script, 493))
  end
  M.CONNRT = script
end

--- Environment variables (a table) for a connrt that runs under ptrace (strace, gdb):
-- LeakSanitizer cannot stop a traced process to look for leaks and fails its exit
-- (make sanitize), so leak detection is off for that run alone. Empty otherwise.
function M.ptrace_env()
  local asan = os.getenv("ASAN_OPTIONS")
  return asan and { ASAN_OPTIONS = asan .. ":detect_leaks=0" } or {}
end

--- A fresh temporary directory.
function M.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(sys.mkdir(p, 448))
  return p
end

function M.rmdir(p)
  if p and p:match("^/tmp/") then os.execute("rm -rf " .. M.shell_quote(p)) end
end

--- A port that is free now (the listener binds it and lets it go), chosen below the
-- kernel's ephemeral range: a server the specs start on port 0 afterwards, or any
-- outgoing connection, can then never be given the same port before its user binds it.
function M.free_port()
  local listener = require("connrt.listener")
  local f = io.open("/proc/sys/net/ipv4/ip_local_port_range", "r")
  local low = f and tonumber(f:read("a"):match("^%s*(%d+)")) or 32768
  if f then f:close() end
  local from = low > 12000 and 10000 or 1024
  for _ = 1, 200 do
    local l = listener.open("127.0.0.1", math.random(from, math.max(from, low - 1)))
    if l then
      local port = l:port()
      l:close()
      return port
    end
  end
  error("no free port below the ephemeral range " .. low)
end

--- Starts a node server script that prints one line when it listens (JSON or a port).
-- Its standard input is a pipe from us: it stops when the pipe closes, even if we die.
-- Returns {line, log, stop = function}.
function M.start_node(script, args, env_prefix)
  local dir = M.tmpdir()
  local out, log = dir .. "/server.out", dir .. "/server.log"
  local cmd = ("cd %s && exec %s node %s %s >%s 2>%s"):format(M.shell_quote(M.ROOT), env_prefix and ("env " .. env_prefix) or "",
    script, args or "", out, log)
  local pipe = assert(io.popen(cmd, "w"))
  local line
  for _ = 1, 200 do
    local text = M.read(out)
    if text and text:find("\n") then line = text:match("^[^\n]+") break end
    sys.sleep(0.05)
  end
  if not line then
    pipe:close()
    error(script .. " did not start:\n" .. (M.read(log) or ""))
  end
  return { line = line, log = log, stop = function() pipe:close() M.rmdir(dir) end }
end

--- Starts the authorization server. opts.redirect: the redirect URI to register;
-- opts.args: extra arguments. Returns {issuer, port, stop = function}.
function M.start_server(opts)
  local redirects = ""
  for _, r in ipairs(type(opts.redirect) == "table" and opts.redirect or { opts.redirect }) do
    redirects = redirects .. " --redirect " .. M.shell_quote(r)
  end
  local s = M.start_node("spec/support/oidc-server.mjs", "--port 0" .. redirects .. " " .. (opts.args or ""))
  local info = cjson.decode(s.line)
  info.log, info.stop = s.log, s.stop
  return info
end

--- Starts an upstream API (spec/support/echo-server.js) that records every request.
-- Returns {base, port, log = function() -> requests, stop}.
function M.start_upstream(env)
  local prefix = ""
  for k, v in pairs(env or {}) do prefix = prefix .. k .. "=" .. M.shell_quote(v) .. " " end
  local s = M.start_node("spec/support/echo-server.js", "600", prefix)
  local port = tonumber(s.line)
  local base = "http://127.0.0.1:" .. port
  local client = require("connrt.http").client()
  return {
    port = port, base = base,
    log = function() return cjson.decode(assert(client:request({ url = base .. "/log" })).body) end,
    stop = function()
      client:request({ url = base .. "/exit" })
      s.stop()
    end,
  }
end

--- Runs `connrt ARGS...` as a process. opts.env: environment variables; opts.stdin:
-- text for standard input, or opts.stdin_fifo: a FIFO to read it from; opts.timeout:
-- seconds after which it is killed (code 137), for specs of what must not hang;
-- opts.max_rss: measure its peak resident memory (GNU time). Returns {code, stdout,
-- stderr, max_rss_kb}.
function M.connrt(args, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local parts = {}
  local names = {}
  for k in pairs(opts.env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    parts[#parts + 1] = k .. "=" .. M.shell_quote(opts.env[k])
  end
  if opts.timeout then parts[#parts + 1] = ("timeout -s KILL %d"):format(math.ceil(opts.timeout * M.SLOW)) end
  if opts.max_rss then parts[#parts + 1] = ("/usr/bin/time -f %%M -o %s/rss"):format(dir) end
  parts[#parts + 1] = M.shell_quote(M.CONNRT)
  for _, a in ipairs(args) do parts[#parts + 1] = M.shell_quote(a) end
  local stdin = "</dev/null"
  if opts.stdin then
    stdin = "<" .. dir .. "/stdin"
    M.write(stdin:sub(2), opts.stdin)
  elseif opts.stdin_fifo then
    -- read-write, so opening does not wait for a writer (the browser connrt starts)
    stdin = "0<>" .. M.shell_quote(opts.stdin_fifo)
  end
  local cmd = ("cd %s && env %s %s >%s/stdout 2>%s/stderr"):format(M.shell_quote(M.ROOT),
    table.concat(parts, " "), stdin, dir, dir)
  local _, _, code = os.execute(cmd)
  local res = { code = code, stdout = M.read(dir .. "/stdout"), stderr = M.read(dir .. "/stderr"),
    max_rss_kb = opts.max_rss and tonumber((M.read(dir .. "/rss") or ""):match("(%d+)%s*$")) }
  M.rmdir(dir)
  return res
end

--- Another process that holds the write lock of the LMDB store in `home` (a write
-- transaction through the same C module, on the databases `dbs`, default { "meta" })
-- until the returned function is called.
function M.hold_write_lock(home, dbs)
  local dir = M.tmpdir()
  M.write(dir .. "/holder.lua", ([[
    package.cpath = %q .. "/?.so;" .. package.cpath
    local env = assert(require("connrt.lmdb").open(%q, { %s }, {}))
    local txn = env:begin(true)
    io.open(%q, "w"):close()
    io.read("l")
    txn:abort()
  ]]):format(M.BUILD, home, ("%q, "):rep(#(dbs or { 1 })):format(table.unpack(dbs or { "meta" })), dir .. "/held"))
  local holder = io.popen(M.LUA .. " " .. dir .. "/holder.lua", "w")
  for _ = 1, 200 do
    if M.read(dir .. "/held") then break end
    require("connrt.sys").sleep(0.02)
  end
  assert(M.read(dir .. "/held"), "the lock holder did not start")
  return function()
    holder:write("\n")
    holder:close()
    M.rmdir(dir)
  end
end

--- Runs `n` copies of `connrt ARGS...` at once (env: a table of variables) and waits
-- for all. Returns a list of {code, output} (output: stdout and stderr together).
function M.concurrent(n, args, env)
  local dir = M.tmpdir()
  local prefix = {}
  for k, v in pairs(env or {}) do prefix[#prefix + 1] = k .. "=" .. M.shell_quote(v) end
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = M.shell_quote(a) end
  local script = {}
  for i = 1, n do
    script[#script + 1] = ("(%s %s %s >%s/out%d 2>&1; echo $? >%s/rc%d) &"):format(table.concat(prefix, " "),
      M.shell_quote(M.CONNRT), table.concat(quoted, " "), dir, i, dir, i)
  end
  script[#script + 1] = "wait"
  os.execute(table.concat(script, "\n"))
  local out = {}
  for i = 1, n do
    out[i] = { code = tonumber(M.read(dir .. "/rc" .. i) or ""), output = M.read(dir .. "/out" .. i) or "" }
  end
  M.rmdir(dir)
  return out
end

--- The sha256 of every file in a store directory, to show a failed run changed nothing.
function M.snapshot(home)
  local snap = {}
  for _, name in ipairs({ "data.mdb", "key" }) do
    local s = M.read(home .. "/" .. name)
    snap[name] = s and crypto.hex(crypto.sha256(s)) or "absent"
  end
  return snap
end

--- True when script(1) can give a command a pseudo-terminal here (a chroot without
-- /dev/pts cannot); the terminal specs are pending where it cannot.
function M.has_pty()
  if M._pty == nil then
    M._pty = os.execute("script -qec true /dev/null </dev/null >/dev/null 2>&1") == true
  end
  return M._pty
end

--- The source of a connector that connects with an API key (a secret field) sent in
-- X-Api-Key to the upstream at `base` (spec/support/echo-server.js's /keyed/me checks it).
function M.keyed_connector(base)
  return ([[return {
    id = "keyed", title = "Keyed API", auth = "fields",
    fields = { { key = "api_key", label = "API key", secret = true, required = true } },
    test = "/keyed/me", name = "{{name}}", unique_id = "{{id}}",
    allowed_urls = { "%s" },
    request = { headers = { ["X-Api-Key"] = "{{api_key}}" } },
  }]]):format(base)
end

--- Every byte of the store's files, for searching secrets in them.
function M.store_bytes(home)
  return (M.read(home .. "/data.mdb") or "") .. (M.read(home .. "/lock.mdb") or "")
end

return M
