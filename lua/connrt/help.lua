--- help.lua - the help texts of the command line, from one description of every
-- command, environment variable and exit status; the options are options.lua's.
--
--   help.usage()          the overview: every command on one line, the environment and
--                         the exit statuses (`connrt help`, `connrt --help`)
--   help.command(name)    one command's whole help: usage, what it does, every option,
--                         examples (`connrt help run`); nil for an unknown command.
--                         Aliases: "--help", "-h" (help), "--version" (version).
--   help.commands()       the command names, in the order of the overview
--   help.options(name)    the option names one command takes ("--field", "-H", ...)
--   help.aliases()        the names that stand for a command ("--help", ...)
--
-- Every text ends with a newline and no line is wider than 80 columns.
local options = require("connrt.options")

local M = {}

local WIDTH = 80

-- the exit statuses: errors.lua's kinds (their one definition), but for libconnrt's own
local EXIT = {}
for _, k in ipairs(require("connrt.errors").kinds) do
  if k.only ~= "library" then EXIT[#EXIT + 1] = { tostring(k.code), k.says } end
end

local ENVIRONMENT = {
  { "CONNRT_STORE", "the store: a directory (LMDB) or a postgres:// or postgresql:// URL (a PostgreSQL "
    .. "database shared by many hosts; libpq reads PG* variables, sslmode, sslrootcert); default CONNRT_HOME" },
  { "CONNRT_HOME", "the store directory (default $XDG_DATA_HOME/connrt, else ~/.local/share/connrt); with a "
    .. "PostgreSQL store, where the key file is kept" },
  { "CONNRT_KEY", "the 32-byte sealing key, as 64 hex digits or base64 (default: a key file, made on first use)" },
  { "CONNRT_KEY_FILE", "where that key file is (default $CONNRT_HOME/key)" },
  { "CONNRT_NEW_KEY", "the new key for connrt rekey, when --new-key-file is not given" },
  { "CONNRT_REDIRECT_URL", "the redirect URL registered with the app (default http://127.0.0.1:8400/callback)" },
  { "CONNRT_LISTEN", "HOST:PORT the listener binds when it differs from the redirect URL's (behind a reverse proxy)" },
  { "CONNRT_BROWSER", "the command that opens the sign-in URL, given as its last argument (default xdg-open "
    .. "where a display exists)" },
  { "CONNRT_CLIENT_ID", "the app's client id" },
  { "CONNRT_CLIENT_SECRET", "the app's client secret" },
  { "CONNRT_FIELD_<KEY>", "the value of connector field KEY (for secret fields)" },
  { "CONNRT_CA_BUNDLE", "a PEM file of CA certificates to trust instead of the system's, e.g. a company's own "
    .. "CA (TLS verification is always on; there is no way to turn it off)" },
  { "CONNRT_VERBOSE", "when set (not 0), the same as --verbose" },
  { "CONNRT_REFRESH_MARGIN", "refresh a token this many seconds before it expires (default 60; never more than "
    .. "half the token's lifetime)" },
  { "CONNRT_LEASE_TTL", "seconds one process may hold a connection's refresh lease before another takes "
    .. "over (default 30); a refresher past it cannot write its tokens" },
  { "CONNRT_LOCK_TIMEOUT", "seconds a change to the store waits for another process's write before it gives "
    .. "up (default 30; reads never wait)" },
  { "CONNRT_CONNECTOR_MEMORY", "the memory limit of a connector's sandbox, in MiB (default 64)" },
  { "CONNRT_CONNECTOR_CPU", "the CPU seconds a connector may spend loading, or in one hook (default 5)" },
  { "CONNRT_LUA_DIR", "where the runtime's Lua layer is (default: set at build time)" },
  { "CONNRT_PROXY", "the unix socket of a running connrt proxy: connrt request and connrt token hand their call "
    .. "to it (without --retries); a socket that cannot be reached is a notice, and they go direct" },
  { "http_proxy, https_proxy, all_proxy, no_proxy", "libcurl's, honoured as curl honours them: an HTTP proxy you set "
    .. "sees a plain http:// request whole, its credentials included" },
  { "NO_COLOR", "when set, connrt prints no colours" },
}

local ID_TEXT = "ID is a connection's id (as connrt list shows it), or a connector's id when that connector has "
  .. "exactly one connection."

-- Every command: the overview lines (usage, summary), the usage lines of its own help,
-- what it does (paragraphs) and examples ({ command, comment }); its options are
-- options.lua's.
local COMMANDS = {
  {
    name = "run",
    overview = { { "run CONNECTOR.lua [options]", "connect an account" } },
    usage = { "connrt run CONNECTOR.lua [options]" },
    text = {
      "Connects an account at the app that CONNECTOR.lua describes: opens the app's sign-in page in a browser "
        .. "(and prints its URL), waits for the app to send the browser back to the redirect URL, exchanges the "
        .. "code for tokens, checks them with the connector's test API, names the connection and stores it, "
        .. "sealed. Connecting the same account again updates its connection. Nothing is saved unless every "
        .. "step succeeds. Required fields that are missing are asked for on a terminal.",
      "With --paste, nothing listens: sign in with a browser anywhere, then paste on standard input the address "
        .. "the browser was sent to, the code, or the line that connrt authorize printed on a machine with a "
        .. "browser.",
      "CONNECTOR.lua is always taken as a connector: it runs only in the connector sandbox, and a file that "
        .. "fails there is an invalid connector (exit 3). Pipeline scripts run with connrt script.",
    },
    examples = {
      { "connrt redirect-url", "the URL to register with the app first" },
      { "connrt run connectors/github.lua --client-id Iv1.8a61f9b3 --client-secret-file ~/github.secret",
        "connect a GitHub account" },
      { "connrt run connectors/github.lua --paste", "on a server without a browser" },
    },
  },
  {
    name = "script",
    overview = { { "script SCRIPT.lua [ARGS...]", "run a pipeline script with the connrt API" } },
    usage = { "connrt script SCRIPT.lua [ARGS...]" },
    text = {
      "Runs SCRIPT.lua as a pipeline script, with the full runtime: the connrt API in the global `connrt` and "
        .. "ARGS in `arg`, as lua5.4 would set them. A script is trusted code (it can read every connection); "
        .. "connectors, which may come from anyone, run with connrt run in their sandbox instead. Whether a file "
        .. "is a connector or a script is decided by the command, never by running the file.",
    },
    examples = {
      { "connrt script examples/pipeline.lua github", "a pipeline script" },
      { "connrt script bench/populate.lua 100 https://id.example.com https://api.example.com",
        "a script with its own arguments" },
    },
  },
  {
    name = "authorize",
    overview = { { "authorize CONNECTOR.lua", "sign in here, for connrt run --paste elsewhere" } },
    usage = { "connrt authorize CONNECTOR.lua [options]" },
    text = {
      "The browser part of connrt run, for a server that has no browser: run it on a machine that has one, with "
        .. "the same connector, client and fields. It signs in through the local redirect listener, exchanges "
        .. "the code and prints one line on standard output. Paste that line into connrt run CONNECTOR.lua "
        .. "--paste on the server, which checks the test API and saves the connection there. authorize saves "
        .. "nothing.",
      "The line carries the new tokens: paste it only into connrt and do not keep it.",
    },
    examples = {
      { "connrt authorize connectors/github.lua --client-id Iv1.8a61f9b3", "on your laptop" },
      { "connrt run connectors/github.lua --paste", "then on the server: paste the line" },
    },
  },
  {
    name = "connect",
    overview = { { "connect URL [--print-connector]", "connect a protected resource (an MCP server): no connector" } },
    usage = { "connrt connect URL [--print-connector] [options]" },
    text = {
      "Connects a protected resource that publishes its metadata (RFC 9728), such as a remote MCP server, with no "
        .. "connector file: requests URL without credentials, reads the resource_metadata of its 401 (else the "
        .. "origin's /.well-known/oauth-protected-resource), discovers the authorization server it names (RFC "
        .. "8414), registers connrt there when the server allows it (RFC 7591; once, then reused), and signs in "
        .. "with PKCE and the resource indicator (RFC 8707). The connection's only allowed URL is the resource's "
        .. "origin and path, said before the browser opens; it works with request, token, refresh, revoke, list "
        .. "and show like any other.",
      "With --print-connector, nothing is connected: the connector connrt would use is printed, to start a "
        .. "connector file from. A server that does not allow registration needs --client-id.",
    },
    examples = {
      { "connrt connect https://mcp.example.com/mcp", "connect a remote MCP server" },
      { "connrt connect https://mcp.example.com/mcp --print-connector > mcp.lua",
        "write its connector, to change it and run it with connrt run" },
    },
  },
  {
    name = "request",
    overview = { { "request ID [METHOD] URL", "send an HTTP request through a connection" } },
    usage = { "connrt request ID [METHOD] URL [-H 'NAME: VALUE']... [-d BODY | --json-body JSON] [options]" },
    text = {
      "Sends a request with the connection's credentials and the connector's request parameters (your header "
        .. "wins over the connector's of the same name), prints the response body on standard output and the "
        .. "status on standard error, and exits 5 on a status of 400 or more (reason http_status). A relative URL (/user) is joined "
        .. "to the connection's first allowed URL; a URL under none of the allowed URLs is refused before "
        .. "anything is sent (exit 7). A token about to expire is refreshed first; a 401 refreshes once and "
        .. "retries once. An answer the connector calls an expired token that cannot be refreshed exits 5 and "
        .. "marks the connection as needing reconnection.",
      "METHOD is GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS; the default is GET, or POST with a body.",
      ID_TEXT,
    },
    examples = {
      { "connrt request github /user", "GET, relative to the first allowed URL" },
      { "connrt request github POST /user/repos --json-body '{\"name\":\"demo\"}'", "create something" },
      { "connrt request github -i --retries 3 /rate_limit", "headers too; retry when throttled" },
    },
  },
  {
    name = "token",
    overview = { { "token ID", "print a valid access token" } },
    usage = { "connrt token ID" },
    text = {
      "Prints the connection's access token, bare, on standard output, for other tools; refreshes it first when "
        .. "it expires within CONNRT_REFRESH_MARGIN seconds. It is the one command that prints a secret: keep "
        .. "its output out of logs.",
      ID_TEXT,
    },
    examples = {
      { "curl -H \"Authorization: Bearer $(connrt token github)\" https://api.github.com/user", "use it elsewhere" },
      { "GH_TOKEN=$(connrt token github) gh api /user", "or give it to another tool" },
    },
  },
  {
    name = "exec",
    overview = { { "exec ID... [--env NAME=ID] -- CMD", "run a program with fresh tokens in its environment" } },
    usage = { "connrt exec ID... [--env NAME=ID]... [--mask] -- COMMAND [ARGS...]" },
    text = {
      "Runs COMMAND with the connections' fresh access tokens (refreshed first when about to expire) in "
        .. "environment variables, never on its command line: CONNRT_TOKEN for one ID, CONNRT_TOKEN_<ID> for "
        .. "several, or the NAME each --env gives. A connection made of fields (API keys, passwords) exports its "
        .. "secret field the same way, or each of several as NAME_<KEY>. connrt's own secrets (CONNRT_KEY, "
        .. "CONNRT_CLIENT_SECRET, CONNRT_FIELD_*) are not passed on.",
      "connrt replaces itself with COMMAND: its exit status, signals and standard streams are COMMAND's own. "
        .. "With --mask, COMMAND runs as a child whose standard output and error connrt passes on line by line "
        .. "with every spelling of the tokens replaced by [redacted]; SIGINT, SIGTERM, SIGHUP and SIGQUIT sent "
        .. "to connrt are passed on, and connrt exits with COMMAND's status or dies of its signal. A COMMAND "
        .. "that cannot be run exits 127 (not found) or 126.",
      ID_TEXT,
    },
    examples = {
      { "connrt exec github -- sh -c 'curl -H \"Authorization: Bearer $CONNRT_TOKEN\" https://api.github.com/user'",
        "a token for one command" },
      { "connrt exec --env GH_TOKEN=github --env OPENAI_API_KEY=openai --mask -- python3 job.py",
        "several, named; secrets masked in the job's output" },
    },
  },
  {
    name = "git-credential",
    overview = { { "git-credential [--connection ID] get", "git's credential helper: a fresh token for git" } },
    usage = { "connrt git-credential [--connection ID] get|store|erase" },
    text = {
      "Speaks git's credential-helper protocol, so git over https uses a connection's fresh token as the "
        .. "password, with the username the connector's git_username names (GitHub x-access-token, GitLab "
        .. "oauth2, Bitbucket x-token-auth). git must be about to use a URL under the connection's allowed URLs "
        .. "(exit 7 otherwise). Without --connection, the one connection whose allowed URLs cover the URL is "
        .. "used (exit 9 for none, 2 for several). On any failure connrt tells git to quit, so git prompts no "
        .. "one.",
      "store writes nothing (the token stays in the store only); erase writes nothing either, but when git "
        .. "says the server refused the connection's current token, it is refreshed for the next git command.",
    },
    examples = {
      { "git config --global credential.https://github.com.helper '!connrt git-credential --connection github'",
        "GitHub over https with a connection" },
      { "git config --global credential.helper '!connrt git-credential'", "the connection picked by host" },
    },
  },
  {
    name = "credential-process",
    overview = { { "credential-process ID", "print a fresh token and its expiry as JSON" } },
    usage = { "connrt credential-process ID [--format json|kubernetes]" },
    text = {
      "Prints, for tools that run a command to get a credential, a JSON object with the connection's fresh "
        .. "token (refreshed first when about to expire) and its expiry in RFC 3339: {\"token\", \"token_type\", "
        .. "\"expiration\"} (no expiration when the provider gave none). A connection made of fields prints its "
        .. "one secret field as the token. Like connrt token, it prints a secret: keep its output out of logs.",
      ID_TEXT,
    },
    examples = {
      { "connrt credential-process github", "" },
      { "connrt credential-process okta --format kubernetes", "in a kubeconfig's exec section" },
    },
  },
  {
    name = "proxy",
    overview = { { "proxy [--socket PATH | --listen H:P]", "a local proxy that adds connections' credentials" } },
    usage = { "connrt proxy [--socket PATH | --listen HOST:PORT] [--connection ID]... [options]" },
    text = {
      "Serves METHOD /ID/PATH?QUERY by sending it as connrt request would: to connection ID's first allowed URL "
        .. "joined with PATH (or to the absolute URL of a Connrt-Target header, which must be under the allowed "
        .. "URLs), with the connector's request parameters, the caller's Authorization and hop-by-hop headers "
        .. "dropped. A URL outside the allowed URLs, by any route (Connrt-Target, a redirect, an encoded path), "
        .. "answers 403 with a JSON error and nothing is sent; a body over the limit 413; a connection that needs "
        .. "reconnecting 503, saying how. Tokens are refreshed in the background before they expire, and once on "
        .. "a 401 (the request is then retried once), sharing the store's lease with every other connrt.",
      "It listens on a unix socket (mode 0600; default $XDG_RUNTIME_DIR/connrt-proxy.sock, else proxy.sock in "
        .. "the store's directory) or, with --listen, on TCP, where every request must carry the proxy's key in a "
        .. "Connrt-Key header (401 otherwise): a fresh random key, written 0600 to --key-file (a file that exists is refused), never printed. It "
        .. "prints one JSON line when it listens ({\"socket\"} or {\"listen\", \"key_file\"}). GET /_connrt/health "
        .. "and /_connrt/metrics (Prometheus) report on it. A client silent for --idle seconds, or whose request "
        .. "has not come whole --idle seconds after its first byte, is closed. SIGTERM stops accepting and "
        .. "finishes the requests in flight; SIGHUP re-reads the store's connection list.",
    },
    examples = {
      { "connrt proxy & curl --unix-socket ~/.local/share/connrt/proxy.sock http://x/github/user", "" },
      { "connrt proxy --listen 127.0.0.1:8700 --key-file ~/.proxy.key", "on TCP, with a key" },
    },
  },
  {
    name = "refresh",
    overview = { { "refresh ID", "refresh the access token now" } },
    usage = { "connrt refresh ID" },
    text = {
      "Refreshes the connection's access token now, with its refresh token, and saves the new tokens. A refresh "
        .. "the provider refuses (invalid_grant) marks the connection \"needs reconnect\": connect it again with "
        .. "connrt run. A connection without a refresh token is not refreshed (exit 1; nothing is sent).",
      ID_TEXT,
    },
    examples = {
      { "connrt refresh github", "" },
      { "connrt refresh local-oidc-1a2b3c4d && connrt show local-oidc-1a2b3c4d", "refresh, then see the expiry" },
    },
  },
  {
    name = "revoke",
    overview = { { "revoke ID", "revoke the tokens at the provider, then delete" } },
    usage = { "connrt revoke ID" },
    text = {
      "Revokes the connection's refresh token and access token at the connector's revoke URL (RFC 7009), or "
        .. "sends its revoke_request, then deletes the connection from the store. A revoke the provider refuses "
        .. "keeps the connection (exit 5); connrt delete removes it here only.",
      ID_TEXT,
    },
    examples = { { "connrt revoke github", "" }, { "connrt revoke local-oidc-1a2b3c4d", "" } },
  },
  {
    name = "delete",
    overview = { { "delete ID", "delete a connection here, not at the provider" } },
    usage = { "connrt delete ID" },
    text = {
      "Deletes the connection from the local store only; its tokens stay valid at the provider (connrt revoke "
        .. "revokes them there too).",
      ID_TEXT,
    },
    examples = { { "connrt delete github", "" }, { "connrt delete local-oidc-1a2b3c4d", "" } },
  },
  {
    name = "update",
    overview = { { "update ID [CONNECTOR.lua]", "apply a changed connector to a connection" } },
    usage = { "connrt update ID [CONNECTOR.lua] [--replace]" },
    text = {
      "A connection keeps the connector it was connected with: editing the connector file changes nothing for "
        .. "it. update applies CONNECTOR.lua (default: the file the connection was connected or last updated "
        .. "with, by its absolute real path; a connection that remembers only a relative path must be given "
        .. "it) to the connection without a new sign-in: it checks the connector, renders its URLs and allowed "
        .. "URLs from the connection's fields and kept values (values the connector no longer declares are "
        .. "dropped), checks that its request parameters can be rendered, and saves the connector and the "
        .. "record in one transaction. Nothing is sent: the tokens, name and unique id stay.",
      "A connector that would need a new sign-in is refused with exit 2: another connector id or way of "
        .. "connecting, a scope the connection was not granted, a token or refresh URL at another host, a "
        .. "required field the connection does not have. An invalid connector, or one whose templates name a "
        .. "value the connection does not keep, is refused with exit 3. A connector whose URLs or allowed URLs "
        .. "reach an origin the connection does not reach is refused with exit 2, naming it, unless --replace "
        .. "is given. Either way nothing changes; connrt run connects the account again.",
      ID_TEXT,
    },
    examples = {
      { "connrt update github", "after editing the connector github was connected with" },
      { "connrt update github-1a2b3c4d ~/connectors/github.lua", "the connector in another file" },
    },
  },
  {
    name = "rekey",
    overview = { { "rekey [--new-key-file FILE]", "re-seal every secret under a new key" } },
    usage = { "connrt rekey [--new-key-file FILE]" },
    text = {
      "Re-seals every secret in the store (tokens, client secrets, secret fields) under a new key, in one "
        .. "transaction: all of them move to the new key, or, on any error, none does.",
      "With a key file (the default), the new key is a fresh random one unless --new-key-file or CONNRT_NEW_KEY "
        .. "gives it, and it replaces the key file. With CONNRT_KEY, the new key must be given, and CONNRT_KEY "
        .. "must hold it from then on.",
    },
    examples = {
      { "connrt rekey", "a fresh random key in the key file" },
      { "openssl rand -hex 32 >new.key && CONNRT_KEY=$(cat old.key) connrt rekey --new-key-file new.key", "" },
    },
  },
  {
    name = "store",
    overview = {
      { "store migrate", "bring a PostgreSQL store's schema up to date; bind the records of a store from before bindings" },
      { "store copy --to STORE", "copy every connection into another store" },
    },
    usage = { "connrt store migrate", "connrt store copy [--from STORE] --to STORE [--to-key-file FILE]" },
    text = {
      "A store is a directory (LMDB, one machine) or a postgres:// or postgresql:// URL (PostgreSQL, shared by "
        .. "many hosts). The key stays on each host (CONNRT_KEY or the key file in CONNRT_HOME), never in the "
        .. "database.",
      "migrate runs the PostgreSQL schema's forward migrations (every command runs them on open too) and says the "
        .. "version; a schema newer than this connrt knows is refused (exit 8).",
      "copy copies every connection, remembered client and connector source from --from (default: the store in "
        .. "use) to --to, in one transaction on the target. Sealed secrets move as they are when both stores use "
        .. "the same key, else they are re-sealed under the target's key (--to-key-file, else the target's usual "
        .. "key). Copying again changes nothing; an account the target holds under another id is refused.",
    },
    examples = {
      { "connrt store copy --to postgres://connrt@db.internal/connrt", "the laptop's store into PostgreSQL" },
      { "CONNRT_STORE=postgres://connrt@db.internal/connrt connrt store migrate", "" },
    },
  },
  {
    name = "list",
    overview = { { "list [--json]", "list the connections, with status and expiry" } },
    usage = { "connrt list [--json]" },
    text = {
      "Lists the stored connections: id, connector, name, account, status (ok, expired, needs reconnect) and when "
        .. "the access token expires. It reads no secret, so it needs no key.",
    },
    examples = { { "connrt list", "" }, { "connrt list --json", "for scripts" } },
  },
  {
    name = "show",
    overview = { { "show ID [--json]", "show one connection (never its secrets)" } },
    usage = { "connrt show ID [--json]" },
    text = {
      "Shows everything stored about one connection except its secrets: status, names, client id, scope, expiry, "
        .. "allowed URLs, fields and kept values.",
      ID_TEXT,
    },
    examples = { { "connrt show github", "" }, { "connrt show local-oidc-1a2b3c4d --json", "" } },
  },
  {
    name = "check",
    overview = { { "check CONNECTOR.lua...", "lint connectors: errors and warnings with fix hints" } },
    usage = { "connrt check CONNECTOR.lua..." },
    text = {
      "Checks connector files without connecting: required keys for the connector's auth kind, URL syntax, https "
        .. "everywhere but loopback, templates that name unknown values, a test API and request URLs covered by "
        .. "the allowed URLs, a name and a unique id, and literal values in request parameters that look like "
        .. "secrets. Prints each finding as FILE: key: message (hint: ...); exits 3 when any is an error.",
    },
    examples = { { "connrt check connectors/*.lua", "every shipped connector" }, { "connrt check my-app.lua", "" } },
  },
  {
    name = "redirect-url",
    overview = { { "redirect-url", "print the redirect URL to register with the app" } },
    usage = { "connrt redirect-url" },
    text = {
      "Prints the redirect URL (callback URL) to register in the app's OAuth settings: CONNRT_REDIRECT_URL, or "
        .. "http://127.0.0.1:8400/callback.",
    },
    examples = {
      { "connrt redirect-url", "" },
      { "CONNRT_REDIRECT_URL=http://localhost:9000/cb connrt redirect-url", "another port and path" },
    },
  },
  {
    name = "version",
    overview = { { "version", "print the version (also --version)" } },
    usage = { "connrt version", "connrt --version" },
    text = { "Prints connrt's version, the version of Lua it runs on and those of libcurl, OpenSSL and LMDB it "
      .. "was built with." },
    examples = { { "connrt version", "" }, { "connrt --version", "" } },
  },
  {
    name = "help",
    overview = { { "help [COMMAND]", "this overview, or one command's help (also --help)" } },
    usage = { "connrt help [COMMAND]", "connrt --help", "connrt -h" },
    text = { "Prints the overview of all commands, or the whole help of one command." },
    examples = { { "connrt help", "" }, { "connrt help request", "" } },
  },
}

local BY_NAME = {}
for _, c in ipairs(COMMANDS) do BY_NAME[c.name] = c end
local ALIASES = { ["--help"] = "help", ["-h"] = "help", ["--version"] = "version" }

-- Words of `text` wrapped to WIDTH, the first line after `first` (a prefix) and the
-- others indented by `indent` spaces; `cont` (" \\" for commands) ends every line but
-- the last. A word longer than a line stays whole.
local function wrap(text, first, indent, cont)
  cont = cont or ""
  local lines, line = {}, first
  local empty = true
  for word in text:gmatch("%S+") do
    if not empty and #line + 1 + #word + #cont > WIDTH then
      lines[#lines + 1] = line .. cont
      line, empty = string.rep(" ", indent), true
    end
    line = line .. (empty and "" or " ") .. word
    empty = false
  end
  lines[#lines + 1] = line
  return table.concat(lines, "\n") .. "\n"
end

-- A two-column list: each label padded to `col`, its text wrapped beside it (or on the
-- next line when the label is too wide).
local function columns(items, col)
  local out = {}
  for _, it in ipairs(items) do
    local label = "  " .. it[1]
    if #label + 2 > col then
      out[#out + 1] = label .. "\n" .. wrap(it[2], string.rep(" ", col), col)
    else
      out[#out + 1] = wrap(it[2], label .. string.rep(" ", col - #label), col)
    end
  end
  return table.concat(out)
end

--- The command names, in the overview's order.
function M.commands()
  local names = {}
  for i, c in ipairs(COMMANDS) do names[i] = c.name end
  return names
end

--- The option names command `name` takes (both spellings of each), or nil.
function M.options(name)
  local c = BY_NAME[ALIASES[name] or name]
  if not c then return nil end
  local names = {}
  for _, o in ipairs(options.of(c.name)) do
    for _, n in ipairs(options.names_of(o)) do names[#names + 1] = n end
  end
  return names
end

--- The names that stand for a command ("--help", "-h", "--version"), sorted.
function M.aliases()
  local out = {}
  for a in pairs(ALIASES) do out[#out + 1] = a end
  table.sort(out)
  return out
end

--- The environment variables, { name, meaning } each, and the exit statuses, { code,
-- meaning } each (for the man page's check and anything else that lists them).
function M.environment() return ENVIRONMENT end
function M.exit_statuses() return EXIT end

--- The overview.
function M.usage()
  local cmds = {}
  for _, c in ipairs(COMMANDS) do
    for _, o in ipairs(c.overview) do cmds[#cmds + 1] = o end
  end
  local global = {}
  for i, o in ipairs(options.GLOBAL) do global[i] = { o[1], o.text } end
  return table.concat({
    "usage: connrt COMMAND [ARGS...]\n\n",
    "Connects accounts at third-party apps (OAuth) and keeps them usable by scripts.\n\n",
    "commands:\n", columns(cmds, 32), "\n",
    wrap(ID_TEXT, "", 0),
    "connrt help COMMAND shows a command's options and examples; so does man connrt.\n\n",
    "options of every command:\n", columns(global, 25), "\n",
    "environment:\n", columns(ENVIRONMENT, 25), "\n",
    "exit status:\n", columns(EXIT, 8),
  })
end

--- One command's whole help, or nil for an unknown command.
function M.command(name)
  local c = BY_NAME[ALIASES[name] or name]
  if not c then return nil end
  local out = {}
  for i, u in ipairs(c.usage) do
    out[#out + 1] = wrap(u, i == 1 and "usage: " or "       ", 9)
  end
  for _, p in ipairs(c.text) do out[#out + 1] = "\n" .. wrap(p, "", 0) end
  local opts = options.of(c.name)
  if #opts > 0 then
    local items = {}
    for _, o in ipairs(opts) do
      items[#items + 1] = { o[1] .. (o.arg and (" " .. o.arg) or ""), o.text }
    end
    out[#out + 1] = "\noptions:\n" .. columns(items, 30)
  end
  out[#out + 1] = "\nexamples:\n"
  for _, e in ipairs(c.examples) do
    out[#out + 1] = (e[2] ~= "" and ("  # " .. e[2] .. "\n") or "") .. wrap(e[1], "  ", 6, " \\")
  end
  return table.concat(out)
end

return M
