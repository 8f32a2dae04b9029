-- Errors a program can test (issue 15): lua/connrt/errors.lua is the one definition of
-- the kinds (exit codes) and reasons, and everything else that states them agrees with
-- it; each reason comes from where the failure arises, never from a message's text, and
-- reaches a program the same through the Lua API (err.kind, err.reason), the command
-- line (--json: the last line on stderr) and libconnrt (connrt_errreason).
local cjson = require("cjson")
local errors = require("connrt.errors")
local h = require("support.helpers")
local prov = require("support.provider")

local function read(path) return assert(h.read(h.ROOT .. "/" .. path), path) end

-- Runs the command `argv[1]` (a shell word list as it is: h.LUA may be "ld.so --preload
-- ... lua5.4" under make sanitize) with the rest as arguments, quoted, and `env` set, in
-- the tree's root. Returns {code, stdout, stderr}.
local function run(argv, env)
  local dir = h.tmpdir()
  local parts = {}
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. h.shell_quote(v) end
  parts[#parts + 1] = argv[1]
  for i = 2, #argv do parts[#parts + 1] = h.shell_quote(argv[i]) end
  local _, _, code = os.execute(("cd %s && env %s </dev/null >%s/out 2>%s/err"):format(h.shell_quote(h.ROOT),
    table.concat(parts, " "), dir, dir))
  local res = { code = code, stdout = h.read(dir .. "/out"), stderr = h.read(dir .. "/err") }
  h.rmdir(dir)
  return res
end

-- The files under `dir` (a directory of the tree, its subdirectories too) whose names
-- match `pattern`, as paths from the tree's root.
local function files(dir, pattern)
  local out = {}
  for path in io.popen(("cd %s && find %s -type f | sort"):format(h.shell_quote(h.ROOT), dir)):lines() do
    if path:match(pattern) then out[#out + 1] = path end
  end
  return out
end

describe("errors.lua, the one definition of kinds and reasons", function()
  it("gives each kind one exit code and each reason one kind, the first its general one", function()
    local codes, names = {}, {}
    for _, k in ipairs(errors.kinds) do
      assert.is_nil(codes[k.code], k.name)
      assert.is_nil(names[k.name], k.name)
      codes[k.code], names[k.name] = true, true
      assert.equal(k.code, errors.exit_codes[k.name])
      assert.is_string(k.says)
    end
    local seen = {}
    for _, r in ipairs(errors.reasons) do
      assert.is_nil(seen[r[1]], r[1])
      seen[r[1]] = true
      assert.truthy(names[r[2]], r[1] .. ": no kind " .. r[2])
      assert.is_string(r[3])
    end
    for _, k in ipairs(errors.kinds) do
      if k.raised ~= false then
        assert.truthy(errors.default_reason[k.name], k.name .. " has no reason")
      end
    end
  end)

  it("makes error objects with kind, reason and message, and refuses a reason of another kind", function()
    local ok, e = pcall(errors.fail, "store", "locked", "%s is locked", "/x")
    assert.is_false(ok)
    assert.is_true(errors.is(e))
    assert.same({ "store", "locked", "/x is locked" }, { e.kind, e.reason, e.message })
    assert.equal("/x is locked", tostring(e))
    e = select(2, pcall(errors.raise, "network", "no answer"))
    assert.same({ "network", "transport" }, { e.kind, e.reason })
    e = select(2, pcall(errors.wrap, select(2, pcall(errors.fail, "provider", "invalid_grant", "m")), "at x: "))
    assert.same({ "provider", "invalid_grant", "at x: m" }, { e.kind, e.reason, e.message })
    assert.error_matches(function() errors.fail("store", "denied", "m") end, "reason denied is not one of kind store")
    assert.error_matches(function() errors.fail("store", "no_such_reason", "m") end, "no_such_reason")
  end)

  it("makes the same object in C (connrt_raise): the store's write lock", function()
    local dir = h.tmpdir()
    local release = h.hold_write_lock(dir, prov.DBS)
    local env = assert(require("connrt.lmdb").open(dir, prov.DBS, {}))
    local ok, e = pcall(env.begin, env, true)
    release()
    env:close()
    h.rmdir(dir)
    assert.is_false(ok)
    assert.is_true(errors.is(e), tostring(e))
    assert.same({ "store", "locked" }, { e.kind, e.reason })
    assert.matches(" is locked: another process has held its write lock", tostring(e), 1, true)
  end)

  it("is what include/connrt.h declares", function()
    local header = {}
    for name, code in read("include/connrt.h"):gmatch("(CONNRT_[A-Z]+)%s*=%s*(%d+)") do header[name] = tonumber(code) end
    local want = {}
    for _, k in ipairs(errors.kinds) do
      if k.c then want[k.c] = k.code end
      assert.equal(k.only == "command", k.c == nil, k.name)
    end
    assert.same(want, header)
    local h_text = read("include/connrt.h")
    assert.matches("const char *connrt_errreason(const connrt *rt);", h_text, 1, true)
    -- the reasons connrt_errreason's comment names, each under its code
    local kind_of_c, n = {}, 0
    for _, k in ipairs(errors.kinds) do if k.c then kind_of_c[k.c] = k.name end end
    local doc = h_text:match("/%* The reason of the last failure.-%*/")
    local code
    for line in doc:gmatch("[^\n]+") do
      code = line:match("(CONNRT_E%u+):") or code
      for reason in line:gmatch('"([%w_]+)"') do
        assert.equal(kind_of_c[code], errors.reason_kind[reason], code .. " " .. reason)
        n = n + 1
      end
    end
    assert.truthy(n >= 10, n)
  end)

  it("is what connrt_strerror says, for every code", function()
    local dir = h.tmpdir()
    h.write(dir .. "/strerror.c", [[
#include <stdio.h>
#include <connrt.h>
int main(void) {
  for (int i = 0; i <= 200; i++) printf("%d\t%s\n", i, connrt_strerror((connrt_code)i));
  return 0;
}
]])
    -- linked like the build it tests (make sanitize: an instrumented libconnrt.a)
    local san = os.execute(("nm %s/libconnrt.a 2>/dev/null | grep -q __asan"):format(h.BUILD))
      and "-fsanitize=address,undefined " or ""
    local ok = os.execute(("cc %s-Iinclude -o %s/strerror %s/strerror.c %s/libconnrt.a $(pkg-config --libs lua5.4 "
      .. "libcurl libcrypto libsodium lmdb libpq) && %s/strerror >%s/out"):format(san, dir, dir, h.BUILD, dir, dir))
    assert.is_true(ok)
    local said = {}
    for code, text in h.read(dir .. "/out"):gmatch("(%d+)\t([^\n]*)") do said[tonumber(code)] = text end
    h.rmdir(dir)
    for code = 0, 200 do
      local kind
      for _, k in ipairs(errors.kinds) do if k.code == code and k.c then kind = k end end
      assert.equal(kind and kind.strerror or "unknown error", said[code], code)
    end
  end)

  it("is the exit statuses help prints", function()
    local want = {}
    for _, k in ipairs(errors.kinds) do
      if k.only ~= "library" then want[#want + 1] = { tostring(k.code), k.says } end
    end
    assert.same(want, require("connrt.help").exit_statuses())
  end)

  it("is what docs/errors.md, the README's exit code table and the man page say (make errors-doc)", function()
    local res = run({ h.LUA, "tools/errors-doc.lua", "--check" })
    assert.equal(0, res.code, res.stderr)
    local doc = read("docs/errors.md")
    for _, r in ipairs(errors.reasons) do assert.matches("| `" .. r[1] .. "` | `" .. r[2] .. "` |", doc, 1, true) end
    -- the man page's EXIT STATUS entries are the generated ones, every code with its reasons
    local man = read("docs/connrt.1"):match('%.SH "EXIT STATUS"\n(.-)\n%.SH ')
    local entries = man:match("\n%.\\\" exit statuses: generated from lua/connrt/errors%.lua[^\n]*\n(.-)%.\\\" end of")
    assert.is_string(entries, "the man page's exit statuses are not generated")
    local codes = {}
    for code, text in entries:gmatch("%.TP\n%.B (%d+)\n([^\n]*)") do codes[#codes + 1] = tonumber(code)
      local kind
      for _, k in ipairs(errors.kinds) do if k.code == tonumber(code) then kind = k end end
      for _, r in ipairs(errors.reasons) do
        if r[2] == kind.name and kind.raised ~= false then assert.matches(r[1], text, 1, true) end
      end
    end
    local want = {}
    for _, k in ipairs(errors.kinds) do if k.only ~= "library" then want[#want + 1] = k.code end end
    assert.same(want, codes)
  end)

  it("names only its own kinds and reasons where errors are raised, in Lua and in C", function()
    local n = 0
    for _, where in ipairs({ { "lua/connrt", "%.lua$", 'errors%.fail%("(%w+)", "([%w_]+)"' },
        { "src/api", "%.[ch]$", 'connrt_raise%(L, "(%w+)", "([%w_]+)"' } }) do
      for _, path in ipairs(files(where[1], where[2])) do
        for kind, reason in read(path):gmatch(where[3]) do
          assert.equal(kind, errors.reason_kind[reason], path .. ": " .. kind .. "/" .. reason)
          n = n + 1
        end
      end
    end
    -- the reasons C modules hand back with a failure (lmdb.open, listener.open)
    local reason_of = read("src/api/store.c"):match("static const char %*reason_of%(int rc%) (%b{})")
    local returned = {}
    for reason in reason_of:gmatch('return "([%w_]+)";') do returned[#returned + 1] = reason end
    assert.same({ "damaged", "full", "io" }, returned)
    local in_use, other = read("src/api/listener.c"):match('e == EADDRINUSE %? "([%w_]+)" : "([%w_]+)"')
    for _, reason in ipairs(returned) do assert.equal("store", errors.reason_kind[reason], reason) end
    assert.same({ "in_use", "connect", "connect" }, { in_use, errors.reason_kind[in_use], errors.reason_kind[other] })
    assert.truthy(n > 40, n)
  end)

  it("is the provider's own word for a refused grant: the error code, or hooks.token_response's third value", function()
    local oauth, connector = require("connrt.oauth"), require("connrt.connector")
    local function reason_of(c, status, body)
      local raw = { status = status, headers = { { name = "Content-Type", value = "application/json" } },
        header = { ["content-type"] = "application/json" }, body = cjson.encode(body) }
      local ok, e = pcall(oauth.fetch_token, c, nil, "refresh at https://x.test/token", raw, "refresh_token")
      assert.is_false(ok)
      assert.is_true(errors.is(e), tostring(e))
      return e.reason, e.message
    end
    local plain = connector.load_source(prov.connector(), "plain.lua")
    assert.equal("invalid_grant", reason_of(plain, 400, { error = "invalid_grant" }))
    -- a description that names invalid_grant is not the code
    assert.equal("rejected", reason_of(plain, 400, { error = "invalid_request", error_description = ": invalid_grant" }))
    local strava = connector.load("connectors/strava.lua")
    local r, msg = reason_of(strava, 400, { message = "Bad Request",
      errors = { { resource = "RefreshToken", field = "refresh_token", code = "invalid" } } })
    assert.equal("invalid_grant", r, msg)
    assert.equal("rejected", reason_of(strava, 400, { message = "Bad Request",
      errors = { { resource = "Application", field = "client_id", code = "invalid" } } }))
    local fitbit = connector.load("connectors/fitbit.lua")
    assert.equal("invalid_grant", reason_of(fitbit, 400, { success = false,
      errors = { { errorType = "invalid_grant", message = "Refresh token invalid" } } }))
    local twitch = connector.load("connectors/twitch.lua")
    assert.equal("invalid_grant", reason_of(twitch, 400, { status = 400, message = "Invalid refresh token" }))
    assert.equal("rejected", reason_of(twitch, 400, { status = 400, message = "invalid client secret" }))
    local zoho = connector.load("connectors/zoho.lua")
    assert.equal("invalid_grant", reason_of(zoho, 200, { error = "invalid_code" }))
  end)

  it("is never read back from a message's text", function()
    -- the ways it was: cli.lua matched "store: ...", connection.lua ": invalid_grant",
    -- page.lua access_denied, expired, timed out and state; check.lua the schema's "did
    -- you mean" and "unknown key", "is required", and stripped the path and "check: " off
    -- the loader's messages (connector.problems gives problem, suggest and detail now)
    local n = 0
    for _, path in ipairs(files("lua/connrt", "%.lua$")) do
      local src = read(path)
      n = n + 1
      for _, bad in ipairs({ ".message:find(", ".message:match(", 'match("^store: ', '": invalid_grant"',
          "recognize(", 'has("', "message:match(", "message:find(", "message:gsub(", 'message == "',
          'msg:gsub("^" ..', 'err:gsub("^' }) do
        assert.is_nil(src:find(bad, 1, true), path .. " reads an error's text: " .. bad)
      end
    end
    assert.truthy(n > 30, n)
  end)

  it("gives connrt check the loader's problems as data: the key, the schema's suggestion, the detail", function()
    local connector, check = require("connrt.connector"), require("connrt.check")
    local problems = connector.problems({ id = "x", titel = "X" }, "x.lua")
    local by_key = {}
    for _, p in ipairs(problems) do by_key[p.key] = p end
    assert.same({ "schema", "unknown_key", "title" }, { by_key.titel.kind, by_key.titel.problem, by_key.titel.suggest })
    assert.same({ "schema", "required" }, { by_key.allowed_urls.kind, by_key.allowed_urls.problem })
    -- a connector error keeps its message without the path, and its key
    local ok, e = pcall(connector.load_source, prov.connector():gsub("test = ", "test = \"{{x\" or "), "y.lua")
    assert.is_false(ok)
    assert.same({ "connector", "invalid_connector", "test" }, { e.kind, e.reason, e.key }, e.message)
    assert.equal("y.lua: " .. e.detail, e.message)
    assert.is_nil(e.detail:find("y.lua", 1, true), e.detail)
    -- and check shows them at their keys, with hints from the data
    local found = {}
    for _, f in ipairs(check.check_source("return { id = 'x', titel = 'X' }", "z.lua")) do found[f.key] = f end
    assert.equal("rename it to title", found.titel.hint)
    assert.matches("^add a name template", found.name.hint)
    found = {}
    for _, f in ipairs(check.check_source("return {", "z.lua")) do found[f.key] = f end
    assert.matches("^syntax error: line ", found["(file)"].message)
  end)
end)

describe("the reason of a failure, the same through Lua, --json and libconnrt #integration", function()
  local p, home, id, tmp, api_script

  -- The Lua API (`require "connrt"` in a plain lua5.4): {kind, reason, message, is}.
  local function lua_api(env, op, ref, url, timeout)
    local res = run({ h.LUA, api_script, op, ref or "", url or "", tostring(timeout or "") }, env)
    assert.equal(0, res.code, res.stderr)
    return cjson.decode(res.stdout)
  end

  -- `connrt --json ARGS...`: the exit code and the last line on stderr, decoded.
  local function cli(env, args)
    local res = run({ h.shell_quote(h.CONNRT), "--json", table.unpack(args) }, env)
    local doc = cjson.decode(res.stderr:match("([^\n]*)\n?$"))
    return res.code, doc.error, res.stderr
  end

  -- examples/pipeline (libconnrt): the exit code (the connrt_code) and the reason.
  local function lib(env, ref, what)
    local res = run({ h.shell_quote(h.BUILD .. "/examples/pipeline"), ref, what }, env)
    return res.code, res.stderr:match("; reason: ([%w_]+)%)"), res.stderr
  end

  -- Checks one failure all three ways.
  local function all_ways(env, kind, reason, ways)
    local code = errors.exit_codes[kind]
    if ways.lua then
      local e = lua_api(env, table.unpack(ways.lua))
      assert.same({ kind, reason, true }, { e.kind, e.reason, e.is }, e.message)
    end
    if ways.cli then
      local c, e, err = cli(env, ways.cli)
      assert.equal(code, c, err)
      assert.same({ kind, reason }, { e.kind, e.reason }, err)
      assert.matches("^connrt: ", err)
    end
    if ways.lib then
      local c, r, err = lib(env, table.unpack(ways.lib))
      assert.equal(code, c, err)
      assert.equal(reason, r, err)
    end
  end

  local function env_of(dir, extra)
    local e = { CONNRT_HOME = dir }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function copy()
    local dir = h.tmpdir()
    assert(os.execute(("cp -a %s/. %s/"):format(h.shell_quote(home), h.shell_quote(dir))))
    return dir
  end

  setup(function()
    p = prov.start()
    tmp = h.tmpdir()
    local path = tmp .. "/trusty.lua"
    h.write(path, prov.connector())
    home, id = prov.connect(p, path)
    api_script = tmp .. "/api.lua"
    h.write(api_script, ([[
      package.cpath = %q .. "/?.so;" .. package.cpath
      local connrt = require("connrt")
      local cjson = require("cjson")
      local op, ref, url, timeout = arg[1], arg[2], arg[3], tonumber(arg[4])
      local ok, err = pcall(function()
        if op == "list" then return connrt.list() end
        local c = connrt.connection(ref)
        if op == "token" then return c:token() end
        if op == "refresh" then return c:refresh() end
        return c:request({ url = url, timeout = timeout })
      end)
      assert(not ok, "no failure")
      print(cjson.encode({ kind = type(err) == "table" and err.kind or nil,
        reason = type(err) == "table" and err.reason or nil, message = tostring(err), is = connrt.errors.is(err) }))
    ]]):format(h.BUILD))
  end)

  teardown(function()
    if p and p.stop then p.stop() end
    h.rmdir(tmp)
    h.rmdir(home)
  end)

  after_each(function() if p.stop then p.mode({ refresh = "ok", api = "ok", size = 0 }) end end)

  it("locked: another process holds the store's write lock (was a string, and code 70 in C)", function()
    local dir = h.tmpdir()
    local release = h.hold_write_lock(dir, prov.DBS) -- a store being created: its first open writes
    finally(function() release() h.rmdir(dir) end)
    all_ways(env_of(dir, { CONNRT_LOCK_TIMEOUT = "1" }), "store", "locked",
      { lua = { "list" }, cli = { "show", "x" }, lib = { "x", "--token" } })
  end)

  it("damaged: data.mdb is not an LMDB file", function()
    local dir = copy()
    finally(function() h.rmdir(dir) end)
    h.write(dir .. "/data.mdb", string.rep("\165", 65536))
    all_ways(env_of(dir), "store", "damaged", { lua = { "list" }, cli = { "list" }, lib = { id, "--token" } })
  end)

  it("wrong_key: the store is sealed with another key", function()
    all_ways(env_of(home, { CONNRT_KEY = string.rep("ab", 32) }), "store", "wrong_key",
      { lua = { "token", id }, cli = { "token", id }, lib = { id, "--token" } })
  end)

  it("unsafe_mode: others may reach the store directory", function()
    local dir = copy()
    finally(function() h.rmdir(dir) end)
    assert(os.execute("chmod 755 " .. h.shell_quote(dir)))
    all_ways(env_of(dir), "store", "unsafe_mode", { lua = { "token", id }, cli = { "token", id }, lib = { id, "--token" } })
  end)

  it("no_connection", function()
    all_ways(env_of(home), "notfound", "no_connection",
      { lua = { "token", "nope" }, cli = { "token", "nope" }, lib = { "nope", "--token" } })
  end)

  it("refused_url: a URL outside the allowed URLs", function()
    all_ways(env_of(home), "refused", "refused_url", { lua = { "request", id, "https://evil.test/x" },
      cli = { "request", id, "https://evil.test/x" }, lib = { id, "https://evil.test/x" } })
  end)

  it("needs_reconnect: a refresh answered invalid_grant (was found by the message's text)", function()
    local dir = copy()
    finally(function() h.rmdir(dir) end)
    p.mode({ refresh = "invalid_grant", api = "unauthorized" })
    all_ways(env_of(dir), "provider", "needs_reconnect", { lua = { "refresh", id }, cli = { "refresh", id },
      lib = { id, "/things" } })
    local res = run({ h.shell_quote(h.CONNRT), "list", "--json" }, env_of(dir))
    assert.is_true(cjson.decode(res.stdout)[1].needs_reconnect, res.stdout)
  end)

  it("too_big: a refresh answer larger than a token endpoint's limit", function()
    local dir = copy()
    finally(function() h.rmdir(dir) end)
    p.mode({ refresh = "big", size = 2 * 1024 * 1024, api = "unauthorized" })
    all_ways(env_of(dir), "provider", "too_big", { lua = { "refresh", id }, cli = { "refresh", id },
      lib = { id, "/things" } })
  end)

  it("timeout: no answer within a request's timeout", function()
    p.mode({ api = "slow" })
    all_ways(env_of(home), "network", "timeout", { lua = { "request", id, "/slow", 1 } })
  end)

  it("in_use: the redirect listener's address is taken", function()
    local l = assert(require("connrt.listener").open("127.0.0.1", 0))
    local port = l:port()
    finally(function() l:close() end)
    local dir = h.tmpdir()
    finally(function() h.rmdir(dir) end)
    local env = prov.env(dir, { CONNRT_REDIRECT_URL = ("http://127.0.0.1:%d/callback"):format(port) })
    local c, e, err = cli(env, { "run", tmp .. "/trusty.lua", "--field", "server=" .. p.origin, "--client-id",
      prov.CLIENT_ID, "--no-browser", "--timeout", "5" })
    assert.equal(errors.exit_codes.connect, c, err)
    assert.same({ "connect", "in_use" }, { e.kind, e.reason }, err)
  end)

  it("bad_argument: a wrong command line", function()
    local c, e = cli(env_of(home), { "token" })
    assert.equal(2, c)
    assert.same({ "usage", "bad_argument" }, { e.kind, e.reason })
    -- without --json, the human line alone
    local res = run({ h.shell_quote(h.CONNRT), "token" }, env_of(home))
    assert.equal("connrt: usage: connrt token ID\n", res.stderr)
  end)

  it("unreachable: the server is gone (last: it stops the provider)", function()
    p.stop()
    p.stop = nil
    all_ways(env_of(home), "network", "unreachable", { lua = { "request", id, "/x" }, cli = { "request", id, "/x" },
      lib = { id, "/x" } })
  end)
end)
