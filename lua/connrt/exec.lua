--- exec.lua - `connrt exec`: runs a program with fresh credentials in its environment.
--
-- The credentials (handout.lua) go into environment variables, never into argv, where
-- every local user could read them in /proc/PID/cmdline. Without --mask connrt replaces
-- itself with the program (execvpe): its exit status, its signals and its standard
-- streams are the program's own, nothing in between. With --mask the program runs as a
-- child whose standard output and error are pipes to connrt; connrt passes every line
-- on with each spelling of every secret it handed out (log.redact) replaced by
-- "[redacted]", passes on the signals other processes send it (src/api/sys.c), and ends
-- as the child ended: the same exit status, or killed by the same signal.
--
-- The environment is connrt's own without the variables that hold connrt's secrets
-- (SECRET_ENV in src/api/sys.c: the store's key, client secrets, fields), plus the
-- credentials.
local errors = require("connrt.errors")
local handout = require("connrt.handout")
local log = require("connrt.log")
local sys = require("connrt.sys")

local M = {}

M.DEFAULT_NAME = "CONNRT_TOKEN"
-- a line longer than this is passed on in pieces (cut at a blank where there is one)
M.MAX_LINE = 1024 * 1024

local function env_name(s)
  return (s:upper():gsub("[^%w]", "_"))
end

--- The variables to set: `names` is an array of {NAME, ID}. Each connection's token goes
-- into NAME; a fields connection's one secret field too, or each of several into
-- NAME_<KEY> (the key uppercased, other characters as '_'). Returns NAME -> value.
function M.environment(conns, names)
  local env, from = {}, {}
  local function set(name, value, id)
    if from[name] then
      errors.raise("usage", "--env: %s would be set twice (for %s and %s)", name, from[name], id)
    end
    env[name], from[name] = value, id
  end
  for i, conn in ipairs(conns) do
    local name = names[i][1]
    local cred = handout.credentials(conn)
    -- an environment variable ends at a NUL: the child would get part of the value,
    -- which --mask would not know as the secret (git-credential refuses it too)
    local values = { cred.token }
    for _, f in ipairs(cred.fields or {}) do values[#values + 1] = f[2] end
    for _, v in ipairs(values) do
      if v:find("%z") then
        errors.raise("provider", "connrt exec: a credential of %s holds a NUL byte, which an environment variable "
          .. "cannot carry: not handed out", conn:id())
      end
    end
    if cred.token then
      set(name, cred.token, conn:id())
    elseif #cred.fields == 1 then
      set(name, cred.fields[1][2], conn:id())
    else
      for _, f in ipairs(cred.fields) do set(name .. "_" .. env_name(f[1]), f[2], conn:id()) end
    end
  end
  return env
end

--- The {NAME, ID} pairs of the command line: the positional IDs (one: CONNRT_TOKEN;
-- several: CONNRT_TOKEN_<ID>) and each --env NAME=ID.
function M.names(ids, env_opts)
  local names = {}
  for _, id in ipairs(ids) do
    names[#names + 1] = { #ids == 1 and M.DEFAULT_NAME or (M.DEFAULT_NAME .. "_" .. env_name(id)), id }
  end
  for _, kv in ipairs(env_opts or {}) do
    local name, id = kv:match("^([^=]*)=(.*)$")
    if not name or id == "" then errors.raise("usage", "--env %s: expected NAME=ID", kv) end
    if not name:match("^[%a_][%w_]*$") then
      errors.raise("usage", "--env %s: %q is not an environment variable name (letters, digits and _)", kv, name)
    end
    names[#names + 1] = { name, id }
  end
  if #names == 0 then
    errors.raise("usage", "connrt exec needs a connection: connrt exec ID [--env NAME=ID]... [--mask] -- COMMAND")
  end
  return names
end

-- Writes redacted `text` to `sink` and flushes it (a line reaches the reader as soon as
-- it is whole). False when the reader has gone (EPIPE).
-- Writes `text` to `sink`: false when its reader has gone (EPIPE: `| head`), and the
-- caller closes the child's pipe, so the child learns it as it would without connrt
-- (SIGPIPE). Any other failure (a closed standard error, a full disk) loses that text,
-- as the child's own write would have failed there, and the child goes on.
local EPIPE = 32 -- Linux
local function emit(sink, text)
  if text == "" then return true end
  local ok, _, errno = sink:write(text)
  if ok then ok, _, errno = sink:flush() end
  return ok ~= nil or errno ~= EPIPE
end

-- Passes on `data` with the secrets replaced.
local function pass_on(sink, data)
  return emit(sink, log.redact(data))
end

-- Passes on the last text of a stream that has ended (no more will come): a secret only
-- begun at its end would go out as it is, M.redact matching only whole ones, so that
-- beginning is replaced as a whole one would be (log.tail_cut).
local function pass_end(sink, data)
  local cut = log.tail_cut(data)
  return emit(sink, log.redact(data:sub(1, cut)) .. (cut < #data and "[redacted]" or ""))
end

-- How long a wait for output lasts before connrt looks again for signals: one that
-- comes just before the wait begins is seen at the latest this much later.
local SIGNAL_CHECK = 1
-- What connrt still reads from pipes that have data once it stops early: what the child
-- wrote before it ended is there at once; a program it left running could write forever.
local LAST_READS = 64

-- Reads the child's two pipes until both end, passing on whole lines. Text is passed on
-- only where no secret can be cut in two: a newline goes out at once unless a secret that
-- holds a newline may be going on past it (log.line_cut), and a line too long to keep
-- goes out in parts, each cut far enough from the end for a secret only begun there to
-- stay whole for the next (log.span). A chunk is only searched for its own newlines, and
-- a line is gathered in parts, so a long line costs linear time. What is left when a
-- stream ends (its end, or a stop) goes out with a secret only begun there replaced
-- whole (pass_end).
--
-- The pipes end when every process holding them has ended or closed them: the child may
-- have left a program in the background that still holds them (a daemon), and connrt
-- passes on its output as a pipe to `cat` would. But a signal connrt gets once the child
-- has ended (or that came while it ran, the child ending since) stops the wait: connrt
-- passes on what is there and ends as the child did. A reader that goes (EPIPE: `| head`)
-- closes its pipe, so the child learns it as it would without connrt: SIGPIPE.
-- Returns how the child ended and its code when the pump saw it end, else nothing.
local function pump(pid, out_fd, err_fd)
  local state = {
    [out_fd] = { sink = io.stdout, parts = {}, size = 0 },
    [err_fd] = { sink = io.stderr, parts = {}, size = 0 },
  }
  local open = { out_fd, err_fd }
  local function take(s)
    local text = table.concat(s.parts)
    s.parts, s.size = {}, 0
    return text
  end
  local function close(fd)
    sys.close(fd)
    for i, f in ipairs(open) do if f == fd then table.remove(open, i) break end end
  end
  -- passes on text up to `cut` and keeps the rest for later; false when the reader has
  -- gone and `fd` is closed (its number may be another file's from then on)
  local function pass_up_to(fd, text, cut)
    local s = state[fd]
    if cut < #text then s.parts[1], s.size = text:sub(cut + 1), #text - cut end
    if not pass_on(s.sink, text:sub(1, cut)) then close(fd) return false end
    return true
  end
  local function read(fd)
    local s = state[fd]
    local data = sys.read(fd, 65536)
    if not data or data == "" then
      pass_end(s.sink, take(s))
      close(fd)
      return
    end
    s.parts[#s.parts + 1] = data
    s.size = s.size + #data
    -- anchored: ".*" runs to the end once and steps back to the last newline (unanchored,
    -- a read without one would be tried from every position: quadratic)
    local last = data:match("^.*()\n")
    if last then
      local text = take(s)
      if not pass_up_to(fd, text, log.line_cut(text, #text - #data + last)) then return end
    end
    -- a part is cut only when it is longer than MAX_LINE beyond what is kept back, and
    -- at a blank only in the second half of what may go, so each cut passes on at
    -- least half of MAX_LINE: linear however long the line
    local keep = log.span()
    if s.size > M.MAX_LINE + keep then
      local text = take(s)
      local room = #text - keep
      local half = room // 2
      local blank = text:sub(half + 1, room):match("^.*()[ \t]")
      pass_up_to(fd, text, log.safe_cut(text, blank and half + blank or room))
    end
  end
  local signalled = false
  while #open > 0 do
    for _, fd in ipairs(sys.poll_read(open, SIGNAL_CHECK)) do read(fd) end
    if #sys.caught() > 0 then signalled = true end
    if signalled then
      local how, code = sys.wait(pid, true)
      if how then
        for _ = 1, LAST_READS do
          local ready = sys.poll_read(open, 0)
          if #ready == 0 then break end
          for _, fd in ipairs(ready) do read(fd) end
        end
        for _, fd in ipairs({ table.unpack(open) }) do
          pass_end(state[fd].sink, take(state[fd]))
          close(fd)
        end
        return how, code
      end
    end
  end
end

--- Runs `argv` with the credentials of `names` ({NAME, ID} pairs) in its environment;
-- returns connrt's exit status (without --mask it does not return). A program that
-- cannot be started raises a usage error whose `exit` is 127 or 126.
function M.run(names, argv, mask)
  local refs = {}
  for i, p in ipairs(names) do refs[i] = p[2] end
  local env = handout.with_connections(refs, function(conns) return M.environment(conns, names) end)
  io.stdout:flush()
  io.stderr:flush()
  -- a failure like any (with --json, its error line), but with the status shells and
  -- env(1) give it: 127 not found, 126 found but not runnable
  local function cannot(msg, errno)
    local e = errors.new("usage", "bad_argument", "%s", msg)
    e.exit = errno == 2 and 127 or 126
    error(e, 0)
  end
  if not mask then
    local _, msg, errno = sys.exec(argv, env)
    return cannot(msg, errno)
  end
  local pid, out_fd, err_fd = sys.spawn_piped(argv, env)
  if not pid then return cannot(out_fd, err_fd) end
  local how, code = pump(pid, out_fd, err_fd)
  if not how then how, code = sys.wait(pid) end
  if how == "signal" then
    sys.die_by(code)
    return 128 + code
  end
  return code
end

return M
