-- luacheck: std +busted
-- lua/connrt/page.lua: the landing page the redirect listener answers the browser with.
-- Escaping of hostile values, the headers that keep it out of frames and caches, a
-- Content-Security-Policy that allows exactly the page's own style, and one set of words
-- and next step per failure reason. (spec/browser_spec.lua shows it in a real browser.)
local crypto = require("connrt.crypto")
local errors = require("connrt.errors")
local page = require("connrt.page")

local HOSTILE_APP = [[Evil <script>alert("app")</script> & 'Co']]
local HOSTILE_APP_ESCAPED = "Evil &lt;script&gt;alert(&quot;app&quot;)&lt;/script&gt; &amp; &#39;Co&#39;"
local HOSTILE_NAME = [[<img src=x onerror="alert('name')">]]
local HOSTILE_NAME_ESCAPED = "&lt;img src=x onerror=&quot;alert(&#39;name&#39;)&quot;&gt;"

-- The text a person reads: tags dropped, the entities this page uses decoded.
local function text_of(html)
  local body = html:match("<body>(.*)</body>") or html
  body = body:gsub("<[^>]*>", " ")
  local ent = { amp = "&", lt = "<", gt = ">", quot = '"', ["#39"] = "'", middot = "\u{B7}",
    ["#10003"] = "\u{2713}", ["#10007"] = "\u{2717}" }
  body = body:gsub("&(#?%w+);", function(e) return ent[e] or ("&" .. e .. ";") end)
  return (body:gsub("%s+", " "))
end

-- Every tag of the page, to see that no value became markup.
local function tags(html)
  local t = {}
  for name in html:gmatch("<(/?[%w!]+)") do t[#t + 1] = name:lower() end
  return table.concat(t, " ")
end

local function raise(kind, reason, msg)
  local _, e = pcall(errors.fail, kind, reason, msg)
  return e
end

describe("page.headers", function()
  it("serves UTF-8 HTML that is never framed, cached, sniffed or given a referrer", function()
    local h = page.headers()
    assert.equal("text/html; charset=utf-8", h["Content-Type"])
    assert.equal("DENY", h["X-Frame-Options"])
    assert.equal("no-store", h["Cache-Control"])
    assert.equal("no-referrer", h["Referrer-Policy"])
    assert.equal("nosniff", h["X-Content-Type-Options"])
    local csp = h["Content-Security-Policy"]
    assert.matches("default-src 'none'", csp, 1, true)
    assert.matches("frame-ancestors 'none'", csp, 1, true)
    assert.matches("base-uri 'none'", csp, 1, true)
    assert.matches("form-action 'none'", csp, 1, true)
    assert.is_nil(csp:find("unsafe", 1, true))
    assert.is_nil(csp:find("script-src", 1, true))
  end)

  it("allows exactly the page's own inline style, by its SHA-256", function()
    local html = page.success("Local OIDC", "John")
    local style = html:match("<style>(.-)</style>")
    assert.is_string(style)
    local hash = crypto.b64encode(crypto.sha256(style))
    assert.matches("style-src 'sha256-" .. hash .. "';", page.headers()["Content-Security-Policy"], 1, true)
    -- and every kind of page carries the same style, so the one hash fits them all
    for _, p in ipairs({ page.failure("A", "denied", "m"), page.render("error", "A", "m"), page.render("ok", "A", "m") }) do
      assert.equal(style, p:match("<style>(.-)</style>"))
    end
  end)

  it("adds and replaces headers the caller gives", function()
    local h = page.headers({ Allow = "GET", ["Cache-Control"] = "no-store, max-age=0" })
    assert.equal("GET", h.Allow)
    assert.equal("no-store, max-age=0", h["Cache-Control"])
    assert.equal("DENY", h["X-Frame-Options"])
  end)
end)

describe("the page", function()
  it("is one self-contained document: UTF-8, no scripts, nothing loaded from elsewhere", function()
    for _, html in ipairs({ page.success("Local OIDC", "John's Account"),
      page.failure("Local OIDC", "denied", "authorization denied"), page.render("error", "X", "Nothing here.") }) do
      assert.matches("^<!doctype html>", html)
      assert.matches('<meta charset="utf-8">', html, 1, true)
      assert.is_nil(html:lower():find("<script", 1, true))
      assert.is_nil(html:lower():find("<link", 1, true))
      assert.is_nil(html:lower():find("<img", 1, true))
      assert.is_nil(html:lower():find("src=", 1, true))
      assert.is_nil(html:lower():find("url(", 1, true))
      assert.is_nil(html:lower():find("@import", 1, true))
      assert.is_nil(html:find("https?://"))
      assert.matches("</html>\n$", html)
    end
  end)

  it("says whom it connected, and that the tab can be closed", function()
    local html = page.success("Local OIDC", "John's Account")
    assert.matches("Connected to Local OIDC as John's Account \u{2014} you can close this tab.", text_of(html), 1, true)
    assert.matches("<p>Connected to Local OIDC as John&#39;s Account", html, 1, true)
    assert.matches("<title>Connected", html, 1, true)
    assert.matches('<main class="ok">', html, 1, true)
  end)

  it("tells connrt authorize's user where the next step is", function()
    local html = page.authorized("Local OIDC")
    local text = text_of(html)
    assert.matches("Signed in", html:match("<h1>(.-)</h1>"), 1, true)
    assert.matches("Signed in to Local OIDC.", text, 1, true)
    assert.matches("connrt run --paste", text, 1, true)
    assert.matches('<main class="ok">', html, 1, true)
    assert.is_nil(text:find("Connected", 1, true))
    assert.matches("<title>Signed in &middot; " .. HOSTILE_APP_ESCAPED, page.authorized(HOSTILE_APP), 1, true)
  end)

  it("keeps the old call working: render(kind, title, message)", function()
    local ok = page.render("ok", "Local OIDC", "Connected to Local OIDC as John's Account. You can close this tab.")
    assert.matches("<p>Connected to Local OIDC as John&#39;s Account. You can close this tab.</p>", ok, 1, true)
    local bad = page.render("error", "Local OIDC", "Nothing here: this is connrt's sign-in listener.")
    assert.matches("<p>Nothing here: this is connrt&#39;s sign-in listener.</p>", bad, 1, true)
    assert.matches("Not connected", bad, 1, true)
    assert.matches('<main class="error">', bad, 1, true)
  end)

  it("escapes a hostile app name and account name everywhere they appear", function()
    local html = page.success(HOSTILE_APP, HOSTILE_NAME)
    assert.is_nil(html:find("<script", 1, true))
    assert.is_nil(html:find("<img", 1, true))
    assert.is_nil(html:find('"alert', 1, true))
    assert.matches(HOSTILE_APP_ESCAPED, html, 1, true)
    assert.matches(HOSTILE_NAME_ESCAPED, html, 1, true)
    assert.matches("<title>Connected &middot; " .. HOSTILE_APP_ESCAPED, html, 1, true)
    -- the markup is exactly the markup of a harmless page
    assert.equal(tags(page.success("A", "B")), tags(html))
    -- and a person reads the values as they were
    assert.matches("Connected to " .. HOSTILE_APP .. " as " .. HOSTILE_NAME, text_of(html), 1, true)
  end)

  it("escapes a hostile app name, message and next step on every failure page", function()
    local msg = [[the app said: <b>"no"</b> & <script>x()</script>]]
    local nxt = [[try <a href="https://evil.example/">here</a>]]
    local harmless = tags(page.failure("A", "provider", "m", "n"))
    for reason in pairs(page.REASONS) do
      local html = page.failure(HOSTILE_APP, reason, msg, nxt)
      assert.is_nil(html:find("<script", 1, true), reason)
      assert.is_nil(html:find("<b>", 1, true), reason)
      assert.is_nil(html:find("<a ", 1, true), reason)
      assert.matches("&lt;b&gt;&quot;no&quot;&lt;/b&gt; &amp; &lt;script&gt;x()&lt;/script&gt;", html, 1, true)
      assert.matches("try &lt;a href=&quot;https://evil.example/&quot;&gt;here&lt;/a&gt;", html, 1, true)
      assert.equal(harmless, tags(html), reason)
    end
    -- the old form too
    local html = page.render("error", HOSTILE_APP, msg)
    assert.is_nil(html:find("<script", 1, true))
    assert.matches(HOSTILE_APP_ESCAPED, html, 1, true)
  end)

  it("escapes a percent sign or a replacement pattern in the app name literally", function()
    local html = page.failure("100% %s %1 App", "provider", "m")
    assert.matches("100% %s %1 App answered with an error", text_of(html), 1, true)
  end)
end)

describe("failure reasons", function()
  local APP = "Local OIDC"
  local words = {
    denied = { "Access was denied", "did not give connrt access", "choose to allow access" },
    expired = { "This sign-in has expired", "took too long", "finish signing in within the time" },
    wrong_state = { "not the sign-in connrt is waiting for", "does not carry the secret state",
      "open the most recent URL connrt printed" },
    provider = { "Local OIDC answered with an error", "reported an error", "connrt redirect-url" },
    other = { "The connection was not saved", "Something went wrong", "Your terminal shows what went wrong" },
  }

  it("are exactly denied, expired, wrong_state, provider and other", function()
    local names = {}
    for k in pairs(page.REASONS) do names[#names + 1] = k end
    table.sort(names)
    assert.same({ "denied", "expired", "other", "provider", "wrong_state" }, names)
  end)

  for reason, expected in pairs(words) do
    it(reason .. " has its own words and next step", function()
      local html = page.failure(APP, reason, "the details")
      local text = text_of(html)
      for _, w in ipairs(expected) do assert.matches(w, text, 1, true) end
      assert.matches("What to do next", text, 1, true)
      assert.matches("Details: the details", text, 1, true)
      assert.matches('<main class="error">', html, 1, true)
      -- no other reason's words
      for other, ow in pairs(words) do
        if other ~= reason then assert.is_nil(text:find(ow[1], 1, true), other .. " words on the " .. reason .. " page") end
      end
    end)
  end

  it("each has a next step no other reason has", function()
    local seen = {}
    for reason in pairs(page.REASONS) do
      local nxt = page.failure(APP, reason, "m"):match('<p class="next">(.-)</p>')
      assert.is_string(nxt, reason)
      assert.is_nil(seen[nxt], reason .. " repeats the next step of " .. tostring(seen[nxt]))
      seen[nxt] = reason
    end
  end)

  it("come through render's detail too, with the caller's next step", function()
    local html = page.render("error", APP, "access_denied", { reason = "denied", next = "Ask your admin." })
    local text = text_of(html)
    assert.matches("Access was denied", text, 1, true)
    assert.matches("What to do next Ask your admin.", text, 1, true)
    assert.is_nil(text:find("choose to allow access", 1, true))
  end)

  it("never come from the message's text: a call without one shows the message as it is", function()
    for _, msg in ipairs({ "authorization denied: access_denied: End-User aborted interaction",
        "This sign-in link is not the one connrt is waiting for (wrong or missing state).",
        "token endpoint answered 400: invalid_grant" }) do
      local text = text_of(page.render("error", APP, msg))
      assert.matches("Not connected " .. msg, text, 1, true)
      assert.is_nil(text:find("What to do next", 1, true))
    end
    local plain = text_of(page.render("error", APP, "Nothing here: this is connrt's sign-in listener."))
    assert.matches("Not connected", plain, 1, true)
    assert.is_nil(plain:find("What to do next", 1, true))
    -- a success never turns into a failure, whatever its message says
    local ok = text_of(page.render("ok", APP, "Connected; the old token expired."))
    assert.matches("^ ?%S+ Connected ", ok)
  end)

  it("treat an unknown reason as other", function()
    assert.equal(page.failure(APP, "other", "m"), page.failure(APP, "no-such-reason", "m"))
    assert.equal(page.failure(APP, "other", "m"), page.failure(APP, nil, "m"))
  end)

  it("are found from the error and the callback's query", function()
    assert.equal("denied", page.reason(nil, { error = "access_denied" }))
    assert.equal("provider", page.reason(nil, { error = "server_error" }))
    assert.equal("denied", page.reason(raise("connect", "denied", "anything")))
    assert.equal("expired", page.reason(raise("provider", "invalid_grant", "anything")))
    assert.equal("expired", page.reason(raise("connect", "sign_in_timeout", "anything")))
    assert.equal("expired", page.reason(raise("connect", "expired", "anything")))
    assert.equal("wrong_state", page.reason(raise("connect", "wrong_state", "anything")))
    assert.equal("provider", page.reason(raise("provider", "rejected", "test API GET http://127.0.0.1:1/me answered 500")))
    assert.equal("other", page.reason(raise("connector", "invalid_connector", "x.lua: hooks.callback must return a table")))
    assert.equal("other", page.reason("attempt to index a nil value"))
    -- the reason, never the message: a message that names one changes nothing
    assert.equal("other", page.reason(raise("connect", "not_completed",
      "authorization denied: access_denied; wrong state; timed out; invalid_grant")))
    assert.equal("provider", page.reason(raise("provider", "rejected", "answered 400: invalid_grant")))
    -- the error's reason wins over the query
    assert.equal("expired", page.reason(raise("provider", "invalid_grant", "x"), { error = "access_denied" }))
  end)
end)
