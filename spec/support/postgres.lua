-- A private PostgreSQL server for the specs (issue 16): initdb in a fresh temporary
-- directory, postgres on a free loopback port (TCP on 127.0.0.1 only, its unix socket in
-- that directory), a role and database of the spec's own with password authentication
-- (scram-sha-256), and optionally TLS with the test certificates of spec/fixtures/tls
-- (server.pem names localhost and is signed by ca.pem), then hostssl only.
--
-- postgres refuses to run as root: as root, the directory belongs to the postgres user
-- and every server program runs as it (runuser). The superuser `postgres` logs in over
-- the unix socket without a password (psql()); everything else uses TCP and a password.
-- Durability is off (fsync, synchronous_commit, full_page_writes): nothing here must
-- survive a power cut, and it makes initdb and every commit cheap.
--
-- If the spec process dies without stopping the server (killed, a crash, ^C), a watchdog
-- started with the server notices within a second (it polls the spec's pid from a
-- session of its own, so the terminal's ^C does not reach it), stops postgres with
-- `pg_ctl stop -m immediate` and removes the directory. destroy() stops both.
local h = require("support.helpers")
local sys = require("connrt.sys")

local M = {}

M.BIN = "/usr/lib/postgresql/15/bin"
M.TLS = h.ROOT .. "/spec/fixtures/tls/"

local q = h.shell_quote

local function is_root()
  local p = io.popen("id -u")
  local uid = p:read("a")
  p:close()
  return tonumber(uid) == 0
end

--- True when the PostgreSQL server programs are installed (tools/deps.sh: postgresql-15).
function M.available()
  return os.execute("test -x " .. q(M.BIN .. "/postgres")) == true
end

--- Percent-encodes every byte outside the URI's unreserved set.
function M.encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function sql_literal(s)
  return "'" .. s:gsub("'", "''") .. "'"
end

--- Starts a server. opts.password: the role's password (default below); opts.role,
-- opts.db: names ("connrt"); opts.tls: serve TLS and accept TCP logins only over it.
-- Returns {url, port, dir, role, db, password, stop(mode), restart(), psql(sql),
-- destroy()}. url: postgres://role:password@127.0.0.1:port/db (the password
-- percent-encoded).
function M.start(opts)
  opts = opts or {}
  local role, db = opts.role or "connrt", opts.db or "connrt"
  local password = opts.password or "pg-Secret-3c1f"
  local root = is_root()
  local dir = h.tmpdir()
  local data, log = dir .. "/data", dir .. "/server.log"
  if root then assert(os.execute("chown postgres:postgres " .. q(dir))) end
  -- a command line run as the server's owner, in the server's directory
  local function as_owner(cmd)
    return ("cd %s && %s%s"):format(q(dir), root and "runuser -u postgres -- " or "", cmd)
  end
  local function run(cmd, what)
    local out = dir .. "/cmd.out"
    local ok = os.execute(as_owner(cmd) .. " >" .. q(out) .. " 2>&1")
    if not ok then error(what .. " failed:\n" .. (h.read(out) or "") .. "\n" .. (h.read(log) or ""), 3) end
  end

  run(("%s/initdb -D %s -U postgres -A trust -E UTF8 --locale=C --no-sync --no-instructions")
    :format(M.BIN, q(data)), "initdb")
  local port = h.free_port()
  local conf = {
    "port = " .. port,
    "listen_addresses = '127.0.0.1'",
    "unix_socket_directories = " .. sql_literal(dir),
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    "shared_buffers = 16MB",
    "max_connections = 100", -- the fleet storm: 60 processes at once, and psql
    "max_wal_senders = 0",
    "wal_level = minimal",
  }
  local host = "host"
  if opts.tls then
    assert(os.execute(("cp %s %s %s/"):format(q(M.TLS .. "server.pem"), q(M.TLS .. "server.key"), q(data))))
    if root then assert(os.execute(("chown postgres:postgres %s/server.pem %s/server.key"):format(q(data), q(data)))) end
    assert(os.execute(("chmod 600 %s/server.key"):format(q(data))))
    conf[#conf + 1] = "ssl = on"
    conf[#conf + 1] = "ssl_cert_file = 'server.pem'"
    conf[#conf + 1] = "ssl_key_file = 'server.key'"
    host = "hostssl"
  end
  local f = assert(io.open(data .. "/postgresql.conf", "a"))
  f:write(table.concat(conf, "\n"), "\n")
  f:close()
  h.write(data .. "/pg_hba.conf", ("local all postgres trust\n%s all all 127.0.0.1/32 scram-sha-256\n"):format(host))

  local server = { port = port, dir = dir, role = role, db = db, password = password, running = false }
  server.url = ("postgres://%s:%s@127.0.0.1:%d/%s"):format(role, M.encode(password), port, db)

  function server.start()
    run(("%s/pg_ctl -D %s -l %s -w -t 60 start"):format(M.BIN, q(data), q(log)), "pg_ctl start")
    server.running = true
  end

  --- Stops the server: mode "fast" (the default: sessions are ended, FATAL 57P01) or
  -- "immediate" (no goodbye: as if the server died). The directory stays for restart().
  function server.stop(mode)
    run(("%s/pg_ctl -D %s -w -t 60 -m %s stop"):format(M.BIN, q(data), mode or "fast"), "pg_ctl stop")
    server.running = false
  end

  --- Starts the server again on the same port and data (stopping it first if it runs).
  function server.restart()
    if server.running then server.stop("fast") end
    server.start()
  end

  --- Runs SQL as the superuser over the unix socket, in database `dbname` (the spec's
  -- database). Returns psql's unaligned output, or raises with psql's message.
  function server.psql(sql, dbname)
    local file, out = dir .. "/psql.sql", dir .. "/psql.out"
    h.write(file, sql)
    local ok = os.execute(("%s/psql -X -q -A -t -v ON_ERROR_STOP=1 -h %s -p %d -U postgres -d %s -f %s >%s 2>&1")
      :format(M.BIN, q(dir), port, q(dbname or db), q(file), q(out)))
    local text = h.read(out) or ""
    if not ok then error("psql failed: " .. text, 2) end
    return text
  end

  --- Stops the server (fast) and its watchdog and removes the directory.
  function server.destroy()
    if server.running then pcall(server.stop, "fast") end
    if server.watchdog then os.execute("kill " .. server.watchdog .. " 2>/dev/null") end
    h.rmdir(dir)
  end

  -- the watchdog (see the top), started before the server so no server outlives us
  local stop_cmd = as_owner(("%s/pg_ctl -D %s -m immediate stop"):format(M.BIN, q(data)))
  local script = ("while kill -0 %d 2>/dev/null; do sleep 1; done; %s >/dev/null 2>&1; rm -rf %s")
    :format(sys.getpid(), stop_cmd, q(dir))
  local p = io.popen(("setsid sh -c %s </dev/null >/dev/null 2>&1 & echo $!"):format(q(script)))
  server.watchdog = tonumber(p:read("a"))
  p:close()

  local ok, err = pcall(server.start)
  if not ok then
    server.destroy()
    error(err, 2)
  end
  server.psql(("CREATE ROLE %s LOGIN PASSWORD %s;\nCREATE DATABASE %s OWNER %s;\n")
    :format(role, sql_literal(password), db, role), "postgres")
  return server
end

return M
