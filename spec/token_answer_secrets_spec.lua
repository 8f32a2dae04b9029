-- luacheck: std +busted
-- A token endpoint's answer holds fresh credentials the redactor has not learned when a
-- hook (hooks.token_response) or an error first reads it: a hook that quotes the answer
-- in its error message ("unexpected token answer: " .. raw.body) must print every token
-- redacted, on connect and on refresh, on stderr, in --json and in the stored last_error
-- (rv13 F11). Real flows against the real authorization server.
local h = require("support.helpers")

local CLIENT_SECRET = "basic-secret"

-- A quoted credential: `"..._token":"X` (JSON, possibly escaped once more inside a JSON
-- string) whose X is not "[redacted]". Returns the first such text, or nil.
-- A token-named JSON value in `s` that is not "[redacted]". In a store's raw pages a
-- record rewritten in place can leave a stale fragment of one ("[reda" and then the
-- bytes of what overwrote it): a value whose printable start is a piece of "[redacted]"
-- is no leak.
local function leaked(s)
  for name, rest in (s or ""):gmatch('"(%w*_?token)\\?"%s*:%s*\\?"([^"\\]*)') do
    local run = rest:match("^[\32-\126]*")
    if run ~= "" and ("[redacted]"):sub(1, #run) ~= run then return name .. "=" .. rest end
  end
  return nil
end

local HOOK = [[
local function token_response(raw)
  local d = connrt.json.decode(raw.body)
  if raw.grant == "refresh_token" then return nil, "unexpected token answer: " .. raw.body, "invalid_grant" end
  if FAIL_CONNECT then return nil, "unexpected token answer: " .. raw.body end
  return { access_token = d.access_token, refresh_token = d.refresh_token, id_token = d.id_token,
    expires_in = d.expires_in, token_type = d.token_type, scope = d.scope }
end
]]

local function connector(id, fail_connect)
  return ("local FAIL_CONNECT = %s\n%s\nreturn {\n  id = %q, title = %q,\n"):format(tostring(fail_connect), HOOK, id, id) .. [[
  fields = { { key = "server", label = "Server URL", required = true } },
  issuer = "{{server}}",
  authorize_url = "{{server}}/auth",
  scopes = { "openid", "email", "profile", "offline_access" },
  authorize_params = { prompt = "consent" },
  pkce = true,
  token_url = "{{server}}/token",
  client_auth = "basic",
  test = "/me",
  name = "{{name}}'s Account",
  unique_id = "{{email}}",
  allowed_urls = { "{{server}}/" },
  request = { headers = { Authorization = "Bearer {{access_token}}" } },
  hooks = { token_response = token_response },
}
]]
end

describe("a token endpoint's answer quoted by a hook #integration", function()
  local server, redirect, tmp, home

  local function env()
    return { CONNRT_HOME = home, CONNRT_REDIRECT_URL = redirect, CONNRT_CLIENT_SECRET = CLIENT_SECRET,
      CONNRT_BROWSER = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua",
      SIGNIN_USER = "john", SIGNIN_ACTION = "approve" }
  end

  local function run(path, json)
    local argv = { "run", path, "--field", "server=" .. server.issuer, "--client-id", "connrt-basic", "--timeout", "20" }
    if json then table.insert(argv, 1, "--json") end
    return h.connrt(argv, { env = env() })
  end

  setup(function()
    tmp = h.tmpdir()
    home = tmp .. "/home"
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
    server = h.start_server({ redirect = redirect })
    h.write(tmp .. "/fail-connect.lua", connector("fail-connect", true))
    h.write(tmp .. "/fail-refresh.lua", connector("fail-refresh", false))
  end)

  teardown(function()
    if server then server.stop() end
    h.rmdir(tmp)
  end)

  it("prints the hook's message with every token redacted at connect (stderr and --json)", function()
    for _, json in ipairs({ false, true }) do
      local res = run(tmp .. "/fail-connect.lua", json)
      assert.equal(5, res.code, res.stderr)
      -- the message is there, quoting the answer...
      assert.matches('unexpected token answer: {', res.stderr, 1, true)
      assert.matches('"access_token":"[redacted]"', res.stderr, 1, true)
      assert.matches('"refresh_token":"[redacted]"', res.stderr, 1, true)
      -- ...and no credential of it in clear
      assert.is_nil(leaked(res.stderr), res.stderr)
      assert.is_nil(leaked(res.stdout), res.stdout)
      if json then assert.matches('{"error":{', res.stderr, 1, true) end
    end
  end)

  it("prints and keeps (last_error) the hook's message with every token redacted at a refresh", function()
    local res = run(tmp .. "/fail-refresh.lua")
    assert.equal(0, res.code, res.stderr)
    local id = res.stdout:match("(fail%-refresh%-%x+)")
    assert.is_string(id, res.stdout)
    res = h.connrt({ "--json", "refresh", id }, { env = env() })
    assert.are_not.equal(0, res.code)
    assert.matches('unexpected token answer: {', res.stderr, 1, true)
    assert.matches('"access_token":"[redacted]"', res.stderr, 1, true)
    assert.is_nil(leaked(res.stderr), res.stderr)
    assert.is_nil(leaked(res.stdout), res.stdout)
    local show = h.connrt({ "show", id }, { env = env() })
    assert.matches("unexpected token answer", show.stdout, 1, true)
    assert.is_nil(leaked(show.stdout), show.stdout)
    local json = h.connrt({ "show", id, "--json" }, { env = env() })
    assert.is_nil(leaked(json.stdout), json.stdout)
    local bytes = h.store_bytes(home)
    assert.matches("unexpected token answer", bytes, 1, true)
    assert.is_nil(leaked(bytes))
  end)
end)

describe("oauth.learn_credentials", function()
  local oauth = require("connrt.oauth")
  local log = require("connrt.log")
  local function raw(body, ctype) return { status = 200, body = body, header = { ["content-type"] = ctype or "application/json" } } end

  it("learns secret-named strings at any depth and token-like strings under other names", function()
    oauth.learn_credentials(raw('{"data":{"tok":"Zq81mXcv0LpW2yTrBn7K","session_token":"sess-4471-aa"},'
      .. '"list":[{"bearer":"P9hGf3sDk2Lm8nQ1wE5r"}]}'))
    for _, s in ipairs({ "Zq81mXcv0LpW2yTrBn7K", "sess-4471-aa", "P9hGf3sDk2Lm8nQ1wE5r" }) do
      assert.equal("x [redacted] y", log.redact("x " .. s .. " y"))
    end
    oauth.learn_credentials(raw("access_token=Form0Token0Value0123&token_type=bearer", "application/x-www-form-urlencoded"))
    assert.equal("[redacted]", log.redact("Form0Token0Value0123"))
    oauth.learn_credentials(raw("upstream says: Plain7Text7Token7Value7 rejected", "text/plain"))
    assert.equal("upstream says: [redacted] rejected", log.redact("upstream says: Plain7Text7Token7Value7 rejected"))
  end)

  it("leaves error words, ids, emails, URLs, numbers and declared values alone", function()
    local body = '{"error":{"code":"UNAUTHORIZED1234567","message":"Code abc123def456ghi789 not found"},'
      .. '"ECODE":"OAUTH_014","account_id":"dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc","team_id":"3458764517517819000",'
      .. '"userId":"U0123456789ABCDEFG","email":"ada.lovelace1815@example.com","instance_url":"https://na1.example.com/x1",'
      .. '"workspace":"Wk5pAcE0nAmE0000001","user_code":"WDJB-MJHT","scope":"read write"}'
    oauth.learn_credentials(raw(body), { values = { "workspace" } })
    for _, s in ipairs({ "UNAUTHORIZED1234567", "abc123def456ghi789", "OAUTH_014", "AAH4f99T0taONIb", "3458764517517819000",
        "U0123456789ABCDEFG", "ada.lovelace1815@example.com", "https://na1.example.com/x1", "Wk5pAcE0nAmE0000001", "WDJB-MJHT" }) do
      assert.equal(s, log.redact(s))
    end
  end)
end)
