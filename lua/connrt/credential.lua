--- credential.lua - connrt as other tools' credential helper: `connrt git-credential`
-- (git's credential-helper protocol) and `connrt credential-process` (a JSON document on
-- standard output, for tools that run a command to get a token).
--
-- git asks with `get` and a description of the URL it is about to fetch (protocol, host,
-- path when credential.useHttpPath is on); the answer is a username and, as the password,
-- a fresh token (handout.lua). The URL must be under the connection's allowed URLs, as
-- for every use of its credentials: without a path, an allowed URL must cover the whole
-- host. Without --connection, the one connection whose allowed URLs cover the URL is
-- used; none or several is an error naming them, and the answer then says `quit=1`, so
-- git prompts no one and tries no other helper. `store` and `erase` write nothing: the
-- token lives in the store only. `erase` of the connection's current token (git says the
-- server refused it) refreshes the connection, so the next git command gets a new one.
local cjson = require("cjson")
local errors = require("connrt.errors")
local handout = require("connrt.handout")
local log = require("connrt.log")

local M = {}

-- the username git sends with a token when the connector does not say (GitHub's)
M.DEFAULT_USERNAME = "x-access-token"
M.MAX_INPUT = 64 * 1024

--- Reads git's description of a credential (key=value lines up to an empty line or the
-- end) from `f`; returns a table of the keys (array keys like wwwauth[] are dropped).
function M.read_request(f)
  local req, size = {}, 0
  -- a byte at a time (from f's buffer): f:lines() would hold a whole line, however long,
  -- before its size could be checked
  local function next_line()
    local buf = {}
    while true do
      local c = f:read(1)
      if not c then return #buf > 0 and table.concat(buf) or nil end
      size = size + 1
      if size > M.MAX_INPUT then errors.raise("usage", "git-credential: more than %d bytes on standard input", M.MAX_INPUT) end
      if c == "\n" then return table.concat(buf) end
      buf[#buf + 1] = c
    end
  end
  for line in next_line do
    if line == "" then break end
    local k, v = line:match("^([^=]+)=(.*)$")
    if not k then errors.raise("usage", "git-credential: expected key=value lines, got %q", log.redact(line)) end
    if not k:find("[]", 1, true) then req[k] = v end
  end
  return req
end

-- The host git connects to: host or host:port (a name or IPv4 address, or an IPv6
-- address in brackets; a port 1..65535), nothing else. Returns it lowercased, or nil.
local function plain_host(host)
  local name, port = host:match("^(%[[%x:%.]+%])(.*)$")
  if not name then
    name, port = host:match("^([^:]+)(.*)$")
    if not name or name:find("[/?#@\\%s%c%%%[%]]") then return nil end
  end
  if port ~= "" then
    local n = port:match("^:(%d%d?%d?%d?%d?)$")
    if not n or tonumber(n) < 1 or tonumber(n) > 65535 then return nil end
  end
  return host:lower()
end

-- The URL git is about to use, as an allowed-URL check reads it: built from the parts,
-- each checked to be what git connects to (protocol http or https, host host[:port]), so
-- no part can carry a path, query or fragment that moves the URL the check reads away
-- from the host git connects to.
local function target(req)
  if not req.protocol or not req.host or req.host == "" then
    errors.raise("usage", "git-credential: git gave no protocol and host (got %s)",
      req.protocol and ("protocol " .. log.redact(req.protocol)) or "neither")
  end
  local protocol = req.protocol:lower()
  if protocol ~= "http" and protocol ~= "https" then
    errors.raise("usage", "git-credential: protocol %q: connrt answers for http and https only; nothing was handed out",
      log.redact(req.protocol))
  end
  local host = plain_host(req.host)
  if not host then
    errors.raise("usage", "git-credential: host %q is not a host or host:port (no /, ?, #, @, \\ or blank, a port "
      .. "1-65535); nothing was handed out", log.redact(req.host))
  end
  -- git gives the path decoded (%3F is "?" here): one that holds a character a URL's path
  -- cannot hold as it is would move the URL the check reads ("?" and "#" end the path,
  -- "%" would be decoded again), so it is refused
  local path = req.path or ""
  if not path:match("^[%w%-._~!$&'()*+,;=:@/]*$") then
    errors.raise("usage", "git-credential: path %q holds a character connrt does not take in a path (?, #, %%, \\, "
      .. "a blank, a control or non-ASCII character); nothing was handed out", log.redact(path))
  end
  -- and a "." or ".." segment may have been %2E%2E, or ".." between %2F, in the URL git
  -- sends, which no server need read as the check reads the decoded one (a parent
  -- directory): it is refused too, whatever it resolves to
  for seg in (path .. "/"):gmatch("([^/]*)/") do
    if seg == "." or seg == ".." then
      errors.raise("usage", "git-credential: path %q has a '.' or '..' segment, which git gives decoded: in the URL it "
        .. "sends it may be %%2E%%2E or %%2F..%%2F, which a server need not read as a parent directory; nothing was "
        .. "handed out", log.redact(path))
    end
  end
  return ("%s://%s/%s"):format(protocol, host, path)
end

local function covers(conn_rec, u)
  return (require("connrt.url").allowed(u, conn_rec.allowed_urls or {}))
end

-- The id of the one connection whose allowed URLs cover `u`.
local function pick(st, u)
  local found = {}
  for _, rec in ipairs(st:list()) do
    if covers(rec, u) then found[#found + 1] = rec.id end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then
    errors.raise("notfound", "git-credential: no connection's allowed URLs cover %s: connect one whose connector "
      .. "allows it (git_username and allowed_urls, docs/connectors.md), or name one with --connection ID", u)
  end
  table.sort(found)
  errors.raise("usage", "git-credential: %d connections' allowed URLs cover %s (%s): name one with --connection ID",
    #found, u, table.concat(found, ", "))
end

-- The username git presents the token with: the connector's git_username (a template of
-- the connection's fields and kept values), else the one git asked with, else GitHub's.
local function username(conn, asked)
  local tpl = conn.c.git_username
  if not tpl then return asked or M.DEFAULT_USERNAME end
  local template = require("connrt.template")
  local scope = template.scope({ fields = conn.rec.fields or {}, values = conn.rec.values or {} })
  return template.render(tpl, scope, conn.c.path .. ": git_username")
end

-- Opens the connection for `req`: `ref` or the one whose allowed URLs cover the URL,
-- checked to cover it either way. Runs `use(conn, u)` with the store open.
local function with_connection(ref, req, use)
  local u = target(req)
  local store = require("connrt.store")
  if not ref and not store.exists() then
    errors.raise("notfound", "git-credential: no connection's allowed URLs cover %s: there is no store yet", u)
  end
  local st = store.open(nil, { existing = "no connection " .. tostring(ref) })
  local ok, res = pcall(function()
    local conn = require("connrt.connection").open(st, ref or pick(st, u))
    if not covers(conn.rec, u) then
      errors.raise("refused", "git-credential: refused %s: not under the allowed URLs of %s (%s); nothing was handed "
        .. "out", u, conn:id(), table.concat(conn.rec.allowed_urls or {}, " "))
    end
    return use(conn, u)
  end)
  st:close()
  if not ok then error(res, 0) end
  return res
end

--- `connrt git-credential [--connection ID] get|store|erase`: reads git's request from
-- `input`, writes the answer to `output`. Returns the exit status.
function M.git(ref, action, input, output)
  if action ~= "get" then return M.git_update(ref, action, M.read_request(input)) end
  -- writes the answer; a failure to write it is this command's failure, not a success
  -- with no answer
  local function answer(text)
    local ok, err = output:write(text)
    if ok then ok, err = output:flush() end
    if not ok then errors.raise("failed", "git-credential: cannot write the answer: %s", tostring(err)) end
  end
  local ok, err = pcall(function()
    -- inside: a request that cannot be read is answered quit=1 as well
    local req = M.read_request(input)
    return with_connection(ref, req, function(conn)
      local secret, expires_at = handout.single(conn)
      local lines = { "username=" .. username(conn, req.username), "password=" .. secret }
      if expires_at then lines[#lines + 1] = ("password_expiry_utc=%d"):format(math.floor(expires_at)) end
      for _, l in ipairs(lines) do
        if l:find("[%z\n]") then
          errors.raise("provider", "git-credential: a value holds a newline or NUL: not handed out")
        end
      end
      answer(table.concat(lines, "\n") .. "\n\n")
    end)
  end)
  if not ok then
    -- no answer git could use: tell it to stop here rather than prompt the user or ask
    -- another helper (git then fails, saying the helper told it to quit)
    output:write("quit=1\n\n")
    output:flush()
    error(err, 0)
  end
  return 0
end

--- `store` and `erase` of `connrt git-credential`: nothing is written.
function M.git_update(ref, action, req)
  if action == "store" then return 0 end
  if action == "erase" then
    -- git says the server refused this password: when it is the connection's current
    -- token, refresh (single flight; a connection that cannot refresh is left as it is)
    if not req.password or req.password == "" then return 0 end
    return with_connection(ref, req, function(conn)
      if conn.secrets.access_token == req.password and conn:can_refresh() then
        conn:refresh(req.password)
        log.err("connrt: git was refused the token of %s: refreshed it", conn:id())
      end
      return 0
    end)
  end
  return 0
end

M.FORMATS = { json = true, kubernetes = true }

--- `connrt credential-process ID [--format json|kubernetes]`: the JSON document with a
-- fresh token (or a fields connection's one secret field) and its expiry in RFC 3339.
function M.process(ref, format)
  format = format or "json"
  if not M.FORMATS[format] then errors.raise("usage", "--format %s: expected json or kubernetes", format) end
  local doc = handout.with_connections({ ref }, function(conns)
    local secret, expires_at = handout.single(conns[1])
    local expiry = expires_at and handout.rfc3339(expires_at) or nil
    if format == "kubernetes" then
      return { apiVersion = "client.authentication.k8s.io/v1", kind = "ExecCredential",
        status = { token = secret, expirationTimestamp = expiry } }
    end
    return { token = secret, token_type = conns[1].rec.token_type or (conns[1].rec.auth ~= "fields" and "Bearer" or nil),
      expiration = expiry }
  end)
  -- the one secret printed, on purpose (as connrt token prints its token)
  log.raw(cjson.encode(doc) .. "\n")
  return 0
end

return M
