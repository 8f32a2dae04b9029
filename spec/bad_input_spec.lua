-- luacheck: std +busted
-- A table of hostile and broken input (issue 7): connector scripts, command-line
-- arguments, callbacks, token responses, test API responses, refresh responses and store
-- problems. Every case runs `connrt` as a real process and expects a clear message that
-- says what was wrong and where, a non-zero exit code (errors.lua), and a store exactly
-- as it was. The store holds two connections made through the real flow once: one at the
-- real authorization server (oidc-provider), one at spec/support/hostile-server.mjs, the
-- loopback provider that answers badly on purpose (what oidc-provider never sends).
local h = require("support.helpers")
local errors = require("connrt.errors")
local exit = errors.exit_codes

local EXAMPLE = h.read("examples/local-oidc.lua")

-- The connector of the hostile provider; the sign-in is steered with --param (see
-- hostile-server.mjs).
local HOSTILE = [[
return {
  id = "hostile", title = "Hostile",
  fields = { { key = "server", required = true } },
  issuer = "{{server}}",
  authorize_url = "{{server}}/auth",
  token_url = "{{server}}/token",
  scopes = { "read" },
  test = "/me",
  name = "{{name}}",
  unique_id = "{{email}}",
  allowed_urls = { "{{server}}/" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
  %s
}
]]

local ctx = {} -- what setup made: tmp, home, origin, issuer, redirect, paths

-- A file in the spec's temporary directory with `text`; returns its path.
local function file(name, text)
  local path = ctx.tmp .. "/" .. name
  h.write(path, text)
  return path
end

-- The example connector with `from` replaced by `to` (plain text), saved as `name`.
local function example_with(name, from, to)
  local s, e = EXAMPLE:find(from, 1, true)
  assert(s, "not in the example: " .. from)
  return file(name, EXAMPLE:sub(1, s - 1) .. to .. EXAMPLE:sub(e + 1))
end

-- `connrt run CONNECTOR` with a client, no browser and a short timeout.
local function run_connector(path, ...)
  return { "run", path, "--client-id", "c", "--no-browser", "--timeout", "2", "--field",
    "server=http://127.0.0.1:9", ... }
end

-- A sign-in at the hostile provider steered by --param values.
local function hostile(...)
  local args = { "run", ctx.hostile_path, "--field", "server=" .. ctx.origin, "--client-id", "hostile-client",
    "--timeout", "5" }
  for _, p in ipairs({ ... }) do args[#args + 1] = "--param" args[#args + 1] = p end
  return args
end

-- The hostile provider's device authorization, answered as `mode` says (DEVICE in
-- hostile-server.mjs); polled for at most `timeout` seconds.
local DEVICE = [[
return {
  id = "hostile-device", title = "Hostile device", auth = "device_code",
  fields = { { key = "server", required = true }, { key = "mode", required = true } },
  device_url = "{{server}}/device/{{mode}}", token_url = "{{server}}/token",
  test = "/me", name = "{{name}}", unique_id = "{{email}}",
  allowed_urls = { "{{server}}/" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
}
]]
local function device(mode, timeout)
  return { "run", ctx.device_path, "--field", "server=" .. ctx.origin, "--field", "mode=" .. mode,
    "--client-id", "hostile-client", "--no-browser", "--timeout", tostring(timeout or 2) }
end

-- A copy of the shared store to damage; returns its directory.
local function store_copy()
  local dir = h.tmpdir()
  assert(os.execute(("cp -a %s/. %s/"):format(h.shell_quote(ctx.home), h.shell_quote(dir))))
  return dir
end

-- Overwrites `path` from byte `from` (0-based) to its end with `byte`.
local function scribble(path, from, byte)
  local s = assert(h.read(path))
  h.write(path, s:sub(1, from) .. string.rep(byte, #s - from))
end

-- The store at `dir` with every connection's sealed secrets replaced by `blob`; returns dir.
local function reseal(dir, blob)
  local lmdb = require("connrt.lmdb")
  local env = assert(lmdb.open(dir, { "connections", "secrets", "accounts", "clients", "connectors", "leases", "meta" }, {}))
  local txn = env:begin(true)
  for _, kv in ipairs(txn:list("secrets")) do txn:put("secrets", kv[1], blob) end
  txn:commit()
  env:close()
  return dir
end

local function set_refresh(mode)
  local r = assert(require("connrt.http").client():request({ url = ctx.origin .. "/_mode?refresh=" .. mode }))
  assert(r.status == 200)
end

local ROOT = h.ROOT

-- Every case: group, name, args (a table or function() -> table), code (errors.lua),
-- msg (plain text, or function() -> text, that stderr must contain), reason (errors.lua:
-- every case runs with --json, and a failure's last line on stderr must carry its kind
-- and a reason of that kind; this one when given), and optionally
-- home (function() -> a store directory to run in and check; default the shared one),
-- env (extra variables), runner (a wrapper program instead of build/connrt), logical
-- (compare the store's contents rather than its bytes: a refresh takes the connection's
-- lease in a write transaction of its own, so the file's bytes change by design),
-- changes (the case connects: its store must hold the new connection; with a home of its
-- own), timeout (seconds after which connrt is killed: for what must not hang),
-- before (function() run first), after (function(res, home) for more checks), cleanup
-- (function() run at the end, passed or not).
local CASES = {
  -- connector scripts ------------------------------------------------------------------
  { "connector", "a syntax error names the file and line", code = exit.connector, reason = "invalid_connector",
    args = function() return run_connector(file("syntax.lua", "return {\n  id = 'x',\n  = 3\n}\n")) end,
    msg = function() return ctx.tmp .. "/syntax.lua: syntax error: line 3:" end },
  { "connector", "an error while loading names the file and line", code = exit.connector,
    args = function() return run_connector(file("runtime.lua", "local t = nil\nreturn { id = t.id }\n")) end,
    msg = function() return ctx.tmp .. "/runtime.lua: error while loading: " .. ctx.tmp .. "/runtime.lua:2: attempt to index a nil value" end },
  { "connector", "a script that returns a number is not a connector (check)", code = exit.connector,
    args = function() return { "check", file("number.lua", "return 42\n") } end,
    msg = "returns number, not a connector table", stdout = true },
  { "connector", "a table that misses required keys", code = exit.connector, reason = "invalid_connector",
    args = function() return run_connector(file("minimal.lua", "return { id = 'minimal' }\n")) end,
    msg = "minimal.lua: key 'allowed_urls': is required; key 'name': is required" },
  { "connector", "a URL of the wrong type", code = exit.connector,
    args = function() return run_connector(example_with("urltype.lua", '"{{server}}/token"', "42")) end,
    msg = "urltype.lua: key 'token_url': expected a string, got number" },
  { "connector", "a token URL over plain http to a public host", code = exit.connector,
    args = function() return run_connector(example_with("plainhttp.lua", '"{{server}}/token"', '"http://example.com/token"')) end,
    msg = "plainhttp.lua: token_url http://example.com/token: plain http is allowed only for loopback hosts" },
  { "connector", "a URL that is not http(s)", code = exit.connector,
    args = function() return run_connector(example_with("ftp.lua", '"{{server}}/token"', '"ftp://x/token"')) end,
    msg = 'ftp.lua: token_url: invalid URL "ftp://x/token": scheme must be http or https' },
  { "connector", "an unknown key", code = exit.connector,
    args = function() return run_connector(example_with("unknown.lua", "pkce = true,", "pkce = true, frobnicate = 1,")) end,
    msg = "unknown.lua: key 'frobnicate': unknown key" },
  { "connector", "a value outside its choices", code = exit.connector,
    args = function() return run_connector(example_with("enum.lua", 'client_auth = "basic"', 'client_auth = "pigeon"')) end,
    msg = "enum.lua: key 'client_auth': expected one of" },
  { "connector", "a URL template naming no field", code = exit.connector,
    args = function() return run_connector(example_with("nofield.lua", '"{{server}}/token"', '"{{nope}}/token"')) end,
    msg = "nofield.lua: token_url uses {{nope}}, which is not a field of this connector (fields: server)" },
  { "connector", "a unique id made of a secret", code = exit.connector,
    args = function() return run_connector(example_with("secretid.lua", '"{{email}}"', '"{{access_token}}"')) end,
    msg = "secretid.lua: unique_id uses {{access_token}}, a secret value" },
  { "connector", "no allowed URL", code = exit.connector,
    args = function() return run_connector(example_with("noallowed.lua", 'allowed_urls = { "{{server}}/" }', "allowed_urls = {}")) end,
    msg = "noallowed.lua: key 'allowed_urls': needs at least one URL" },
  { "connector", "a connector file that does not exist", code = exit.connector, reason = "invalid_connector",
    args = function() return run_connector(ctx.tmp .. "/missing.lua") end,
    msg = function() return "cannot read connector: " .. ctx.tmp .. "/missing.lua" end },
  { "connector", "os.execute is not in the sandbox (and nothing runs)", code = exit.connector,
    args = function()
      return run_connector(example_with("execute.lua", "return {", 'os.execute("touch ' .. ctx.tmp .. '/pwned")\nreturn {'))
    end,
    msg = "execute.lua: error while loading: ", after = function(res)
      assert.matches("connectors run in a sandbox", res.stderr, 1, true)
      assert.is_nil(h.read(ctx.tmp .. "/pwned"), "the connector's os.execute ran")
    end },
  { "connector", "io is not in the sandbox", code = exit.connector,
    args = function() return run_connector(example_with("io.lua", "return {", 'local secret = io.open("/etc/passwd"):read("a")\nreturn {')) end,
    msg = "io.lua:4: attempt to index a nil value (global 'io')" },
  { "connector", "require is not in the sandbox", code = exit.connector,
    args = function() return run_connector(example_with("require.lua", "return {", 'local sys = require("connrt.sys")\nreturn {')) end,
    msg = "require.lua:4: attempt to call a nil value (global 'require')" },
  { "connector", "a loop that never ends is stopped", code = exit.connector,
    args = function() return run_connector(example_with("loop.lua", "return {", "while true do end\nreturn {")) end,
    msg = "loop.lua: error while loading: ", after = function(res)
      assert.matches("loop.lua:4: instruction budget exceeded (a loop that never ends?)", res.stderr, 1, true)
    end },
  { "connector", "a hook that raises names the hook", code = exit.connector, reason = "hook_failed",
    args = function()
      local p = file("hook-error.lua", HOSTILE:format('hooks = { token_response = function() error("no idea") end },'))
      local a = hostile()
      a[2] = p
      return a
    end,
    msg = "hook-error.lua: hooks.token_response failed: " },
  { "connector", "a hook that returns the wrong type", code = exit.provider,
    args = function()
      local p = file("hook-type.lua", HOSTILE:format('hooks = { token_response = function() return "a token" end },'))
      local a = hostile()
      a[2] = p
      return a
    end,
    msg = "(through hooks.token_response): expected a token table, got string" },
  { "connector", "a hook that loops is stopped", code = exit.connector, reason = "hook_failed",
    args = function()
      local p = file("hook-loop.lua", HOSTILE:format("hooks = { token_response = function() while true do end end },"))
      local a = hostile()
      a[2] = p
      return a
    end,
    msg = "hook-loop.lua: hooks.token_response failed: ", after = function(res)
      assert.matches("hook-loop.lua:13: instruction budget exceeded", res.stderr, 1, true)
    end },

  -- command-line arguments ----------------------------------------------------------
  { "command line", "an unknown command", code = exit.usage, reason = "bad_argument", args = { "frobnicate" },
    msg = 'unknown command "frobnicate"' },
  { "command line", "an unknown option", code = exit.usage, reason = "bad_argument", args = { "list", "--bogus" },
    msg = "unknown option --bogus" },
  { "command line", "an option without its value", code = exit.usage, reason = "bad_argument",
    args = { "run", "examples/local-oidc.lua", "--field" }, msg = "--field needs a value" },
  { "command line", "a flag given a value", code = exit.usage, reason = "bad_argument", args = { "list", "--json=yes" },
    msg = "--json takes no value" },
  { "command line", "--field without KEY=VALUE", code = exit.usage, reason = "bad_argument",
    args = { "run", "examples/local-oidc.lua", "--field", "server" }, msg = "--field server: expected KEY=VALUE" },
  { "command line", "--field naming no field of the connector", code = exit.usage,
    args = { "run", "examples/local-oidc.lua", "--field", "region=eu", "--client-id", "c" },
    msg = "--field region: examples/local-oidc.lua has no such field (fields: server)" },
  { "command line", "a field value outside its pattern", code = exit.usage,
    args = { "run", "examples/local-oidc.lua", "--field", "server=ftp:nothing", "--client-id", "c" },
    msg = "field server: " },
  { "command line", "a timeout that is not a number", code = exit.usage, reason = "bad_argument",
    args = { "run", "examples/local-oidc.lua", "--timeout", "soon" }, msg = "--timeout soon: expected a number of seconds" },
  { "command line", "--param naming a parameter connrt sets", code = exit.usage,
    args = function() return hostile("state=forged") end, msg = "--param state: connrt sets this parameter itself" },
  { "command line", "a client secret file that does not exist", code = exit.usage,
    args = function() return run_connector("examples/local-oidc.lua", "--client-secret-file", ctx.tmp .. "/no-secret") end,
    msg = function() return "--client-secret-file: " .. ctx.tmp .. "/no-secret: No such file or directory" end },
  { "command line", "a public redirect URL without a proxy", code = exit.usage,
    args = function() return run_connector("examples/local-oidc.lua") end,
    env = { CONNRT_REDIRECT_URL = "https://example.com/cb" },
    msg = "CONNRT_REDIRECT_URL https://example.com/cb: the listener serves plain http on a loopback address" },
  { "command line", "a connector memory limit too small for a Lua state", code = exit.usage, reason = "bad_limit",
    args = function() return run_connector("examples/local-oidc.lua") end, env = { CONNRT_CONNECTOR_MEMORY = "0.001" },
    msg = "CONNRT_CONNECTOR_MEMORY and CONNRT_CONNECTOR_CPU: the connector sandbox's memory limit of 1048 bytes is too small" },
  { "command line", "a connector memory limit too small to start a connector (check)", code = exit.usage,
    reason = "bad_limit", args = { "check", "examples/local-oidc.lua" }, env = { CONNRT_CONNECTOR_MEMORY = "0.05" },
    msg = "is too small to start a connector" },
  { "command line", "a connector CPU limit out of range", code = exit.usage, reason = "bad_limit",
    args = function() return run_connector("examples/local-oidc.lua") end, env = { CONNRT_CONNECTOR_CPU = "1e6" },
    msg = "the connector sandbox's cpu limit 1000000.0 is out of range (at most 86400.0)" },
  { "command line", "too many arguments", code = exit.usage, args = { "show", "a", "b" },
    msg = "usage: connrt show ID [--json]" },
  { "command line", "a connection that does not exist", code = exit.notfound, reason = "no_connection", args = { "token", "nope" },
    msg = "no connection nope (connrt list shows them)" },
  { "command line", "request: an answer with status 404 (the body printed, exit 5, the error line)",
    code = exit.provider, reason = "http_status", args = { "request", "local-oidc", "/no-such-thing" },
    msg = "/no-such-thing answered 404" },
  { "command line", "request: a URL that is not a URL", code = exit.refused,
    args = { "request", "local-oidc", "not a url" }, msg = 'invalid URL "' },
  { "command line", "request: a scheme that is not http(s)", code = exit.refused,
    args = { "request", "local-oidc", "ftp://x/y" }, msg = 'refused ftp://x/y: invalid URL "ftp://x/y": scheme must be http or https' },
  { "command line", "request: a URL outside the allowed URLs", code = exit.refused, reason = "refused_url",
    args = { "request", "local-oidc", "http://evil.example/steal" },
    msg = "refused http://evil.example/steal: it matches none of the allowed URLs" },
  { "command line", "request: an encoded dot in the path, named as one", code = exit.refused,
    args = { "request", "local-oidc", "/a/%2e%2e/b" }, msg = "the path has an encoded '.' (%2E)" },
  { "command line", "request: a GET with a body (-d): refused before anything is sent", code = exit.usage,
    args = { "request", "local-oidc", "GET", "/me", "-d", "x" }, msg = "a GET request cannot have a body" },
  { "command line", "request: a HEAD with a JSON body", code = exit.usage,
    args = { "request", "local-oidc", "HEAD", "/me", "--json-body", "{}" }, msg = "a HEAD request cannot have a body" },
  { "command line", "token: an empty connection id", code = exit.usage,
    args = { "token", "" }, msg = "the connection id is empty" },
  { "command line", "show: an id longer than any a store can hold", code = exit.notfound,
    args = { "show", ("x"):rep(600) }, msg = "no connection xxxx" },
  { "command line", "request: a header without a colon", code = exit.usage,
    args = { "request", "local-oidc", "/me", "-H", "nocolon" }, msg = "-H \"nocolon\": expected 'Name: value'" },
  { "command line", "request: a JSON body that is not JSON", code = exit.usage,
    args = { "request", "local-oidc", "/me", "--json-body", "{" }, msg = "--json-body: not valid JSON" },
  { "command line", "request: -d and --json-body together", code = exit.usage,
    args = { "request", "local-oidc", "/me", "-d", "a=1", "--json-body", "{}" }, msg = "give -d or --json-body, not both" },
  { "command line", "request: retries that are not a number", code = exit.usage,
    args = { "request", "nope", "/me", "--retries", "many" }, msg = "--retries many: expected a number" },
  { "command line", "request: a negative wait", code = exit.usage,
    args = { "request", "local-oidc", "/me", "--max-wait", "-3" }, msg = "--max-wait -3: expected a number" },
  { "command line", "a pipeline script that fails names itself and the line", code = exit.failed, reason = "script",
    args = function() return { "script", file("pipe-error.lua", "local n = connrt.list()\nlocal x = nil\nreturn x.y\n") } end,
    msg = function()
      local p = ctx.tmp .. "/pipe-error.lua"
      return "pipeline script " .. p .. " failed: " .. p .. ":3: attempt to index a nil value"
    end },
  { "command line", "help for a command that does not exist", code = exit.usage, reason = "bad_argument", args = { "help", "frob" },
    msg = 'no command "frob"' },

  -- callbacks -------------------------------------------------------------------------
  { "callback", "the app answers with an error", code = exit.connect, reason = "sign_in_error", args = function() return hostile("cb=error") end,
    msg = "the app answered the sign-in with an error: server_error: the database is down; nothing was saved" },
  { "callback", "the user denies access", code = exit.connect, reason = "denied", args = function() return hostile("cb=deny") end,
    msg = "authorization denied: access_denied; nothing was saved" },
  { "callback", "a callback without a code", code = exit.connect, reason = "no_code", args = function() return hostile("cb=nocode") end,
    msg = "the callback carries no code; nothing was saved" },
  { "callback", "a callback from another issuer", code = exit.connect, reason = "mix_up", args = function() return hostile("cb=iss") end,
    msg = function() return "the callback comes from issuer https://evil.example, not " .. ctx.origin end },
  { "callback", "a callback with a forged state", code = exit.connect, reason = "sign_in_timeout",
    args = function() local a = hostile() a[#a - 2] = "1" return a end, -- --timeout 1
    env = { SIGNIN_REWRITE_STATE = "forged" },
    msg = "1 callback(s) with a wrong or missing state were rejected" },

  -- token responses (the code exchange) ---------------------------------------------
  { "token response", "an HTML page", code = exit.provider, reason = "bad_answer", args = function() return hostile("tok=html") end,
    msg = "/token answered 200 with text/html, not a token response (page title: Sign in again)" },
  { "token response", "JSON without access_token", code = exit.provider, reason = "bad_answer", args = function() return hostile("tok=noaccess") end,
    msg = "/token: the response has no access_token" },
  { "token response", "an empty access_token", code = exit.provider, args = function() return hostile("tok=emptyaccess") end,
    msg = "/token: the response has no access_token" },
  { "token response", "access_token that is a number", code = exit.provider, reason = "bad_answer",
    args = function() return hostile("tok=numaccess") end,
    msg = "/token: access_token is a number, not a string" },
  { "token response", "a negative expires_in", code = exit.provider, args = function() return hostile("tok=negexp") end,
    msg = "/token: expires_in is not a number of seconds: -5" },
  { "token response", "expires_in that is a word", code = exit.provider, args = function() return hostile("tok=strexp") end,
    msg = "/token: expires_in is not a number of seconds: soon" },
  { "token response", "token_type that is an object", code = exit.provider, args = function() return hostile("tok=typetable") end,
    msg = "/token: token_type is a table, not a string" },
  { "token response", "truncated JSON", code = exit.provider, reason = "bad_answer", args = function() return hostile("tok=truncated") end,
    msg = "/token answered 200 with application/json, not a token response" },
  { "token response", "500 without a body", code = exit.provider, args = function() return hostile("tok=empty500") end,
    msg = "/token answered 500 with no content type, not a token response" },
  { "token response", "an error inside a 200", code = exit.provider, reason = "rejected", args = function() return hostile("tok=error200") end,
    msg = "/token answered 200: invalid_request: the scope is missing" },
  { "token response", "a JSON array", code = exit.provider, args = function() return hostile("tok=array") end,
    msg = "/token: the response has no access_token" },
  { "token response", "a form body labelled JSON", code = exit.provider, args = function() return hostile("tok=formasjson") end,
    msg = "/token answered 200 with application/json, not a token response" },
  { "token response", "a body larger than 1 MiB, a token endpoint's limit", code = exit.provider, reason = "too_big",
    args = function() return hostile("tok=huge") end, msg = "/token answered with a body larger than 1048576 bytes" },
  { "token response", "the connection closed without an answer", code = exit.network, reason = "transport",
    args = function() return hostile("tok=hangup") end,
    msg = "/token: no answer from POST " },
  { "token response", "a redirect", code = exit.provider, args = function() return hostile("tok=redirect") end,
    msg = "/token answered 302 with no content type, not a token response" },

  -- test API responses (while connecting) ---------------------------------------------
  { "test API", "500 without a body", code = exit.provider, args = function() return hostile("api=empty500") end,
    msg = "/me answered 500; the connection was not saved" },
  { "test API", "an HTML page", code = exit.provider, reason = "bad_answer", args = function() return hostile("api=html") end,
    msg = "/me answered 200 with text/html, not JSON (page title: Welcome); the connection was not saved" },
  { "test API", "truncated JSON", code = exit.provider, reason = "bad_answer", args = function() return hostile("api=truncated") end,
    msg = "/me answered 200 with a body that is not valid JSON" },
  { "test API", "401 for the new token", code = exit.provider, args = function() return hostile("api=unauthorized") end,
    msg = "/me answered 401: invalid_token; the connection was not saved" },
  { "test API", "an array where the name template wants an object", code = exit.connector,
    args = function() return hostile("api=array") end, msg = "hostile.lua: name: {{name}} names a value that does not exist" },
  { "test API", "an empty account id", code = exit.provider, args = function() return hostile("api=emptyid") end,
    msg = "hostile.lua: unique_id rendered empty; cannot tell accounts apart" },
  { "test API", "an object where the name wants a value", code = exit.connector, args = function() return hostile("api=nameobj") end,
    msg = "hostile.lua: name: {{name}} is an object or array, not a single value" },
  { "test API", "a redirect outside the allowed URLs", code = exit.refused, reason = "refused_url",
    args = function() return hostile("api=escape") end,
    msg = "redirected to http://127.0.0.2:9/steal, which is refused: it matches none of the allowed URLs" },

  -- device authorizations (RFC 8628): the server's pace and lifetime are bounded, and a
  -- field of the wrong type is the provider's error, not connrt's; `timeout` kills a
  -- connrt that waits as long as the server says (a billion seconds)
  { "device authorization", "an interval of a billion seconds polls within the time left", code = exit.connect,
    timeout = 60, args = function() return device("pending", 2) end, msg = "the sign-in was not completed within 2s" },
  { "device authorization", "a lifetime and interval of a billion seconds: capped, and it connects", code = 0,
    timeout = 60, args = function() return device("slowpoke", 2) end, msg = "enter the code: WDJB-MJHT",
    home = h.tmpdir, changes = true },
  { "device authorization", "an interval of NaN", code = 0, timeout = 60, args = function() return device("nan", 8) end,
    msg = "enter the code: WDJB-MJHT", home = h.tmpdir, changes = true },
  { "device authorization", "an interval and lifetime that are words", code = 0, timeout = 60,
    args = function() return device("wordy", 8) end, msg = "enter the code: WDJB-MJHT", home = h.tmpdir, changes = true },
  { "device authorization", "an error_description that is an object", code = exit.provider, timeout = 60,
    args = function() return device("descobj") end, msg = "/device/descobj answered 400: invalid_client, not a device authorization" },
  { "device authorization", "an error object", code = exit.provider, timeout = 60,
    args = function() return device("errobj") end, msg = "/device/errobj answered 400: 7: client blocked, not a device authorization" },
  { "device authorization", "a user_code that is an object", code = exit.provider, timeout = 60,
    args = function() return device("codeobj") end, msg = "/device/codeobj answered 200, not a device authorization" },
  { "device authorization", "no device_code", code = exit.provider, timeout = 60,
    args = function() return device("nocode") end, msg = "/device/nocode answered 200, not a device authorization" },
  { "device authorization", "a verification_uri that is a file", code = exit.provider, timeout = 60,
    args = function() return device("fileuri") end, msg = 'answered with verification_uri "file:///etc/passwd", not an http(s) URL' },
  { "device authorization", "a verification_uri_complete that is javascript: is not shown", code = 0, timeout = 60,
    args = function() return device("badcomplete", 8) end, msg = "enter the code: WDJB-MJHT", home = h.tmpdir,
    changes = true,
    after = function(res) assert.is_nil(res.stderr:find("javascript", 1, true), res.stderr) end },

  -- refresh responses (connrt refresh of the stored hostile connection) ----------------
}

for _, mode in ipairs({
  { "html", exit.provider, "/token answered 200 with text/html, not a token response (page title: Sign in again)",
    "bad_answer" },
  { "noaccess", exit.provider, "/token: the response has no access_token", "bad_answer" },
  { "numaccess", exit.provider, "/token: access_token is a number, not a string", "bad_answer" },
  { "negexp", exit.provider, "/token: expires_in is not a number of seconds: -5", "bad_answer" },
  { "truncated", exit.provider, "/token answered 200 with application/json, not a token response", "bad_answer" },
  { "empty500", exit.provider, "/token answered 500 with no content type, not a token response", "bad_answer" },
  { "error200", exit.provider, "/token answered 200: invalid_request: the scope is missing", "rejected" },
  { "hangup", exit.network, "/token: no answer from POST ", "transport" },
}) do
  CASES[#CASES + 1] = { "refresh response", "refresh answered: " .. mode[1], code = mode[2], reason = mode[4], logical = true,
    args = { "refresh", "hostile" }, msg = function() return "refresh at " .. ctx.origin .. mode[3] end,
    before = function() set_refresh(mode[1]) end }
end

local STORE_CASES = {
  -- store problems ------------------------------------------------------------------
  -- the SIGBUS path (src/api/store.c): --json's error line too
  { "store", "data.mdb truncated", code = exit.store, reason = "damaged", args = { "list" },
    home = function() local d = store_copy() h.write(d .. "/data.mdb", h.read(d .. "/data.mdb"):sub(1, 12288)) return d end,
    msg = "/data.mdb is damaged: reading it went past its end (truncated or corrupted)" },
  { "store", "data.mdb with garbage after its meta pages", code = exit.store, args = { "show", "local-oidc" },
    home = function() local d = store_copy() scribble(d .. "/data.mdb", 8192, "\90") return d end,
    msg = "/data.mdb is damaged" },
  { "store", "data.mdb that is all garbage", code = exit.store, reason = "damaged", args = { "list" },
    home = function() local d = store_copy() scribble(d .. "/data.mdb", 0, "\165") return d end,
    msg = "MDB_INVALID: File is not an LMDB file" },
  { "store", "the store path is a file", code = exit.store, reason = "io", args = { "list" },
    home = function() local d = h.tmpdir() h.write(d .. "/file", "x") return d .. "/file" end,
    msg = "/file: Not a directory" },
  { "store", "data.mdb is a directory", code = exit.store, args = { "token", "local-oidc" },
    home = function() local d = h.tmpdir() assert(require("connrt.sys").mkdir(d .. "/data.mdb", 448)) return d end,
    msg = "Is a directory" },
  { "store", "the lock file is a directory", code = exit.store, args = { "list" },
    home = function() local d = store_copy() os.remove(d .. "/lock.mdb") assert(require("connrt.sys").mkdir(d .. "/lock.mdb", 448)) return d end,
    msg = "Is a directory" },
  { "store", "a read-only store cannot be changed", code = exit.store, reason = "io", args = { "delete", "local-oidc" },
    home = store_copy, runner = "readonly", msg = "Read-only file system" },
  { "store", "a store directory another user owns", code = exit.store, args = { "list" },
    home = store_copy, runner = "nobody", msg = ": Permission denied" },
  { "store", "a write behind another process's stuck write gives up", code = exit.store, reason = "locked", args = { "delete", "local-oidc" },
    env = { CONNRT_LOCK_TIMEOUT = "1" }, before = function() ctx.release = h.hold_write_lock(ctx.home) end,
    cleanup = function() if ctx.release then ctx.release() ctx.release = nil end end,
    msg = "is locked: another process has held its write lock for 1 s" },
  { "store", "the wrong CONNRT_KEY", code = exit.store, reason = "wrong_key", args = { "token", "local-oidc" },
    env = { CONNRT_KEY = string.rep("ab", 32) }, msg = "cannot decrypt: wrong key?" },
  { "store", "a CONNRT_KEY of the wrong length", code = exit.store, reason = "bad_key", args = { "token", "local-oidc" },
    env = { CONNRT_KEY = "abcd" }, msg = "CONNRT_KEY: the key must be 32 bytes, as 64 hex digits or base64" },
  -- the crypto module's failures a store can cause (src/api/crypto.c answers nil, why; the
  -- store raises them with their reason)
  { "store", "a connection's sealed secrets that do not open", code = exit.store, reason = "damaged",
    args = { "token", "local-oidc" }, home = function() return reseal(store_copy(), ("QUJD"):rep(20)) end,
    msg = "cannot decrypt connection local-oidc-" },
  { "store", "a connection's sealed secrets that are not base64", code = exit.store, reason = "damaged",
    args = { "token", "local-oidc" }, home = function() return reseal(store_copy(), "!!not base64!!") end,
    msg = "cannot decrypt connection local-oidc-" },
  { "store", "a new key (rekey) of the wrong length", code = exit.store, reason = "bad_key", args = { "rekey" },
    env = { CONNRT_NEW_KEY = ("QUJD"):rep(10) .. "QQ==" }, -- 31 bytes
    msg = "CONNRT_NEW_KEY: the key must be 32 bytes, as 64 hex digits or base64" },
  { "store", "a key file with bad contents", code = exit.store, reason = "bad_key", args = { "token", "local-oidc" },
    home = function() local d = store_copy() h.write(d .. "/key", "not a key\n") return d end,
    msg = "/key: the key must be 32 bytes, as 64 hex digits or base64" },
  { "store", "a key file others can read", code = exit.store, reason = "unsafe_mode", args = { "token", "local-oidc" },
    home = function() local d = store_copy() require("connrt.sys").chmod(d .. "/key", 420) return d end,
    msg = "/key has mode 0644: its group or others may read or change the key; chmod 600 " },
  { "store", "the key file is missing", code = exit.store, reason = "wrong_key", args = { "token", "local-oidc" },
    home = function() local d = store_copy() os.remove(d .. "/key") return d end,
    msg = "/key is missing" },
  { "store", "the key file is a directory", code = exit.store, args = { "token", "local-oidc" },
    home = function() local d = store_copy() os.remove(d .. "/key") assert(require("connrt.sys").mkdir(d .. "/key", 448)) return d end,
    msg = "/key is not a file" },
  { "store", "no store yet: show", code = exit.notfound, reason = "no_connection", args = { "show", "local-oidc" },
    home = function() return h.tmpdir() .. "/none" end, msg = "no connection local-oidc: there is no store at " },
  { "store", "no store yet: token", code = exit.notfound, reason = "no_connection", args = { "token", "local-oidc" },
    home = function() return h.tmpdir() .. "/none" end, msg = "no connection local-oidc: there is no store at " },
  { "store", "no store yet: request", code = exit.notfound, args = { "request", "local-oidc", "/me" },
    home = function() return h.tmpdir() .. "/none" end, msg = "no connection local-oidc: there is no store at " },
  { "store", "no store yet: delete", code = exit.notfound, reason = "no_connection", args = { "delete", "x" },
    home = function() return h.tmpdir() .. "/none" end, msg = "no connection x: there is no store at " },
  { "store", "an empty store directory: refresh", code = exit.notfound, args = { "refresh", "x" },
    home = function() return h.tmpdir() end, msg = "no connection x: there is no store at " },
}
for _, c in ipairs(STORE_CASES) do CASES[#CASES + 1] = c end

-- What a failed command must leave alone: the store's files (sha256 of data.mdb and the
-- key) and which entries the directory holds (lock.mdb aside: LMDB's reader table).
local function state(home)
  local s = h.snapshot(home)
  local p = io.popen("ls -A " .. h.shell_quote(home) .. " 2>/dev/null")
  local names = {}
  for n in p:lines() do if n ~= "lock.mdb" then names[#names + 1] = n end end
  p:close()
  s.entries = table.concat(names, " ")
  return s
end

-- Every key and value of every database, read in one read transaction.
local function contents(home)
  local lmdb = require("connrt.lmdb")
  local dbs = { "connections", "secrets", "accounts", "clients", "connectors", "leases", "meta" }
  local env = assert(lmdb.open(home, dbs, {}))
  local txn = env:begin(false)
  local out = {}
  for _, db in ipairs(dbs) do
    for _, kv in ipairs(txn:list(db)) do out[#out + 1] = db .. "/" .. kv[1] .. "=" .. kv[2] end
  end
  txn:abort()
  env:close()
  return table.concat(out, "\n")
end

describe("hostile and broken input #integration", function()
  local server, hostile_server, runners = nil, nil, {}

  setup(function()
    ctx.tmp = h.tmpdir()
    ctx.home = h.tmpdir()
    ctx.redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    server = h.start_server({ redirect = ctx.redirect })
    hostile_server = h.start_node("spec/support/hostile-server.mjs")
    ctx.origin = require("cjson").decode(hostile_server.line).origin
    ctx.hostile_path = file("hostile.lua", HOSTILE:format(""))
    ctx.device_path = file("hostile-device.lua", DEVICE)
    ctx.env = {
      CONNRT_REDIRECT_URL = ctx.redirect,
      CONNRT_BROWSER = h.CONNRT .. " script " .. ROOT .. "/spec/support/browser.lua",
      CONNRT_CLIENT_SECRET = "basic-secret",
    }
    -- the two connections every case must leave as they are, made through the real flow
    local env = { CONNRT_HOME = ctx.home }
    for k, v in pairs(ctx.env) do env[k] = v end
    local res = h.connrt({ "run", "examples/local-oidc.lua", "--field", "server=" .. server.issuer,
      "--client-id", "connrt-basic", "--timeout", "20" }, { env = env })
    assert(res.code == 0, res.stderr)
    res = h.connrt(hostile(), { env = env })
    assert(res.code == 0, res.stderr)
    -- wrappers: a read-only bind mount of the store, and another user than the owner
    local root = (io.popen("id -u"):read("l")) == "0"
    runners.readonly = file("readonly.sh", ([[#!/bin/sh
exec unshare -m sh -c 'mount --bind -o ro "$CONNRT_HOME" "$CONNRT_HOME" && exec %s "$@"' sh "$@"
]]):format(h.CONNRT))
    runners.nobody = file("nobody.sh", ([[#!/bin/sh
exec setpriv --reuid=65534 --regid=65534 --clear-groups %s "$@"
]]):format(h.CONNRT))
    os.execute("chmod 755 " .. runners.readonly .. " " .. runners.nobody)
    runners.usable = root and os.execute("unshare -m true 2>/dev/null") == true
  end)

  teardown(function()
    if server then server.stop() end
    if hostile_server then hostile_server.stop() end
    h.rmdir(ctx.tmp)
    h.rmdir(ctx.home)
  end)

  it("has at least 40 cases in every group", function()
    local groups = {}
    for _, c in ipairs(CASES) do groups[c[1]] = (groups[c[1]] or 0) + 1 end
    assert.truthy(#CASES >= 40, #CASES)
    for _, g in ipairs({ "connector", "command line", "callback", "token response", "test API",
        "refresh response", "store" }) do
      assert.truthy(groups[g] and groups[g] > 0, g)
    end
  end)

  for _, case in ipairs(CASES) do
    it(case[1] .. ": " .. case[2], function()
      if case.runner and not runners.usable then
        pending("needs root and a mount namespace (unshare -m) to make a store read-only or another user's")
        return
      end
      if case.cleanup then finally(case.cleanup) end
      local home = case.home and case.home() or ctx.home
      local env = { CONNRT_HOME = home }
      for k, v in pairs(ctx.env) do env[k] = v end
      for k, v in pairs(case.env or {}) do env[k] = v end
      if case.before then case.before() end
      local before = case.logical and contents(home) or state(home)
      local args = type(case.args) == "function" and case.args() or case.args
      local saved = h.CONNRT
      if case.runner then h.CONNRT = runners[case.runner] end
      local ok, res = pcall(h.connrt, { "--json", table.unpack(args) }, { env = env, timeout = case.timeout })
      h.CONNRT = saved
      assert(ok, res)
      local msg = type(case.msg) == "function" and case.msg() or case.msg
      local out = case.stdout and (res.stdout .. res.stderr) or res.stderr
      assert.equal(case.code, res.code, out)
      assert.matches(msg, out, 1, true)
      assert.is_nil(out:find("stack traceback", 1, true), out)
      assert.is_nil(out:find("internal error", 1, true), out)
      -- the failure as a program reads it: the last line on stderr, kind and reason
      local last = res.stderr:match("([^\n]*)\n?$")
      local doc = require("cjson.safe").decode(last)
      if case.reason or (doc and doc.error) then
        assert.is_table(doc and doc.error, res.stderr)
        assert.equal(case.code, errors.exit_codes[doc.error.kind], last)
        assert.equal(doc.error.kind, errors.reason_kind[doc.error.reason], last)
        if case.reason then assert.equal(case.reason, doc.error.reason, last) end
        assert.matches(msg, doc.error.message, 1, true)
      end
      if case.changes then
        -- a case that connects: in a store of its own, which now holds the connection
        local list = require("cjson").decode(h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } }).stdout)
        assert.equal(1, #list)
        assert.equal("hostile-device", list[1].connector)
      elseif case.logical then
        assert.equal(before, contents(home))
      else
        assert.same(before, state(home))
      end
      if case.after then case.after(res, home) end
      if home ~= ctx.home then h.rmdir(home:match("^(/tmp/[^/]+)")) end
    end)
  end

  it("reads a store while another process holds its write lock", function()
    local release = h.hold_write_lock(ctx.home)
    local before = state(ctx.home)
    local list = h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = ctx.home } })
    local tok = h.connrt({ "token", "local-oidc" }, { env = { CONNRT_HOME = ctx.home } })
    release()
    assert.equal(0, list.code, list.stderr)
    assert.equal(0, tok.code, tok.stderr)
    assert.same(before, state(ctx.home))
  end)

  it("leaves both connections usable", function()
    local res = h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = ctx.home } })
    assert.equal(0, res.code, res.stderr)
    local list = require("cjson").decode(res.stdout)
    assert.equal(2, #list)
    set_refresh("ok")
    res = h.connrt({ "token", "hostile" }, { env = { CONNRT_HOME = ctx.home } })
    assert.equal(0, res.code, res.stderr)
    assert.equal("at.ok\n", res.stdout)
    -- a missing store is not created by the commands that only read one
    local none = h.tmpdir() .. "/none"
    res = h.connrt({ "list" }, { env = { CONNRT_HOME = none } })
    assert.equal(0, res.code, res.stderr)
    assert.equal("no connections\n", res.stdout)
    assert.is_nil(h.read(none .. "/data.mdb"))
    h.rmdir(none:match("^(/tmp/[^/]+)"))
  end)
end)

