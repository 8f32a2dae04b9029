--- errors.lua - the one error type of the runtime and the exit codes it maps to.
--
-- Expected failures (bad input, a provider saying no, a refused URL) are raised as
-- error objects with a kind and a message that names what was wrong and where; the
-- command line turns the kind into an exit code. Anything else that reaches the top is
-- a bug and is reported with a traceback.
local M = {}

--- Exit codes, one per kind of failure (documented in the README).
M.exit_codes = {
  failed    = 1,  -- anything else that is not a bug
  usage     = 2,  -- wrong command line
  connector = 3,  -- the connector script is invalid
  connect   = 4,  -- the connect flow did not complete (denied, wrong state, timeout, ...)
  provider  = 5,  -- the provider answered with an error (token endpoint, test API)
  network   = 6,  -- no answer: connection refused, timeout, TLS failure
  refused   = 7,  -- a URL outside what is allowed
  store     = 8,  -- the store cannot be read or written (wrong key, damaged data)
  notfound  = 9,  -- no such connection
}

local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end

--- Raises an error of `kind` with a formatted message.
function M.raise(kind, fmt, ...)
  assert(M.exit_codes[kind], "unknown error kind " .. tostring(kind))
  local message = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  error(setmetatable({ kind = kind, message = message }, Error), 0)
end

--- Raises like M.raise, with `reason`: a word a program can test (e.reason) where one
-- kind has several causes, e.g. a store error's "unreachable", "auth", "locked",
-- "schema", "damaged", "key", "fenced".
function M.raise_reason(kind, reason, fmt, ...)
  assert(M.exit_codes[kind], "unknown error kind " .. tostring(kind))
  local message = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  error(setmetatable({ kind = kind, reason = reason, message = message }, Error), 0)
end

--- Raises like M.raise, with `lines` (an array of strings) to print after the message,
-- each on a line of its own: a pipeline script's traceback. The command line prints
-- every line through log.err, which escapes a newline inside one.
function M.raise_lines(kind, lines, fmt, ...)
  assert(M.exit_codes[kind], "unknown error kind " .. tostring(kind))
  local message = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  error(setmetatable({ kind = kind, message = message, lines = lines }, Error), 0)
end

--- True when `e` is one of our error objects.
function M.is(e)
  return getmetatable(e) == Error
end

--- Re-raises `e` with `prefix` before its message, keeping its kind; other errors pass.
function M.wrap(e, prefix)
  if M.is(e) then
    error(setmetatable({ kind = e.kind, reason = e.reason, message = prefix .. e.message }, Error), 0)
  end
  error(e, 0)
end

return M
