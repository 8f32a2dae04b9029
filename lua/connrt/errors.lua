--- errors.lua - the one error type of the runtime, and the one definition of its kinds
-- (the exit code families) and reasons.
--
-- Expected failures (bad input, a provider saying no, a refused URL) are raised as error
-- objects { kind, reason, message }: `kind` is the family, which the command line turns
-- into an exit code and libconnrt into a connrt_code; `reason` says, for a program, what
-- went wrong (`locked`, `invalid_grant`, `timeout`, ...); `message` names what was wrong
-- and where, for a person. Both are set where the failure arises, the C modules included
-- (connrt_raise in src/api/api.c makes the same object), and never recovered from the
-- message's text. Anything else that reaches the top is a bug and is reported with a
-- traceback.
--
-- The tables below are the one source of these facts: include/connrt.h, lib.c,
-- help.lua's exit statuses, docs/errors.md and the man page's (`make errors-doc`) follow them, and
-- spec/errors_spec.lua checks that they do.
local M = {}

--- The kinds, in exit code order: name, exit code, its connrt_code in include/connrt.h
-- (`c`) and what connrt_strerror says of it, what it means, and `only` where the code
-- exists on one side only ("command": the connrt command; "library": libconnrt).
-- `raised = false`: no error object carries that kind (success, a bug, out of memory,
-- Ctrl-C).
M.kinds = {
  { name = "ok", code = 0, c = "CONNRT_OK", strerror = "success", raised = false, says = "success" },
  { name = "failed", code = 1, c = "CONNRT_EFAILED", strerror = "failed", says = "other failure" },
  { name = "usage", code = 2, c = "CONNRT_EUSAGE", strerror = "wrong argument",
    says = "usage: wrong command line, a missing or invalid field, no client id" },
  { name = "connector", code = 3, c = "CONNRT_ECONNECTOR", strerror = "invalid connector",
    says = "invalid connector (or a template names a value that does not exist)" },
  { name = "connect", code = 4, c = "CONNRT_ECONNECT", strerror = "connect flow failed",
    says = "the connect flow failed: access denied, wrong state, timeout, issuer mix-up, a callback "
      .. "hooks.callback refused" },
  { name = "provider", code = 5, c = "CONNRT_EPROVIDER", strerror = "the provider answered with an error",
    says = "provider error: token endpoint, test API, a refused refresh; a request's status >= 400, or a token "
      .. "the connector calls expired that cannot be refreshed" },
  { name = "network", code = 6, c = "CONNRT_ENETWORK", strerror = "no answer from the server", says = "network error: no answer from a server" },
  { name = "refused", code = 7, c = "CONNRT_EREFUSED", strerror = "URL refused: outside the allowed URLs",
    says = "a URL outside the connection's allowed URLs was refused" },
  { name = "store", code = 8, c = "CONNRT_ESTORE", strerror = "store error", says = "store error: wrong key, damaged data, locked, cannot write" },
  { name = "notfound", code = 9, c = "CONNRT_ENOTFOUND", strerror = "no such connection", says = "no such connection" },
  { name = "internal", code = 70, c = "CONNRT_EINTERNAL", strerror = "internal error", raised = false,
    says = "internal error (a bug: please report it with the traceback)" },
  { name = "memory", code = 71, c = "CONNRT_ENOMEM", strerror = "out of memory", raised = false, only = "library", says = "out of memory" },
  { name = "interrupted", code = 130, raised = false, only = "command", says = "interrupted (Ctrl-C)" },
}

--- The reasons: name, the kind it comes with, what it means. The first reason of each
-- kind is that kind's general one, which errors.raise gives.
M.reasons = {
  { "other", "failed", "a failure with no more specific reason" },
  { "no_refresh", "failed", "the connection has no refresh token: nothing was sent, connect again for a new token" },
  { "refresh_wait", "failed", "gave up waiting for another process's refresh of the same connection" },
  { "script", "failed", "a pipeline script raised an error of its own" },
  { "out_of_descriptors", "failed", "the process reached its open file limit (ulimit -n): a connection or file could "
    .. "not be opened; `connrt proxy` answers 503, and serves again once clients leave" },

  { "bad_argument", "usage", "a wrong argument, option, field or environment value" },
  { "ambiguous", "usage", "a connector id that has several connections: name one by id" },
  { "already_connected", "usage", "the account is connected already through another connector" },
  { "bad_limit", "usage", "CONNRT_CONNECTOR_MEMORY or CONNRT_CONNECTOR_CPU is out of range, or too small for a "
    .. "connector to start" },
  { "other_settings", "usage", "`connrt proxy` runs with other settings in its environment than the command asking "
    .. "(CONNRT_CA_BUNDLE, proxy variables, sandbox limits, refresh timing, PG* variables: `connrt request` and "
    .. "`connrt token` through CONNRT_PROXY then go direct)" },
  { "other_store", "usage", "`connrt proxy` serves another store or key than the command asking it would open, "
    .. "or the files it opened were replaced since (`connrt request` and `connrt token` through CONNRT_PROXY then go direct)" },

  { "invalid_connector", "connector", "the connector script is invalid, or a template names a missing value" },
  { "hook_failed", "connector", "a connector hook raised an error or ran out of time or memory" },

  { "not_completed", "connect", "the connect flow did not complete" },
  { "denied", "connect", "the user or the app refused access (access_denied)" },
  { "sign_in_error", "connect", "the app answered the sign-in with an error other than access_denied" },
  { "wrong_state", "connect", "the callback or pasted address does not carry this sign-in's state" },
  { "mix_up", "connect", "the callback comes from another issuer (RFC 9207 mix-up defence)" },
  { "no_code", "connect", "the callback or pasted address carries no code" },
  { "sign_in_timeout", "connect", "no sign-in completed within the timeout" },
  { "expired", "connect", "the device code expired before the sign-in was completed" },
  { "in_use", "connect", "the redirect listener's address is in use (another connrt run waiting?)" },
  { "bad_paste", "connect", "what was pasted is not an address, a code nor an authorize result for this connector" },

  { "rejected", "provider", "the provider answered with an error status or error code" },
  { "invalid_grant", "provider", "the token endpoint refused the grant: the code or refresh token is no longer valid" },
  { "needs_reconnect", "provider", "the connection needs connecting again (marked so in the store): a refresh was "
    .. "refused, or a token the connector calls expired cannot be refreshed" },
  { "bad_answer", "provider", "the provider's answer is not what was expected (not JSON, no access_token, ...)" },
  { "http_status", "provider", "`connrt request`: the answer's status is 400 or more (its body is printed as it "
    .. "came)" },
  { "too_big", "provider", "the answer, or what the connection would keep of it, is larger than connrt takes" },

  { "transport", "network", "the exchange failed for another reason (the message says which)" },
  { "client_left", "network", "`connrt proxy`: the request's client closed its side of the connection (or shut down "
    .. "its sending side) before the answer came, so the request was not sent upstream or was stopped" },
  { "unreachable", "network", "the server cannot be reached: connection refused, or its name does not resolve" },
  { "timeout", "network", "no answer within the timeout" },
  { "tls", "network", "the TLS handshake or the server's certificate failed" },
  { "protocol", "network", "the URL's scheme or the server's answer breaks the protocol" },

  { "refused_url", "refused", "the URL (or a redirect's target) is under none of the allowed URLs: nothing was sent" },

  { "io", "store", "the store or its key file cannot be opened, read or written" },
  { "locked", "store", "another process held the store's write lock for CONNRT_LOCK_TIMEOUT seconds" },
  { "damaged", "store", "the store's data is damaged, or does not match its sealed secrets" },
  { "full", "store", "the store reached its size limit" },
  { "wrong_key", "store", "the store cannot be opened with this key (or its key file is missing)" },
  { "bad_key", "store", "the key given is not 32 bytes as 64 hex digits or base64" },
  { "unsafe_mode", "store", "the store directory or key file is open to its group or others" },
  { "conflict", "store", "another process changed the connection while it was being updated" },
  { "unavailable", "store", "a PostgreSQL store cannot be reached (down, refused, TLS refused, connection lost)" },
  { "auth", "store", "a PostgreSQL store refused the login (wrong password or role)" },
  { "schema", "store", "a PostgreSQL store's schema is newer than this connrt knows, or not connrt's" },
  { "fenced", "store", "the refresh lease was taken over while this process refreshed: its tokens were not written" },

  { "no_connection", "notfound", "no such connection, or no store yet" },
  { "not_served", "notfound", "`connrt proxy` serves only its --connection list, and not this one (`connrt request` and "
    .. "`connrt token` through CONNRT_PROXY go direct)" },

  { "internal", "internal", "a bug in connrt" },
  { "out_of_memory", "memory", "out of memory" },
}

M.exit_codes = {}  -- kind -> exit code
M.reason_kind = {} -- reason -> kind
M.reason_says = {} -- reason -> what it means
M.default_reason = {} -- kind -> its general reason
for _, k in ipairs(M.kinds) do M.exit_codes[k.name] = k.code end
for _, r in ipairs(M.reasons) do
  M.reason_kind[r[1]] = r[2]
  M.reason_says[r[1]] = r[3]
  M.default_reason[r[2]] = M.default_reason[r[2]] or r[1]
end

-- The metatable of error objects lives in the registry under "connrt.error", where
-- connrt_raise (src/api/api.c) finds it too: whichever side comes first creates it.
local registry = debug.getregistry()
local Error = registry["connrt.error"] or {}
registry["connrt.error"] = Error
Error.__name = "connrt.error"
Error.__tostring = function(e) return e.message end

local function make(kind, reason, message, lines)
  assert(M.exit_codes[kind], "unknown error kind " .. tostring(kind))
  assert(M.reason_kind[reason] == kind, ("reason %s is not one of kind %s"):format(tostring(reason), kind))
  return setmetatable({ kind = kind, reason = reason, message = message, lines = lines }, Error)
end

local function format(fmt, ...)
  return select("#", ...) > 0 and string.format(fmt, ...) or fmt
end

--- An error object of `kind` and `reason` with a formatted message, not raised.
function M.new(kind, reason, fmt, ...)
  return make(kind, reason, format(fmt, ...))
end

--- Raises an error of `kind` and `reason` (one of M.reasons, of that kind) with a
-- formatted message.
function M.fail(kind, reason, fmt, ...)
  error(make(kind, reason, format(fmt, ...)), 0)
end

--- Raises an error of `kind` with the kind's general reason: for failures a program has
-- no reason to tell apart from the rest of their kind.
function M.raise(kind, fmt, ...)
  error(make(kind, M.default_reason[kind], format(fmt, ...)), 0)
end

--- Raises like M.fail with the message "WHERE: detail", keeping on the object `detail`
-- (the message without WHERE) and `key` (what in WHERE it is about, or nil): for callers
-- that show the failure at a place of their own (`connrt check`, at a connector's key)
-- without reading the message.
function M.fail_at(kind, reason, where, key, fmt, ...)
  local detail = format(fmt, ...)
  local e = make(kind, reason, where .. ": " .. detail)
  e.key, e.detail = key, detail
  error(e, 0)
end

--- Raises like M.fail, with `lines` (an array of strings) to print after the message,
-- each on a line of its own: a pipeline script's traceback. The command line prints
-- every line through log.err, which escapes a newline inside one.
function M.fail_lines(kind, reason, lines, fmt, ...)
  error(make(kind, reason, format(fmt, ...), lines), 0)
end

--- True when `e` is one of our error objects.
function M.is(e)
  return getmetatable(e) == Error
end

--- Re-raises `e` with `prefix` before its message, keeping its kind and reason; other
-- errors pass.
function M.wrap(e, prefix)
  if M.is(e) then error(make(e.kind, e.reason, prefix .. e.message, e.lines), 0) end
  error(e, 0)
end

--- The message of a failure of `reason` as connrt prints it, keeps it (a connection's
-- last_error) or hands it to a process that knows no secret (connrt proxy's JSON error,
-- which `connrt request` prints): its kept form (log.kept), the same text on every path.
-- When every way of printing it shows a secret (a provider's text it quotes spells one
-- as JSON writes it), what the reason means stands in for it, so a person still learns
-- what went wrong.
function M.kept_message(reason, message)
  local kept = require("connrt.log").kept(message)
  if kept ~= "[redacted]" then return kept end
  return ("[redacted] (%s: %s; the message itself is hidden, as a way of printing it shows a secret)"):format(
    reason, M.reason_says[reason] or "see docs/errors.md")
end

--- Re-raises `e` (one of ours) with another message, keeping its kind and reason; with
-- `reason`, that reason instead (of the same kind).
function M.remake(e, message, reason)
  error(make(e.kind, reason or e.reason, message, e.lines), 0)
end

return M
