-- Starts the specs' private PostgreSQL server (spec/support/postgres.lua) for bench.py:
-- prints {"url": ..., "port": ...} on one line, then reads database names on stdin, one
-- a line, creates each (owned by the URL's role) and answers its URL on a line. When stdin
-- closes, stops the server and removes its directory (the server's watchdog does that
-- too if this process dies). usage: connrt script bench/pg.lua   (from the repository root)
package.path = os.getenv("PWD") .. "/spec/?.lua;" .. package.path
local cjson = require("cjson")
local postgres = require("support.postgres")
assert(postgres.available(), "PostgreSQL 15 is not installed (make deps installs postgresql-15)")
local pg = postgres.start()
io.write(cjson.encode({ url = pg.url, port = pg.port }), "\n")
io.stdout:flush()
for db in io.lines() do
  assert(db:match("^[%w_]+$"), "a database name of letters, digits and _")
  pg.psql(("CREATE DATABASE %s OWNER %s;"):format(db, pg.role), "postgres")
  io.write((pg.url:gsub("/[^/]*$", "/" .. db)), "\n")
  io.stdout:flush()
end
pg.destroy()
return 0
