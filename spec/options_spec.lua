-- luacheck: std +busted
-- Every command's options are defined once, in lua/connrt/options.lua (issue 15): the
-- parser takes exactly those (a real connrt process for each option of each command:
-- known, with or without a value as defined, and every other command's refused), the
-- help and the man page name them, and the bash completion is the file `make completion`
-- writes from them.
local h = require("support.helpers")
local help = require("connrt.help")
local options = require("connrt.options")

-- The commands whose arguments the parser reads (script hands its own to the script;
-- version and help read none).
local PARSED = { "run", "authorize", "request", "token", "refresh", "revoke", "delete", "update", "rekey", "list",
  "show", "check", "redirect-url" }

local function has_word(text, word)
  local i = 1
  while true do
    local s, e = text:find(word, i, true)
    if not s then return false end
    if not text:sub(s - 1, s - 1):match("[%w_-]") and not text:sub(e + 1, e + 1):match("[%w_-]") then return true end
    i = s + 1
  end
end

describe("the options of every command (lua/connrt/options.lua)", function()
  it("belong to commands that exist, each spelling once per command", function()
    local known = {}
    for _, c in ipairs(help.commands()) do known[c] = true end
    for cmd, list in pairs(options.COMMANDS) do
      assert.is_true(known[cmd], cmd)
      local seen = {}
      for _, o in ipairs(list) do
        assert.is_string(o.text, o[1])
        for _, n in ipairs(options.names_of(o)) do
          assert.matches("^%-%-?[%w-]+$", n)
          assert.is_nil(seen[n], cmd .. " " .. n)
          seen[n] = true
        end
      end
    end
    assert.same({}, options.of("script"))
    assert.same({}, options.of("version"))
    assert.same({}, options.of("help"))
  end)

  it("are what the parser takes, and no others", function()
    local all = {}
    for _, list in pairs(options.COMMANDS) do
      for _, o in ipairs(list) do
        for _, n in ipairs(options.names_of(o)) do all[n] = true end
      end
    end
    all["--no-such-option"] = true
    local env = { CONNRT_HOME = h.tmpdir() }
    for _, cmd in ipairs(PARSED) do
      local mine = {}
      for _, list in ipairs({ options.GLOBAL, options.of(cmd) }) do -- every command takes the global ones
        for _, o in ipairs(list) do
          for _, n in ipairs(options.names_of(o)) do mine[n] = o end
        end
      end
      for n in pairs(all) do
        local o = mine[n]
        local short = not n:match("^%-%-")
        -- a value option as the last word lacks its value; a long flag given one is
        -- refused; a short flag (-i) alone is known: the command goes on to its usage
        local res = h.connrt({ cmd, o and not o.arg and not short and (n .. "=x") or n }, { env = env })
        assert.equal(2, res.code, cmd .. " " .. n .. ": " .. res.stderr)
        if cmd == "authorize" and n == "--paste" then
          assert.matches("--paste belongs to connrt run", res.stderr, 1, true)
        elseif not o then
          assert.matches("unknown option " .. n:gsub("^%-%-?", "--"), res.stderr, 1, true)
        elseif short and not o.arg then
          assert.is_nil(res.stderr:find("unknown option", 1, true), res.stderr)
        elseif o.arg then
          assert.matches(n:gsub("^%-%-?", "--") .. " needs a value", res.stderr, 1, true)
        else
          assert.matches(n:gsub("^%-%-?", "--") .. " takes no value", res.stderr, 1, true)
        end
      end
    end
    h.rmdir(env.CONNRT_HOME)
  end)

  it("are named in each command's help and in the man page", function()
    local man = h.read(h.ROOT .. "/docs/connrt.1"):gsub("\\%-", "-")
    for _, cmd in ipairs(help.commands()) do
      local text = help.command(cmd)
      for _, o in ipairs(options.of(cmd)) do
        for _, n in ipairs(options.names_of(o)) do
          assert.is_true(has_word(text, n), "help " .. cmd .. ": " .. n)
          assert.is_true(has_word(man, n), "man page: " .. cmd .. " " .. n)
        end
      end
    end
    for _, o in ipairs(options.GLOBAL) do
      for _, n in ipairs(options.names_of(o)) do
        assert.is_true(has_word(help.usage(), n), n)
        assert.is_true(has_word(man, n), n)
      end
    end
  end)

  it("are what the bash completion offers: completions/connrt.bash is what make completion writes", function()
    local p = assert(io.popen(("cd %s && %s tools/completion.lua completions/connrt.bash.in"):format(
      h.shell_quote(h.ROOT), h.LUA)))
    local made = p:read("a")
    assert.is_true((p:close()))
    assert.equal(h.read(h.ROOT .. "/completions/connrt.bash"), made)
    for _, cmd in ipairs(help.commands()) do
      local names = help.options(cmd)
      if #names > 0 then
        -- a command's name as a pattern: git-credential's '-' is not a quantifier
        assert.matches(cmd:gsub("%-", "%%-") .. '[^\n]*%) echo "' .. table.concat(names, " "):gsub("%-", "%%-") .. '" ;;',
          made)
      end
    end
  end)
end)
