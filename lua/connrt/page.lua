--- page.lua - the small self-contained HTML page the redirect listener answers with.
local M = {}

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- Escapes text for HTML.
function M.escape(s)
  return (tostring(s):gsub("[&<>\"']", ESC))
end

--- Response headers: HTML in UTF-8, never framed, never cached, no external content.
function M.headers(extra)
  local h = {
    ["Content-Type"] = "text/html; charset=utf-8",
    ["Cache-Control"] = "no-store",
    ["X-Frame-Options"] = "DENY",
    ["X-Content-Type-Options"] = "nosniff",
    ["Referrer-Policy"] = "no-referrer",
    ["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

--- A page: kind "ok" or "error", the app's title, and a message.
function M.render(kind, title, message)
  local heading = kind == "ok" and "Connected" or "Not connected"
  return table.concat({
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<title>connrt: ", M.escape(heading), "</title>",
    "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}",
    "h1{font-size:1.4em}</style></head><body>",
    "<h1>", M.escape(heading), " &middot; ", M.escape(title), "</h1>",
    "<p>", M.escape(message), "</p>",
    "</body></html>\n",
  })
end

return M
