--- log.lua - everything connrt prints goes through here, so secrets never leave in clear.
--
-- The flow registers every secret value it handles (tokens, codes, client secrets,
-- secret fields) with `log.secret`; every line written to standard output or error has
-- each registered value replaced by "[redacted]". The single exception is `log.raw`,
-- which `connrt token` uses to print the one token it was asked for.
--
-- `--verbose` (or CONNRT_VERBOSE=1) turns on `log.trace`: request.lua writes every HTTP
-- exchange there, with credential headers and secret-named parameters replaced before
-- the line is even built, and the registered values redacted as on every other line.
local M = {}

local env_verbose = os.getenv("CONNRT_VERBOSE")
M.verbose = env_verbose ~= nil and env_verbose ~= "" and env_verbose ~= "0"

local secrets = {}  -- value -> true
local sorted        -- longest first, so a secret that contains another is hidden whole

--- Registers a secret value; values shorter than 4 bytes are too common to hide.
function M.secret(value)
  if type(value) == "string" and #value >= 4 and not secrets[value] then
    secrets[value] = true
    sorted = nil
  end
  return value
end

--- Returns `text` with every registered secret replaced.
function M.redact(text)
  text = tostring(text)
  if not sorted then
    sorted = {}
    for v in pairs(secrets) do sorted[#sorted + 1] = v end
    table.sort(sorted, function(a, b) return #a > #b end)
  end
  for _, v in ipairs(sorted) do
    local i = 1
    while true do
      local s, e = text:find(v, i, true)
      if not s then break end
      text = text:sub(1, s - 1) .. "[redacted]" .. text:sub(e + 1)
      i = s + #"[redacted]"
    end
  end
  return text
end

--- Writes a line to standard error.
function M.err(fmt, ...)
  local line = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  io.stderr:write(M.redact(line), "\n")
end

--- Writes a line to standard output.
function M.out(fmt, ...)
  local line = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  io.stdout:write(M.redact(line), "\n")
end

--- True when a parameter, JSON key or header of this name carries a secret: tokens,
-- codes, verifiers, secrets, passwords, keys, assertions, credentials and cookies
-- (token_type and expires_in are not).
function M.secret_name(name)
  local n = tostring(name):lower()
  if n:match("_type$") or n:match("expires") or n == "code_challenge" or n == "code_challenge_method" then
    return false
  end
  for _, word in ipairs({ "token", "secret", "passw", "code", "verifier", "assertion", "key", "auth",
      "cookie", "credential", "session", "signature" }) do
    if n:find(word, 1, true) then return true end
  end
  return n == "sig"
end

--- Writes a trace line to standard error when verbose (redacted like every line).
function M.trace(fmt, ...)
  if not M.verbose then return end
  local line = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  io.stderr:write(M.redact(line), "\n")
end

--- Writes text to standard output unredacted: only for values the user asked for.
function M.raw(text)
  io.stdout:write(text)
end

return M
