-- luacheck: std +busted
-- Shipped connectors, end to end: each connector file is copied with its provider URLs
-- rewritten to a loopback stand-in of that provider (spec/support/standin.mjs, which
-- answers the provider's documented shapes from spec/fixtures/providers/), connected
-- with `connrt run` as a real process and a scripted browser, then used for one
-- `connrt request`. The connector files themselves are not changed.
local cjson = require("cjson")
local h = require("support.helpers")

local CLIENT_ID, CLIENT_SECRET = "cid-standin", "cs-standin-secret"

local client = require("connrt.http").client()

local start_standin

-- Runs fn(standin, home) with a provider's stand-in and a fresh store, and always stops
-- and removes both, whether fn passes or fails.
local function with_standin(name, fn, fixture)
  local standin = start_standin(name, fixture)
  local home = h.tmpdir()
  local ok, err = pcall(fn, standin, home)
  standin.stop()
  h.rmdir(home)
  if not ok then error(err, 0) end
end

function start_standin(name, fixture)
  local s = h.start_node("spec/support/standin.mjs", h.shell_quote(fixture or ("spec/fixtures/providers/" .. name .. ".json")))
  local info = cjson.decode(s.line)
  info.stop = s.stop
  info.log = function()
    return cjson.decode(assert(client:request({ url = info.origin .. "/_standin/log" })).body)
  end
  info.fail = function(what)
    assert(client:request({ method = "POST", url = info.origin .. "/_standin/fail?what=" .. what }))
  end
  return info
end

local function plain(s) return (s:gsub("%p", "%%%0")) end
local function url_form(body) return (require("connrt.url").form_decode(body)) end

-- The connector's source with its provider URLs pointed at the stand-in: first the
-- case's own rewrites (for templated hosts), then every remaining https origin.
local function rewritten(name, origin, rewrites, tmp)
  local src = assert(h.read("connectors/" .. name .. ".lua"))
  local out = src
  for _, r in ipairs(rewrites or {}) do
    out = out:gsub(plain(r[1]), (r[2]:gsub("ORIGIN", origin):gsub("%%", "%%%%")))
  end
  out = out:gsub("https://[%w%.%-]+%.%a+", (origin:gsub("%%", "%%%%")))
  assert.are_not.equal(src, out, "the rewrite changed nothing")
  local path = tmp .. "/" .. name .. ".lua"
  h.write(path, out)
  return path
end

local function find(log, method, path)
  local hits = {}
  for _, e in ipairs(log) do
    if e.method == method and e.path == path then hits[#hits + 1] = e end
  end
  return hits
end

-- Each case: the connector, extra rewrites, fields, what the connection is called, one
-- request and what its answer holds, and checks of what the stand-in saw.
local CASES = {
  { id = "github", name = "octocat's GitHub", unique_id = "583231", request = "/user", expect = "octocat" },
  { id = "slack", name = "grace at Subarachnoid Workspace", unique_id = "T9TK3CUKW-U1234",
    request = "/users.list", expect = "grace" },
  { id = "notion", name = "Ada's Notion Workspace", unique_id = "j565j4d7x3-2882-61bs-564a-jj9d9ui-c36hxfr7x",
    request = "/users/me", expect = "pied piper",
    saw = function(log)
      local t = find(log, "POST", "/v1/oauth/token")[1]
      assert.matches("^application/json", t.headers["content-type"])
      local body = cjson.decode(t.body)
      assert.equal("authorization_code", body.grant_type)
      assert.matches("^Basic ", t.headers.authorization)
    end },
  { id = "salesforce", rewrites = { { "https://{{domain}}.salesforce.com", "ORIGIN" } },
    name = "Ada Lovelace (ada@example.com)", unique_id = "00Dxx0000001gPLEAY/005xx000001SwiUAAS",
    request = "/services/data/v62.0/limits", expect = "DailyApiRequests",
    allowed = function(origin) return { origin .. "/instance" } end },
  { id = "shopify", rewrites = { { "https://{{shop}}.myshopify.com", "ORIGIN/shop/{{shop}}" } },
    fields = { "shop=ada-store" }, name = "Ada's Store", unique_id = "548380009",
    request = "/products.json", expect = "IPod Nano",
    saw = function(log)
      local r = find(log, "GET", "/shop/ada-store/admin/api/2025-01/products.json")[1]
      assert.is_nil(r.headers.authorization)
      assert.matches("^at%-", r.headers["x-shopify-access-token"])
    end },
  { id = "quickbooks", rewrites = { { "https://{{api_host}}", "ORIGIN" } },
    name = "Sandbox Company_US_1", unique_id = "4620816365031227050",
    request = "/4620816365031227050/companyinfo/4620816365031227050", expect = "Sandbox Company_US_1" },
  { id = "atlassian", name = "Mia Krystof at ada-site",
    unique_id = "1324a887-45db-1bf4-1e99-ef0ff456d421/5b10a2844c20165700ede21g",
    request = "/ex/jira/1324a887-45db-1bf4-1e99-ef0ff456d421/rest/api/3/project/search", expect = "Example",
    saw = function(log)
      local t = find(log, "POST", "/oauth/token")[1]
      local body = cjson.decode(t.body)
      assert.equal(CLIENT_ID, body.client_id)
      assert.equal(1, #find(log, "GET", "/oauth/token/accessible-resources"))
    end },
  { id = "xero", name = "Maple Florist", unique_id = "70784a63-d24b-46a9-a4db-0e70a274b056",
    request = "/api.xro/2.0/Organisation", expect = "Maple Florist",
    saw = function(log)
      -- the lookup ran before the tenant was known: without the tenant header
      local c = find(log, "GET", "/connections")[1]
      assert.is_nil(c.headers["xero-tenant-id"])
    end },
  { id = "mailchimp", name = "Ada's Shop", unique_id = "8d3a3db4d97663a9074efcc16",
    request = "/lists", expect = "Newsletter",
    allowed = function(origin) return { origin .. "/us6/3.0", origin .. "/oauth2/metadata" } end },
  { id = "pipedrive", name = "Ada Lovelace at Analytical Engines", unique_id = "5678/123",
    request = "/v1/deals", expect = "Engine",
    allowed = function(origin) return { origin .. "/company/api" } end },
  { id = "figma", name = "Ada", unique_id = "1234", request = "/me", expect = "ada@example.com" },
  { id = "facebook", name = "Ada Lovelace", unique_id = "10158238122847823", request = "/me", expect = "Ada Lovelace" },
  { id = "keycloak", rewrites = { { 'pattern = "https://[%w.-]+%.[%a]+[:%d]*"', 'pattern = "http://127%.0%.0%.1:%d+"' } },
    fields = { "server=ORIGIN", "realm=acme" }, name = "ada at acme", unique_id = "acme/f1b3c2d4-8e6a-4b1f-9c3d-2e5f7a9b0c1d",
    request = "ORIGIN/admin/realms/acme/users/count", expect = "42" },
  { id = "gitlab", rewrites = { { 'pattern = "https://[%w.-]+%.[%a]+[:%d]*"', 'pattern = "http://127%.0%.0%.1:%d+"' } },
    name = "john_smith's GitLab", unique_id = "1", request = "/user", expect = "John Smith" },
  { id = "google", name = "Ada Lovelace (ada@example.com)", unique_id = "110169484474386276334",
    request = "/userinfo", expect = "ada@example.com" },
  { id = "microsoft", name = "Adele Vance (AdeleV@contoso.com)", unique_id = "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
    request = "/me", expect = "Adele Vance" },
  { id = "hubspot", name = "ada@example.com at ada-dev.com", unique_id = "62515-123",
    request = "/crm/v3/objects/contacts", expect = "bh@hubspot.com" },
  { id = "zendesk", rewrites = { { "https://{{subdomain}}.zendesk.com", "ORIGIN/zd/{{subdomain}}" } },
    fields = { "subdomain=ada" }, name = "Johnny Agent at ada", unique_id = "ada/35436",
    request = "/users/me.json", expect = "johnny@example.com" },
  { id = "linear", name = "Ada Lovelace", unique_id = "2e3d3a3c-6a7b-4f7e-9d0c-1a2b3c4d5e6f",
    request = "/graphql", expect = "viewer", method = "POST", body = '{"query":"{ viewer { id } }"}' },
  { id = "asana", name = "Greg Sanchez", unique_id = "4673218951", request = "/users/me", expect = "gsanchez@example.com" },
  { id = "dropbox", name = "Franz Ferdinand (Personal)", unique_id = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
    request = "/users/get_current_account", method = "POST", body = "null", expect = "franz@dropbox.com" },
  { id = "box", name = "Aaron Levie (ceo@example.com)", unique_id = "11446498", request = "/users/me", expect = "Aaron Levie" },
  { id = "zoom", name = "Jill Chill", unique_id = "KDcuGIm1QgePTO8WbOqwIQ", request = "/users/me", expect = "jchill@example.com" },
  { id = "discord", name = "nelly", unique_id = "80351110224678912", request = "/users/@me", expect = "nelly@discord.com" },
  { id = "spotify", name = "JM Wizzler", unique_id = "wizzler", request = "/me", expect = "premium" },
  { id = "reddit", name = "u/reddit_user", unique_id = "1w72", request = "/api/v1/me", expect = "link_karma",
    saw = function(log)
      -- the descriptive User-Agent on the token request too (token_headers)
      assert.equal("linux:connrt:" .. require("connrt.build").version .. " (by /u/connrt)",
        find(log, "POST", "/api/v1/access_token")[1].headers["user-agent"])
    end },
  { id = "airtable", name = "foo@bar.com", unique_id = "usrL2PNC5o3H4lBEi", request = "/meta/whoami", expect = "usrL2PNC5o3H4lBEi" },
  { id = "calendly", name = "John Doe", unique_id = "https://api.calendly.com/users/AAAAAAAAAAAAAAAA",
    request = "/users/me", expect = "acmesales" },
  { id = "intercom", rewrites = { { "https://{{api_host}}", "ORIGIN" } }, name = "Ciaran Lee at MyApp 1",
    unique_id = "this_is_an_id1_that_should_be_at_least_40/991267464", request = "/me", expect = "admin1@email.com" },
  { id = "twitter", name = "@XDevelopers", unique_id = "2244994945", request = "/users/me", expect = "X Dev" },
  { id = "stripe", name = "Stripe acct_1032D82eZvKYlo2C", unique_id = "acct_1032D82eZvKYlo2C",
    request = "/account", expect = "Ada's Shop" },
  { id = "brevo", fields = { "api_key=xkeysib-0123456789abcdef-standin" }, name = "Analytical Engines (ada@example.com)",
    unique_id = "ada@example.com", request = "/account", expect = "Lovelace" },
  { id = "trello", fields = { "key=0123456789abcdef0123456789abcdef", "token=ATTA-standin-token-value" },
    name = "Ada Lovelace (@adalovelace)", unique_id = "5abbe4b7ddc1b351ef961414",
    request = "/members/me/boards", expect = "Engines" },
  { id = "jira-basic", rewrites = { { "https://{{site}}.atlassian.net", "ORIGIN/site/{{site}}" } },
    fields = { "site=ada-site", "email=ada@example.com", "api_token=ATATT-standin-api-token" },
    name = "Ada Lovelace at ada-site", unique_id = "ada-site/5b10a2844c20165700ede21g",
    request = "/myself", expect = "5b10a2844c20165700ede21g" },
  -- batch 2 (issue #19)
  { id = "bitbucket", name = "Ada Lovelace's Bitbucket", unique_id = "{d301aafa-d676-4ee0-88be-962be7417567}",
    request = "/user/permissions/workspaces", expect = "analytical-engines" },
  { id = "linkedin", name = "Ada Lovelace (ada@example.com)", unique_id = "782bbtaQ",
    request = "/v2/userinfo", expect = "given_name" },
  { id = "pinterest", name = "adalovelace on Pinterest", unique_id = "adalovelace",
    request = "/boards", expect = "Difference Engines" },
  { id = "fitbit", name = "Ada L.", unique_id = "GGNJL9",
    request = "/1/user/-/activities/date/2024-01-01.json", expect = "8421" },
  { id = "webex", name = "Ada Lovelace (ada@example.com)",
    unique_id = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9mNWIzNjE4Ny1jOGRkLTQ3MjctOGIyZi1mOWM0NDdmMjkwNDY",
    request = "/rooms", expect = "Engine Design" },
  { id = "typeform", rewrites = { { "https://{{api_host}}", "ORIGIN" } }, name = "Ada (ada@example.com)",
    unique_id = "ada@example.com", request = "/forms", expect = "Engine survey" },
  { id = "canva", name = "Ada Lovelace", unique_id = "oBpVhLW22VrqtwKgaayRbP/oUnPjZ2k2yuhftbWF7873o",
    request = "/designs", expect = "Engine poster",
    saw = function(log)
      -- the display name came from the profile, read by hooks.lookup before the test API
      assert.equal(1, #find(log, "GET", "/rest/v1/users/me/profile"))
    end },
  { id = "strava", name = "Ada Lovelace", unique_id = "134815",
    request = "/athlete/activities", expect = "Morning Ride to the Engine" },
  { id = "todoist", name = "Ada Lovelace (ada@example.com)", unique_id = "2671355",
    request = "/projects", expect = "Inbox" },
  { id = "clickup", name = "Ada Lovelace (ada@example.com)", unique_id = "123",
    request = "/team", expect = "Analytical Engines",
    saw = function(log)
      local t = find(log, "POST", "/api/v2/oauth/token")[1]
      assert.equal("", t.query) -- no client secret or code in the URL
      assert.matches("client_secret=", t.body, 1, true)
    end },
  { id = "mastodon", register = true, rewrites = { { "https://{{instance}}", "ORIGIN" } }, fields = { "instance=mastodon.social" },
    name = "@trwnh@mastodon.social", unique_id = "mastodon.social/14715", request = "/v1/timelines/home",
    expect = "Building the difference engine",
    saw = function(log)
      -- the app registered itself with the redirect URL and the scopes it then asked for
      local reg = url_form(find(log, "POST", "/api/v1/apps")[1].body)
      assert.equal("connrt", reg.client_name)
      assert.equal("read write", reg.scopes)
      assert.matches("^http://127%.0%.0%.1:%d+/callback$", reg.redirect_uris)
      local t = url_form(find(log, "POST", "/oauth/token")[1].body)
      assert.equal("TWhM-tNSuncnqN7DBJmoyeLnk6K3iJJ71KKXxgL1hPM", t.client_id)
    end },
  { id = "miro", name = "Ada Lovelace at Analytical Engines", unique_id = "3458764517517819000/3458764517517852417",
    request = "/boards", expect = "Engine plans" },
  { id = "webflow", name = "Ada Lovelace (ada@example.com)", unique_id = "545bbecb7bdd6769632504a7",
    request = "/sites", expect = "analytical-engines" },
  { id = "monday", name = "Ada Lovelace at Analytical Engines", unique_id = "1825528/4012689",
    request = "/v2", method = "POST", body = '{"query":"query { me { id } }"}', expect = "4012689",
    saw = function(log)
      -- the raw token, as monday's examples send it
      assert.matches("^at%-", find(log, "POST", "/v2")[1].headers.authorization)
    end },
  { id = "square", rewrites = { { "https://connect.{{env}}.com", "ORIGIN" } }, name = "Ada's Engines",
    unique_id = "MLN0S71B5T7XB", request = "/locations", expect = "Engine Works",
    saw = function(log)
      local t = find(log, "POST", "/oauth2/token")[1]
      assert.equal("cid-standin", cjson.decode(t.body).client_id)
    end },
  { id = "paypal", rewrites = { { "https://www.{{environment}}.com", "ORIGIN" }, { "https://api-m.{{environment}}.com", "ORIGIN" } },
    name = "Ada Lovelace", unique_id = "https://www.paypal.com/webapps/auth/identity/user/mWq6_1sU85v5EG9yHdPxJRrhGHrnMJ-1PQKtX6pcsmA",
    request = "/identity/oauth2/userinfo?schema=paypalv1.1", expect = "WDJJHEBZ4X2LY" },
  { id = "docusign", rewrites = { { "https://{{auth_host}}", "ORIGIN" } }, name = "Ada Lovelace at Analytical Engines",
    unique_id = "7fb0c3ff-6b7c-4d4e-9b1a-0a1b2c3d4e5f/4799e5e9-1559-4915-9862-cf4713bbcacc",
    request = "/envelopes", expect = "Engine contract",
    allowed = function(origin)
      return { origin .. "/dsapi/restapi/v2.1/accounts/7fb0c3ff-6b7c-4d4e-9b1a-0a1b2c3d4e5f", origin .. "/oauth/userinfo" }
    end },
  { id = "okta", rewrites = { { "https://{{domain}}", "ORIGIN/okta/{{domain}}" } }, fields = { "domain=dev-123456.okta.com" },
    name = "Ada Lovelace (ada@example.com)", unique_id = "dev-123456.okta.com/00uid4BxXw6I6TV4m0g3",
    request = "/users/me", expect = "ACTIVE" },
  { id = "auth0", rewrites = { { "https://{{domain}}", "ORIGIN/auth0/{{domain}}" } }, fields = { "domain=ada.eu.auth0.com" },
    name = "Ada Lovelace (ada@example.com)", unique_id = "ada.eu.auth0.com/auth0|5f7c8ec7c33c6c004bbafe82",
    request = "ORIGIN/auth0/ada.eu.auth0.com/userinfo", expect = "email_verified" },
  { id = "servicenow", rewrites = { { "https://{{instance}}", "ORIGIN/sn/{{instance}}" } },
    fields = { "instance=dev12345.service-now.com" }, name = "Ada Lovelace at dev12345.service-now.com",
    unique_id = "dev12345.service-now.com/62826bf03710200044e0bfc8bcbe5df1",
    request = "/table/incident", expect = "INC0000001" },
  { id = "basecamp", fields = { "user_agent=Engines (ada@example.com)" }, name = "Ada Lovelace at Analytical Engines",
    unique_id = "99999999/1049715914", request = "/projects.json", expect = "The Difference Engine",
    allowed = function(origin) return { origin .. "/bc3/99999999", origin .. "/authorization.json" } end },
  { id = "harvest", fields = { "user_agent=Engines (ada@example.com)" }, name = "Ada Lovelace at Analytical Engines",
    unique_id = "123456/1782884", request = "/time_entries", expect = "Bernoulli numbers",
    saw = function(log)
      -- the lookup ran before the account was known: without the account header
      local a = find(log, "GET", "/api/v2/accounts")[1]
      assert.is_nil(a.headers["harvest-account-id"])
    end },
  { id = "freshbooks", name = "Ada Lovelace (ada@example.com)", unique_id = "2192788",
    request = "/accounting/account/zDmNq/invoices/invoices", expect = "Babbage & Co" },
  { id = "surveymonkey", rewrites = { { "https://{{api_host}}", "ORIGIN" } }, name = "ada (ada@example.com)",
    unique_id = "1234567", request = "/surveys", expect = "Engine feedback" },
  { id = "wrike", rewrites = { { "https://{{host}}/api/v4", "ORIGIN/wrike/{{host}}/api/v4" } }, name = "Ada Lovelace",
    unique_id = "IEAAJXXX/KUAJ25LC", request = "/folders", expect = "Engine plans",
    allowed = function(origin) return { origin .. "/wrike/www.wrike.com/api/v4" } end },
  { id = "sentry", rewrites = { { 'pattern = "https://[%w.-]+%.[%a]+[:%d]*"', 'pattern = "http://127%.0%.0%.1:%d+"' } },
    fields = { "token=sntryu_0123456789abcdef-standin" }, name = "Ada Lovelace (ada@example.com)", unique_id = "ORIGIN/1",
    request = "/organizations/", expect = "analytical-engines" },
  { id = "vercel", fields = { "token=vcp_standin_token_value" }, name = "adalovelace (ada@example.com)",
    unique_id = "AEIIDYVk59zbFF2Sxfyxxmua", request = "/v9/projects", expect = "engine-site" },
  { id = "digitalocean", fields = { "token=dop_v1_standin_token" }, name = "ada@example.com",
    unique_id = "b6fr89dbf6d9156cace5f3c78dc9851d957381ef", request = "/droplets", expect = "difference-engine" },
  { id = "cloudflare", fields = { "token=cf-standin-api-token" },
    name = "Cloudflare token ed17574386854bf78a67040be0a770b0 (active)", unique_id = "ed17574386854bf78a67040be0a770b0",
    request = "/zones", expect = "engines.example" },
  { id = "openai", fields = { "api_key=sk-proj-standin-key" }, name = "OpenAI (analytical-engines)",
    unique_id = "analytical-engines", request = "/models", expect = "gpt-4o-mini" },
  { id = "anthropic", fields = { "api_key=sk-ant-standin-key" },
    name = "Anthropic organization 0e1a3c5f-7a9b-4c2d-8e0f-1a2b3c4d5e6f", unique_id = "0e1a3c5f-7a9b-4c2d-8e0f-1a2b3c4d5e6f",
    request = "/v1/models", expect = "Claude Sonnet 4" },
  { id = "twilio", fields = { "account_sid=AC0123456789abcdef0123456789abcdef", "auth_token=standin-auth-token" },
    name = "Analytical Engines", unique_id = "AC0123456789abcdef0123456789abcdef",
    request = "/Accounts/AC0123456789abcdef0123456789abcdef/IncomingPhoneNumbers.json", expect = "Engine line" },
  { id = "sendgrid", rewrites = { { "https://{{api_host}}", "ORIGIN" } }, fields = { "api_key=SG.standin.key-value" },
    name = "adalovelace", unique_id = "1234567", request = "/v3/scopes", expect = "mail.send" },
  { id = "mailgun", rewrites = { { "https://{{api_host}}", "ORIGIN" } },
    fields = { "sending_domain=mg.example.com", "api_key=key-standin-mailgun" }, name = "mg.example.com on Mailgun",
    unique_id = "5d77a2efe39a8b7f2b7a4b0c", request = "/v3/mg.example.com/events", expect = "delivered" },
  { id = "datadog", rewrites = { { "https://api.{{site}}", "ORIGIN" } },
    fields = { "label=Analytical Engines", "api_key=dd-standin-api-key", "app_key=dd-standin-app-key" },
    name = "Analytical Engines (Datadog datadoghq.com)", unique_id = "datadoghq.com/Analytical Engines",
    request = "/api/v1/monitor", expect = "Engine CPU high" },
  { id = "pagerduty", rewrites = { { "https://{{api_host}}", "ORIGIN" } }, fields = { "api_token=y_NbAkKc66ryYTWUXYEu" },
    name = "Ada Lovelace (ada@example.com)", unique_id = "PXPGF42", request = "/incidents", expect = "Engine overheated" },
  { id = "etsy", public = true, fields = { "shared_secret=es-standin-shared-secret" }, name = "Ada Lovelace",
    unique_id = "12345678", request = "/shops/24681357/listings/active", expect = "Brass difference engine gear",
    saw = function(log)
      -- a public client: the token request carries the client id and the PKCE verifier, no secret
      local body = find(log, "POST", "/v3/public/oauth/token")[1].body
      assert.matches("client_id=cid-standin", body, 1, true)
      assert.matches("code_verifier=", body, 1, true)
      assert.is_nil(body:find("client_secret", 1, true))
      assert.is_nil(body:find("es-standin-shared-secret", 1, true))
    end },
  { id = "tiktok", name = "Tik Toker", unique_id = "723f24d7-e717-40f8-a2b6-cb8464cd23b4",
    request = "/video/list/?fields=id,title", method = "POST", body = '{"max_count":20}',
    expect = "Building the difference engine",
    saw = function(log)
      -- the client id as client_key (never client_id), in the sign-in and the token request
      local a = log[1]
      assert.equal("/v2/auth/authorize/", a.path)
      assert.matches("[?&]client_key=cid%-standin", a.query)
      assert.is_nil(a.query:find("client_id=", 1, true))
      -- the S256 challenge hex-encoded: 64 hex digits, as TikTok's desktop apps send it
      assert.matches("[?&]code_challenge=%x+&", a.query)
      assert.equal(64, #a.query:match("[?&]code_challenge=(%x+)"))
      local body = find(log, "POST", "/v2/oauth/token/")[1].body
      assert.matches("client_key=cid-standin", body, 1, true)
      assert.is_nil(body:find("client_id=", 1, true))
    end },
  { id = "ebay", rewrites = { { "https://auth.{{environment}}.com", "ORIGIN" }, { "https://api.{{environment}}.com", "ORIGIN" },
    { "https://apiz.{{environment}}.com", "ORIGIN" } }, fields = { "runame=Ada_Lovelace-AdaLovel-connrt-hqzxklmn" },
    -- the RuName stands for the URL registered with it: connrt's redirect URL
    fixture = function(doc, redirect) doc.authorize.redirect_name.url = redirect end,
    name = "ada_engines on eBay", unique_id = "fmbyfpw4sbm", request = "/sell/inventory/v1/inventory_item?limit=1",
    expect = "Brass difference engine gear",
    saw = function(log)
      -- the RuName, not the redirect URL, as redirect_uri in the consent and code exchange requests
      assert.matches("[?&]redirect_uri=Ada_Lovelace%-AdaLovel%-connrt%-hqzxklmn&", log[1].query)
      local t = find(log, "POST", "/identity/v1/oauth2/token")[1]
      assert.matches("redirect_uri=Ada_Lovelace-AdaLovel-connrt-hqzxklmn", t.body, 1, true)
      assert.matches("^Basic ", t.headers.authorization)
    end },
  { id = "zoho", rewrites = { { "https://{{api_host}}", "ORIGIN/zapi/{{api_host}}" } },
    name = "Ada Lovelace (ada@example.com)", unique_id = "60001234567", request = "/crm/v8/users?type=CurrentUser",
    expect = "4150868000000225013",
    allowed = function(origin) return { origin .. "/zapi/www.zohoapis.com", origin .. "/oauth/user/info" } end,
    saw = function(log)
      -- access_type=offline and prompt=consent for a refresh token; Zoho's own token scheme
      assert.matches("Zoho%-oauthtoken at%-", find(log, "GET", "/zapi/www.zohoapis.com/crm/v8/users")[1].headers.authorization)
    end },
  { id = "twitch", name = "TwitchDev", unique_id = "141981764", request = "/channels?broadcaster_id=141981764",
    expect = "TwitchDev Monthly Update",
    saw = function(log)
      -- the app's client id on every Helix call, beside the token
      for _, r in ipairs(find(log, "GET", "/helix/users")) do assert.equal(CLIENT_ID, r.headers["client-id"]) end
    end },
}

describe("shipped connectors against provider stand-ins #integration", function()
  local tmp, redirect

  setup(function()
    tmp = h.tmpdir()
    redirect = ("http://127.0.0.1:%d/callback"):format(h.free_port())
  end)
  teardown(function() h.rmdir(tmp) end)

  local function env(home)
    return { CONNRT_HOME = home, CONNRT_REDIRECT_URL = redirect, CONNRT_CLIENT_ID = CLIENT_ID,
      CONNRT_CLIENT_SECRET = CLIENT_SECRET,
      CONNRT_BROWSER = h.CONNRT .. " script " .. h.ROOT .. "/spec/support/browser.lua" }
  end

  local function connect(case, standin, home)
    local path = rewritten(case.id, standin.origin, case.rewrites, tmp)
    local args = { "run", path, "--json", "--timeout", "20" }
    for _, f in ipairs(case.fields or {}) do
      args[#args + 1] = "--field"
      args[#args + 1] = (f:gsub("ORIGIN", (standin.origin:gsub("%%", "%%%%"))))
    end
    local e = env(home)
    -- a public client (PKCE, no client secret): an empty value is no secret
    if case.public then e.CONNRT_CLIENT_SECRET = "" end
    -- a client registered at connect time (Mastodon): none is given
    if case.register then e.CONNRT_CLIENT_ID, e.CONNRT_CLIENT_SECRET = "", "" end
    return h.connrt(args, { env = e }), path
  end

  it("every shipped connector has a case here and a stand-in fixture", function()
    local cased = {}
    for _, case in ipairs(CASES) do cased[case.id] = true end
    local p = io.popen("ls connectors/*.lua")
    local n = 0
    for path in p:lines() do
      local id = path:match("([^/]+)%.lua$")
      n = n + 1
      assert.is_true(cased[id], id .. " has no case in CASES")
      assert.truthy(h.read("spec/fixtures/providers/" .. id .. ".json"), id .. " has no fixture")
    end
    p:close()
    assert.equal(n, #CASES)
  end)

  for _, case in ipairs(CASES) do
    it(case.id .. ": connects through the stand-in and sends a request", function()
      -- a case may adjust its fixture to the run (eBay's RuName stands for the redirect URL)
      local fixture
      if case.fixture then
        local doc = cjson.decode(h.read("spec/fixtures/providers/" .. case.id .. ".json"))
        case.fixture(doc, redirect)
        fixture = tmp .. "/" .. case.id .. "-run.json"
        h.write(fixture, cjson.encode(doc))
      end
      with_standin(case.id, function(standin, home)
        local res = connect(case, standin, home)
        assert.equal(0, res.code, res.stderr)
        local out = cjson.decode(res.stdout)
        assert.equal(case.name, out.name)
        assert.equal((case.unique_id:gsub("^ORIGIN", standin.origin)), out.unique_id)
        assert.is_nil((res.stdout .. res.stderr):find(CLIENT_SECRET, 1, true))
        local rargs = { "request", case.id }
        if case.method then rargs[#rargs + 1] = case.method end
        rargs[#rargs + 1] = (case.request:gsub("^ORIGIN", standin.origin))
        if case.body then rargs[#rargs + 1] = "-d"; rargs[#rargs + 1] = case.body end
        res = h.connrt(rargs, { env = env(home) })
        assert.equal(0, res.code, res.stderr)
        assert.matches(case.expect, res.stdout, 1, true)
        if case.allowed then
          local show = cjson.decode(h.connrt({ "show", case.id, "--json" }, { env = env(home) }).stdout)
          assert.same(case.allowed(standin.origin), show.allowed_urls)
        end
        if case.saw then case.saw(standin.log()) end
      end, fixture)
    end)
  end

  -- providers whose revocation is not RFC 7009, revoked the way each documents
  for _, rv in ipairs({
    { id = "github", method = "DELETE", path = "/applications/cid-standin/grant", api = "/user" },
    { id = "dropbox", method = "POST", path = "/2/auth/token/revoke" },
    { id = "stripe", method = "POST", path = "/oauth/deauthorize", api = "/v1/account" },
    { id = "facebook", method = "DELETE", path = "/v22.0/me/permissions", api = "/v22.0/me" },
    { id = "zendesk", method = "DELETE", path = "/zd/ada/api/v2/oauth/tokens/current.json",
      api = "/zd/ada/api/v2/users/me.json", fields = { "subdomain=ada" },
      rewrites = { { "https://{{subdomain}}.zendesk.com", "ORIGIN/zd/{{subdomain}}" } } },
    { id = "strava", method = "POST", path = "/oauth/deauthorize", api = "/api/v3/athlete" },
    { id = "twitch", method = "POST", path = "/oauth2/revoke", api = "/helix/users" },
    { id = "mastodon", method = "POST", path = "/oauth/revoke", api = "/api/v1/accounts/verify_credentials",
      says = "revoked the access token of mastodon", fields = { "instance=mastodon.social" }, register = true,
      rewrites = { { "https://{{instance}}", "ORIGIN" } } },
    { id = "zoho", method = "POST", path = "/oauth/v2/token/revoke",
      rewrites = { { "https://{{api_host}}", "ORIGIN/zapi/{{api_host}}" } } },
    { id = "todoist", method = "POST", path = "/api/v1/access_tokens/revoke", api = "/api/v1/user" },
    { id = "square", method = "POST", path = "/oauth2/revoke", api = "/v2/merchants/me",
      rewrites = { { "https://connect.{{env}}.com", "ORIGIN" } } },
    { id = "auth0", method = "POST", path = "/auth0/ada.eu.auth0.com/oauth/revoke", fields = { "domain=ada.eu.auth0.com" },
      rewrites = { { "https://{{domain}}", "ORIGIN/auth0/{{domain}}" } } },
    -- RFC 7009 through revoke_url: the refresh token, then the access token
    { id = "fitbit", method = "POST", path = "/oauth2/revoke", count = 2, api = "/1/user/-/profile.json",
      says = "revoked the refresh token and access token of fitbit" },
    { id = "tiktok", method = "POST", path = "/v2/oauth/revoke/", count = 2,
      api = "/v2/user/info/?fields=open_id,union_id,avatar_url,display_name",
      says = "revoked the refresh token and access token of tiktok" },
  }) do
    it(rv.id .. ": revokes with the provider's own request, and the token stops working", function()
      with_standin(rv.id, function(standin, home)
        local res = connect({ id = rv.id, fields = rv.fields, rewrites = rv.rewrites, register = rv.register }, standin, home)
        assert.equal(0, res.code, res.stderr)
        local st = require("connrt.store").open(home)
        local token = st:secrets(st:list()[1]).access_token
        st:close()
        res = h.connrt({ "revoke", rv.id }, { env = env(home) })
        assert.equal(0, res.code, res.stderr)
        assert.matches(rv.says or ("revoked the authorization of " .. rv.id), res.stderr, 1, true)
        assert.equal(rv.count or 1, #find(standin.log(), rv.method, rv.path))
        assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
        if rv.api then
          local r = assert(require("connrt.http").client():request({ url = standin.origin .. rv.api,
            headers = { "Authorization: Bearer " .. token } }))
          -- the provider's own "bad token" answer (401, or 400 where it documents that)
          assert.is_true(r.status == 401 or r.status == 400, "status " .. r.status)
        end
      end)
    end)
  end

  it("figma: refreshes at its separate refresh URL and keeps the refresh token it did not get back", function()
    with_standin("figma", function(standin, home)
      local res = connect({ id = "figma" }, standin, home)
      assert.equal(0, res.code, res.stderr)
      res = h.connrt({ "refresh", "figma" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      local log = standin.log()
      assert.equal(1, #find(log, "POST", "/v1/oauth/refresh"))
      assert.equal(1, #find(log, "POST", "/v1/oauth/token"))
      local show = cjson.decode(h.connrt({ "show", "figma", "--json" }, { env = env(home) }).stdout)
      assert.is_true(show.has_refresh_token)
      -- expires_in came as a string ("7776000") and was read as seconds
      assert.is_true(show.expires_at > os.time() + 7776000 - 600)
      res = h.connrt({ "request", "figma", "/me" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
    end)
  end)

  it("facebook: exchanges the short-lived token for a long-lived one, has no refresh token, and says so", function()
    with_standin("facebook", function(standin, home)
      local res = connect({ id = "facebook" }, standin, home)
      assert.equal(0, res.code, res.stderr)
      local ex = cjson.decode(assert(require("connrt.http").client():request({
        url = standin.origin .. "/_standin/exchanged" })).body)
      assert.equal(1, ex.exchanged)
      local show = cjson.decode(h.connrt({ "show", "facebook", "--json" }, { env = env(home) }).stdout)
      assert.truthy(show.expires_at - os.time() > 50 * 86400) -- the long-lived token's 60 days, not 1.5 h
      res = h.connrt({ "refresh", "facebook" }, { env = env(home) })
      assert.are_not.equal(0, res.code)
      assert.matches("no refresh token", res.stderr, 1, true)
    end)
  end)

  it("strava: keeps the athlete from the token response and the granted scopes from the callback; rotating refresh tokens keep working", function()
    with_standin("strava", function(standin, home)
      local res = connect({ id = "strava" }, standin, home)
      assert.equal(0, res.code, res.stderr)
      local show = cjson.decode(h.connrt({ "show", "strava", "--json" }, { env = env(home) }).stdout)
      assert.equal("134815", show.values.athlete_id)
      assert.equal("read,activity:read_all", show.values.granted_scope)
      -- each refresh spends the refresh token (the stand-in forgets it): a second refresh
      -- works only if the newest one was kept
      for _ = 1, 2 do
        res = h.connrt({ "refresh", "strava" }, { env = env(home) })
        assert.equal(0, res.code, res.stderr)
      end
      assert.equal(3, #find(standin.log(), "POST", "/oauth/token"))
      show = cjson.decode(h.connrt({ "show", "strava", "--json" }, { env = env(home) }).stdout)
      assert.equal("134815", show.values.athlete_id) -- refreshes answer without the athlete
      res = h.connrt({ "request", "strava", "/athlete" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
    end)
  end)

  it("ebay: refreshes with HTTP Basic and keeps the refresh token a refresh does not send back", function()
    local doc = cjson.decode(h.read("spec/fixtures/providers/ebay.json"))
    doc.authorize.redirect_name.url = redirect
    local fixture = tmp .. "/ebay-refresh.json"
    h.write(fixture, cjson.encode(doc))
    with_standin("ebay", function(standin, home)
      local rw = { { "https://auth.{{environment}}.com", "ORIGIN" }, { "https://api.{{environment}}.com", "ORIGIN" },
        { "https://apiz.{{environment}}.com", "ORIGIN" } }
      local res = connect({ id = "ebay", rewrites = rw, fields = { "runame=Ada_Lovelace-AdaLovel-connrt-hqzxklmn" } },
        standin, home)
      assert.equal(0, res.code, res.stderr)
      for _ = 1, 2 do
        res = h.connrt({ "refresh", "ebay" }, { env = env(home) })
        assert.equal(0, res.code, res.stderr)
      end
      local posts = find(standin.log(), "POST", "/identity/v1/oauth2/token")
      assert.equal(3, #posts)
      local r2, r3 = url_form(posts[2].body), url_form(posts[3].body)
      assert.equal("refresh_token", r3.grant_type)
      assert.equal(r2.refresh_token, r3.refresh_token)
      assert.matches("^Basic ", posts[3].headers.authorization)
      res = h.connrt({ "request", "ebay", "/sell/inventory/v1/inventory_item?limit=1" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
    end, fixture)
  end)

  it("square: reads expires_at (ISO 8601) as the expiry, and refreshes with the same refresh token", function()
    with_standin("square", function(standin, home)
      local rw = { { "https://connect.{{env}}.com", "ORIGIN" } }
      local res = connect({ id = "square", rewrites = rw }, standin, home)
      assert.equal(0, res.code, res.stderr)
      local show = cjson.decode(h.connrt({ "show", "square", "--json" }, { env = env(home) }).stdout)
      assert.is_true(math.abs(show.expires_at - (os.time() + 2592000)) < 600, "expires_at " .. tostring(show.expires_at))
      for _ = 1, 2 do
        res = h.connrt({ "refresh", "square" }, { env = env(home) })
        assert.equal(0, res.code, res.stderr)
      end
      local bodies = {}
      for _, e in ipairs(find(standin.log(), "POST", "/oauth2/token")) do bodies[#bodies + 1] = cjson.decode(e.body) end
      assert.equal("refresh_token", bodies[3].grant_type)
      assert.equal(bodies[2].refresh_token, bodies[3].refresh_token)
    end)
  end)

  local ERRORS = {
    { id = "slack", says = "invalid_code" },         -- HTTP 200 {"ok": false}
    { id = "github", says = "bad_verification_code" }, -- HTTP 200 {"error": ...}
    { id = "notion", says = "invalid_grant" },
    { id = "fitbit", says = "invalid_grant: Authorization code invalid" }, -- {"errors": [{"errorType", ...}]}
    { id = "strava", says = "invalid_grant: Bad Request (AuthorizationCode code invalid)" }, -- Strava's fault shape
    { id = "clickup", says = "OAUTH_014: Code not found" },                 -- {"err", "ECODE"}
    { id = "twitch", says = "invalid_grant: Invalid authorization code" },   -- {"status", "message"}
    { id = "zoho", says = "answered 200: invalid_code",                     -- HTTP 200 {"error"}
      rewrites = { { "https://{{api_host}}", "ORIGIN/zapi/{{api_host}}" } } },
    { id = "square", says = "UNAUTHORIZED: Authorization code is already redeemed", -- {"errors": [...]}
      rewrites = { { "https://connect.{{env}}.com", "ORIGIN" } } },
  }
  for _, e in ipairs(ERRORS) do
    it(e.id .. ": a token error in the provider's shape fails the connect and saves nothing", function()
      with_standin(e.id, function(standin, home)
        standin.fail("token")
        local res = connect({ id = e.id, rewrites = e.rewrites }, standin, home)
        assert.are_not.equal(0, res.code)
        assert.matches(e.says, res.stderr, 1, true)
        local list = cjson.decode(h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
        assert.equal(0, #list)
      end)
    end)
  end

  it("notion: the test API fails without the Notion-Version header the provider requires", function()
    with_standin("notion", function(standin, home)
      local path = rewritten("notion", standin.origin, { { '["Notion-Version"] = "2022-06-28"', "" } }, tmp)
      local res = h.connrt({ "run", path, "--timeout", "20" }, { env = env(home) })
      assert.equal(5, res.code, res.stderr)
      assert.matches("Notion-Version header failed validation", res.stderr, 1, true)
    end)
  end)

  it("anthropic: the test API fails without the anthropic-version header the provider requires", function()
    with_standin("anthropic", function(standin, home)
      local path = rewritten("anthropic", standin.origin, { { ', ["anthropic-version"] = "2023-06-01"', "" } }, tmp)
      local res = h.connrt({ "run", path, "--field", "api_key=sk-ant-standin-key", "--timeout", "20" }, { env = env(home) })
      assert.are_not.equal(0, res.code)
      assert.matches("GET /v1/models answered 400: anthropic-version: header is required", res.stderr, 1, true)
      assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
    end)
  end)

  it("twitch: the test API fails without the Client-Id header Helix requires, and nothing is saved", function()
    with_standin("twitch", function(standin, home)
      local path = rewritten("twitch", standin.origin, { { ', ["Client-Id"] = "{{client_id}}"', "" } }, tmp)
      local res = h.connrt({ "run", path, "--timeout", "20" }, { env = env(home) })
      assert.equal(5, res.code, res.stderr)
      assert.matches("test API GET " .. standin.origin .. "/helix/users answered 401: Unauthorized", res.stderr, 1, true)
      assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
    end)
  end)

  it("etsy: without the shared secret in x-api-key Etsy refuses the API (403), and nothing is saved", function()
    with_standin("etsy", function(standin, home)
      local path = rewritten("etsy", standin.origin, { { ':{{shared_secret}}"', '"' } }, tmp)
      local e = env(home)
      e.CONNRT_CLIENT_SECRET = ""
      local res = h.connrt({ "run", path, "--field", "shared_secret=es-standin-shared-secret", "--timeout", "20" }, { env = e })
      assert.equal(5, res.code, res.stderr)
      assert.matches("GET /users/me answered 403 without user_id", res.stderr, 1, true)
      assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = e }).stdout)
    end)
  end)

  it("salesforce: an instance_url that is not https is refused before it joins the allowed URLs", function()
    local doc = cjson.decode(h.read("spec/fixtures/providers/salesforce.json"))
    doc.token.body.instance_url = "http://evil.example.com"
    local fixture = tmp .. "/salesforce-http.json"
    h.write(fixture, cjson.encode(doc))
    with_standin("salesforce", function(standin, home)
      local res = connect({ id = "salesforce", rewrites = { { "https://{{domain}}.salesforce.com", "ORIGIN" } } }, standin, home)
      assert.are_not.equal(0, res.code)
      assert.matches("allowed_urls[1] http://evil.example.com: plain http is allowed only for loopback hosts", res.stderr, 1, true)
      assert.equal(0, #find(standin.log(), "GET", "/instance/services/oauth2/userinfo"))
      local list = cjson.decode(h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
      assert.equal(0, #list)
    end, fixture)
  end)

  it("wrike: a token response naming an API host outside wrike.com is refused before anything is sent there", function()
    local doc = cjson.decode(h.read("spec/fixtures/providers/wrike.json"))
    doc.token.body.host = "evil.example"
    local fixture = tmp .. "/wrike-evil.json"
    h.write(fixture, cjson.encode(doc))
    with_standin("wrike", function(standin, home)
      local res = connect({ id = "wrike", rewrites = { { "https://{{host}}/api/v4", "ORIGIN/wrike/{{host}}/api/v4" } } },
        standin, home)
      assert.are_not.equal(0, res.code)
      assert.matches("names API host evil.example, which is not a wrike.com host", res.stderr, 1, true)
      for _, e in ipairs(standin.log()) do assert.is_nil(e.path:find("evil", 1, true)) end
      assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
    end, fixture)
  end)

  local ZOHO_RW = { { "https://{{api_host}}", "ORIGIN/zapi/{{api_host}}" } }
  it("mastodon: registers the app once per instance, keeps it sealed, and reuses it on the next connect", function()
    local home = h.tmpdir()
    local a, b = start_standin("mastodon"), start_standin("mastodon")
    local ok, err = pcall(function()
      local function registrations(s)
        return cjson.decode(assert(client:request({ url = s.origin .. "/_standin/registered" })).body).registrations
      end
      local function run(s, instance)
        local res = connect({ id = "mastodon", register = true, rewrites = { { "https://{{instance}}", "ORIGIN" } },
          fields = { "instance=" .. (instance or "mastodon.social") } }, s, home)
        assert.equal(0, res.code, res.stderr)
        return res
      end
      local res = run(a)
      assert.matches("Registered connrt as client TWhM-tNSuncnqN7DBJmoyeLnk6K3iJJ71KKXxgL1hPM at " .. a.origin
        .. "/api/v1/apps", res.stderr, 1, true)
      run(a)
      assert.equal(1, registrations(a)) -- the second connect reused it
      run(b, "fosstodon.org")          -- another instance: its own registration
      assert.equal(1, registrations(b))
      run(a)
      assert.equal(1, registrations(a)) -- the first instance's app is still the one used
      -- sealed: the client secret is nowhere in the store's files in clear
      local p = io.popen("find " .. h.shell_quote(home) .. " -type f -exec cat {} +")
      local all = p:read("a")
      p:close()
      assert.truthy(all:find("TWhM-tNSuncnqN7DBJmoyeLnk6K3iJJ71KKXxgL1hPM", 1, true)) -- the id is kept in clear
      assert.is_nil(all:find("ZEaFUFmF0umgBX1qKJDjaU99Q31lDkOU8NutzTOoliw", 1, true))
    end)
    a.stop(); b.stop(); h.rmdir(home)
    if not ok then error(err, 0) end
  end)

  it("mastodon: an instance that refuses the registration fails the connect with its error, and nothing is stored", function()
    with_standin("mastodon", function(standin, home)
      standin.fail("api")
      local res = connect({ id = "mastodon", register = true, rewrites = { { "https://{{instance}}", "ORIGIN" } },
        fields = { "instance=mastodon.social" } }, standin, home)
      assert.equal(5, res.code, res.stderr)
      assert.matches("app registration at " .. standin.origin .. "/api/v1/apps answered 422: Validation failed: Redirect "
        .. "URI must be an absolute URI.", res.stderr, 1, true)
      assert.equal(0, #find(standin.log(), "POST", "/oauth/token"))
      assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
    end)
  end)

  it("zoho: the callback's accounts-server picks the data centre: the code is exchanged and refreshed there", function()
    local doc = cjson.decode(h.read("spec/fixtures/providers/zoho.json"))
    doc.authorize.extra = { location = "eu", ["accounts-server"] = "$ORIGIN/eu" }
    doc.token.path = "/eu/oauth/v2/token"
    doc.token.body.api_domain = "https://www.zohoapis.eu"
    doc.refresh.body.api_domain = "https://www.zohoapis.eu"
    doc.api[1].path = "/eu/oauth/user/info"
    doc.api[2].path = "/zapi/www.zohoapis.eu/crm/v8/users"
    local fixture = tmp .. "/zoho-eu.json"
    h.write(fixture, cjson.encode(doc))
    with_standin("zoho", function(standin, home)
      -- the EU accounts host (one of the field's choices) answers under /eu of the stand-in
      local rw = { ZOHO_RW[1], { '"https://accounts.zoho.eu"', '"ORIGIN/eu"' } }
      local res = connect({ id = "zoho", rewrites = rw }, standin, home)
      assert.equal(0, res.code, res.stderr)
      local log = standin.log()
      assert.equal("/oauth/v2/auth", log[1].path) -- the sign-in started at the default host
      assert.equal(1, #find(log, "POST", "/eu/oauth/v2/token"))
      local show = cjson.decode(h.connrt({ "show", "zoho", "--json" }, { env = env(home) }).stdout)
      assert.equal(standin.origin .. "/eu", show.fields.accounts_server)
      assert.same({ standin.origin .. "/zapi/www.zohoapis.eu", standin.origin .. "/eu/oauth/user/info" }, show.allowed_urls)
      res = h.connrt({ "refresh", "zoho" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.equal(2, #find(standin.log(), "POST", "/eu/oauth/v2/token"))
      res = h.connrt({ "request", "zoho", "/crm/v8/users?type=CurrentUser" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
    end, fixture)
  end)

  it("zoho with an issuer: iss is compared with the issuer of the data centre the callback picks (RFC 9207)", function()
    -- the issuer follows accounts_server, which the callback moves to /eu: an iss naming
    -- the default host (where the sign-in started) is a mix-up, since the code would go to /eu
    local rw = { ZOHO_RW[1], { '"https://accounts.zoho.eu"', '"ORIGIN/eu"' },
      { "callback_fields = {", 'issuer = "{{accounts_server}}", callback_fields = {' } }
    for _, case in ipairs({ { iss = "$ORIGIN", code = 4 }, { iss = "$ORIGIN/eu", code = 0 } }) do
      local doc = cjson.decode(h.read("spec/fixtures/providers/zoho.json"))
      doc.authorize.extra = { location = "eu", ["accounts-server"] = "$ORIGIN/eu", iss = case.iss }
      doc.token.path = "/eu/oauth/v2/token"
      doc.api[1].path = "/eu/oauth/user/info"
      local fixture = tmp .. "/zoho-eu-iss.json"
      h.write(fixture, cjson.encode(doc))
      with_standin("zoho", function(standin, home)
        local res = connect({ id = "zoho", rewrites = rw }, standin, home)
        assert.equal(case.code, res.code, res.stderr)
        if case.code == 4 then
          assert.matches("the callback comes from issuer " .. standin.origin .. ", not " .. standin.origin .. "/eu (RFC 9207",
            res.stderr, 1, true)
          assert.equal(0, #find(standin.log(), "POST", "/eu/oauth/v2/token")) -- neither code nor client secret went there
          assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
        else
          assert.equal(1, #find(standin.log(), "POST", "/eu/oauth/v2/token"))
        end
      end, fixture)
    end
  end)

  it("zoho: connrt authorize carries the data centre the callback picked to connrt run --paste", function()
    local doc = cjson.decode(h.read("spec/fixtures/providers/zoho.json"))
    doc.authorize.extra = { location = "eu", ["accounts-server"] = "$ORIGIN/eu" }
    doc.token.path = "/eu/oauth/v2/token"
    doc.api[1].path = "/eu/oauth/user/info"
    local fixture = tmp .. "/zoho-eu-paste.json"
    h.write(fixture, cjson.encode(doc))
    with_standin("zoho", function(standin, home)
      local path = rewritten("zoho", standin.origin, { ZOHO_RW[1], { '"https://accounts.zoho.eu"', '"ORIGIN/eu"' } }, tmp)
      local laptop = h.tmpdir()
      local res = h.connrt({ "authorize", path, "--timeout", "20" }, { env = env(laptop) })
      assert.equal(0, res.code, res.stderr)
      local blob = res.stdout:match("^(connrt%-authorized%-v1:[%w_-]+)\n$")
      assert.is_string(blob, res.stdout)
      h.rmdir(laptop)
      res = h.connrt({ "run", path, "--paste", "--json", "--no-browser", "--timeout", "20" },
        { env = env(home), stdin = blob .. "\n" })
      assert.equal(0, res.code, res.stderr)
      local show = cjson.decode(h.connrt({ "show", "zoho", "--json" }, { env = env(home) }).stdout)
      assert.equal(standin.origin .. "/eu", show.fields.accounts_server)
      res = h.connrt({ "refresh", "zoho" }, { env = env(home) })
      assert.equal(0, res.code, res.stderr)
      assert.equal(2, #find(standin.log(), "POST", "/eu/oauth/v2/token"))
    end, fixture)
  end)

  it("zoho: a callback naming an accounts server that is not one of Zoho's is refused before the code is sent", function()
    local doc = cjson.decode(h.read("spec/fixtures/providers/zoho.json"))
    doc.authorize.extra = { location = "us", ["accounts-server"] = "https://accounts.evil.example" }
    local fixture = tmp .. "/zoho-evil-accounts.json"
    h.write(fixture, cjson.encode(doc))
    with_standin("zoho", function(standin, home)
      local res = connect({ id = "zoho", rewrites = ZOHO_RW }, standin, home)
      assert.equal(4, res.code, res.stderr)
      assert.matches("the callback's accounts-server names https://accounts.evil.example for field accounts_server: "
        .. "\"https://accounts.evil.example\" is not one of: ", res.stderr, 1, true)
      assert.equal(0, #find(standin.log(), "POST", "/oauth/v2/token"))
      assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
    end, fixture)
  end)

  it("zoho: an api_domain that is not one of Zoho's API hosts is refused before anything is sent there", function()
    local doc = cjson.decode(h.read("spec/fixtures/providers/zoho.json"))
    doc.token.body.api_domain = "https://www.zohoapis.com.evil.example"
    local fixture = tmp .. "/zoho-evil.json"
    h.write(fixture, cjson.encode(doc))
    with_standin("zoho", function(standin, home)
      local res = connect({ id = "zoho", rewrites = ZOHO_RW }, standin, home)
      assert.equal(5, res.code, res.stderr)
      assert.matches("names API domain https://www.zohoapis.com.evil.example, which is not one of Zoho's", res.stderr, 1, true)
      for _, e in ipairs(standin.log()) do assert.is_nil(e.path:find("evil", 1, true)) end
      assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
    end, fixture)
  end)

  it("zoho: refreshes at the accounts host, keeps the refresh token, and a dead one asks for a new sign-in", function()
    with_standin("zoho", function(standin, home)
      local res = connect({ id = "zoho", rewrites = ZOHO_RW }, standin, home)
      assert.equal(0, res.code, res.stderr)
      for _ = 1, 2 do
        res = h.connrt({ "refresh", "zoho" }, { env = env(home) })
        assert.equal(0, res.code, res.stderr)
      end
      local posts = find(standin.log(), "POST", "/oauth/v2/token")
      assert.equal(3, #posts)
      assert.equal(url_form(posts[2].body).refresh_token, url_form(posts[3].body).refresh_token)
      standin.fail("refresh")
      res = h.connrt({ "refresh", "zoho" }, { env = env(home) })
      assert.equal(5, res.code, res.stderr)
      assert.matches("invalid_grant: invalid_code", res.stderr, 1, true)
      assert.matches("needs reconnecting", res.stderr, 1, true)
    end)
  end)

  it("shopify: a shop that would change the host is refused before anything is sent", function()
    local home = h.tmpdir()
    for _, shop in ipairs({ "evil.example/x", "evil.example#", "a@evil.example" }) do
      local res = h.connrt({ "run", "connectors/shopify.lua", "--field", "shop=" .. shop }, { env = env(home) })
      assert.equal(2, res.code, res.stderr)
      assert.matches("field shop: .* does not match the pattern", res.stderr)
    end
    h.rmdir(home)
  end)

  it("slack: a test API answering 200 {\"ok\": false} fails the connect (test.ok): exit 5, Slack's error, nothing saved", function()
    with_standin("slack", function(standin, home)
      standin.fail("api")
      local res = connect({ id = "slack" }, standin, home)
      assert.equal(5, res.code, res.stderr)
      assert.matches("test API POST " .. standin.origin .. "/api/auth.test answered 200 with ok = false, not true: "
        .. "account_inactive; the connection was not saved", res.stderr, 1, true)
      assert.equal(1, #find(standin.log(), "POST", "/api/auth.test"))
      assert.equal("[]\n", h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
    end)
  end)

  it("brevo: a wrong API key is refused by the test API and nothing is saved", function()
    with_standin("brevo", function(standin, home)
      local res = connect({ id = "brevo", fields = { "api_key=xkeysib-wrong" } }, standin, home)
      assert.are_not.equal(0, res.code)
      assert.matches("401", res.stderr, 1, true)
      local list = cjson.decode(h.connrt({ "list", "--json" }, { env = env(home) }).stdout)
      assert.equal(0, #list)
    end)
  end)
end)
