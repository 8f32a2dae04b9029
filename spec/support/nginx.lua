-- A private nginx for the specs (issue 17: the proxy through a real upstream): Debian's
-- nginx-light (tools/deps.sh) with a configuration, prefix, pid file, logs and temporary
-- directories of its own in a fresh temporary directory, listening on loopback only: plain
-- http on 127.0.0.1:PORT and 127.0.0.2:PORT (the second address is where a request to
-- "another loopback host" would land), and TLS on 127.0.0.1:TLS_PORT with the test
-- certificate of spec/fixtures/tls (server.pem names localhost, signed by ca.pem). The
-- system's nginx configuration and service are never used.
--
-- Every request is logged, one JSON object a line, with the headers the specs look at
-- (the Authorization it received, the hop-by-hop ones), so the log proves what reached
-- the upstream and what did not. Answers: GET .../whoami a JSON document (a connector's
-- test), .../hop a 200 carrying hop-by-hop response headers, anything else a 200 whose
-- body is the Authorization header received. nginx answers 400 to a request with two
-- Authorization headers, so a 200 carries exactly one.
--
-- As root, nginx's workers run as root too (`user root`): the directory is the spec's,
-- mode 0700. Not as root, there is no `user` line and everything runs as the spec's user.
-- If the spec process dies without stopping nginx, a watchdog started beside it notices
-- within a second (it polls the spec's pid from a session of its own) and stops nginx.
local cjson = require("cjson")
local h = require("support.helpers")
local sys = require("connrt.sys")

local M = {}

M.TLS = h.ROOT .. "/spec/fixtures/tls/"

local q = h.shell_quote

--- The nginx program: on the PATH, or /usr/sbin/nginx (where Debian puts it, which is not
-- on an ordinary user's PATH); nil when neither is there.
function M.program()
  local p = io.popen("command -v nginx 2>/dev/null")
  local found = p:read("l")
  p:close()
  if found and found ~= "" then return found end
  if os.execute("test -x /usr/sbin/nginx") then return "/usr/sbin/nginx" end
end

local function is_root()
  local p = io.popen("id -u")
  local uid = p:read("a")
  p:close()
  return tonumber(uid) == 0
end

local LOG_FORMAT = [['{"method":"$request_method","uri":"$request_uri","status":"$status",]]
  .. [["server_port":"$server_port","server_addr":"$server_addr","host":"$http_host",]]
  .. [["authorization":"$http_authorization","x_api_key":"$http_x_api_key","x_custom":"$http_x_custom",]]
  .. [["connection":"$http_connection","keep_alive":"$http_keep_alive","te":"$http_te","upgrade":"$http_upgrade",]]
  .. [["trailer":"$http_trailer","proxy_authorization":"$http_proxy_authorization","x_hop":"$http_x_hop",]]
  .. [["user_agent":"$http_user_agent"}']]

local function config(dir, port, tls_port)
  local routes = [[
    default_type text/plain;
    location ~ /whoami$ { default_type application/json; return 200 '{"id":"nginx-upstream"}'; }
    location ~ /hop$ {
      add_header Connection "X-Hop-Resp";
      add_header X-Hop-Resp 1;
      add_header Keep-Alive "timeout=7";
      add_header Upgrade h2c;
      add_header Proxy-Authenticate Basic;
      add_header Trailer X-Trailing;
      add_header X-Fine 1;
      return 200 "hop\n";
    }
    location / { return 200 "$http_authorization"; }
]]
  return table.concat({
    "worker_processes 1;",
    ("pid %s/nginx.pid;"):format(dir),
    ("error_log %s/error.log warn;"):format(dir),
    is_root() and "user root;" or "",
    "events { worker_connections 1024; }",
    "http {",
    ("  client_body_temp_path %s/tmp/body; proxy_temp_path %s/tmp/proxy; fastcgi_temp_path %s/tmp/fastcgi;")
      :format(dir, dir, dir),
    ("  uwsgi_temp_path %s/tmp/uwsgi; scgi_temp_path %s/tmp/scgi;"):format(dir, dir),
    "  log_format upstream escape=json " .. LOG_FORMAT .. ";",
    ("  access_log %s/access.log upstream;"):format(dir),
    "  keepalive_timeout 60 60;", -- also sends Keep-Alive: timeout=60, a hop-by-hop header
    "  server_tokens off;",
    ("  server { listen 127.0.0.1:%d; listen 127.0.0.2:%d;\n%s  }"):format(port, port, routes),
    ("  server { listen 127.0.0.1:%d ssl; ssl_certificate %s; ssl_certificate_key %s;\n%s  }")
      :format(tls_port, M.TLS .. "server.pem", M.TLS .. "server.key", routes),
    "}",
  }, "\n") .. "\n"
end

--- Starts nginx. Returns {port, tls_port, base ("http://127.0.0.1:PORT"), tls_base
-- ("https://localhost:TLS_PORT"), dir, log() -> the requests logged so far (an array of
-- tables as LOG_FORMAT writes them), wait_for(pred) -> that log once some entry satisfies
-- pred, wait_count(n) -> that log once it has n entries (both raise after 20 s), stop()}.
function M.start()
  local nginx = M.program()
  if not nginx then error("nginx not found (on the PATH or /usr/sbin/nginx): `make deps` installs nginx-light", 2) end
  local dir = h.tmpdir()
  assert(sys.mkdir(dir .. "/tmp", 448))
  local server = { dir = dir }
  -- the watchdog (see the top), started before nginx so no nginx outlives us
  local script = ("while kill -0 %d 2>/dev/null; do sleep 1; done; [ -f %s ] && kill -TERM $(cat %s); sleep 1; rm -rf %s")
    :format(sys.getpid(), q(dir .. "/nginx.pid"), q(dir .. "/nginx.pid"), q(dir))
  local p = io.popen(("setsid sh -c %s </dev/null >/dev/null 2>&1 & echo $!"):format(q(script)))
  server.watchdog = tonumber(p:read("a"))
  p:close()
  -- nginx daemonizes once its sockets listen, and exits non-zero when a port is taken
  -- (free_port's ports are free when chosen; another process may bind one before nginx)
  local started, out
  for _ = 1, 5 do
    server.port, server.tls_port = h.free_port(), h.free_port()
    if server.port ~= server.tls_port then
      h.write(dir .. "/nginx.conf", config(dir, server.port, server.tls_port))
      out = dir .. "/start.out"
      started = os.execute(("%s -p %s/ -c %s/nginx.conf -e %s/error.log </dev/null >%s 2>&1")
        :format(q(nginx), q(dir), q(dir), q(dir), q(out)))
      if started then break end
    end
  end
  if not started then
    os.execute("kill " .. server.watchdog .. " 2>/dev/null")
    local why = (h.read(out) or "") .. (h.read(dir .. "/error.log") or "")
    h.rmdir(dir)
    error("nginx did not start:\n" .. why, 2)
  end
  -- the daemon writes its pid file right after it detached
  for _ = 1, 200 do
    server.pid = tonumber(h.read(dir .. "/nginx.pid") or "")
    if server.pid then break end
    sys.sleep(0.02)
  end
  assert(server.pid, "nginx wrote no pid file")
  server.base = "http://127.0.0.1:" .. server.port
  server.tls_base = "https://localhost:" .. server.tls_port

  function server.log()
    local list = {}
    for line in (h.read(dir .. "/access.log") or ""):gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end
    return list
  end

  function server.wait_for(pred)
    for _ = 1, 400 do
      local list = server.log()
      for _, e in ipairs(list) do if pred(e) then return list end end
      sys.sleep(0.05)
    end
    error("nginx logged no such request in 20 s; its log:\n" .. (h.read(dir .. "/access.log") or ""), 2)
  end

  function server.wait_count(n)
    for _ = 1, 400 do
      local list = server.log()
      if #list >= n then return list end
      sys.sleep(0.05)
    end
    error(("nginx logged fewer than %d requests in 20 s; its log:\n%s"):format(n, h.read(dir .. "/access.log") or ""), 2)
  end

  --- Stops nginx (fast shutdown), waits until its master is done, removes the directory.
  function server.stop()
    if server.pid then
      os.execute(("kill -TERM %d 2>/dev/null"):format(server.pid))
      -- gone once it removed its pid file (its last act; a reaped or not reaped zombie alike)
      for _ = 1, 400 do
        if not h.read(dir .. "/nginx.pid") then break end
        sys.sleep(0.05)
      end
      server.pid = nil
    end
    os.execute("kill " .. server.watchdog .. " 2>/dev/null")
    h.rmdir(dir)
  end

  return server
end

return M
