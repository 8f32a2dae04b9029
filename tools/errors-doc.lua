--- tools/errors-doc.lua - writes docs/errors.md, the README's exit code table and the man
-- page's EXIT STATUS entries from lua/connrt/errors.lua, the one definition of the kinds
-- and reasons of errors.
--
--   lua5.4 tools/errors-doc.lua           rewrite the three (`make errors-doc`)
--   lua5.4 tools/errors-doc.lua --check   exit 1, naming the file, when one is stale
--
-- The README's table sits between the lines BEGIN and END below, the man page's entries
-- (docs/connrt.1) between MAN_BEGIN and MAN_END; the rest of each file is left alone.
-- spec/errors_spec.lua runs the check.
local root = arg[0]:match("^(.*)/tools/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. package.path
local errors = require("connrt.errors")

local BEGIN = "<!-- exit codes: generated from lua/connrt/errors.lua by `make errors-doc` -->"
local END = "<!-- end of exit codes -->"
local MAN_BEGIN = ".\\\" exit statuses: generated from lua/connrt/errors.lua by `make errors-doc`"
local MAN_END = ".\\\" end of exit statuses"

local function exit_table()
  local out = { "| code | meaning |", "|---|---|" }
  for _, k in ipairs(errors.kinds) do
    if k.only ~= "library" then out[#out + 1] = ("| %d | %s |"):format(k.code, k.says) end
  end
  return table.concat(out, "\n") .. "\n"
end

local function errors_md()
  local out = {}
  local function add(s) out[#out + 1] = s end
  add("# Errors: kinds and reasons")
  add("")
  add("<!-- generated from lua/connrt/errors.lua by `make errors-doc`: edit that file, not this one -->")
  add("")
  add("Every failure connrt expects (bad input, a provider saying no, a refused URL, a locked")
  add("store) carries a **kind**, the family that decides the exit code of the `connrt` command")
  add("and the `connrt_code` of libconnrt, and a **reason**, a word that says more closely what")
  add("went wrong, set where the failure arises and meant for programs to test. The message")
  add("beside them is for people: never parse it.")
  add("")
  add("- Lua (`connrt script`, `require \"connrt\"`): errors are tables with `kind`, `reason` and")
  add("  `message` (`tostring(err)` is the message).")
  add("- The command line: the exit code is the kind's; with `--json` (an option of every")
  add("  command), the last line on standard error is")
  add("  `{\"error\": {\"kind\": ..., \"reason\": ..., \"message\": ...}}`.")
  add("- C: the `connrt_code` is the kind's; `connrt_errreason(rt)` gives the reason and")
  add("  `connrt_errmsg(rt)` the message (`include/connrt.h`).")
  add("")
  add("Later versions may add reasons: treat an unknown one as its kind says.")
  add("")
  add("## Kinds")
  add("")
  add("| exit code | kind | C code | meaning |")
  add("|---|---|---|---|")
  for _, k in ipairs(errors.kinds) do
    local note = k.only == "library" and " (libconnrt only)" or k.only == "command" and " (the command only)" or ""
    add(("| %d | `%s` | %s | %s%s |"):format(k.code, k.name, k.c and ("`" .. k.c .. "`") or "-", k.says, note))
  end
  add("")
  add("## Reasons")
  add("")
  add("| reason | kind | exit code | meaning |")
  add("|---|---|---|---|")
  for _, r in ipairs(errors.reasons) do
    add(("| `%s` | `%s` | %d | %s |"):format(r[1], r[2], errors.exit_codes[r[2]], r[3]))
  end
  add("")
  add("The first reason of each kind is its general one: what an error of that kind says when")
  add("nothing more specific applies.")
  return table.concat(out, "\n") .. "\n"
end

-- Text for roff: backslashes and hyphens escaped, no line starting with a control character.
local function roff(text)
  text = text:gsub("\\", "\\e"):gsub("%-", "\\-")
  return (text:gsub("^([.'])", "\\&%1"))
end

-- The man page's EXIT STATUS entries: each code with what it means and its reasons.
local function man_entries()
  local out = {}
  for _, k in ipairs(errors.kinds) do
    if k.only ~= "library" then
      out[#out + 1] = ".TP"
      out[#out + 1] = ".B " .. k.code
      local says = k.says:sub(1, 1):upper() .. k.says:sub(2)
      local reasons = {}
      for _, r in ipairs(errors.reasons) do if r[2] == k.name then reasons[#reasons + 1] = r[1] end end
      if k.raised ~= false and #reasons > 0 then
        says = says .. ". Reasons: " .. table.concat(reasons, ", ")
      end
      out[#out + 1] = roff(says .. ".")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function readme_with(text)
  local s = read(root .. "/README.md")
  local a = s:find(BEGIN, 1, true)
  local b = s:find(END, 1, true)
  assert(a and b and a < b, "README.md: the exit code table's markers are missing")
  return s:sub(1, a - 1) .. BEGIN .. "\n\n" .. text .. "\n" .. s:sub(b)
end

local function man_with(text)
  local s = read(root .. "/docs/connrt.1")
  local a = s:find(MAN_BEGIN, 1, true)
  local b = s:find(MAN_END, 1, true)
  assert(a and b and a < b, "docs/connrt.1: the exit statuses' markers are missing")
  return s:sub(1, a - 1) .. MAN_BEGIN .. "\n" .. text .. s:sub(b)
end

local wanted = {
  { root .. "/docs/errors.md", errors_md() },
  { root .. "/README.md", readme_with(exit_table()) },
  { root .. "/docs/connrt.1", man_with(man_entries()) },
}

local stale = 0
for _, w in ipairs(wanted) do
  local f = io.open(w[1], "rb")
  local have = f and f:read("a")
  if f then f:close() end
  if have ~= w[2] then
    if arg[1] == "--check" then
      io.stderr:write(w[1], " is not what lua/connrt/errors.lua gives: run make errors-doc\n")
      stale = stale + 1
    else
      local out = assert(io.open(w[1], "wb"))
      out:write(w[2])
      out:close()
    end
  end
end
os.exit(stale == 0 and 0 or 1)
