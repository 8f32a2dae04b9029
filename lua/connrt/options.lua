--- options.lua - every command's options, defined once. The parser (cli.lua), the help
-- (help.lua, and through it the man page's check) and the bash completion
-- (completions/connrt.bash, written by `make completion` with tools/completion.lua) are
-- all made from this table; spec/options_spec.lua checks they agree.
--
-- An option: its names (`"-H, --header"`: every spelling, the last the long one), `arg`
-- (what its value is called; nil for a flag), `many` (repeatable: the parser collects
-- a list), `file` (its value is a file name, for the completion) and `text` (its help).
local M = {}

-- Options `run` and `authorize` share.
local FIELD = { "--field", arg = "KEY=VALUE", many = true, text = "a connector field (repeatable); a secret field "
  .. "can come from the environment instead, as CONNRT_FIELD_<KEY>, to keep it off the command line" }
local FIELD_FILE = { "--field-file", arg = "KEY=PATH", many = true,
  text = "a field's value read from a file (repeatable; for secrets)" }
local CLIENT_ID = { "--client-id", arg = "ID",
  text = "the app's client id (or CONNRT_CLIENT_ID); remembered per connector, so it is given once; a connector "
    .. "that registers its app on each server (Mastodon) needs none" }
local CLIENT_SECRET_FILE = { "--client-secret-file", arg = "PATH", file = true,
  text = "a file holding the client secret (or CONNRT_CLIENT_SECRET); remembered, sealed" }
local CLIENT_SECRET = { "--client-secret", arg = "SECRET", text = "the client secret itself (visible to other "
  .. "local users: prefer the file or the environment)" }
local SCOPE = { "--scope", arg = "SCOPE", many = true,
  text = "ask for SCOPE as well as the connector's scopes (repeatable)" }
local PARAM = { "--param", arg = "NAME=VALUE", many = true,
  text = "an extra parameter on the sign-in URL (repeatable), e.g. prompt=select_account" }
local TIMEOUT = { "--timeout", arg = "SECONDS", text = "how long to wait for the sign-in (default 300)" }
local NO_BROWSER = { "--no-browser", text = "print the sign-in URL only; do not open a browser" }

--- Options every command takes, before or after the command's name (the parser handles
-- them itself, wherever they stand).
M.GLOBAL = {
  { "-v, --verbose", text = "trace every HTTP request and response on standard error, with tokens, codes, secrets "
    .. "and credential headers shown as [redacted]" },
  { "--json", text = "a failure's last line on standard error is {\"error\": {\"kind\", \"reason\", \"message\"}} "
    .. "(the reasons: docs/errors.md); list, show, run, connect, authorize and request print their result as JSON too" },
  { "--store", arg = "STORE", text = "the store to use: a directory or a postgres:// URL (instead of CONNRT_STORE)" },
}

--- Each command's options, in the order its help lists them; a command not named here
-- takes none.
M.COMMANDS = {
  run = {
    FIELD, FIELD_FILE, CLIENT_ID, CLIENT_SECRET_FILE, CLIENT_SECRET, SCOPE, PARAM,
    { "--paste", text = "do not listen: read the redirected address, the code, or a connrt authorize line from "
      .. "standard input" },
    { "--replace", text = "replace the connection of the same account when it was made through a connector with "
      .. "other endpoints (without it, connrt refuses and saves nothing)" },
    TIMEOUT, NO_BROWSER,
    { "--json", text = "print {\"id\", \"connector\", \"name\", \"unique_id\", \"updated\"} on standard output" },
  },
  authorize = {
    FIELD, FIELD_FILE, CLIENT_ID, CLIENT_SECRET_FILE, CLIENT_SECRET, SCOPE, PARAM, TIMEOUT, NO_BROWSER,
    { "--json", text = "print {\"connector\", \"line\"} on standard output, the line being what connrt run "
      .. "--paste takes" },
  },
  connect = {
    { "--print-connector", text = "print the equivalent connector on standard output instead of connecting" },
    CLIENT_ID, CLIENT_SECRET_FILE, CLIENT_SECRET, SCOPE, PARAM,
    { "--paste", text = "do not listen: read the redirected address or the code from standard input" },
    { "--replace", text = "replace the connection of the same resource when it was made with other endpoints" },
    TIMEOUT, NO_BROWSER,
    { "--json", text = "print {\"id\", \"connector\", \"name\", \"unique_id\", \"updated\"} on standard output" },
  },
  request = {
    { "-H, --header", arg = "'NAME: VALUE'", many = true, text = "a request header (repeatable)" },
    { "-d, --data", arg = "BODY", text = "the request body, sent as it is, as a form (Content-Type: "
      .. "application/x-www-form-urlencoded, as curl -d) unless -H gives a Content-Type" },
    { "--json-body", arg = "JSON", text = "a JSON request body (Content-Type: application/json)" },
    { "-i, --include", text = "print the status line and the response headers before the body" },
    { "--retries", arg = "N", text = "retry a 429 or 503 after its Retry-After, and connection failures of GET, "
      .. "HEAD, PUT, DELETE and OPTIONS, up to N times (default 0)" },
    { "--max-wait", arg = "SECONDS", text = "never wait more than this for retries in all (default 60)" },
    { "--json", text = "print {\"status\", \"headers\", \"body\"}, with a JSON body decoded" },
  },
  update = {
    { "--replace", text = "let the connector send the connection's credentials to origins it did not reach" },
  },
  rekey = {
    { "--new-key-file", arg = "FILE", file = true,
      text = "the new 32-byte key, as 64 hex digits or base64 (or CONNRT_NEW_KEY)" },
  },
  store = {
    { "--from", arg = "STORE", text = "the store to copy from (default: --store, CONNRT_STORE or CONNRT_HOME)" },
    { "--to", arg = "STORE", text = "the store to copy to: a directory or a postgres:// URL" },
    { "--to-key-file", arg = "FILE", file = true, text = "the target's key file (made if missing) instead of CONNRT_KEY" },
  },
  list = {
    { "--json", text = "print a JSON array of the connections (id, connector, name, unique_id, ...; never secrets)" },
  },
  show = {
    { "--json", text = "print it as a JSON object" },
  },
  exec = {
    { "--env", arg = "NAME=ID", many = true, text = "put the credentials of connection ID in variable NAME "
      .. "(repeatable)" },
    { "--mask", text = "replace the tokens with [redacted] in what COMMAND prints, on both streams" },
  },
  ["git-credential"] = {
    { "--connection", arg = "ID", text = "the connection to use (an id, or a connector id with one connection)" },
  },
  ["credential-process"] = {
    { "--format", arg = "json|kubernetes", text = "json (default), or kubernetes: an ExecCredential "
      .. "(client.authentication.k8s.io/v1) for kubectl's exec credential plugins" },
  },
  proxy = {
    { "--socket", arg = "PATH", file = true, text = "the unix socket to listen on" },
    { "--listen", arg = "HOST:PORT", text = "listen on TCP instead (an IP address; 127.0.0.1 for loopback only)" },
    { "--key-file", arg = "PATH", file = true, text = "where the key of a TCP proxy is written (default proxy.key in "
      .. "the store's directory)" },
    { "--connection", arg = "ID", many = true, text = "serve only this connection (repeatable; default: every "
      .. "connection)" },
    { "--workers", arg = "N", text = "worker processes, each with many requests in flight (default: one per CPU, 2 to 64)" },
    { "--max-body", arg = "BYTES", text = "the largest request body (default 10 MiB; more answers 413)" },
    { "--max-response", arg = "BYTES", text = "the largest streamed response body (default 1 GiB; more cuts the "
      .. "connection)" },
    { "--timeout", arg = "SECONDS", text = "how long an upstream may take (default 60; `connrt request` through "
      .. "CONNRT_PROXY waits as long as it does direct)" },
    { "--idle", arg = "SECONDS", text = "how long a client may stay silent, or take to send a whole request from "
      .. "its first byte (default 60)" },
    { "--refresh-ahead", arg = "SECONDS", text = "refresh a token this long before the refresh margin (default a "
      .. "quarter of its lifetime, at most 60; never more than half its lifetime before expiry, margin included)" },
  },
}

--- The spellings of option `o` ("-H", "--header").
function M.names_of(o)
  local out = {}
  for n in o[1]:gmatch("[^, ]+") do out[#out + 1] = n end
  return out
end

--- The options of command `cmd` ({} for a command that takes none).
function M.of(cmd)
  return M.COMMANDS[cmd] or {}
end

--- What the parser takes for `cmd`, its own options and the global ones: each spelling
-- without its dashes ("H", "header") to "flag", "value" or "multi" (a repeatable value,
-- collected in a list).
function M.kinds(cmd)
  local out = {}
  for _, list in ipairs({ M.GLOBAL, M.of(cmd) }) do
    for _, o in ipairs(list) do
      local kind = not o.arg and "flag" or o.many and "multi" or "value"
      for _, n in ipairs(M.names_of(o)) do out[n:gsub("^%-%-?", "")] = kind end
    end
  end
  return out
end

return M
