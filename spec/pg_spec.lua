-- luacheck: std +busted
-- connrt.pg (issue 16 groundwork, src/api/pg.c) against a real PostgreSQL 15 started by
-- the spec (spec/support/postgres.lua): connecting by URL, key=value and PG* variables,
-- parameters and results of each type, bytea with every byte value, each error reason
-- the server or libpq can be brought to give (auth, unreachable, schema, locked, damaged,
-- tls), the password in no message in any spelling, a connection lost mid-session, and
-- libpq loaded by the binary only for a program that asks for connrt.pg.
local h = require("support.helpers")
local postgres = require("support.postgres")
local pg = require("connrt.pg")

-- a password that needs percent-encoding in a URL and escaping in a key=value string
local PASSWORD = "pw S3cr3t/@:%?&=+'\\x\195\169"

-- every spelling of `s` that must not appear in a message
local function spellings(s)
  local all_upper = s:gsub(".", function(c) return ("%%%02X"):format(c:byte()) end)
  local reserved_lower = s:gsub("[^%w%-%._~]", function(c) return ("%%%02x"):format(c:byte()) end)
  return {
    s, postgres.encode(s), reserved_lower, all_upper, all_upper:lower(),
    (s:gsub("[\\']", "\\%0")), "S3cr3t", -- the core: no piece of it either
  }
end

local function assert_hidden(secret, ...)
  for i = 1, select("#", ...) do
    local msg = select(i, ...)
    if type(msg) == "string" then
      for _, spelling in ipairs(spellings(secret)) do
        assert(not msg:find(spelling, 1, true), ("%q shows the password as %q"):format(msg:sub(1, 400), spelling:sub(1, 100)))
      end
    end
  end
end

describe("connrt.pg #integration #postgres", function()
  local server, conn

  setup(function()
    assert(postgres.available(), "PostgreSQL 15 is not installed (make deps installs postgresql-15)")
    server = postgres.start({ password = PASSWORD })
  end)

  teardown(function()
    if conn then conn:close() end
    if server then server.destroy() end
  end)

  local function connect()
    local c, err, reason = pg.connect(server.url)
    assert(c, ("%s (%s)"):format(err, reason))
    return c
  end

  describe("connecting", function()
    it("connects by URL, sets its application name, and describes itself without the password", function()
      conn = connect()
      assert.equal(("127.0.0.1:%d/connrt as connrt"):format(server.port), conn:describe())
      local row = conn:exec("SELECT current_user AS who, current_setting('application_name') AS app")[1]
      assert.same({ who = "connrt", app = "connrt" }, row)
    end)

    it("connects by a key=value string with a quoted password", function()
      local kv = ("host=127.0.0.1 port=%d dbname=connrt user=connrt password='%s'")
        :format(server.port, PASSWORD:gsub("[\\']", "\\%0"))
      local c = assert(pg.connect(kv))
      assert.equal(1, c:exec("SELECT 1 AS one")[1].one)
      c:close()
    end)

    it("connects by the PG* environment variables, in a plain lua5.4 and in the connrt binary", function()
      local dir = h.tmpdir()
      h.write(dir .. "/env.lua", [[
        local pg = require("connrt.pg")
        local c = assert(pg.connect(""))
        local row = c:exec("SELECT current_user AS who, current_database() AS db")[1]
        -- the password from PGPASSWORD is hidden from messages too
        local _, err = c:exec("SELECT $1::int", os.getenv("PGPASSWORD"))
        io.write(row.who, " ", row.db, " ", c:describe(), "\n", err, "\n")
      ]])
      local env = ("PGHOST=127.0.0.1 PGPORT=%d PGUSER=connrt PGDATABASE=connrt PGPASSWORD=%s"):format(
        server.port, h.shell_quote(PASSWORD))
      for _, cmd in ipairs({ ("LUA_CPATH='%s/?.so;;' %s"):format(h.BUILD, h.LUA), h.shell_quote(h.CONNRT) .. " script" }) do
        local ok = os.execute(("cd %s && env %s %s %s/env.lua >%s/out 2>%s/err"):format(h.ROOT, env, cmd, dir, dir, dir))
        local out, err = h.read(dir .. "/out") or "", h.read(dir .. "/err") or ""
        assert.is_true(ok, err)
        assert.matches(("^connrt connrt 127.0.0.1:%d/connrt as connrt\n"):format(server.port), out)
        assert.matches("invalid input syntax for type integer", out, 1, true)
        assert_hidden(PASSWORD, out, err)
      end
      h.rmdir(dir)
    end)

    it("sets the lock, statement and idle-transaction timeouts, and leaves a role's own settings", function()
      local row = conn:exec([[SELECT current_setting('lock_timeout') AS lock,
        current_setting('statement_timeout') AS statement,
        current_setting('idle_in_transaction_session_timeout') AS idle]])[1]
      assert.same({ lock = "10s", statement = "30s", idle = "1min" }, row)
      server.psql("ALTER ROLE connrt SET lock_timeout = '2s'")
      local c = connect()
      assert.equal("2s", c:exec("SELECT current_setting('lock_timeout') AS v")[1].v)
      c:close()
      server.psql("ALTER ROLE connrt RESET lock_timeout")
    end)

    it("passes on to the next host of a multi-host string when the first refuses", function()
      local c = assert(pg.connect(("postgres://connrt:%s@127.0.0.1:%d,127.0.0.1:%d/connrt")
        :format(postgres.encode(PASSWORD), h.free_port(), server.port)))
      assert.equal(("127.0.0.1:%d/connrt as connrt"):format(server.port), c:describe())
      c:close()
    end)

    it("lets the connection string set connect_timeout and the application name", function()
      local c = assert(pg.connect(server.url .. "?application_name=pipeline&connect_timeout=3"))
      assert.equal("pipeline", c:exec("SELECT current_setting('application_name') AS app")[1].app)
      c:close()
    end)
  end)

  describe("statements", function()
    it("sends strings, integers, floats, booleans and nil, and reads them back typed", function()
      local text = "it's \"quoted\", \\ back; ünïcode; DROP TABLE x"
      local row = conn:exec([[SELECT $1::text AS s, $2 AS i, $3 AS big, $4 AS small, $5 AS f, $6 AS t, $7 AS no,
        $8::text IS NULL AS isnull, $8::text AS null, $9::int4 + 1 AS inferred]],
        text, 42, math.maxinteger, math.mininteger, -1.25, true, false, nil, "41")[1]
      assert.same({ s = text, i = 42, big = math.maxinteger, small = math.mininteger, f = -1.25, t = true, no = false,
        isnull = true, inferred = 42 }, row)
      assert.is_true(math.type(row.i) == "integer")
      local inf = conn:exec("SELECT $1 AS a, $2 AS b, $3 AS c", math.huge, -math.huge, 0 / 0)[1]
      assert.equal(math.huge, inf.a)
      assert.equal(-math.huge, inf.b)
      assert.is_true(inf.c ~= inf.c)
    end)

    it("reads int2, int4, oid, float4 and bool columns as Lua values, other types as their text", function()
      local row = conn:exec([[SELECT 7::int2 AS a, -8::int4 AS b, 26::oid AS c, 0.5::float4 AS d, 't'::bool AS e,
        12.50::numeric AS n, '2026-01-02'::date AS day, '{"k": 1}'::jsonb AS j, ARRAY[1,2] AS arr]])[1]
      assert.same({ a = 7, b = -8, c = 26, d = 0.5, e = true, n = "12.50", day = "2026-01-02", j = '{"k": 1}',
        arr = "{1,2}" }, row)
    end)

    it("round-trips bytea with all 256 byte values, in hex and in escape output", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes)
      assert.equal(0, conn:exec("CREATE TABLE blobs (id int PRIMARY KEY, b bytea)"))
      assert.equal(2, conn:exec("INSERT INTO blobs VALUES (1, $1), (2, $2)", pg.bytea(all), pg.bytea("")))
      local rows = conn:exec("SELECT b, length(b) AS n FROM blobs ORDER BY id")
      assert.equal(all, rows[1].b)
      assert.equal(256, rows[1].n)
      assert.equal("", rows[2].b)
      -- the bytes are what the server holds, not a text spelling of them
      assert.equal(("%02x"):rep(256):format(table.unpack({ all:byte(1, -1) })),
        conn:exec("SELECT encode(b, 'hex') AS x FROM blobs WHERE id = 1")[1].x)
      conn:exec("SET bytea_output = 'escape'")
      assert.equal(all, conn:exec("SELECT b FROM blobs WHERE id = 1")[1].b)
      conn:exec("RESET bytea_output")
      assert.equal(all, conn:exec("SELECT $1::bytea AS b", pg.bytea(all))[1].b)
    end)

    it("returns the rows a command affected, rows as maps with NULL absent, [] for no rows", function()
      assert.equal(0, conn:exec("CREATE TABLE items (id int PRIMARY KEY, name text, note text)"))
      assert.equal(3, conn:exec("INSERT INTO items VALUES (1, 'a', NULL), (2, 'b', 'x'), (3, 'c', NULL)"))
      assert.equal(2, conn:exec("UPDATE items SET note = 'y' WHERE note IS NULL"))
      assert.same({ { id = 1, name = "a", note = "y" } },
        conn:exec("SELECT * FROM items WHERE id = $1", 1))
      assert.same({ { id = 3 } }, conn:exec("DELETE FROM items WHERE id = 3 RETURNING id"))
      assert.same({}, conn:exec("SELECT * FROM items WHERE id = 99"))
      assert.same({ { n = 1 } }, conn:exec("SELECT NULL::text AS nothing, 1 AS n"))
      assert.equal(0, conn:exec(""))
    end)

    it("raises on wrong arguments, sending nothing", function()
      local before = conn:exec("SELECT count(*) AS n FROM items")[1].n
      local ok, err = pcall(conn.exec, conn, "INSERT INTO items VALUES (10, $1)", "a\0b")
      assert.is_false(ok)
      assert.matches("parameter $1 holds a zero byte", err, 1, true)
      ok, err = pcall(conn.exec, conn, "INSERT INTO items VALUES (10, $1)", {})
      assert.is_false(ok)
      assert.matches("cannot send a table", err, 1, true)
      ok, err = pcall(conn.exec, conn, "SELECT 1 AS a, 2 AS a")
      assert.is_false(ok)
      assert.matches("two columns named a", err, 1, true)
      assert.equal(before, conn:exec("SELECT count(*) AS n FROM items")[1].n)
    end)

    it("fetch: reads bool, bytea, integer, float and text columns in binary, and refuses other types", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes)
      local row = conn:fetch([[SELECT $1::bytea AS b, 7::int2 AS a, -8::int4 AS i, -9000000000::int8 AS big,
        26::oid AS o, 0.5::float4 AS f4, -1.25::float8 AS f8, true AS t, false AS no, 'ünï'::text AS s,
        'v'::varchar AS v, 'x'::name AS nm, '{"k": 1}'::json AS j, NULL::bytea AS nothing]], pg.bytea(all))[1]
      assert.same({ b = all, a = 7, i = -8, big = -9000000000, o = 26, f4 = 0.5, f8 = -1.25, t = true, no = false,
        s = "ünï", v = "v", nm = "x", j = '{"k": 1}' }, row)
      assert.is_true(math.type(row.big) == "integer")
      local ok, err = pcall(conn.fetch, conn, "SELECT 12.5::numeric AS n")
      assert.is_false(ok)
      assert.matches("not type 1700: use conn:exec", err, 1, true)
      assert.equal(1, conn:exec("SELECT 1 AS one")[1].one)
    end)

    it("defer: a deferred statement runs first with the next statement; undefer takes it back unsent", function()
      conn:defer("SET application_name = 'deferred'")
      assert.equal("deferred", conn:exec("SELECT current_setting('application_name') AS app")[1].app)
      conn:defer("SET application_name = 'taken back'")
      assert.is_true(conn:undefer("SET application_name = 'taken back'"))
      assert.is_false(conn:undefer("SET application_name = 'taken back'"))
      assert.equal("deferred", conn:exec("SELECT current_setting('application_name') AS app")[1].app)
      -- a deferred statement that fails: its error is the next statement's, which still ran
      conn:defer("SELECT * FROM no_such_table")
      local res, err, reason = conn:exec("SET application_name = 'after'")
      assert.is_nil(res)
      assert.matches("no_such_table", err, 1, true)
      assert.equal("schema", reason)
      assert.equal("after", conn:exec("SELECT current_setting('application_name') AS app")[1].app)
      -- a deferred BEGIN makes the next statement part of a transaction
      conn:defer("BEGIN")
      conn:exec("CREATE TEMP TABLE deferred_tx (x int)")
      -- (the CREATE's transaction id is still this statement's: the same transaction)
      assert.is_not_nil(conn:exec("SELECT txid_current_if_assigned() AS x")[1].x)
      conn:exec("ROLLBACK")
      local _, _, why = conn:exec("SELECT * FROM deferred_tx")
      assert.equal("schema", why)
    end)

    it("send: a read-only transaction's COMMIT ends it at once; its answer is read by the next statement", function()
      local watcher = connect()
      conn:exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
      conn:exec("SELECT 1 AS one")
      local pid = conn:exec("SELECT pg_backend_pid() AS pid")[1].pid
      local function state()
        return watcher:exec("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)[1].state
      end
      assert.equal("idle in transaction", state())
      assert.is_true(conn:send("COMMIT"))
      local seen
      for _ = 1, 200 do -- the server ends it when the message arrives, not when we read
        seen = state()
        if seen == "idle" then break end
        require("connrt.sys").sleep(0.01)
      end
      assert.equal("idle", seen)
      assert.equal(1, conn:exec("SELECT 1 AS one")[1].one)
      -- a sent statement that failed: the next statement says so
      assert.is_true(conn:send("COMMIT AND CHAIN"))
      local res, _, reason = conn:exec("SELECT 1 AS one")
      assert.is_nil(res)
      assert.equal("other", reason)
      assert.equal(1, conn:exec("SELECT 1 AS one")[1].one)
      watcher:close()
    end)

    it("says COPY is not done, and the connection stays usable", function()
      local res, err, reason = conn:exec("COPY items TO STDOUT")
      assert.is_nil(res)
      assert.matches("COPY", err)
      assert.equal("other", reason)
      assert.equal(1, conn:exec("SELECT 1 AS one")[1].one)
    end)
  end)

  describe("errors", function()
    it("auth: a wrong password (28P01), and none at all", function()
      local c, err, reason, state = pg.connect(server.url:gsub("S3cr3t", "Wr0ng"))
      assert.is_nil(c)
      assert.equal("auth", reason)
      assert.equal("28P01", state)
      assert.matches("password authentication failed", err, 1, true)
      c, err, reason, state = pg.connect(("postgres://connrt@127.0.0.1:%d/connrt"):format(server.port))
      assert.is_nil(c)
      assert.equal("auth", reason, err)
      assert.is_nil(state)
    end)

    it("unreachable: nobody listening, and a host that does not resolve", function()
      local c, err, reason, state = pg.connect(("postgres://connrt:x@127.0.0.1:%d/connrt"):format(h.free_port()))
      assert.is_nil(c)
      assert.equal("unreachable", reason, err)
      assert.is_nil(state)
      c, err, reason = pg.connect("postgres://connrt:x@no-such-host.invalid/connrt")
      assert.is_nil(c)
      assert.equal("unreachable", reason, err)
    end)

    it("unreachable: a server that takes the connection and never answers, after connect_timeout", function()
      local silent = require("connrt.listener").open("127.0.0.1", 0) -- the kernel accepts; nobody answers
      local t0 = require("connrt.sys").monotime()
      local c, err, reason = pg.connect(("postgres://connrt:%s@127.0.0.1:%d/connrt?connect_timeout=2")
        :format(postgres.encode(PASSWORD), silent:port()))
      local took = require("connrt.sys").monotime() - t0
      silent:close()
      assert.is_nil(c)
      assert.equal("unreachable", reason, err)
      assert.matches("timeout expired (connect_timeout 2 s)", err, 1, true)
      assert.is_true(took >= 1.9 and took < 30, "took " .. took .. " s")
    end)

    it("unreachable: a unix socket that is not there", function()
      local c, err, reason = pg.connect("host=" .. server.dir .. "/nowhere user=connrt password=x")
      assert.is_nil(c)
      assert.equal("unreachable", reason, err)
    end)

    it("other: a string libpq cannot parse, a value it cannot use, a database that does not exist", function()
      local c, err, reason = pg.connect("postgres://connrt@[::1/connrt")
      assert.is_nil(c)
      assert.equal("other", reason)
      assert.matches("invalid PostgreSQL connection string", err, 1, true)
      for _, bad in ipairs({ ":notaport/connrt", (":%d/connrt?sslmode=bogus"):format(server.port) }) do
        c, err, reason = pg.connect("postgres://connrt@127.0.0.1" .. bad)
        assert.is_nil(c)
        assert.equal("other", reason, err)
        assert.matches(bad:match("notaport") or "bogus", err, 1, true)
      end
      c, err, reason = pg.connect(server.url:gsub("/connrt$", "/nodb"))
      assert.is_nil(c)
      assert.equal("other", reason, err)
    end)

    it("schema: a missing table, a missing column, bad SQL; the connection stays usable", function()
      for sql, state in pairs({ ["SELECT * FROM nope"] = "42P01", ["SELECT nope FROM items"] = "42703",
        ["SELEKT 1"] = "42601" }) do
        local res, err, reason, got = conn:exec(sql)
        assert.is_nil(res)
        assert.equal("schema", reason, err)
        assert.equal(state, got)
      end
      assert.equal(1, conn:exec("SELECT 1 AS one")[1].one)
    end)

    it("locked: a lock not granted in lock_timeout (55P03), a serialization failure (40001)", function()
      local holder = connect()
      assert.equal(0, holder:exec("BEGIN"))
      assert.same({ { id = 1 } }, holder:exec("SELECT id FROM items WHERE id = 1 FOR UPDATE"))
      conn:exec("SET lock_timeout = '200ms'")
      local res, err, reason, state = conn:exec("UPDATE items SET note = 'z' WHERE id = 1")
      assert.is_nil(res)
      assert.equal("locked", reason, err)
      assert.equal("55P03", state)
      conn:exec("RESET lock_timeout")
      holder:exec("ROLLBACK")
      -- a repeatable-read transaction updating a row changed since its snapshot
      assert.equal(0, holder:exec("BEGIN ISOLATION LEVEL REPEATABLE READ"))
      holder:exec("SELECT note FROM items WHERE id = 1")
      assert.equal(1, conn:exec("UPDATE items SET note = 'w' WHERE id = 1"))
      res, err, reason, state = holder:exec("UPDATE items SET note = 'v' WHERE id = 1")
      assert.is_nil(res)
      assert.equal("locked", reason, err)
      assert.equal("40001", state)
      holder:exec("ROLLBACK")
      holder:close()
    end)

    it("the password shows in no message, in any spelling", function()
      local enc = postgres.encode(PASSWORD)
      local port = server.port
      local messages = {}
      local function try(ci)
        local c, err = pg.connect(ci)
        assert.is_nil(c, ci)
        messages[#messages + 1] = err
      end
      try(server.url:gsub("S3cr3t", "S3cr3t-Wr0ng"))                              -- refused password
      try(("postgres://connrt:%s@[::1/connrt"):format(enc))                        -- libpq quotes the whole URI
      try(("postgres://connrt:%s%%zz@127.0.0.1:%d/connrt"):format(enc, port))      -- quotes the bad component
      try(("postgres://connrt:%s@127.0.0.1:%d/connrt?bogus=1"):format(enc, port))
      try(("postgres://connrt:%s@127.0.0.1:%d/connrt?password=%s&bogus=1"):format(enc, port, enc))
      try(("postgres://connrt:%s@127.0.0.1:x%d/connrt"):format(PASSWORD, port))    -- not encoded: split in pieces
      try(("postgres://connrt:%s@no-such-host.invalid/connrt"):format(PASSWORD:gsub("[/ ]", "")))
      try(("host=127.0.0.1 port=%d user=connrt password=%s"):format(port, PASSWORD)) -- unquoted, with a space
      try(("host=127.0.0.1 port=%d user=connrt password='%s"):format(port, PASSWORD)) -- unterminated
      try(("host=127.0.0.1 port=%d user=connrt password='%s-Wr0ng'"):format(port, PASSWORD:gsub("[\\']", "\\%0")))
      try(("postgres://connrt:%s@127.0.0.1:%d/connrt?sslmode=verify-full&sslrootcert=/nonexistent/%s")
        :format(enc, port, enc))
      -- the server quotes a value it cannot read
      local _, err = conn:exec("SELECT $1::int", PASSWORD)
      messages[#messages + 1] = err
      _, err = conn:exec(("SELECT '%s'::int"):format(PASSWORD:gsub("'", "''")))
      messages[#messages + 1] = err
      assert.equal(13, #messages)
      for _, msg in ipairs(messages) do
        assert.is_string(msg)
        assert.matches("%S", msg)
      end
      assert_hidden(PASSWORD, table.unpack(messages))
      -- the rest of each message is still there
      assert.matches("password authentication failed", messages[1], 1, true)
      assert.matches("invalid input syntax for type integer", messages[12], 1, true)
      assert.matches("[redacted]", messages[12], 1, true)
    end)

    it("stays linear on a long password and a long hostile connection string", function()
      local long = ("S3cr3t\"@:"):rep(20000)
      local t0 = os.clock()
      local c, err = pg.connect(("postgres://connrt:%s@[::1/connrt%s"):format(long, ("\"x\""):rep(20000)))
      assert.is_nil(c)
      assert_hidden(long, err)
      assert.is_true(os.clock() - t0 < 10, "took " .. (os.clock() - t0) .. " s") -- only catches a quadratic hang
    end)

    it("damaged: a table whose page header was overwritten (XX001)", function()
      assert.equal(1, conn:exec("CREATE TABLE fragile AS SELECT 1 AS id"))
      server.psql("CHECKPOINT")
      local path = server.dir .. "/data/" .. server.psql("SELECT pg_relation_filepath('fragile')"):gsub("%s+$", "")
      conn:close()
      server.stop("fast")
      local f = assert(io.open(path, "r+b"))
      f:write(("\255"):rep(24))
      f:close()
      server.restart()
      conn = connect()
      local res, err, reason, state = conn:exec("SELECT * FROM fragile")
      assert.is_nil(res)
      assert.equal("damaged", reason, err)
      assert.equal("XX001", state)
    end)

    it("unreachable: the server stopped fast or gone at once mid-session, and stopped at connect", function()
      for _, mode in ipairs({ "fast", "immediate" }) do
        local c = connect()
        server.stop(mode)
        local res, err, reason = c:exec("SELECT 1")
        assert.is_nil(res)
        assert.equal("unreachable", reason, err)
        -- and so it stays, without raising
        res, err, reason = c:exec("SELECT 1")
        assert.is_nil(res)
        assert.equal("unreachable", reason, err)
        c:close()
        local c2, err2, reason2 = pg.connect(server.url)
        assert.is_nil(c2)
        assert.equal("unreachable", reason2, err2)
        server.restart()
      end
      conn = connect()
      assert.equal(1, conn:exec("SELECT 1 AS one")[1].one)
    end)
  end)

  describe("closing", function()
    it("closes twice harmlessly, raises on use after close, and closes at the end of a <close> scope", function()
      local c = connect()
      c:close()
      c:close()
      local ok, err = pcall(c.exec, c, "SELECT 1")
      assert.is_false(ok)
      assert.matches("is closed", err, 1, true)
      assert.equal(("127.0.0.1:%d/connrt as connrt"):format(server.port), c:describe())
      local pid
      do
        local scoped <close> = connect()
        pid = scoped:exec("SELECT pg_backend_pid() AS pid")[1].pid
      end
      -- the server sees the session end (a moment after the client hangs up)
      local gone
      for _ = 1, 100 do
        gone = conn:exec("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1", pid)[1].n == 0
        if gone then break end
        require("connrt.sys").sleep(0.05)
      end
      assert.is_true(gone)
    end)
  end)

  describe("TLS", function()
    local tls

    setup(function()
      tls = postgres.start({ password = PASSWORD, tls = true })
    end)

    teardown(function()
      if tls then tls.destroy() end
    end)

    -- host localhost (the name in server.pem) at 127.0.0.1
    local function url(query)
      return ("postgres://connrt:%s@localhost:%d/connrt?hostaddr=127.0.0.1&%s")
        :format(postgres.encode(PASSWORD), tls.port, query)
    end

    it("connects with sslmode=verify-full and the CA that signed the server's certificate", function()
      local c = assert(pg.connect(url("sslmode=verify-full&sslrootcert=" .. postgres.TLS .. "ca.pem")))
      assert.is_true(c:exec("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[1].ssl)
      c:close()
    end)

    it("tls: another CA, a host name the certificate does not name, a missing CA file", function()
      local cases = {
        url("sslmode=verify-full&sslrootcert=" .. postgres.TLS .. "other-ca.pem"),
        ("postgres://connrt:%s@127.0.0.1:%d/connrt?sslmode=verify-full&sslrootcert=%sca.pem")
          :format(postgres.encode(PASSWORD), tls.port, postgres.TLS),
        url("sslmode=verify-full&sslrootcert=" .. postgres.TLS .. "none.pem"),
      }
      for _, ci in ipairs(cases) do
        local c, err, reason, state = pg.connect(ci)
        assert.is_nil(c)
        assert.equal("tls", reason, err)
        assert.is_nil(state)
        assert_hidden(PASSWORD, err)
      end
    end)

    it("tls: sslmode=require against a server without TLS", function()
      local c, err, reason = pg.connect(server.url .. "?sslmode=require")
      assert.is_nil(c)
      assert.equal("tls", reason, err)
    end)

    it("auth: no TLS where the server accepts logins only over TLS (28000)", function()
      local c, err, reason, state = pg.connect(url("sslmode=disable"))
      assert.is_nil(c)
      assert.equal("auth", reason, err)
      assert.equal("28000", state)
    end)
  end)

  describe("loading", function()
    -- the shared objects the dynamic linker opened for a connrt command (LD_DEBUG=files)
    local function loaded(args, env)
      env = env or {}
      env.LD_DEBUG = "files"
      local res = h.connrt(args, { env = env })
      return res, res.stderr
    end

    it("leaves libpq unloaded for --version and an LMDB list, and loads it for a program that uses connrt.pg", function()
      local home = h.tmpdir()
      local res, libs = loaded({ "--version" })
      assert.equal(0, res.code)
      assert.matches("file=", libs, 1, true) -- LD_DEBUG did report
      assert.is_nil(libs:find("libpq", 1, true))
      res, libs = loaded({ "list" }, { CONNRT_HOME = home })
      assert.equal(0, res.code, res.stderr)
      assert.is_nil(libs:find("libpq", 1, true))
      h.write(home .. "/uses-pg.lua", "local pg = require('connrt.pg'); print(type(pg.connect))\n")
      res, libs = loaded({ "script", home .. "/uses-pg.lua" })
      assert.equal(0, res.code, res.stderr)
      assert.equal("function\n", res.stdout)
      assert.matches("libpq.so", libs, 1, true)
      h.rmdir(home)
    end)
  end)
end)
