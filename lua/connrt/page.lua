--- page.lua - the page the redirect listener answers the browser with: one
-- self-contained HTML document (no external assets, no JavaScript, one inline style
-- allowed by its hash in the Content-Security-Policy) that tells a person what
-- happened and what to do next. Every value shown is HTML-escaped.
--
--   page.headers(extra)                      the response headers (a table)
--   page.success(app, name)                  "Connected to APP as NAME — you can close this tab"
--   page.authorized(app)                     connrt authorize's page: paste the line it printed
--   page.failure(app, reason, message, next) a failure: reason is one of page.REASONS
--   page.reason(err, query)                  the reason for an error object and/or the
--                                            callback's decoded query
--   page.render(kind, title, message, detail)  the general form: kind "ok" | "error",
--                                            detail = { reason = ..., next = ... }
local crypto = require("connrt.crypto")

local M = {}

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- Escapes text for HTML (element content and quoted attribute values).
function M.escape(s)
  return (tostring(s):gsub("[&<>\"']", ESC))
end

-- The page's only style. The Content-Security-Policy allows exactly this text (by its
-- SHA-256), so the page stays styled while no other style or script can run.
local STYLE = table.concat({
  ":root{color-scheme:light dark;--fg:#1f2328;--bg:#f6f8fa;--card:#fff;--line:#d0d7de;--muted:#59636e;",
  "--ok:#1a7f37;--bad:#cf222e}",
  "@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--card:#161b22;--line:#30363d;",
  "--muted:#9198a1;--ok:#3fb950;--bad:#f85149}}",
  "*{box-sizing:border-box}",
  "body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",sans-serif}",
  "main{max-width:36em;margin:12vh auto 2em;padding:2em;background:var(--card);border:1px solid var(--line);",
  "border-top:6px solid var(--bad);border-radius:8px}",
  "main.ok{border-top-color:var(--ok)}",
  "h1{margin:0 0 .6em;font-size:1.4em;line-height:1.3}",
  ".mark{display:inline-block;width:1.4em;color:var(--bad)}.ok .mark{color:var(--ok)}",
  "h2{margin:1.4em 0 .3em;font-size:1em}",
  "p{margin:.4em 0}",
  ".details{margin-top:1.4em;color:var(--muted);font-size:.9em;overflow-wrap:anywhere}",
  "footer{margin-top:1.6em;color:var(--muted);font-size:.85em}",
})

local STYLE_HASH = crypto.b64encode(crypto.sha256(STYLE))

--- Response headers: HTML in UTF-8, never framed, never cached, never sniffed, no
-- referrer, and nothing loaded from anywhere (only the page's own style applies).
-- `extra` adds or replaces headers.
function M.headers(extra)
  local h = {
    ["Content-Type"] = "text/html; charset=utf-8",
    ["Cache-Control"] = "no-store",
    ["Pragma"] = "no-cache",
    ["X-Frame-Options"] = "DENY",
    ["X-Content-Type-Options"] = "nosniff",
    ["Referrer-Policy"] = "no-referrer",
    ["Content-Security-Policy"] = "default-src 'none'; style-src 'sha256-" .. STYLE_HASH .. "'; "
      .. "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

--- The failure reasons, each with its heading, what it means and what to do next.
-- `%s` in the texts is the app's title.
M.REASONS = {
  denied = {
    heading = "Access was denied",
    says = "%s did not give connrt access: the sign-in was cancelled or the consent was refused. Nothing was saved.",
    next = "If that was not what you meant, run the connrt command again in your terminal and choose to allow "
      .. "access when %s asks.",
  },
  expired = {
    heading = "This sign-in has expired",
    says = "The sign-in took too long, or this link was already used, so %s no longer accepts it. Nothing was saved.",
    next = "Run the connrt command again in your terminal and finish signing in within the time it gives.",
  },
  wrong_state = {
    heading = "This is not the sign-in connrt is waiting for",
    says = "This address does not carry the secret state of the sign-in connrt started: it may come from an old "
      .. "tab, another sign-in, or a link someone else made. connrt ignored it.",
    next = "Go back to your terminal and open the most recent URL connrt printed there; you can close this tab.",
  },
  provider = {
    heading = "%s answered with an error",
    says = "%s reported an error while connecting, so the connection was not saved.",
    next = "Check the app's client id and client secret, and that the redirect URL registered with the app is the "
      .. "one 'connrt redirect-url' prints; then run the connrt command again.",
  },
  other = {
    heading = "The connection was not saved",
    says = "Something went wrong while connecting to %s. Nothing was saved.",
    next = "Your terminal shows what went wrong; fix that and run the connrt command again.",
  },
}

local function fill(text, app)
  return (text:gsub("%%s", function() return app end))
end

-- The page's reason for an error's reason (errors.lua): the ones a person can act on.
local FOR_REASON = {
  denied = "denied",
  invalid_grant = "expired", expired = "expired", sign_in_timeout = "expired",
  wrong_state = "wrong_state",
}

local function heading_of(kind, title, detail)
  local given = detail and detail.heading
  if kind == "ok" then return given or "Connected", "&#10003;" end
  local r = M.REASONS[detail and detail.reason or ""]
  return given or (r and fill(r.heading, title)) or "Not connected", "&#10007;"
end

--- A whole page. `kind`: "ok" or "error"; `title`: the app's title; `message`: the main
-- sentence (for "error" with a known reason it is shown as the details, after the
-- reason's own words). `detail` (optional, for "error"): { reason = "denied" |
-- "expired" | "wrong_state" | "provider" | "other", next = "what to do next" (replaces
-- the reason's own next step), heading = "..." (replaces the heading; for "ok" too) }.
-- Without `detail`, the message is shown as it is. Returns the HTML text.
function M.render(kind, title, message, detail)
  title = tostring(title or "the app")
  local ok = kind == "ok"
  local r = not ok and detail and M.REASONS[detail.reason] or nil
  local heading, mark = heading_of(kind, title, detail)
  local body = {}
  local function add(...) for i = 1, select("#", ...) do body[#body + 1] = select(i, ...) end end
  add("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
    "<meta name=\"referrer\" content=\"no-referrer\">",
    "<title>", M.escape(heading), " &middot; ", M.escape(title), " &middot; connrt</title>",
    "<style>", STYLE, "</style></head>\n<body><main class=\"", ok and "ok" or "error", "\">",
    "<h1><span class=\"mark\" aria-hidden=\"true\">", mark, "</span>", M.escape(heading), "</h1>\n")
  -- the first paragraph is the main sentence
  if r then
    add("<p>", M.escape(fill(r.says, title)), "</p>\n")
  elseif message ~= nil then
    add("<p>", M.escape(message), "</p>\n")
  end
  local nxt = detail and detail.next or (r and fill(r.next, title))
  if nxt then add("<h2>What to do next</h2><p class=\"next\">", M.escape(nxt), "</p>\n") end
  if r and message ~= nil and message ~= "" then
    add("<p class=\"details\">Details: ", M.escape(message), "</p>\n")
  end
  add("<footer>This page comes from connrt, running on this computer.</footer>",
    "</main></body></html>\n")
  return table.concat(body)
end

--- The success page: "Connected to APP as NAME — you can close this tab".
function M.success(app, name)
  return M.render("ok", app, ("Connected to %s as %s \u{2014} you can close this tab."):format(app, name))
end

--- The page of `connrt authorize`: signed in, and the next step is on the terminal.
function M.authorized(app)
  return M.render("ok", app, ("Signed in to %s. connrt printed one line in your terminal: paste it into "
    .. "connrt run --paste on your server to finish connecting. You can close this tab."):format(app),
    { heading = "Signed in" })
end

--- A failure page. `reason`: a key of page.REASONS (anything else counts as "other");
-- `message`: what went wrong, shown as the details (already redacted: log.redact);
-- `next` (optional): replaces the reason's own next step.
function M.failure(app, reason, message, next_step)
  if not M.REASONS[reason] then reason = "other" end
  return M.render("error", app, message, { reason = reason, next = next_step })
end

--- The failure page's reason for an error object (errors.lua) and/or the callback's
-- decoded query, from the error's reason, never its message: denied is "denied";
-- invalid_grant (a code the token endpoint no longer takes), an expired device code or
-- a sign-in timeout "expired"; wrong_state "wrong_state"; else error=access_denied in
-- the callback is "denied", any other error there "provider"; any other error of kind
-- "provider" "provider"; everything else "other".
function M.reason(err, query)
  local r = type(err) == "table" and FOR_REASON[err.reason]
  if r then return r end
  if type(query) == "table" and query.error then
    return query.error == "access_denied" and "denied" or "provider"
  end
  if type(err) == "table" and err.kind == "provider" then return "provider" end
  return "other"
end

return M
