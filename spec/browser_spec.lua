-- luacheck: std +busted
-- The connect flow with a real browser: `connrt run` as a process, oidc-provider as the
-- app, and headless Chromium (Debian's, driven by playwright-core through
-- spec/support/chromium.mjs) as the person's browser, opened by connrt itself through
-- CONNRT_BROWSER. The browser signs in, consents or cancels, lands on connrt's page and
-- reports what a person would read there. Skipped where Chromium or playwright-core is
-- missing (tools/deps.sh installs both when it can).
local cjson = require("cjson")
local h = require("support.helpers")
local sys = require("connrt.sys")

local CHROMIUM = "/usr/bin/chromium"

-- Why this spec cannot run here, or nil when it can.
local function missing()
  local f = io.open(CHROMIUM, "rb")
  if not f then return CHROMIUM .. " is not installed (apt-get install chromium)" end
  f:close()
  if not h.read("spec/node_modules/playwright-core/package.json") then
    return "playwright-core is not installed (npm ci in spec/)"
  end
  return nil
end

describe("the landing page in a real browser #browser", function()
  local why = missing()
  if why then
    it("connects with Chromium", function() pending("skipped: " .. why) end)
    return
  end

  local server, redirect, listener, tmp

  setup(function()
    tmp = h.tmpdir()
    local port = h.free_port()
    listener = ("http://127.0.0.1:%d"):format(port)
    redirect = listener .. "/callback"
    server = h.start_server({ redirect = redirect })
  end)

  teardown(function()
    if server then server.stop() end
    h.rmdir(tmp)
  end)

  -- Runs `connrt run examples/local-oidc.lua` with Chromium as its browser; `action` is
  -- what the person does on the consent page ("approve" or "deny"). Returns connrt's
  -- result with .page, what the browser saw on connrt's page.
  local function connect(home, action)
    local out = ("%s/landing-%s-%d.json"):format(tmp, action, math.random(1e9))
    local env = {
      CONNRT_HOME = home,
      CONNRT_REDIRECT_URL = redirect,
      CONNRT_BROWSER = "node " .. h.ROOT .. "/spec/support/chromium.mjs",
      CONNRT_CLIENT_SECRET = "basic-secret",
      BROWSER_ACTION = action,
      BROWSER_OUT = out,
      BROWSER_LISTENER = listener,
      BROWSER_SCREENSHOT = os.getenv("CONNRT_SPEC_SCREENSHOTS") and
        (os.getenv("CONNRT_SPEC_SCREENSHOTS") .. "/landing-" .. action .. ".png") or nil,
    }
    local res = h.connrt({ "run", "examples/local-oidc.lua", "--field", "server=" .. server.issuer,
      "--client-id", "connrt-basic", "--timeout", "60", "--json" }, { env = env })
    -- the browser runs detached: it reports once the page has loaded
    for _ = 1, 300 do
      if h.read(out) then break end
      sys.sleep(0.1)
    end
    local text = h.read(out)
    assert.is_string(text, "the browser reported nothing; connrt said:\n" .. (res.stderr or ""))
    res.page = cjson.decode(text)
    res.raw = text
    if res.code == 0 then res.json = cjson.decode(res.stdout) end
    return res
  end

  local home
  before_each(function() home = h.tmpdir() end)
  after_each(function() h.rmdir(home) end)

  it("signs in, consents and reads that the account is connected", function()
    local res = connect(home, "approve")
    local p = res.page
    assert.is_nil(p.error, p.error)
    assert.equal(0, res.code, res.stderr)
    assert.equal("John's Account", res.json.name)

    assert.equal(200, p.status)
    assert.equal("/callback", p.path)
    assert.matches("Connected to Local OIDC as John's Account", p.text, 1, true)
    assert.matches("close this tab", p.text:lower(), 1, true)
    assert.matches("^Connected", p.title)
    -- what keeps the page safe reached the browser
    assert.equal("text/html; charset=utf-8", p.headers["content-type"])
    assert.equal("DENY", p.headers["x-frame-options"])
    assert.equal("no-store", p.headers["cache-control"])
    assert.matches("frame-ancestors 'none'", p.headers["content-security-policy"], 1, true)
    -- and the policy still let the page's own style apply, without a complaint
    assert.equal("6px", p.style.borderTopWidth)
    assert.equal("576px", p.style.maxWidth) -- 36em of 16px
    for _, m in ipairs(p.console) do assert.is_nil(m:find("Refused", 1, true), m) end

    -- no secret reached the page or the report
    local st = require("connrt.store").open(home)
    local secrets = st:secrets(st:get(res.json.id))
    st:close()
    for _, s in ipairs({ secrets.access_token, secrets.refresh_token, "basic-secret" }) do
      assert.is_nil(res.raw:find(s, 1, true))
    end
  end)

  it("cancels on the consent page and reads that access was denied and what to do next", function()
    local res = connect(home, "deny")
    local p = res.page
    assert.is_nil(p.error, p.error)
    assert.equal(4, res.code, res.stderr)
    assert.matches("access_denied", res.stderr, 1, true)

    assert.equal(400, p.status)
    assert.matches("denied", p.text:lower(), 1, true)
    assert.matches("What to do next", p.text, 1, true)
    assert.matches("run the connrt command again", p.text, 1, true)
    assert.is_nil(p.text:find("Connected to", 1, true))
    assert.equal("DENY", p.headers["x-frame-options"])
    -- nothing was saved
    local list = h.connrt({ "list", "--json" }, { env = { CONNRT_HOME = home } })
    assert.equal(0, list.code, list.stderr)
    assert.same({}, cjson.decode(list.stdout))
  end)
end)
