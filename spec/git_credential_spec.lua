-- luacheck: std +busted
-- connrt as a credential helper (lua/connrt/credential.lua): real `git` cloning, fetching
-- and pushing over HTTP from `git http-backend` behind a server that requires a valid
-- token (spec/support/git-server.mjs, which asks the real authorization server), with
-- `connrt git-credential` as git's helper; and `connrt credential-process`'s JSON.
local cjson = require("cjson")
local h = require("support.helpers")
local sys = require("connrt.sys")

describe("connrt git-credential and credential-process (integration) #integration", function()
  local tmp, server, git, other, home, client, base, askpass, asked

  local function grants()
    return cjson.decode(assert(client:request({ url = server.issuer .. "/test/stats" })).body).grants
      .client_credentials or 0
  end

  local function start_git(root)
    local s = h.start_node("spec/support/git-server.mjs", ("--root %s --issuer %s"):format(h.shell_quote(root),
      h.shell_quote(server.issuer)))
    local port = tonumber(s.line)
    return { port = port, base = "http://127.0.0.1:" .. port, stop = s.stop,
      log = function() return cjson.decode(assert(client:request({ url = "http://127.0.0.1:" .. port .. "/_log" })).body) end }
  end

  local function connector(name, id, allowed, extra, test)
    local path = tmp .. "/" .. name .. ".lua"
    h.write(path, ([[return {
      id = "%s", auth = "client_credentials", client_auth = "basic",
      token_url = "%s/token", scopes = { "api" },
      test = "%s", name = "{{name}}", unique_id = "{{id}}",
      allowed_urls = { %s },
      request = { headers = { Authorization = "Bearer {{access_token}}" } },
      %s
    }]]):format(id, server.issuer, test or "/api/whoami", allowed, extra or ""))
    return path
  end

  setup(function()
    tmp = h.tmpdir()
    client = require("connrt.http").client()
    server = h.start_server({ redirect = "http://127.0.0.1:8400/callback", args = "--access-ttl 4" })
    -- a bare repository with one commit
    local repos = tmp .. "/repos"
    assert.is_true(os.execute(("mkdir -p %s/work && cd %s/work && git init -q -b main && "
      .. "git -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m first && "
      .. "git clone -q --bare . %s/demo.git && git -C %s/demo.git config http.receivepack true"):format(tmp, tmp,
      repos, repos)))
    git = start_git(repos)
    other = start_git(repos) -- the same repositories at a host no connection covers
    home = h.tmpdir()
    local path = connector("gitc", "gitc", ('"%s/"'):format(git.base), 'git_username = "x-access-token",')
    local res = h.connrt({ "run", path, "--client-id", "connrt-basic" },
      { env = { CONNRT_HOME = home, CONNRT_CLIENT_SECRET = "basic-secret" } })
    assert.equal(0, res.code, res.stderr)
    base = git.base
    -- git's prompt: a program that records that it was asked
    askpass = tmp .. "/askpass.sh"
    asked = tmp .. "/asked"
    h.write(askpass, "#!/bin/sh\necho asked >>" .. asked .. "\necho nothing\n")
    assert.is_true(os.execute("chmod +x " .. askpass))
  end)

  teardown(function()
    for _, s in ipairs({ git, other, server }) do if s then s.stop() end end
    h.rmdir(home)
    h.rmdir(tmp)
  end)

  -- Runs git with connrt as its only credential helper (`helper_args` after
  -- git-credential), in `dir`, a HOME of its own and GIT_ASKPASS recording any prompt.
  -- Returns ok, output.
  local function run_git(dir, args, helper_args, env)
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = h.shell_quote(a) end
    local helper = "!" .. h.CONNRT .. " git-credential" .. (helper_args and (" " .. helper_args) or "")
    local extra = ""
    for k, v in pairs(env or {}) do extra = extra .. k .. "=" .. h.shell_quote(v) .. " " end
    local out = tmp .. "/git.out"
    local cmd = ("mkdir -p %s && cd %s && env -u SSH_ASKPASS HOME=%s GIT_CONFIG_NOSYSTEM=1 GIT_ASKPASS=%s CONNRT_HOME=%s %s "
      .. "git -c credential.helper= -c credential.helper=%s %s >%s 2>&1"):format(h.shell_quote(dir), h.shell_quote(dir),
      h.shell_quote(tmp), askpass, h.shell_quote(home), extra, h.shell_quote(helper), table.concat(quoted, " "), out)
    local ok = os.execute(cmd)
    return ok == true, h.read(out)
  end

  local function helper(action, input, args, env)
    local argv = { "git-credential" }
    for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
    argv[#argv + 1] = action
    local e = { CONNRT_HOME = home }
    for k, v in pairs(env or {}) do e[k] = v end
    return h.connrt(argv, { env = e, stdin = input, timeout = 30 })
  end

  local function host_of(b) return b:match("^http://(.*)$") end

  before_each(function() os.remove(asked) end)

  it("answers git's get with the connector's username and a valid token, and its expiry", function()
    local res = helper("get", ("protocol=http\nhost=%s\npath=demo.git\n\n"):format(host_of(base)))
    assert.equal(0, res.code, res.stderr)
    local got = {}
    for k, v in res.stdout:gmatch("([^=\n]+)=([^\n]*)") do got[k] = v end
    assert.equal("x-access-token", got.username)
    local token = h.connrt({ "token", "gitc" }, { env = { CONNRT_HOME = home } }).stdout:match("^(%S+)")
    assert.equal(token, got.password)
    assert.truthy(tonumber(got.password_expiry_utc) > os.time())
    assert.matches("\n\n$", res.stdout)
  end)

  it("lets real git clone, fetch and push with a refreshed token, picking the connection by host", function()
    local dir = tmp .. "/clone1"
    local ok, out = run_git(tmp, { "clone", "-q", base .. "/demo.git", dir }, nil, { GIT_TERMINAL_PROMPT = "0" })
    assert.is_true(ok, out)
    assert.truthy(h.read(dir .. "/.git/HEAD"))
    assert.is_nil(h.read(asked))
    -- the server saw the token with the connector's username, and a valid token
    local log = git.log()
    local last = log[#log]
    assert.equal("x-access-token", last.user)
    assert.is_true(last.token_ok)
    -- push, with --connection this time
    ok, out = run_git(dir, { "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty",
      "-m", "second" })
    assert.is_true(ok, out)
    ok, out = run_git(dir, { "push", "-q", "origin", "main" }, "--connection gitc", { GIT_TERMINAL_PROMPT = "0" })
    assert.is_true(ok, out)
    local p = io.popen(("git -C %s/repos/demo.git log --oneline | wc -l"):format(tmp))
    local n = tonumber(p:read("a"))
    p:close()
    assert.equal(2, n)
    -- the token is nowhere in git's config or the clone
    local token = h.connrt({ "token", "gitc" }, { env = { CONNRT_HOME = home } }).stdout:match("^(%S+)")
    assert.is_nil((h.read(dir .. "/.git/config") or ""):find(token, 1, true))
    assert.is_nil(h.read(tmp .. "/.git-credentials"))
  end)

  it("refreshes an expired token before git uses it", function()
    local dir = tmp .. "/clone2"
    assert.is_true((run_git(tmp, { "clone", "-q", base .. "/demo.git", dir }, nil, { GIT_TERMINAL_PROMPT = "0" })))
    local before = grants()
    sys.sleep(4.3) -- the 4 s token expired
    local ok, out = run_git(dir, { "fetch", "-q" }, nil, { GIT_TERMINAL_PROMPT = "0" })
    assert.is_true(ok, out)
    assert.equal(before + 1, grants())
    local log = git.log()
    assert.is_true(log[#log].token_ok)
  end)

  it("refreshes a token the server refused (git's erase), so the next git command succeeds", function()
    local dir = tmp .. "/clone3"
    assert.is_true((run_git(tmp, { "clone", "-q", base .. "/demo.git", dir }, nil, { GIT_TERMINAL_PROMPT = "0" })))
    -- the token is revoked at the provider: still within its lifetime, but refused
    local token = h.connrt({ "token", "gitc" }, { env = { CONNRT_HOME = home } }).stdout:match("^(%S+)")
    local rev = assert(client:request({ method = "POST", url = server.issuer .. "/token/revocation",
      headers = { "Content-Type: application/x-www-form-urlencoded",
        "Authorization: Basic " .. require("connrt.crypto").b64encode("connrt-basic:basic-secret") },
      body = "token=" .. token }))
    assert.equal(200, rev.status)
    local before = grants()
    local ok, out = run_git(dir, { "fetch", "-q" }, nil, { GIT_TERMINAL_PROMPT = "0" })
    assert.is_false(ok)
    assert.matches("refreshed it", out, 1, true)
    assert.equal(before + 1, grants())
    assert.is_nil(h.read(asked))
    ok, out = run_git(dir, { "fetch", "-q" }, nil, { GIT_TERMINAL_PROMPT = "0" })
    assert.is_true(ok, out)
  end)

  it("a host no connection covers: a clear error, and git prompts no one", function()
    local dir = tmp .. "/clone4"
    -- no GIT_TERMINAL_PROMPT=0 here: only quit=1 keeps git from asking GIT_ASKPASS
    local ok, out = run_git(tmp, { "clone", "-q", other.base .. "/demo.git", dir })
    assert.is_false(ok)
    assert.matches("no connection's allowed URLs cover " .. other.base .. "/", out, 1, true)
    assert.matches("told us to quit", out, 1, true)
    assert.is_nil(h.read(asked))
    -- and the other server got no token
    for _, r in ipairs(other.log()) do assert.equal(cjson.null, r.user) end
  end)

  it("--connection with a host outside its allowed URLs: refused, nothing handed out", function()
    local res = helper("get", ("protocol=http\nhost=%s\n\n"):format(host_of(other.base)), { "--connection", "gitc" })
    assert.equal(7, res.code)
    assert.matches("refused " .. other.base .. "/: not under the allowed URLs of gitc", res.stderr, 1, true)
    assert.equal("quit=1\n\n", res.stdout)
    -- a path outside the allowed URL's path is refused the same way
    local narrow_home = h.tmpdir()
    local path = connector("narrow", "narrow", ('"%s/api"'):format(git.base), nil, "/whoami")
    assert.equal(0, h.connrt({ "run", path, "--client-id", "connrt-basic" },
      { env = { CONNRT_HOME = narrow_home, CONNRT_CLIENT_SECRET = "basic-secret" } }).code)
    res = helper("get", ("protocol=http\nhost=%s\npath=demo.git\n\n"):format(host_of(base)), { "--connection", "narrow" },
      { CONNRT_HOME = narrow_home })
    assert.equal(7, res.code)
    -- without a path, an allowed URL must cover the whole host
    res = helper("get", ("protocol=http\nhost=%s\n\n"):format(host_of(base)), nil, { CONNRT_HOME = narrow_home })
    assert.equal(9, res.code)
    assert.equal("quit=1\n\n", res.stdout)
    h.rmdir(narrow_home)
  end)

  it("a protocol or host that is more than a scheme or host[:port]: exit 2, quit=1, nothing handed out", function()
    -- allowed http://A/api; git connects to the host it is given, never to a URL glued
    -- from parts that carry a path, query or fragment
    local narrow_home = h.tmpdir()
    local path = connector("narrow2", "narrow2", ('"%s/api"'):format(git.base), nil, "/whoami")
    assert.equal(0, h.connrt({ "run", path, "--client-id", "connrt-basic" },
      { env = { CONNRT_HOME = narrow_home, CONNRT_CLIENT_SECRET = "basic-secret" } }).code)
    local a, b = host_of(base), host_of(other.base)
    -- under the allowed URL it is handed out (the case can fail)
    local res = helper("get", ("protocol=http\nhost=%s\npath=api/repo.git\n\n"):format(a), nil, { CONNRT_HOME = narrow_home })
    assert.equal(0, res.code, res.stderr)
    assert.matches("^username=[^\n]*\npassword=", res.stdout)
    local bad = {
      { "protocol=http://" .. a .. "/api?", "host=" .. b, "path=x" },
      { "protocol=http", "host=" .. a .. "/api?", "path=" },
      { "protocol=http", "host=" .. a .. "/api#", "path=x" },
      { "protocol=http", "host=" .. a .. "/api", "path=" },
      { "protocol=http", "host=u@" .. a, "path=api" },
      { "protocol=http", "host=" .. a .. "\\@" .. b, "path=api" },
      { "protocol=http", "host=" .. b .. "/..", "path=/" .. a .. "/api" },
      { "protocol=http", "host=127.0.0.1:0", "path=api" },
      { "protocol=http", "host=127.0.0.1:65536", "path=api" },
      { "protocol=ftp", "host=" .. a, "path=api" },
      -- git gives the path decoded: a "?" or "#" (%3F, %23 in the remote URL) would end
      -- the path the check reads, and what follows (dot segments) would go unchecked
      { "protocol=http", "host=" .. a, "path=api/x#/../../other" },
      { "protocol=http", "host=" .. a, "path=api/x?/../../other" },
      { "protocol=http", "host=" .. a, "path=api/%2E%2E/other" },
      { "protocol=http", "host=" .. a, "path=api/x\\..\\other" },
      { "protocol=http", "host=" .. a, "path=api/a b" },
      -- a "." or ".." segment: in the URL git sends it may be %2e%2e or %2F..%2F, which
      -- the server need not read as the decoded path the check reads (review 27)
      { "protocol=http", "host=" .. a, "path=other/../api/repo.git" },
      { "protocol=http", "host=" .. a, "path=api/../api/repo.git" },
      { "protocol=http", "host=" .. a, "path=api/./repo.git" },
      { "protocol=http", "host=" .. a, "path=api/repo.git/.." },
      { "protocol=http", "host=" .. a, "path=.." },
    }
    for _, lines in ipairs(bad) do
      local input = table.concat(lines, "\n") .. "\n\n"
      for _, args in ipairs({ {}, { "--connection", "narrow2" } }) do
        res = helper("get", input, args, { CONNRT_HOME = narrow_home })
        assert.equal(2, res.code, input .. res.stderr)
        assert.equal("quit=1\n\n", res.stdout, input)
        assert.matches("git%-credential: [a-z]+ \"", res.stderr)
        assert.matches("nothing was handed out\n$", res.stderr)
      end
    end
    -- real git, asking with the path (credential.useHttpPath), at remote URLs whose path
    -- is under the allowed URL only once git has decoded it: git is told to quit, and
    -- the server gets no token
    local before = #git.log()
    for i, remote in ipairs({ "/other/%2e%2e/api/repo.git", "/other%2F..%2Fapi/repo.git", "/other/.%2E/api/repo.git" }) do
      local ok, out = run_git(tmp, { "-c", "credential.useHttpPath=true", "ls-remote", git.base .. remote },
        "--connection narrow2", { CONNRT_HOME = narrow_home, GIT_TERMINAL_PROMPT = "0" })
      assert.is_false(ok, remote)
      assert.matches("has a '.' or '..' segment", out, 1, true)
      assert.matches("told us to quit", out, 1, true)
      assert.is_true(#git.log() > before, i)
    end
    for i = before + 1, #git.log() do assert.equal(cjson.null, git.log()[i].user) end
    h.rmdir(narrow_home)
  end)

  it("several connections covering a host: names them and asks for --connection", function()
    local two = h.tmpdir()
    for _, id in ipairs({ "g1", "g2" }) do
      local path = connector(id, id, ('"%s/"'):format(git.base))
      assert.equal(0, h.connrt({ "run", path, "--client-id", "connrt-basic" },
        { env = { CONNRT_HOME = two, CONNRT_CLIENT_SECRET = "basic-secret" } }).code)
    end
    local res = helper("get", ("protocol=http\nhost=%s\n\n"):format(host_of(base)), nil, { CONNRT_HOME = two })
    assert.equal(2, res.code)
    assert.matches("2 connections' allowed URLs cover " .. base:gsub("%p", "%%%0")
      .. "/ %(g1%-%x+, g2%-%x+%): name one with %-%-connection ID", res.stderr)
    res = helper("get", ("protocol=http\nhost=%s\nusername=me\n\n"):format(host_of(base)), { "--connection", "g2" },
      { CONNRT_HOME = two })
    assert.equal(0, res.code, res.stderr)
    assert.matches("^username=me\n", res.stdout) -- no git_username: the one git asked with
    h.rmdir(two)
  end)

  it("store and erase write nothing", function()
    local before = h.snapshot(home)
    local res = helper("store", ("protocol=http\nhost=%s\nusername=x\npassword=planted-pass-123\n\n"):format(host_of(base)))
    assert.equal(0, res.code, res.stderr)
    assert.equal("", res.stdout)
    res = helper("erase", ("protocol=http\nhost=%s\nusername=x\npassword=not-the-token\n\n"):format(host_of(base)))
    assert.equal(0, res.code, res.stderr)
    assert.same(before, h.snapshot(home))
    assert.is_nil(h.store_bytes(home):find("planted-pass-123", 1, true))
  end)

  it("bad input: a clear error, exit 2, and git is told to quit", function()
    local res = helper("get", "this is not key value\n")
    assert.equal(2, res.code)
    assert.matches("expected key=value lines", res.stderr, 1, true)
    assert.equal("quit=1\n\n", res.stdout)
    res = helper("get", "path=x\n\n")
    assert.equal(2, res.code)
    assert.matches("git gave no protocol and host", res.stderr, 1, true)
    assert.equal("quit=1\n\n", res.stdout)
    res = helper("get", ("path=%s\n\n"):format(("a"):rep(70000)))
    assert.equal(2, res.code)
    assert.matches("more than 65536 bytes on standard input", res.stderr, 1, true)
    assert.equal("quit=1\n\n", res.stdout)
    res = h.connrt({ "git-credential", "fetch" }, { env = { CONNRT_HOME = home } })
    assert.equal(2, res.code)
    assert.matches("usage: connrt git-credential", res.stderr, 1, true)
  end)

  it("a line of 128 MB on standard input: exit 2 in 64 MB of address space (the input's limit bounds memory)", function()
    if os.getenv("ASAN_OPTIONS") then
      pending("AddressSanitizer reserves terabytes of address space: an address-space limit says nothing there")
      return
    end
    local dir = h.tmpdir()
    local cmd = ("head -c 134217728 /dev/zero | tr '\\0' a | CONNRT_HOME=%s prlimit --as=67108864 %s git-credential get "
      .. ">%s/out 2>%s/err; echo $? >%s/rc"):format(h.shell_quote(home), h.shell_quote(h.CONNRT), dir, dir, dir)
    os.execute(cmd)
    assert.equal("2\n", h.read(dir .. "/rc"), h.read(dir .. "/err"))
    assert.matches("git-credential: more than 65536 bytes on standard input", h.read(dir .. "/err"), 1, true)
    h.rmdir(dir)
  end)

  it("an answer that cannot be written is a failure, not a success that said nothing", function()
    local dir = h.tmpdir()
    for _, cmd in ipairs({
      ("printf 'protocol=http\\nhost=%s\\n\\n' | %s git-credential get"):format(host_of(base), h.shell_quote(h.CONNRT)),
      ("%s credential-process gitc"):format(h.shell_quote(h.CONNRT)),
      ("%s token gitc"):format(h.shell_quote(h.CONNRT)),
    }) do
      os.execute(("CONNRT_HOME=%s sh -c %s >/dev/full 2>%s/err; echo $? >%s/rc"):format(h.shell_quote(home),
        h.shell_quote(cmd), dir, dir))
      assert.equal("1\n", h.read(dir .. "/rc"), cmd .. ": " .. h.read(dir .. "/err"))
      assert.matches("No space left on device", h.read(dir .. "/err"), 1, true)
      -- a standard output closed (>&-): the first file connrt opens (the store's
      -- lock.mdb) must not take its place and get the token
      os.execute(("CONNRT_HOME=%s sh -c %s >&- 2>%s/err; echo $? >%s/rc"):format(h.shell_quote(home),
        h.shell_quote(cmd), dir, dir))
      assert.equal("1\n", h.read(dir .. "/rc"), cmd .. " >&-: " .. h.read(dir .. "/err"))
      assert.matches("cannot write", h.read(dir .. "/err"), 1, true)
      assert.is_nil(h.store_bytes(home):find("password=", 1, true))
    end
    h.rmdir(dir)
  end)

  it("refuses a connector whose git_username uses a secret", function()
    local path = connector("leaky", "leaky", ('"%s/"'):format(git.base), 'git_username = "{{access_token}}",')
    local res = h.connrt({ "check", path })
    assert.equal(3, res.code)
    assert.matches("git_username uses {{access_token}}", res.stdout .. res.stderr, 1, true)
  end)

  describe("credential-process", function()
    it("prints the token and its expiry in RFC 3339, refreshed when expired", function()
      local before = grants()
      sys.sleep(4.3)
      local res = h.connrt({ "credential-process", "gitc" }, { env = { CONNRT_HOME = home } })
      assert.equal(0, res.code, res.stderr)
      local doc = cjson.decode(res.stdout)
      assert.equal(before + 1, grants())
      assert.equal("Bearer", doc.token_type)
      local y, mo, d, hh, mi, ss = doc.expiration:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)Z$")
      assert.truthy(y, doc.expiration)
      local t = os.time({ year = y, month = mo, day = d, hour = hh, min = mi, sec = ss, isdst = false })
        - (os.time(os.date("!*t", 0)) - 0)
      assert.is_true(t > os.time() and t <= os.time() + 5, doc.expiration)
      local token = h.connrt({ "token", "gitc" }, { env = { CONNRT_HOME = home } }).stdout:match("^(%S+)")
      assert.equal(token, doc.token)
      res = h.connrt({ "credential-process", "gitc", "--format", "kubernetes" }, { env = { CONNRT_HOME = home } })
      assert.equal(0, res.code, res.stderr)
      doc = cjson.decode(res.stdout)
      assert.equal("ExecCredential", doc.kind)
      assert.equal("client.authentication.k8s.io/v1", doc.apiVersion)
      assert.equal(token, doc.status.token)
      assert.matches("Z$", doc.status.expirationTimestamp)
    end)

    it("bad input", function()
      local res = h.connrt({ "credential-process", "gitc", "--format", "xml" }, { env = { CONNRT_HOME = home } })
      assert.equal(2, res.code)
      assert.matches("--format xml: expected json or kubernetes", res.stderr, 1, true)
      res = h.connrt({ "credential-process", "nosuch" }, { env = { CONNRT_HOME = home } })
      assert.equal(9, res.code)
      assert.equal("", res.stdout)
      res = h.connrt({ "credential-process" }, { env = { CONNRT_HOME = home } })
      assert.equal(2, res.code)
    end)
  end)
end)
