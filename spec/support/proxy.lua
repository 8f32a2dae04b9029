-- `connrt proxy` started by a spec, and curl through it: the proxy runs as a real
-- process in the background with a store of the spec's (CONNRT_HOME), and is stopped by
-- the spec (stop), or by stop_all in a teardown for those a failed test left running.
local cjson = require("cjson")
local h = require("support.helpers")
local sys = require("connrt.sys")

local M = {}

local running = {}

--- The process ids whose parent is `pid` (from /proc: no procps needed).
function M.children(pid)
  local out = {}
  local f = io.popen("cat /proc/[0-9]*/stat 2>/dev/null")
  for line in f:lines() do
    local child, parent = line:match("^(%d+) %(.*%) %S+ (%d+) ")
    if tonumber(parent) == pid then out[#out + 1] = tonumber(child) end
  end
  f:close()
  return out
end

--- Starts `connrt proxy ARGS...` with CONNRT_HOME=home and the variables of env (a
-- table), run by the command `wrap` (an array: { "taskset", "-c", "0" }) when given.
-- Returns {pid, info (its ready line, decoded: socket, or listen and key_file), key (the
-- proxy key, on TCP), err = function() -> its standard error so far,
-- stop = function(signal) -> exit status (after which p.stderr holds its standard error)}.
function M.start(home, args, env, wrap)
  local dir = h.tmpdir()
  local quoted = {}
  for i, a in ipairs(args or {}) do quoted[i] = h.shell_quote(a) end
  local extra = ""
  for k, v in pairs(env or {}) do extra = extra .. k .. "=" .. h.shell_quote(v) .. " " end
  local prefix = {}
  for i, a in ipairs(wrap or {}) do prefix[i] = h.shell_quote(a) .. " " end
  os.execute(("cd %s && (%senv CONNRT_HOME=%s %s %s proxy %s </dev/null >%s/out 2>%s/err & echo $! >%s/pid; wait $!; "
    .. "echo $? >%s/rc) &"):format(h.shell_quote(h.ROOT), table.concat(prefix), h.shell_quote(home), extra, h.shell_quote(h.CONNRT),
    table.concat(quoted, " "), dir, dir, dir, dir))
  local line
  for _ = 1, 400 do
    line = (h.read(dir .. "/out") or ""):match("^([^\n]+)\n")
    if line or h.read(dir .. "/rc") then break end
    sys.sleep(0.05)
  end
  if not line then
    local err = h.read(dir .. "/err")
    h.rmdir(dir)
    error("connrt proxy did not start: " .. tostring(err), 2)
  end
  local p = { pid = tonumber(h.read(dir .. "/pid")), info = cjson.decode(line) }
  if p.info.key_file then p.key = (h.read(p.info.key_file) or ""):match("^(%x+)\n$") end
  p.err = function() return h.read(dir .. "/err") or "" end
  running[p] = true
  p.stop = function(sig)
    running[p] = nil
    -- a KILL leaves the workers behind: they go first
    if sig == "KILL" then
      for _, child in ipairs(M.children(p.pid)) do os.execute(("kill -KILL %d"):format(child)) end
    end
    os.execute(("kill -%s %d"):format(sig or "TERM", p.pid))
    local rc
    for _ = 1, 400 do
      rc = tonumber(h.read(dir .. "/rc") or "")
      if rc then break end
      sys.sleep(0.05)
    end
    p.stderr = h.read(dir .. "/err")
    h.rmdir(dir)
    return rc
  end
  return p
end

--- Kills every proxy still running (a test failed before its own stop): before the
-- servers they talk to stop, so none outlives the spec holding their pipes open.
function M.stop_all()
  for p in pairs(running) do p.stop("KILL") end
end

--- curl through the proxy `p`: on its unix socket, or on TCP (with its key unless
-- opts.key is false, or opts.key as the key). path: /CONNECTION/PATH; opts.headers: an
-- array of "Name: value". Returns status (a number), body, the response's header text.
function M.curl(p, path, opts)
  opts = opts or {}
  local dir = h.tmpdir()
  local args = { "--noproxy", "'*'", "-s", "-o", dir .. "/body", "-D", dir .. "/head", "-w", "'%{http_code}'" }
  local headers = {}
  for _, hd in ipairs(opts.headers or {}) do headers[#headers + 1] = hd end
  local key = opts.key
  if key == nil then key = p.key end
  if p.info.listen and key then headers[#headers + 1] = "Connrt-Key: " .. key end
  if #headers > 0 then
    -- the headers from a file: the key stays out of curl's command line
    h.write(dir .. "/headers", table.concat(headers, "\n") .. "\n")
    args[#args + 1] = "-H @" .. dir .. "/headers"
  end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = h.shell_quote(a) end
  local url
  if p.info.socket then
    args[#args + 1] = "--unix-socket " .. h.shell_quote(p.info.socket)
    url = "http://proxy" .. path
  else
    url = "http://" .. p.info.listen .. path
  end
  os.execute(("curl %s %s >%s/code"):format(table.concat(args, " "), h.shell_quote(url), dir))
  local code, body, head = tonumber(h.read(dir .. "/code")), h.read(dir .. "/body"), h.read(dir .. "/head")
  h.rmdir(dir)
  return code, body, head
end

return M
