--- cli.lua - the `connrt` command line: parses arguments, runs a command, maps errors
-- to exit codes (see errors.lua) and prints them through log.lua, so no secret is
-- printed in clear.
local cjson = require("cjson")
local errors = require("connrt.errors")
local log = require("connrt.log")

local M = {}

M.VERSION = require("connrt.build").version -- the Makefile's VERSION


-- --json: failures end with the JSON error line (M.json), also where C code that cannot
-- raise writes one (the store's SIGBUS handler, src/api/store.c, reads the registry's
-- "connrt.json_errors").
local function json_on()
  M.json = true
  debug.getregistry()["connrt.json_errors"] = true
end

-- Parses the arguments of command `cmd` against its options (options.lua). --verbose and
-- --json are options of every command (options.GLOBAL): --json (M.json) also makes a
-- failure's last line on standard error a JSON object (see M.main), and is opts.json
-- for the commands that print JSON.
local function parse(argv, cmd)
  local spec = require("connrt.options").kinds(cmd)
  local opts, rest = { json = M.json }, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do rest[#rest + 1] = argv[j] end
      break
    elseif a == "--verbose" or a == "-v" then
      -- every command takes it, wherever it stands (connrt request ID URL -v)
      log.verbose = true
    elseif a == "--json" then
      json_on()
      opts.json = true
    elseif a == "--store" or a:match("^%-%-store=") then
      -- every command takes it too: the store to use instead of CONNRT_STORE
      local v = a:match("^%-%-store=(.*)$")
      if not v then
        i = i + 1
        v = argv[i]
      end
      if v == nil or v == "" then errors.fail("usage", "bad_argument", "--store needs a directory or a postgres:// URL") end
      require("connrt.store").chosen = v
    elseif a:sub(1, 2) == "--" or a:match("^%-%a$") then
      local name, inline = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:gsub("^%-%-?", "")
      local kind = spec[name]
      if not kind then errors.raise("usage", "unknown option --%s (connrt help)", name) end
      if kind == "flag" then
        if inline then errors.raise("usage", "--%s takes no value", name) end
        opts[name] = true
      else
        local v = inline
        if not v then
          i = i + 1
          v = argv[i]
          if v == nil then errors.raise("usage", "--%s needs a value", name) end
        end
        if kind == "multi" then
          opts[name] = opts[name] or {}
          table.insert(opts[name], v)
        else
          opts[name] = v
        end
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return opts, rest
end

local function public(rec)
  return require("connrt.connection").public(rec)
end

local function json_out(v)
  log.out("%s", cjson.encode(v))
end

-- With --json, the line every failure ends its standard error with:
-- {"error": {"kind", "reason", "message"}}, the message redacted; its keys always in
-- that order (cjson would take Lua's table order, which differs from run to run).
local function json_error(kind, reason, message)
  if M.json then
    log.err('{"error":{"kind":%s,"reason":%s,"message":%s}}', cjson.encode(kind), cjson.encode(reason),
      cjson.encode(log.redact(message or "")))
  end
end

local commands = {}

-- Runs a pipeline script with the full runtime: the global `connrt` is the pipeline API
-- (api.lua) and `arg` holds the script's arguments, as lua5.4 would set them.
local function run_pipeline(script, argv)
  local chunk, err = loadfile(script)
  if not chunk then errors.raise("usage", "%s", err) end
  local args = { [0] = script }
  for i = 1, #argv do args[i] = argv[i] end
  _G.arg = args
  _G.connrt = require("connrt.api")
  local ok, rc = xpcall(chunk, function(e)
    if errors.is(e) then return e end
    return debug.traceback(tostring(e), 2)
  end, table.unpack(args))
  _G.connrt.close()
  if not ok then
    if errors.is(rc) then error(rc, 0) end
    -- the script's own error, not connrt's: say so, with the script's part of the traceback
    local first, lines = nil, {}
    for line in tostring(rc):gmatch("[^\n]+") do
      if not first then
        first = line
      elseif line:find(script, 1, true) and line:match("^%s") then
        lines[#lines + 1] = (line:gsub("\t", "    "))
      end
    end
    errors.fail_lines("failed", "script", lines, "pipeline script %s failed: %s", script, first or "")
  end
  return math.type(rc) == "integer" and rc or 0
end

-- Splits repeated KEY=VALUE options into a map (or, with `list`, an array of pairs).
local function key_values(values, option, list)
  local out = {}
  for _, kv in ipairs(values or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then errors.raise("usage", "--%s %s: expected KEY=VALUE", option, kv) end
    if list then out[#out + 1] = { k, v } else out[k] = v end
  end
  return out
end

-- The options of run, authorize and connect (options.lua), parsed into flow.lua's opts.
local function flow_options(argv, cmd, usage)
  local o, rest = parse(argv, cmd)
  if #rest ~= 1 then errors.raise("usage", "%s", usage) end
  local timeout = o.timeout and tonumber(o.timeout)
  if o.timeout and (not timeout or timeout <= 0) then
    errors.raise("usage", "--timeout %s: expected a number of seconds", o.timeout)
  end
  return o, {
    connector = rest[1], fields = key_values(o.field, "field"),
    field_files = key_values(o["field-file"], "field-file"), client_id = o["client-id"],
    client_secret = o["client-secret"], client_secret_file = o["client-secret-file"],
    scopes = o.scope, params = key_values(o.param, "param", true), paste = o.paste,
    timeout = timeout, browser = not o["no-browser"], replace = o.replace, interactive = require("connrt.sys").isatty(0),
  }
end

-- What run and connect print once a connection is saved.
local function connected(o, rec, updated)
  if o.json then
    json_out({ id = rec.id, connector = rec.connector, name = rec.name, unique_id = rec.unique_id,
      updated = updated })
  else
    log.out("%s %s as %s (%s): %s", updated and "Updated" or "Connected", rec.title, rec.name,
      rec.unique_id, rec.id)
  end
  return 0
end

-- `connrt run FILE` takes FILE as a connector, always: it runs only in the connector
-- sandbox, and a file that fails there is an invalid connector (exit 3), never run another
-- way. Pipeline scripts, which get the full runtime, run with `connrt script`: the
-- command, not the file's content, decides.
function commands.run(argv)
  local o, opts = flow_options(argv, "run", "usage: connrt run CONNECTOR.lua [options] (a pipeline script: connrt script SCRIPT.lua [ARGS...])")
  local ok, c = pcall(require("connrt.connector").load, opts.connector)
  if not ok then
    if errors.is(c) and c.kind == "connector" then
      errors.remake(c, ("%s (a pipeline script runs with `connrt script %s`)"):format(c.message, opts.connector))
    end
    error(c, 0)
  end
  opts.loaded = c
  return connected(o, require("connrt.flow").run(opts))
end

-- `connrt connect URL`: a protected resource (RFC 9728) connected without a connector
-- file, or with --print-connector the connector it would use (protected.lua).
function commands.connect(argv)
  for _, a in ipairs(argv) do
    local name = a:match("^%-%-([^=]+)")
    if name == "field" or name == "field-file" then
      errors.raise("usage", "connrt connect builds its connector itself: it has no fields")
    end
  end
  local o, opts = flow_options(argv, "connect", "usage: connrt connect URL [--print-connector] [options]")
  local protected = require("connrt.protected")
  local target = opts.connector
  local md = protected.resolve(target)
  local src = protected.connector_source(target, md)
  if o["print-connector"] then
    io.stdout:write(src)
    return 0
  end
  local c = require("connrt.connector").load_source(src, target)
  log.err("Connecting %s through the authorization server %s; the connection will send its token only under %s",
    md.resource, md.issuer, table.concat(c.allowed_urls, " "))
  opts.loaded = c
  return connected(o, require("connrt.flow").run(opts))
end

-- `connrt script SCRIPT.lua [ARGS...]`: a pipeline script, with the full runtime.
function commands.script(argv)
  if not argv[1] or argv[1]:match("^%-") then errors.raise("usage", "usage: connrt script SCRIPT.lua [ARGS...]") end
  return run_pipeline(argv[1], { table.unpack(argv, 2) })
end

function commands.authorize(argv)
  for _, a in ipairs(argv) do
    if a == "--paste" then errors.raise("usage", "connrt authorize does the browser part: --paste belongs to connrt run") end
  end
  local o, opts = flow_options(argv, "authorize", "usage: connrt authorize CONNECTOR.lua [options]")
  -- the blob holds the tokens: it is the one thing printed in clear, on purpose
  local line, connector = require("connrt.flow").authorize(opts)
  if o.json then
    log.raw(cjson.encode({ connector = connector, line = line }) .. "\n")
  else
    log.raw(line .. "\n")
  end
  log.err("Paste the line above into `connrt run %s --paste` on the machine that keeps the connection.", opts.connector)
  return 0
end

function commands.list(argv)
  local o, rest = parse(argv, "list")
  if #rest > 0 then errors.raise("usage", "usage: connrt list [--json]") end
  if not require("connrt.store").exists() then -- nothing to list: create no store for it
    log.out("%s", o.json and "[]" or "no connections")
    return 0
  end
  local st = require("connrt.store").open(nil, { keyless = true })
  if o.json then
    -- the records as stored: plain JSON without secrets (those live sealed apart), so
    -- 100,000 connections are listed without decoding and encoding each one
    -- one record at a time, as the backend reads them (PostgreSQL: a page at a time)
    local escape = require("connrt.text").escape_controls
    local first = true
    local ok, err = pcall(st.each_raw, st, function(text)
      log.raw((first and "[" or ",") .. escape(log.redact(text)))
      first = false
    end)
    st:close()
    if not ok then error(err, 0) end
    log.raw(first and "[]\n" or "]\n")
    return 0
  end
  local recs = st:list()
  st:close()
  if #recs == 0 then log.out("no connections") return 0 end
  local format = require("connrt.format")
  local rows = { { "ID", "CONNECTOR", "NAME", "ACCOUNT", "STATUS", "EXPIRES" } }
  for _, r in ipairs(recs) do
    rows[#rows + 1] = { r.id, r.connector, r.name, r.unique_id, require("connrt.format").status(r),
      (r.expires_at == nil and r.auth == "fields") and "-" or format.expiry(r.expires_at) }
  end
  for line in format.table(rows):gmatch("[^\n]+") do log.out("%s", line) end
  return 0
end

function commands.show(argv)
  local o, rest = parse(argv, "show")
  if #rest ~= 1 then errors.raise("usage", "usage: connrt show ID [--json]") end
  local st = require("connrt.store").open(nil, { existing = "no connection " .. rest[1] })
  local found = st:find(rest[1])
  -- what show prints (allowed URLs above all) is what connrt would use: checked against
  -- its binding like any use, so a record changed outside connrt is not shown as real
  local ok, err = pcall(st.secrets, st, found)
  st:close()
  if not ok then error(err, 0) end
  local rec = public(found)
  if o.json then json_out(rec) return 0 end
  log.out("%-18s %s", "status", require("connrt.format").status(rec))
  if rec.last_error then log.out("%-18s %s", "last_error", rec.last_error) end
  local order = { "id", "connector", "title", "name", "unique_id", "client_id", "scope", "token_type" }
  for _, k in ipairs(order) do
    if rec[k] ~= nil then log.out("%-18s %s", k, tostring(rec[k])) end
  end
  local format = require("connrt.format")
  local function when(t) return t and (format.utc(t) .. " (" .. format.ago(t) .. ")") or "never" end
  -- no expiry is "unknown" (the provider did not say), or "-" without a token at all
  log.out("%-18s %s", "expires_at", rec.expires_at and when(rec.expires_at) or (rec.auth == "fields" and "-" or "unknown"))
  log.out("%-18s %s", "refresh_token", rec.has_refresh_token and "yes (sealed)" or "no")
  log.out("%-18s %s", "allowed_urls", table.concat(rec.allowed_urls or {}, " "))
  if rec.resource then log.out("%-18s %s", "resource", rec.resource) end
  local d = rec.discovery
  if type(d) == "table" then
    log.out("%-18s %s (metadata %s, fetched %s)", "discovery", tostring(d.issuer), tostring(d.metadata_url),
      when(d.fetched_at))
    if type(d.filled) == "table" and #d.filled > 0 then log.out("%-18s %s", "discovered", table.concat(d.filled, " ")) end
    if d.registered then log.out("%-18s %s", "registration", "dynamic (RFC 7591): client registered by connrt") end
  end
  for _, group in ipairs({ "fields", "values" }) do
    local keys = {}
    for k in pairs(rec[group] or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do log.out("%-18s %s", group .. "." .. k, format.value(rec[group][k])) end
  end
  log.out("%-18s %s", "created_at", when(rec.created_at))
  log.out("%-18s %s", "updated_at", when(rec.updated_at))
  return 0
end

-- `connrt update ID [CONNECTOR.lua]`: re-applies a changed connector (update.lua).
function commands.update(argv)
  local o, rest = parse(argv, "update")
  if #rest < 1 or #rest > 2 then errors.raise("usage", "usage: connrt update ID [CONNECTOR.lua] [--replace]") end
  local rec, path, changed = require("connrt.update").run(rest[1], rest[2], nil, { replace = o.replace })
  if #changed == 0 then
    log.err("%s (%s): nothing to update: %s gives it what it has", rec.id, rec.name, path)
  else
    log.err("updated %s (%s) to %s: %s", rec.id, rec.name, path, table.concat(changed, ", "))
  end
  return 0
end

function commands.delete(argv)
  local _, rest = parse(argv, "delete")
  if #rest ~= 1 then errors.raise("usage", "usage: connrt delete ID") end
  local st = require("connrt.store").open(nil, { existing = "no connection " .. rest[1] })
  local rec = st:find(rest[1])
  st:delete(rec.id)
  st:close()
  log.err("deleted %s (%s)", rec.id, rec.name)
  return 0
end

-- Opens the store and the connection named `ref`.
local function open_connection(ref)
  local st = require("connrt.store").open(nil, { existing = "no connection " .. ref })
  return require("connrt.connection").open(st, ref), st
end

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true, HEAD = true, OPTIONS = true }

function commands.request(argv)
  local o, rest = parse(argv, "request")
  local ref, method, target
  if #rest == 2 then
    ref, target = rest[1], rest[2]
  elseif #rest == 3 and METHODS[rest[2]:upper()] then
    ref, method, target = rest[1], rest[2]:upper(), rest[3]
  else
    errors.raise("usage", "usage: connrt request ID [METHOD] URL [-H 'Name: value']... [-d BODY | --json-body JSON] [--include]")
  end
  local headers = {}
  for _, hv in ipairs((o.H or {})) do headers[#headers + 1] = hv end
  for _, hv in ipairs((o.header or {})) do headers[#headers + 1] = hv end
  local hlist = {}
  for _, hv in ipairs(headers) do
    local n, v = hv:match("^([%w!#$%%&'*+.^_`|~-]+):%s*(.*)$")
    if not n then errors.raise("usage", "-H %q: expected 'Name: value'", hv) end
    local why = require("connrt.text").header_problem(n, v)
    if why then errors.raise("usage", "-H: %s", why) end
    hlist[#hlist + 1] = { n, v }
  end
  local body = o.d or o.data
  if body then
    -- -d is a form, as curl's -d is (libcurl would say so on its own on the direct path; said
    -- here, it is said through CONNRT_PROXY too, whose proxy adds no type a client left out)
    local typed = false
    for _, hv in ipairs(hlist) do typed = typed or hv[1]:lower() == "content-type" end
    if not typed then hlist[#hlist + 1] = { "Content-Type", "application/x-www-form-urlencoded" } end
  end
  local json
  if o["json-body"] then
    if body then errors.raise("usage", "give -d or --json-body, not both") end
    local v, why = require("connrt.json").body(o["json-body"])
    if v == nil then errors.raise("usage", "--json-body: %s", why) end
    json = v
  end
  method = method or ((body or json) and "POST" or "GET")
  local function number_opt(name, dflt)
    if o[name] == nil then return dflt end
    local n = tonumber(o[name])
    if not n or n < 0 or n >= 1e9 then errors.raise("usage", "--%s %s: expected a number", name, o[name]) end
    return n
  end
  -- the arguments are checked before the store is opened
  local retries, max_wait = math.floor(number_opt("retries", 0)), number_opt("max-wait", 60)
  -- through a running proxy (CONNRT_PROXY; not with --retries, whose waits it does not
  -- report): no store, no libcurl here (via_proxy.lua)
  -- (nor with --verbose, whose trace of the exchange only the direct path makes)
  -- what is printed on standard output (shown.lua), after the status line
  local form = o.json and "json" or (o.include or o.i) and "include" or "body"
  -- --json-body as written, sent so when nothing joins it
  local json_text = json and o["json-body"]
  local function status_line(status, url) log.err("%d %s", status, url) end
  -- (through the proxy, the URL and the output as it rendered them, the output written as
  -- it comes: this process does not know the secrets)
  local resp = retries == 0 and not log.verbose and os.getenv("CONNRT_PROXY") and require("connrt.via_proxy").request({ ref = ref,
    method = method, url = target, headers = hlist, body = body, json = json, json_text = json_text,
    form = form, on_status = status_line,
    write = log.write })
  if not resp then
    -- LMDB, OpenSSL and libcurl load on another core while this one opens the store and
    -- loads the connector (src/api/api.c). The Lua modules come first: Lua's own loader
    -- opens cjson.safe through the dynamic linker, which would wait for all of libcurl.
    require("connrt.connection")
    require("connrt.modules").prefetch("connrt.lmdb", "connrt.crypto", "connrt.http")
    local conn, st = open_connection(ref)
    resp = conn:request({ method = method, url = target, headers = hlist, body = body, json = json,
      json_text = json_text, retries = retries, max_wait = max_wait,
      on_wait = function(s, why) log.err("connrt: waiting %.1fs before retrying (%s)", s, why) end })
    st:close()
    status_line(resp.status, target)
    log.write(require("connrt.shown").stdout(resp, form))
  end
  local shown = resp.shown_url or target
  if resp.status >= 400 then
    -- the answer is printed as it came; for a program the failure is its status
    local e = errors.new("provider", "http_status", "%s answered %d", require("connrt.url").without_query(shown),
      resp.status)
    json_error(e.kind, e.reason, e.message)
    return errors.exit_codes[e.kind]
  end
  return 0
end

-- The commands that take one connection and act on it: `act(conn, st)` runs with the
-- connection open and the store closed afterwards, whatever happens.
local function with_connection(name, act)
  return function(argv)
    local _, rest = parse(argv, name)
    if #rest ~= 1 then errors.raise("usage", "usage: connrt %s ID", name) end
    local conn, st = open_connection(rest[1])
    local ok, err = pcall(act, conn, st)
    st:close()
    if not ok then error(err, 0) end
    return 0
  end
end

local token_direct = with_connection("token", function(conn)
  log.raw(conn:token() .. "\n")
end)

-- through a running proxy when CONNRT_PROXY names one (via_proxy.lua); not with
-- --verbose, whose trace of a refresh only the direct path makes
function commands.token(argv)
  if os.getenv("CONNRT_PROXY") and not log.verbose and #argv == 1 and not argv[1]:match("^%-") then
    local tok = require("connrt.via_proxy").token(argv[1])
    if tok then log.raw(tok .. "\n") return 0 end
  end
  return token_direct(argv)
end

commands.refresh = with_connection("refresh", function(conn)
  conn:refresh()
  local exp = conn.rec.expires_at
  log.err("refreshed %s; %s", conn:id(), exp and ("the new token expires at " .. os.date("!%Y-%m-%dT%H:%M:%SZ", exp))
    or "the provider did not say when the new token expires")
end)

-- A revoke that fails keeps the connection (its tokens may still be valid at the
-- provider, or some of them): the message says so, and how to forget it anyway.
local KEPT = { provider = true, network = true, refused = true }
commands.revoke = with_connection("revoke", function(conn, st)
  local ok, done = pcall(conn.revoke, conn)
  if not ok then
    if errors.is(done) and KEPT[done.kind] then
      errors.remake(done, ("%s; the connection was kept: connrt delete %s removes it here only (its tokens may "
        .. "stay valid at the provider)"):format(done.message, conn:id()))
    end
    error(done, 0)
  end
  st:delete(conn:id())
  log.err("revoked the %s of %s at the provider and deleted the connection", table.concat(done, " and "):gsub("_", " "),
    conn:id())
end)

-- `connrt exec ID... [--env NAME=ID]... [--mask] -- COMMAND [ARGS...]` (exec.lua).
-- Everything after the first `--` is the command, never connrt's options.
function commands.exec(argv)
  local usage = "usage: connrt exec ID... [--env NAME=ID]... [--mask] -- COMMAND [ARGS...]"
  local split
  for i, a in ipairs(argv) do if a == "--" then split = i break end end
  if not split or split == #argv then errors.raise("usage", "%s (the command comes after --)", usage) end
  local o, ids = parse({ table.unpack(argv, 1, split - 1) }, "exec")
  local exec = require("connrt.exec")
  return exec.run(exec.names(ids, o.env), { table.unpack(argv, split + 1) }, o.mask)
end

-- `connrt git-credential [--connection ID] get|store|erase`: git's credential helper
-- (credential.lua).
commands["git-credential"] = function(argv)
  local o, rest = parse(argv, "git-credential")
  local action = rest[1]
  if #rest ~= 1 or not ({ get = true, store = true, erase = true })[action] then
    errors.raise("usage", "usage: connrt git-credential [--connection ID] get|store|erase (git runs it)")
  end
  return require("connrt.credential").git(o.connection, action, io.stdin, io.stdout)
end

-- `connrt credential-process ID [--format json|kubernetes]` (credential.lua).
commands["credential-process"] = function(argv)
  local o, rest = parse(argv, "credential-process")
  if #rest ~= 1 then errors.raise("usage", "usage: connrt credential-process ID [--format json|kubernetes]") end
  return require("connrt.credential").process(rest[1], o.format)
end

-- `connrt proxy [--listen HOST:PORT | --socket PATH] [--connection ID]...` (proxy.lua).
function commands.proxy(argv)
  local o, rest = parse(argv, "proxy")
  if #rest > 0 then
    errors.raise("usage", "usage: connrt proxy [--listen HOST:PORT | --socket PATH] [--connection ID]... [options]")
  end
  if o.listen and o.socket then errors.raise("usage", "give --listen or --socket, not both") end
  local function count_opt(name, min, max)
    if o[name] == nil then return nil end
    local n = math.tointeger(tonumber(o[name]))
    if not n or n < min or n > max then errors.raise("usage", "--%s %s: expected a number from %d to %d", name, o[name], min, max) end
    return n
  end
  return require("connrt.proxy").run({ listen = o.listen, socket = o.socket, connections = o.connection,
    key_file = o["key-file"], workers = count_opt("workers", 1, 256), max_body = count_opt("max-body", 0, 1 << 32),
    max_response = count_opt("max-response", 0, 1 << 50),
    upstream_timeout = count_opt("timeout", 1, 3600), idle = count_opt("idle", 1, 86400), refresh_ahead = count_opt("refresh-ahead", 0, 86400) })
end

-- `connrt rekey`: every secret re-sealed under a new key in one transaction. With a key
-- file, the new key is written beside it (key.new, fsync'ed) before the transaction and
-- renamed over it after the commit; store.open finishes that rename if we die between
-- the two, so no moment exists where the store's key is nowhere on disk.
function commands.rekey(argv)
  local o, rest = parse(argv, "rekey")
  if #rest > 0 then errors.raise("usage", "usage: connrt rekey [--new-key-file FILE]") end
  local store = require("connrt.store")
  local sys = require("connrt.sys")
  local crypto = require("connrt.crypto")
  local new_key, where
  if o["new-key-file"] then
    local text, err = require("connrt.text").read_file(o["new-key-file"])
    if not text then errors.raise("usage", "--new-key-file: %s", err) end
    new_key = store.decode_key(text, "--new-key-file " .. o["new-key-file"])
    where = o["new-key-file"]
  elseif os.getenv("CONNRT_NEW_KEY") and os.getenv("CONNRT_NEW_KEY") ~= "" then
    new_key, where = store.decode_key(os.getenv("CONNRT_NEW_KEY"), "CONNRT_NEW_KEY"), "CONNRT_NEW_KEY"
  end
  local st = store.open()
  local ok, err = pcall(function()
    if not new_key then
      if not st:key_file() then
        errors.raise("usage", "the store's key comes from CONNRT_KEY: give the new one with --new-key-file FILE or "
          .. "CONNRT_NEW_KEY (connrt cannot change your environment)")
      end
      new_key, where = crypto.random(32), "a fresh random key"
    end
    if st:sealed_with(new_key) then errors.raise("usage", "the new key is the one the store is sealed with already") end
    local n
    local key_file = st:key_file()
    if key_file then
      local pending = key_file .. ".new"
      os.remove(pending) -- left by a rekey that failed before its commit: never used
      local written, werr = sys.write_private(pending, crypto.hex(new_key) .. "\n")
      if not written then errors.raise("store", "%s", werr) end
      local rok, res = pcall(st.rekey, st, new_key)
      if not rok then os.remove(pending) error(res, 0) end
      local renamed, nerr = os.rename(pending, key_file)
      if not renamed then errors.raise("store", "re-sealed, but cannot replace the key file: %s (the new key is in %s)", nerr, pending) end
      n = res
      log.err("re-sealed %d secret record(s) under %s; the key file %s holds it now", n, where, key_file)
    else
      n = st:rekey(new_key)
      log.err("re-sealed %d secret record(s) under %s: set CONNRT_KEY to it from now on", n, where)
    end
  end)
  st:close()
  if not ok then error(err, 0) end
  return 0
end

-- `connrt store migrate` and `connrt store copy --from STORE --to STORE`.
function commands.store(argv)
  local store = require("connrt.store")
  local sub = table.remove(argv, 1)
  if sub == "migrate" then
    local _, rest = parse(argv, "store")
    if #rest > 0 then errors.raise("usage", "usage: connrt store migrate") end
    local kind, name, before, after, bound = store.migrate()
    if bound then
      log.err("the store %s was from before connection records were bound to the key: they are bound now, as they "
        .. "were found", name)
    end
    if kind ~= "postgres" then
      log.err("the store %s is an LMDB store: it has no schema to migrate", name)
    elseif before == after then
      log.err("the store %s has schema version %d, the newest this connrt knows", name, after)
    else
      log.err("the store %s: schema version %d -> %d", name, before, after)
    end
    return 0
  elseif sub == "copy" then
    local o, rest = parse(argv, "store")
    if #rest > 0 or not o.to then
      errors.raise("usage", "usage: connrt store copy [--from STORE] --to STORE [--to-key-file FILE]")
    end
    local from = o.from or store.where()
    local src = store.open(from, { existing = "connrt store copy --from " .. from })
    local ok, err = pcall(function()
      local dst = store.open(o.to, { key_file = o["to-key-file"] })
      local cok, n, nc = pcall(src.copy_to, src, dst)
      local name = dst.home
      dst:close()
      if not cok then error(n, 0) end
      log.err("copied %d connection(s) and %d client(s) from %s to %s", n, nc, src.home, name)
    end)
    src:close()
    if not ok then error(err, 0) end
    return 0
  end
  errors.raise("usage", "usage: connrt store migrate | connrt store copy [--from STORE] --to STORE "
    .. "[--to-key-file FILE] (connrt help store)")
end

commands["redirect-url"] = function(argv)
  local _, rest = parse(argv, "redirect-url")
  if #rest > 0 then errors.raise("usage", "usage: connrt redirect-url") end
  log.out("%s", (require("connrt.flow.redirect").get()))
  return 0
end

function commands.check(argv)
  local _, rest = parse(argv, "check")
  if #rest == 0 then errors.raise("usage", "usage: connrt check CONNECTOR.lua...") end
  local check = require("connrt.check")
  local nerr, nwarn = 0, 0
  for _, path in ipairs(rest) do
    for _, fd in ipairs(check.check_file(path)) do
      log.out("%s", check.format(path, fd))
      if fd.level == "error" then nerr = nerr + 1 else nwarn = nwarn + 1 end
    end
  end
  log.err("connrt check: %d file(s), %d error(s), %d warning(s)", #rest, nerr, nwarn)
  return nerr > 0 and errors.exit_codes.connector or 0
end

function commands.version()
  local b = require("connrt.build")
  log.out("connrt %s (%s; built with libcurl %s, OpenSSL %s, LMDB %s)", M.VERSION, _VERSION, b.libcurl, b.openssl, b.lmdb)
  return 0
end

function commands.help(argv)
  local help = require("connrt.help")
  if argv[1] then
    local text = help.command(argv[1])
    if not text then errors.raise("usage", "no command %q (connrt help lists them)", argv[1]) end
    io.stdout:write(text)
  else
    io.stdout:write(help.usage())
  end
  return 0
end

-- True when an exec command line has its program after `--`: a --help there is the
-- program's.
local function has_command(rest)
  for i = 1, #rest - 1 do if rest[i] == "--" then return true end end
  return false
end

-- Reports a failure on standard error and returns its exit status: the message (and a
-- pipeline script's traceback lines), or for anything that is not an error object (a
-- bug) the message and its traceback, one line each. With --json, the last line is
-- {"error": {"kind", "reason", "message"}}, the message kept like the lines above.
local function fail(e)
  local kind, reason, message
  if errors.is(e) then
    -- in its kept form (errors.kept_message), as connrt proxy hands a message to `connrt
    -- request` through CONNRT_PROXY: both paths print the same line, and a message that
    -- shows a secret in one of the ways it is printed (its --json line) is hidden in all
    kind, reason, message = e.kind, e.reason, errors.kept_message(e.reason, e.message)
    log.err("connrt: %s", message)
    for _, line in ipairs(e.lines or {}) do log.err("%s", line) end
  else
    kind, reason = "internal", "internal"
    local first = true
    for line in tostring(e):gmatch("[^\n]+") do
      message = message or line
      log.err(first and "connrt: internal error: %s" or "%s", (line:gsub("\t", "    ")))
      first = false
    end
  end
  json_error(kind, reason, message)
  -- `exit`: a status other than the kind's (connrt exec's 127 and 126, as shells say)
  return errors.is(e) and e.exit or errors.exit_codes[kind]
end

--- Entry point: returns the exit status.
function M.main(argv)
  while argv[1] == "--verbose" or argv[1] == "-v" or argv[1] == "--json" or argv[1] == "--store"
      or (argv[1] or ""):match("^%-%-store=") do
    if argv[1] == "--store" or argv[1]:match("^%-%-store=") then
      local v = argv[1]:match("^%-%-store=(.*)$")
      if not v then
        table.remove(argv, 1)
        v = argv[1]
      end
      if v == nil or v == "" then
        log.err("connrt: --store needs a directory or a postgres:// URL")
        return errors.exit_codes.usage
      end
      require("connrt.store").chosen = v
    elseif argv[1] == "--json" then json_on() else log.verbose = true end
    table.remove(argv, 1)
  end

  local cmd = argv[1]
  if cmd == nil or cmd == "--help" or cmd == "-h" then cmd = "help" end
  if cmd == "--version" then cmd = "version" end
  local fn = commands[cmd]
  local rest = { table.unpack(argv, 2) }
  -- `connrt COMMAND --help`, but not for a pipeline script's own arguments
  if fn and cmd ~= "help" and (rest[#rest] == "--help" or rest[#rest] == "-h")
      and not (cmd == "script" and #rest > 1) and not (cmd == "exec" and has_command(rest)) then
    return commands.help({ cmd })
  end
  if not fn then
    return fail(errors.new("usage", "bad_argument", "unknown command %q (connrt help lists them)", cmd))
  end
  local ok, res = xpcall(fn, function(e)
    if errors.is(e) then return e end
    return debug.traceback(tostring(e), 2)
  end, rest)
  if ok then return res end
  return fail(res)
end

return M
