-- luacheck: std +busted
-- The help of the command line (lua/connrt/help.lua), the man page (docs/connrt.1) and
-- the bash completion (completions/connrt.bash): the whole command surface in each, the
-- man page rendered by groff without a warning, the completion run for real by bash
-- against the built `connrt` and a real store, and `make install` placing both files.
local h = require("support.helpers")
local help = require("connrt.help")

-- The complete command surface, as the project defines it; each of help, the man page
-- and the completion must carry all of it.
local COMMANDS = { "run", "script", "authorize", "connect", "request", "token", "exec", "git-credential",
  "credential-process", "proxy", "refresh", "revoke", "delete", "update", "rekey", "store", "list",
  "show", "check", "redirect-url", "version", "help" }
local CONNECT = { "--field", "--field-file", "--client-id", "--client-secret-file", "--client-secret", "--scope",
  "--param", "--timeout", "--no-browser", "--json" }
local OPTIONS = {
  run = { "--paste", "--replace", table.unpack(CONNECT) },
  script = {},
  authorize = CONNECT,
  connect = { "--print-connector", "--paste", "--replace", table.unpack(CONNECT, 3) },
  request = { "-H", "--header", "-d", "--data", "--json-body", "-i", "--include", "--retries", "--max-wait", "--json" },
  list = { "--json" },
  show = { "--json" },
  rekey = { "--new-key-file" },
  update = { "--replace" },
  store = { "--from", "--to", "--to-key-file" },
  exec = { "--env", "--mask" },
  ["git-credential"] = { "--connection" },
  ["credential-process"] = { "--format" },
  proxy = { "--socket", "--listen", "--key-file", "--connection", "--workers", "--max-body", "--max-response", "--timeout",
    "--idle", "--refresh-ahead" },
  token = {}, refresh = {}, revoke = {}, delete = {}, check = {}, ["redirect-url"] = {}, version = {}, help = {},
}
local ENV = { "CONNRT_STORE", "CONNRT_LEASE_TTL", "CONNRT_HOME", "CONNRT_KEY", "CONNRT_KEY_FILE", "CONNRT_NEW_KEY", "CONNRT_VERBOSE",
  "CONNRT_REDIRECT_URL", "CONNRT_LISTEN", "CONNRT_BROWSER",
  "CONNRT_CLIENT_ID", "CONNRT_CLIENT_SECRET", "CONNRT_CA_BUNDLE", "CONNRT_REFRESH_MARGIN", "CONNRT_LUA_DIR", "CONNRT_PROXY", "NO_COLOR",
  "CONNRT_FIELD_" }
local EXIT = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "70", "130" }
local METHODS = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS" }

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

local function lines(text)
  local t = {}
  for l in text:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

-- True when `word` occurs in `text` as a whole word (not as part of --field-file when
-- looking for --field, nor 70 inside 1700).
local function has_word(text, word)
  local i = 1
  while true do
    local s, e = text:find(word, i, true)
    if not s then return false end
    local before, after = text:sub(s - 1, s - 1), text:sub(e + 1, e + 1)
    if not before:match("[%w_-]") and not after:match("[%w_]") and not (after == "-" and text:sub(e + 2, e + 2):match("%a")) then
      return true
    end
    i = s + 1
  end
end

describe("connrt help (lua/connrt/help.lua)", function()
  it("names every command in order", function()
    assert.same(COMMANDS, help.commands())
  end)

  it("gives an overview of every command, the environment and the exit statuses", function()
    local u = help.usage()
    assert.matches("^usage: connrt COMMAND", u)
    local cmds = u:match("\ncommands:\n(.-)\n\n")
    assert.is_string(cmds)
    for _, c in ipairs(COMMANDS) do assert.matches("\n  " .. c:gsub("%-", "%%-") .. "[ \n]", "\n" .. cmds) end
    local env = u:match("\nenvironment:\n(.-)\n\n")
    for _, v in ipairs(ENV) do assert.is_true(has_word(env, v) or env:find(v, 1, true) ~= nil, v) end
    local exit = u:match("\nexit status:\n(.*)$")
    for _, code in ipairs(EXIT) do assert.matches("\n  " .. code .. " ", "\n" .. exit) end
    assert.matches("130%s+interrupted", exit)
    assert.matches("4%s+the connect flow failed", exit)
  end)

  it("gives each command's usage, every option it takes and two or more examples", function()
    for _, name in ipairs(COMMANDS) do
      local text = help.command(name)
      assert.is_string(text, name)
      assert.matches("^usage: connrt " .. name:gsub("%-", "%%-") .. "[ \n]", text)
      assert.same(sorted(OPTIONS[name]), sorted(help.options(name)), name)
      for _, o in ipairs(OPTIONS[name]) do assert.is_true(has_word(text, o), name .. " does not explain " .. o) end
      local examples = text:match("\nexamples:\n(.*)$")
      assert.is_string(examples, name)
      local n = 0
      for l in examples:gmatch("[^\n]+") do
        if l:match("^  [%w$]") and not l:match("^  #") then n = n + 1 end
      end
      assert.is_true(n >= 2 and n <= 4, name .. " has " .. n .. " examples")
    end
  end)

  it("explains what an option's value is and the defaults", function()
    local run = help.command("run")
    assert.matches("--field KEY=VALUE", run, 1, true)
    assert.matches("--field-file KEY=PATH", run, 1, true)
    assert.matches("--param NAME=VALUE", run, 1, true)
    assert.matches("CONNRT_FIELD_<KEY>", run, 1, true)
    assert.matches("default 300", run, 1, true)
    assert.matches("connrt script", run, 1, true)
    assert.matches("connrt script SCRIPT.lua [ARGS...]", help.command("script"), 1, true)
    local req = help.command("request")
    assert.matches("-H, --header 'NAME: VALUE'", req, 1, true)
    for _, m in ipairs(METHODS) do assert.is_true(has_word(req, m), m) end
  end)

  it("keeps every line within 80 columns", function()
    local texts = { help.usage() }
    for _, name in ipairs(COMMANDS) do texts[#texts + 1] = help.command(name) end
    for _, text in ipairs(texts) do
      assert.matches("\n$", text)
      for _, l in ipairs(lines(text)) do
        assert.is_true(utf8.len(l) <= 80, "too wide: " .. l)
        assert.is_nil(l:find("%s$"), "trailing space: " .. l)
      end
    end
  end)

  it("knows the aliases and nothing else", function()
    assert.equal(help.command("help"), help.command("--help"))
    assert.equal(help.command("help"), help.command("-h"))
    assert.equal(help.command("version"), help.command("--version"))
    assert.is_nil(help.command("nope"))
    assert.is_nil(help.command("Run"))
    assert.is_nil(help.command(""))
    assert.is_nil(help.options("nope"))
  end)
end)

describe("the man page (docs/connrt.1)", function()
  local src = h.read("docs/connrt.1")
  local has_groff = os.execute("command -v groff >/dev/null 2>&1")

  -- The page as text, one section per heading: { NAME = "...", ... }.
  local function rendered()
    local p = io.popen("groff -man -Tascii -rLL=200n -P-cbu docs/connrt.1 2>&1")
    local text = p:read("a")
    p:close()
    local sections, current = {}, nil
    for l in text:gmatch("([^\n]*)\n") do
      if l:match("^%u[%u ]+$") then
        current = l
        sections[current] = ""
      elseif current then
        sections[current] = sections[current] .. l .. "\n"
      end
    end
    return sections
  end

  it("renders without a warning", function()
    if not has_groff then pending("groff is not installed (apt-get install groff-base)") return end
    local p = io.popen("groff -man -ww -z docs/connrt.1 2>&1")
    local out = p:read("a")
    assert.is_true((p:close()))
    assert.equal("", out)
    -- and a mistake would be caught: a misspelt macro warns
    local tmp = h.tmpdir()
    h.write(tmp .. "/bad.1", src .. ".XX oops\n")
    local q = io.popen("groff -man -ww -z " .. tmp .. "/bad.1 2>&1")
    local bad = q:read("a")
    q:close()
    h.rmdir(tmp)
    assert.matches("XX", bad)
  end)

  it("has the sections of a man page", function()
    local last = 0
    for _, s in ipairs({ "NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "ENVIRONMENT", "FILES",
      "EXIT STATUS", "EXAMPLES", "SEE ALSO" }) do
      local at = src:find('\n.SH "?' .. s .. '"?\n')
      assert.is_number(at, s)
      assert.is_true(at > last, s .. " is out of order")
      last = at
    end
    assert.matches("^[^\n]*\n[^\n]*\n[^\n]*\n%.TH CONNRT 1 ", src)
  end)

  it("describes every command, option, environment variable and exit status", function()
    if not has_groff then pending("groff is not installed (apt-get install groff-base)") return end
    local s = rendered()
    for _, c in ipairs(COMMANDS) do
      assert.is_true(has_word(s.COMMANDS, c), c)
      assert.is_true(has_word(s.SYNOPSIS, c), c)
    end
    for name, opts in pairs(OPTIONS) do
      for _, o in ipairs(opts) do
        assert.is_true(has_word(s.OPTIONS, o), name .. " " .. o)
        assert.is_true(has_word(s.SYNOPSIS, o) or o == "--header" or o == "--data" or o == "-i"
          or (name == "authorize"), "synopsis: " .. name .. " " .. o)
      end
    end
    for _, v in ipairs(ENV) do assert.matches(v, s.ENVIRONMENT, 1, true) end
    for _, code in ipairs(EXIT) do assert.matches("\n       " .. code .. "%s", "\n" .. s["EXIT STATUS"]) end
    assert.matches("Interrupted", s["EXIT STATUS"], 1, true)
    assert.matches("connrt run connectors/github.lua", s.EXAMPLES, 1, true)
    assert.matches("connrt authorize", s.EXAMPLES, 1, true)
  end)
end)

describe("bash completion (completions/connrt.bash) #integration", function()
  local home, files, ids

  -- Runs the completion function as bash would for `words` (the last one being
  -- completed) and returns the candidates, sorted. Standard error is kept too, so a
  -- complaint from bash or connrt shows up as a candidate and fails the test.
  local function complete(words, env)
    local quoted = {}
    for i, w in ipairs(words) do quoted[i] = h.shell_quote(w) end
    local script = ("source completions/connrt.bash; COMP_WORDS=(%s); COMP_CWORD=%d; _connrt; "
      .. "printf '%%s\\n' \"${COMPREPLY[@]}\""):format(table.concat(quoted, " "), #words - 1)
    local cmd = ("cd %s && env PATH=%s CONNRT_HOME=%s bash -c %s 2>&1"):format(h.shell_quote(h.ROOT),
      h.shell_quote(h.CONNRT:match("^(.*)/") .. ":/usr/bin:/bin"), h.shell_quote((env and env.home) or home), h.shell_quote(script))
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    local got = {}
    for l in out:gmatch("[^\n]+") do got[#got + 1] = l end
    table.sort(got)
    return got
  end

  setup(function()
    home = h.tmpdir()
    local st = require("connrt.store").open(home)
    ids = {}
    -- two connections of one connector, one of another; kept values with keys named
    -- like the record's own, which must not be offered
    ids[1] = st:save({ connector = "demo", unique_id = "a@example.com", name = "A", fields = {} },
      { access_token = "x" }, "return {}", nil)
    ids[2] = st:save({ connector = "demo", unique_id = "b@example.com", name = "B", fields = {},
      values = { id = "planted-0badc0de", connector = "other" } }, { access_token = "y" }, "return {}", nil)
    ids[3] = st:save({ connector = "local-oidc", unique_id = "john@example.com", name = "John's Account",
      fields = {} }, { access_token = "z" }, "return {}", nil)
    st:close()
    files = h.tmpdir()
    h.write(files .. "/conn.lua", "return {}")
    h.write(files .. "/notes.txt", "x")
    assert.is_true(os.execute("mkdir " .. h.shell_quote(files .. "/sub")))
  end)

  teardown(function()
    h.rmdir(home)
    h.rmdir(files)
  end)

  it("completes command names", function()
    assert.same(sorted(COMMANDS), complete({ "connrt", "" }))
    assert.same({ "token" }, complete({ "connrt", "to" }))
    assert.same({ "redirect-url", "refresh", "rekey", "request", "revoke" }, complete({ "connrt", "re" }))
    assert.same({ "--help", "--json", "--store", "--verbose", "--version", "-h", "-v" }, complete({ "connrt", "-" }))
    assert.same(sorted(COMMANDS), complete({ "connrt", "help", "" }))
  end)

  it("completes connection ids and connector ids for the commands that take an ID", function()
    local all = sorted({ ids[1], ids[2], ids[3], "demo", "local-oidc" })
    for _, cmd in ipairs({ "request", "token", "refresh", "revoke", "delete", "show" }) do
      assert.same(all, complete({ "connrt", cmd, "" }), cmd)
    end
    assert.same(sorted({ ids[1], ids[2], "demo" }), complete({ "connrt", "token", "de" }))
    assert.same({ ids[3] }, complete({ "connrt", "show", "local-oidc-" }))
    assert.same(all, complete({ "connrt", "show", "--json", "" }))
    assert.same(all, complete({ "connrt", "request", "-H", "Accept: text/plain", "" }))
    -- only the first argument is an ID
    assert.same({}, complete({ "connrt", "token", "demo", "" }))
  end)

  it("completes exec's connections up to --, then commands; git-credential's actions", function()
    local all = sorted({ ids[1], ids[2], ids[3], "demo", "local-oidc" })
    assert.same(all, complete({ "connrt", "exec", "" }))
    assert.same(all, complete({ "connrt", "exec", "demo", "--mask", "" }))
    assert.same(all, complete({ "connrt", "credential-process", "" }))
    assert.same(all, complete({ "connrt", "git-credential", "--connection", "" }))
    local cmds = complete({ "connrt", "exec", "demo", "--", "conn" })
    assert.truthy(#cmds >= 1)
    for _, c in ipairs(cmds) do assert.matches("^conn", c) end
    assert.same({ "erase", "get", "store" }, complete({ "connrt", "git-credential", "" }))
    assert.same({ "json", "kubernetes" }, complete({ "connrt", "credential-process", "demo", "--format", "" }))
  end)

  it("offers nothing, and says nothing, when there is no store or no connection", function()
    local empty = h.tmpdir()
    assert.same({}, complete({ "connrt", "token", "" }, { home = empty }))
    h.rmdir(empty)
    assert.same({}, complete({ "connrt", "token", "" }, { home = "/nonexistent/connrt-home" }))
  end)

  it("completes *.lua files and directories for run and authorize", function()
    for _, cmd in ipairs({ "run", "authorize" }) do
      assert.same({ files .. "/conn.lua", files .. "/sub" }, complete({ "connrt", cmd, files .. "/" }), cmd)
    end
    assert.same({ files .. "/conn.lua" }, complete({ "connrt", "run", "--field", "a=b", files .. "/c" }))
    assert.same({ "examples/local-oidc.lua" }, complete({ "connrt", "run", "examples/local" }))
  end)

  it("completes each command's options, the same ones the help lists", function()
    for _, cmd in ipairs(COMMANDS) do
      assert.same(sorted(help.options(cmd)), complete({ "connrt", cmd, "-" }), cmd)
    end
    assert.same({ "--field", "--field-file" }, complete({ "connrt", "run", "--fi" }))
    assert.same({ "--paste" }, complete({ "connrt", "run", "examples/local-oidc.lua", "--pas" }))
    assert.same({}, complete({ "connrt", "authorize", "--pas" }))
  end)

  it("completes files for --client-secret-file and nothing for other option values", function()
    assert.same({ files .. "/conn.lua", files .. "/notes.txt", files .. "/sub" },
      complete({ "connrt", "run", "--client-secret-file", files .. "/" }))
    assert.same({}, complete({ "connrt", "run", "--timeout", "" }))
    assert.same({}, complete({ "connrt", "request", "demo", "-H", "" }))
  end)

  it("completes HTTP methods for request's METHOD", function()
    assert.same(sorted(METHODS), complete({ "connrt", "request", ids[1], "" }))
    assert.same({ "PATCH", "POST", "PUT" }, complete({ "connrt", "request", "demo", "p" }))
    assert.same({ "DELETE" }, complete({ "connrt", "request", "-i", "demo", "DE" }))
    assert.same({}, complete({ "connrt", "request", "demo", "GET", "" }))
  end)
end)

describe("make install", function()
  it("installs the man page and the bash completion", function()
    local dest = h.tmpdir()
    local log = dest .. "/install.log"
    local ok = os.execute(("make --no-print-directory install DESTDIR=%s PREFIX=/usr >%s 2>&1"):format(dest, log))
    assert.is_true(ok, h.read(log))
    local man = dest .. "/usr/share/man/man1/connrt.1"
    local comp = dest .. "/usr/share/bash-completion/completions/connrt"
    -- docs/connrt.1 with the Makefile's VERSION filled in (spec/version_spec.lua)
    local version = h.read("Makefile"):match("\nVERSION%s*=%s*(%S+)")
    assert.equal((h.read("docs/connrt.1"):gsub("@VERSION@", version)), h.read(man))
    assert.equal(h.read("completions/connrt.bash"), h.read(comp))
    local sys = require("connrt.sys")
    assert.equal(420, sys.mode(man))  -- 0644
    assert.equal(420, sys.mode(comp))
    h.rmdir(dest)
  end)
end)

describe("connrt help on the command line", function()

  it("prints the overview for help, --help and -h", function()
    for _, args in ipairs({ { "help" }, { "--help" }, { "-h" }, {} }) do
      local res = h.connrt(args)
      assert.equal(0, res.code, res.stderr)
      assert.equal(help.usage(), res.stdout)
    end
  end)

  it("prints every command's own help, with help COMMAND and with COMMAND --help", function()
    for _, name in ipairs(help.commands()) do
      local res = h.connrt({ "help", name })
      assert.equal(0, res.code, res.stderr)
      assert.equal(help.command(name), res.stdout)
      if name ~= "help" then
        res = h.connrt({ name, "--help" })
        assert.equal(0, res.code, name .. ": " .. res.stderr)
        assert.equal(help.command(name), res.stdout)
      end
    end
  end)

  it("says so for an unknown command", function()
    local res = h.connrt({ "help", "nope" })
    assert.equal(2, res.code)
    assert.matches('no command "nope"', res.stderr, 1, true)
    res = h.connrt({ "nope" })
    assert.equal(2, res.code)
    assert.matches('unknown command "nope"', res.stderr, 1, true)
  end)
end)
