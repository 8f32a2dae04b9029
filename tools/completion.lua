-- tools/completion.lua - writes the bash completion (completions/connrt.bash) from its
-- template (completions/connrt.bash.in), the commands (lua/connrt/help.lua) and their
-- options (lua/connrt/options.lua), so the completion offers what the parser takes.
-- `make completion` runs it; spec/options_spec.lua checks the file is up to date.
-- Usage: lua5.4 tools/completion.lua [TEMPLATE] > completions/connrt.bash
package.path = "lua/?.lua;" .. package.path
local help = require("connrt.help")
local options = require("connrt.options")

local template = arg[1] or "completions/connrt.bash.in"
local f = assert(io.open(template, "rb"))
local text = f:read("a")
f:close()

-- `connrt -<TAB>`: the aliases of commands and the options of every command
local first = {}
for _, a in ipairs(help.aliases()) do first[#first + 1] = a end
local global = {}
for _, o in ipairs(options.GLOBAL) do
  for _, n in ipairs(options.names_of(o)) do global[#global + 1] = n end
end
table.sort(global)
for _, n in ipairs(global) do first[#first + 1] = n end

-- one case arm per list of options, commands with the same list sharing it
local arms, by_list, valued, files, seen = {}, {}, {}, {}, {}
for _, cmd in ipairs(help.commands()) do
  local names = help.options(cmd)
  if #names > 0 then
    local list = table.concat(names, " ")
    if by_list[list] then
      table.insert(by_list[list], cmd)
    else
      by_list[list] = { cmd }
      arms[#arms + 1] = list
    end
  end
  for _, o in ipairs(options.of(cmd)) do
    for _, n in ipairs(options.names_of(o)) do
      if o.arg and not seen[n] then
        seen[n] = true
        valued[#valued + 1] = n
        if o.file then files[#files + 1] = n end
      end
    end
  end
end
local cases = {}
for _, list in ipairs(arms) do
  cases[#cases + 1] = ('    %s) echo "%s" ;;'):format(table.concat(by_list[list], " | "), list)
end

local out = text:gsub("@(%u+)@", {
  COMMANDS = table.concat(help.commands(), " "),
  OPTIONS = table.concat(cases, "\n"),
  VALUED = table.concat(valued, " "),
  FILES = table.concat(files, " | "),
  FIRST = table.concat(first, " "),
})
io.stdout:write(out)
