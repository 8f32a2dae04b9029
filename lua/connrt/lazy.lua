--- lazy.lua - a module loaded on first use: `local m = lazy("connrt.oauth")` is a table
-- whose first field access requires the module. Commands that never touch it (a fresh
-- `connrt token`, `connrt list`) then skip loading its code and, for the C modules, the
-- library behind it (libcurl, OpenSSL): most of their start-up, see bench/RESULTS.md.
return function(name)
  return setmetatable({}, { __index = function(t, k)
    local m = require(name)
    setmetatable(t, { __index = m })
    return m[k]
  end })
end
