--- connector.lua - loading a connector script in its sandbox and checking it.
--
-- A connector is a Lua file that returns a table (see schema.lua for the format). It
-- runs in a Lua state of its own (src/api/sandbox.c), with its own allocator, under a
-- memory limit and a budget of instructions and CPU time per call, with the globals of
-- sandbox_env.lua: the pure Lua libraries and connrt's helpers, without io, os.execute,
-- require, load or debug. What it returns comes out as a copy: data, with its functions
-- (the hooks) turned into proxies that run them back in the sandbox. Nothing the runtime
-- uses is reachable from inside, so connector code cannot change it; exceeding a limit is
-- a connector error, and a connector that met one runs no more.
local errors = require("connrt.errors")
local limits = require("connrt.limits")
local log = require("connrt.log")
local origins = require("connrt.origins")
local sandbox = require("connrt.sandbox")
local schema = require("connrt.schema")
local template = require("connrt.template")
local url = require("connrt.url")

local M = {}

-- The limits of one connector's sandbox: memory for its whole state; instructions and CPU
-- seconds for each call into it (loading it, one hook). CONNRT_CONNECTOR_MEMORY (MiB) and
-- CONNRT_CONNECTOR_CPU (seconds) change the first two.
local function env_number(name, dflt)
  local v = tonumber(os.getenv(name) or "")
  return (v and v > 0) and v or dflt
end
M.LIMITS = {
  memory = math.floor(env_number("CONNRT_CONNECTOR_MEMORY", 64) * 1024 * 1024),
  cpu = env_number("CONNRT_CONNECTOR_CPU", 5),
  instructions = 50 * 1000 * 1000,
}
-- The most of a response body a hook is given (`truncated = true` says it was cut).
M.HOOK_BODY_MAX = 1024 * 1024
-- How much of a hook's error message is shown (the sandbox keeps up to 16 KB of it).
local HOOK_MSG_MAX = 1024

-- A problem of the connector at `path`: its message is "PATH: detail", and the error
-- keeps the detail, so M.problems lists it without reading the message.
local function fail(path, fmt, ...)
  errors.fail_at("connector", "invalid_connector", path, nil, fmt, ...)
end

-- A problem at connector key `key`: a connector error that also carries the key, so
-- `connrt check` names the key.
local function fail_at(path, key, fmt, ...)
  errors.fail_at("connector", "invalid_connector", path, key, fmt, ...)
end

-- The placeholders of the template `text` at connector key `key` (template.variables),
-- or parsing it (template.parse): a malformed template is a problem at that key.
local function template_at(fn, path, key, text)
  local ok, r = pcall(fn, text, key)
  if ok then return r end
  if not errors.is(r) then error(r, 0) end
  fail_at(path, key, "%s", r.message)
end
local function variables_at(path, key, text) return template_at(template.variables, path, key, text) end
local function parse_at(path, key, text) return template_at(template.parse, path, key, text) end

-- Names of values that are secret: they may feed request parameters, never a
-- connection's name or unique id (those are stored and shown in clear).
local SECRET_NAMES = { access_token = true, refresh_token = true, id_token = true,
  client_secret = true, code = true, code_verifier = true }

-- Where a secret value (a token, the client secret, a field declared `secret = true`) may
-- be rendered: only into the requests that need it, which connrt builds, seals in no
-- record and sends within the connection's reach: the API's (request: headers, query,
-- body, basic; test), the token endpoint's (token_params, token_headers) and the two a
-- connector declares (revoke_request, exchange_request, whose URLs stay in the reach).
-- Even there, never a token or the client secret in a URL (no_secret_in_url below).
-- Every other key that holds templates (TEMPLATE_KEYS) is rendered into a URL the browser
-- gets and the terminal shows, kept in clear in the record, printed, or sent before the
-- reach is known or outside it: a secret there is refused at load and by `connrt check`.
local SECRET_PLACES = { request = true, test = true, token_params = true, token_headers = true,
  revoke_request = true, exchange_request = true }
local TEMPLATE_KEYS = { "issuer", "discovery", "resource", "authorize_url", "device_url", "token_url", "refresh_url",
  "revoke_url", "allowed_urls", "authorize_params", "redirect_uri", "app_registration", "name", "unique_id",
  "git_username", "request", "test", "token_params", "token_headers", "revoke_request", "exchange_request" }

-- The parameters connrt sets itself in the authorize request and token requests: a
-- connector's authorize_params and token_params, its client_id_param and the caller's
-- --param may not set them (a repeated state, code_challenge or grant_type would let a
-- server that takes the last one run another protocol than the one connrt checks).
-- `scope` is the connector's `scopes` and the caller's --scope; `request` and
-- `request_uri` (RFC 9101) would carry a request object whose redirect, state and PKCE
-- values the server uses instead of those connrt sent and checks.
M.RESERVED_PARAMS = { response_type = true, client_id = true, redirect_uri = true, state = true,
  code_challenge = true, code_challenge_method = true, code_verifier = true, grant_type = true, code = true,
  refresh_token = true, client_secret = true, scope = true, request = true, request_uri = true }

local URL_KEYS = { "issuer", "discovery", "resource", "authorize_url", "device_url", "token_url", "refresh_url",
  "revoke_url" }

-- The keys each way of connecting needs.
local NEEDS = {
  authorization_code = { "authorize_url", "token_url" },
  client_credentials = { "token_url" },
  device_code = { "device_url", "token_url" },
  fields = {},
}

--- True when placeholder `path` names a secret of a connection of `c`: a token, the
-- client secret ({{access_token}}, {{token.refresh_token}}), or a field declared
-- `secret` ({{api_key}}, {{fields.api_key}}). Names and unique ids may not use one;
-- the --verbose trace hides a header that does.
function M.secret_var(c, path)
  local ns, name = template.split(path)
  local secret_field = false
  if ns == nil or ns == "fields" then
    for _, f in ipairs(type(c.fields) == "table" and c.fields or {}) do
      if type(f) == "table" and f.key == name and f.secret then secret_field = true end
    end
  end
  return secret_field or ((ns == nil or ns == "token") and SECRET_NAMES[name] == true)
end

-- Checks that the connector's templates are well formed and that templates used before
-- any token exists (URLs, authorize parameters) name only fields.
-- A declared request (revoke_request, exchange_request) carries tokens and the client
-- secret: its URL must be at the origin of the token, refresh, revoke or device URL or of
-- an allowed URL (origins.lua). Decided here when every origin is fixed text; else when
-- the request is rendered (request.from_template).
-- The same for app_registration.url (its form goes to the server the connection will
-- use, as the reach before the sign-in says: with the authorize URL; checked again when
-- it is rendered, app_registration.lua).
local function check_request_origin(c, path, key)
  local reg = key == "app_registration"
  local o = origins.fixed(c[key].url)
  if not o then return end
  local known, open = {}, false
  local function add(text)
    if text == nil then return end
    local f = origins.fixed(text)
    if not f then open = true elseif not known[f] then known[f] = true; known[#known + 1] = f end
  end
  for _, k in ipairs(origins.URL_KEYS) do add(c[k]) end
  for _, a in ipairs(c.allowed_urls or {}) do add(a) end
  if reg then add(c.authorize_url) end
  -- with discovery the server's metadata gives the endpoints: known when connecting
  if open or (reg and c.discovery) or origins.within(o .. "/", known) then return end
  table.sort(known)
  if reg then
    fail_at(path, "app_registration.url", "app_registration.url sends to %s, which is not within the connection's reach "
      .. "(the origins of its authorize, token, refresh, revoke and device URLs and allowed URLs: %s)", o,
      table.concat(known, ", "))
  end
  fail_at(path, key .. ".url", "%s.url sends to %s, which is not the origin of token_url, refresh_url, revoke_url, device_url or an "
    .. "allowed URL (%s): tokens and the client secret go nowhere else", key, o, table.concat(known, ", "))
end

-- Every template string under `v` (a string, or a table of them at any depth), with the
-- key it is at ("authorize_params.prompt", "allowed_urls[2]").
local function each_template(v, key, out)
  if type(v) == "string" then
    if v:find("{{", 1, true) then out[#out + 1] = { key, v } end
  elseif type(v) == "table" then
    local ks = {}
    for k in pairs(v) do ks[#ks + 1] = k end
    table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(ks) do
      each_template(v[k], math.type(k) == "integer" and ("%s[%d]"):format(key, k) or (key .. "." .. tostring(k)), out)
    end
  end
  return out
end

-- The rule of SECRET_PLACES: no secret value in any other key that holds templates.
local function check_secret_places(c, path)
  for _, key in ipairs(TEMPLATE_KEYS) do
    for _, t in ipairs(SECRET_PLACES[key] and {} or each_template(c[key], key, {})) do
      for _, v in ipairs(variables_at(path, t[1], t[2])) do
        local ns, name = template.split(v)
        if M.secret_var(c, v) or (ns == nil and SECRET_NAMES[name]) then
          fail_at(path, t[1], "%s uses {{%s}}, a secret value: secrets are rendered only into the requests that need "
            .. "them (request, test, token_params, token_headers, revoke_request, exchange_request), never into %s, "
            .. "which connrt shows, keeps in clear or sends outside the connection's reach", t[1], v, key)
        end
      end
    end
  end
end

local function check_templates(c, path)
  local fieldset = {}
  local names = {}
  for _, f in ipairs(c.fields or {}) do
    fieldset[f.key] = true
    names[#names + 1] = f.key
  end
  local field_list = #names > 0 and table.concat(names, ", ") or "none"

  -- a placeholder's name when it is a field's ({{region}} or {{fields.region}}), else nil
  local function field_of(v)
    local ns, name = template.split(v)
    if (ns == nil or ns == "fields") and fieldset[name] then return name end
  end
  local function only_fields(text, key)
    for _, v in ipairs(variables_at(path, key, text)) do
      if not field_of(v) then
        fail_at(path, key, "%s uses {{%s}}, which is not a field of this connector (fields: %s)",
          key, v, field_list)
      end
    end
  end

  for _, k in ipairs(URL_KEYS) do
    if c[k] then only_fields(c[k], k) end
  end
  -- allowed URLs may also name values kept from the token response or the hooks (declared
  -- in `values`): those are rendered once the token (and hooks.lookup) has them
  local declared = {}
  for _, v in ipairs(c.values or {}) do
    if fieldset[v] then fail_at(path, "values", "values: '%s' is also a field", v) end
    if SECRET_NAMES[v] then fail_at(path, "values", "values: '%s' is a secret, not a value kept with the connection", v) end
    declared[v] = true
  end
  local value_list = table.concat(c.values or {}, ", ")
  for i, a in ipairs(c.allowed_urls) do
    for _, v in ipairs(variables_at(path, "allowed_urls[" .. i .. "]", a)) do
      local ns, name = template.split(v)
      if not field_of(v) and not ((ns == nil or ns == "values") and declared[name]) then
        fail_at(path, "allowed_urls[" .. i .. "]", "allowed_urls[%d] uses {{%s}}, which is neither a field (fields: %s) nor a declared value "
          .. "(values: %s); declare values from the token response or hooks in `values`", i, v, field_list,
          value_list ~= "" and value_list or "none")
      end
    end
  end
  -- known before any token: fields and the client id (TikTok's client_key)
  local function fields_or_client(text, key)
    for _, v in ipairs(variables_at(path, key, text)) do
      if v ~= "client_id" and not field_of(v) then
        fail_at(path, key, "%s uses {{%s}}, which is neither a field of this connector (fields: %s) nor {{client_id}}",
          key, v, field_list)
      end
    end
  end
  for k, v in pairs(c.authorize_params or {}) do
    if type(v) == "string" then fields_or_client(v, "authorize_params." .. k) end
  end
  for k, v in pairs(c.token_params or {}) do
    if type(v) == "string" then fields_or_client(v, "token_params." .. k) end
  end
  -- a registration (Mastodon's apps API): its URL from fields, its form from fields,
  -- {{redirect_uri}} and {{scope}}; sent before any client or token exists
  if c.app_registration then
    if (c.auth or "authorization_code") ~= "authorization_code" then
      fail_at(path, "app_registration", "key 'app_registration': only a browser sign-in (auth = \"authorization_code\") registers an app")
    end
    for _, v in ipairs(variables_at(path, "app_registration.url", c.app_registration.url)) do
      if not field_of(v) then
        fail_at(path, "app_registration.url", "app_registration.url uses {{%s}}, which is not a field of this connector (fields: %s)", v, field_list)
      end
    end
    for k, t in pairs(c.app_registration.form or {}) do
      for _, v in ipairs(variables_at(path, "app_registration.form." .. k, tostring(t))) do
        if v ~= "redirect_uri" and v ~= "scope" and not field_of(v) then
          fail_at(path, "app_registration.form." .. k,
            "app_registration.form.%s uses {{%s}}, which is neither a field of this connector (fields: %s) "
            .. "nor {{redirect_uri}} or {{scope}}", k, v, field_list)
        end
      end
    end
  end
  -- fields the callback sets: declared, with choices (the callback can only pick one of
  -- them), not secret, and only where there is a callback
  local combos = 1
  for k in pairs(c.callback_fields or {}) do
    if (c.auth or "authorization_code") ~= "authorization_code" then
      fail_at(path, "callback_fields", "key 'callback_fields': only a browser sign-in (auth = \"authorization_code\") has a callback")
    end
    local f
    for _, x in ipairs(c.fields or {}) do if x.key == k then f = x end end
    if not f then fail_at(path, "callback_fields." .. k, "callback_fields.%s: no such field (fields: %s)", k, field_list) end
    if not f.choices then
      fail_at(path, "callback_fields." .. k,
        "callback_fields.%s: the field needs choices, so a callback can only pick among the connector's own values", k)
    end
    if f.secret then fail_at(path, "callback_fields." .. k, "callback_fields.%s: a secret field cannot come from a callback", k) end
    combos = combos * #f.choices
  end
  if combos > 64 then fail_at(path, "callback_fields", "callback_fields: %d combinations of choices; at most 64", combos) end
  -- RFC 9207 2.4: a callback without iss is refused, which needs the issuer it names
  if c.issuer_in_response and not (c.issuer or c.discovery) then
    fail_at(path, "issuer_in_response", "issuer_in_response: needs `issuer` (or `discovery`): the callback's iss is compared with it")
  end
  -- eBay's RuName: a name the provider maps to the redirect URL, from fields only
  for _, v in ipairs(c.redirect_uri and variables_at(path, "redirect_uri", c.redirect_uri) or {}) do
    if not field_of(v) then
      fail_at(path, "redirect_uri", "redirect_uri uses {{%s}}, which is not a field of this connector (fields: %s)", v, field_list)
    end
  end
  for k, v in pairs(c.token_headers or {}) do
    local lower = k:lower()
    if lower == "authorization" or lower == "content-type" then
      fail_at(path, "token_headers." .. k, "token_headers.%s: connrt sets this header itself (client_auth and token_request_format say how)", k)
    end
    if not require("connrt.text").is_token(k) then fail_at(path, "token_headers", "token_headers: %q is not a header name", k) end
    fields_or_client(tostring(v), "token_headers." .. k)
  end
  if type(c.test) == "table" then
    for k in pairs(c.test.ok or {}) do parse_at(path, "test.ok", "{{" .. k .. "}}") end
  end
  -- git_username is handed to git beside the token, and git shows it: fields and kept
  -- values only, never a secret
  for _, v in ipairs(c.git_username and variables_at(path, "git_username", c.git_username) or {}) do
    local ns = template.split(v)
    if M.secret_var(c, v) or ns == "token" or ns == "client" or ns == "test" or SECRET_NAMES[v] then
      fail(path, "git_username uses {{%s}}: it may use fields and kept values that are not secret", v)
    end
  end
  for _, k in ipairs({ "name", "unique_id" }) do
    for _, v in ipairs(variables_at(path, k, c[k])) do
      if M.secret_var(c, v) then
        fail_at(path, k, "%s uses {{%s}}, a secret value: names and unique ids are stored in clear", k, v)
      end
    end
  end
  -- the test API's answer is known for name and unique_id only
  local function no_test(text, key)
    for _, v in ipairs(variables_at(path, key, text)) do
      if template.split(v) == "test" then
        fail_at(path, key, "%s uses {{%s}}, but the test API's answer is known in name and unique_id only", key, v)
      end
    end
  end
  for _, part in ipairs({ "headers", "query", "body" }) do
    for k, v in pairs(c.request and c.request[part] or {}) do no_test(tostring(v), "request." .. part .. "." .. k) end
  end
  for k, v in pairs(c.request and c.request.basic or {}) do no_test(tostring(v), "request.basic." .. k) end
  if type(c.test) == "string" then no_test(c.test, "test") elseif type(c.test) == "table" then
    no_test(c.test.url, "test.url")
    for _, part in ipairs({ "headers", "query" }) do
      for k, v in pairs(c.test[part] or {}) do no_test(tostring(v), "test." .. part .. "." .. k) end
    end
  end
  local function parse_all(t, key)
    for k, v in pairs(t or {}) do
      if type(v) == "string" then parse_at(path, key .. "." .. k, v) end
    end
  end
  parse_all(c.request and c.request.headers, "request.headers")
  parse_all(c.request and c.request.query, "request.query")
  parse_all(c.request and c.request.body, "request.body")
  parse_all(c.request and c.request.basic, "request.basic")
  if c.revoke_request and c.revoke_url then
    fail_at(path, "revoke_request", "give revoke_url (RFC 7009) or revoke_request, not both")
  end
  -- never a token or the client secret in a URL (URLs end in logs, proxies and
  -- histories): not in the requests connrt sends with a connection, its test API or a
  -- declared request. A provider that only takes an API key in the query (a secret field,
  -- as Trello's) is the connector's explicit choice, and the key is redacted from traces.
  local function no_secret_in_url(texts, key, fields_too)
    for _, text in ipairs(texts) do
      for _, var in ipairs(variables_at(path, key, text)) do
        local ns, name = template.split(var)
        if (fields_too and M.secret_var(c, var)) or ((ns == nil or ns == "token") and SECRET_NAMES[name]) then
          fail_at(path, key, "%s puts {{%s}} in the URL: tokens and secrets never go in URLs", key, var)
        end
      end
    end
  end
  local function query_texts(q, extra)
    local out = { extra }
    for _, v in pairs(q or {}) do out[#out + 1] = tostring(v) end
    return out
  end
  no_secret_in_url(query_texts(c.request and c.request.query), "request.query")
  if type(c.test) == "table" then no_secret_in_url(query_texts(c.test.query, c.test.url), "test") end
  if type(c.test) == "string" then no_secret_in_url({ c.test }, "test") end
  for _, key in ipairs({ "revoke_request", "exchange_request" }) do
    local r = c[key]
    if r then
      no_secret_in_url(query_texts(r.query, r.url), key, true)
      check_request_origin(c, path, key)
      parse_all(r.headers, key .. ".headers")
      parse_all(r.form, key .. ".form")
      parse_all(r.basic, key .. ".basic")
    end
  end
  if c.auth == "fields" then
    -- no token exists for these connections: request parameters use fields only
    for _, part in ipairs({ "headers", "query", "body", "basic" }) do
      for k, v in pairs(c.request and c.request[part] or {}) do
        for _, var in ipairs(variables_at(path, "request." .. part .. "." .. k, tostring(v))) do
          local ns, name = template.split(var)
          if ns == "token" or (ns == nil and SECRET_NAMES[name]) then
            fail_at(path, "request." .. part .. "." .. k,
              "request.%s.%s uses {{%s}}, but auth = \"fields\" connections have no token", part, k, var)
          end
        end
      end
    end
  end
  if type(c.test) == "string" then parse_at(path, "test", c.test) end
  if c.app_registration then check_request_origin(c, path, "app_registration") end
  check_secret_places(c, path)
  -- `client` is no namespace: {{client_id}} and {{client_secret}} are written short
  -- (a {{client.client_secret}} would pass here and fail where it is rendered)
  -- (name and unique_id may read a `client` object of the test API's answer)
  for _, key in ipairs(TEMPLATE_KEYS) do
    for _, t in ipairs((key == "name" or key == "unique_id") and {} or each_template(c[key], key, {})) do
      for _, v in ipairs(variables_at(path, t[1], t[2])) do
        if v:match("^client%.") then
          fail_at(path, t[1], "%s uses {{%s}}: `client` is not a namespace; write {{%s}}", t[1], v, v:sub(8))
        end
      end
    end
  end
  -- connrt's own protocol parameters (M.RESERVED_PARAMS)
  for _, key in ipairs({ "authorize_params", "token_params" }) do
    for k in pairs(c[key] or {}) do
      if M.RESERVED_PARAMS[k] or k == c.client_id_param then
        fail_at(path, key .. "." .. k, "%s.%s: connrt sets the parameter %s itself", key, k, k)
      end
    end
  end
  if c.client_id_param and c.client_id_param ~= "client_id" and M.RESERVED_PARAMS[c.client_id_param] then
    fail_at(path, "client_id_param", "client_id_param: %s is a parameter connrt sets itself", c.client_id_param)
  end
end

local function check_fields(c, path)
  local seen = {}
  for i, f in ipairs(c.fields or {}) do
    local key = "fields[" .. i .. "]"
    local where = string.format("%s (%s)", key, f.key)
    if seen[f.key] then fail_at(path, key, "%s: key '%s' is declared twice", where, f.key) end
    seen[f.key] = true
    if f.default ~= nil then
      local ok, why = M.check_field_value(f, f.default)
      if not ok then fail_at(path, key, "%s: default %s", where, why) end
    end
    if f.choices and #f.choices == 0 then fail_at(path, key, "%s: choices is empty", where) end
    -- the rule of kept values' names (log.secret_name): a field named like a secret is
    -- one (hidden at the prompt, sealed, redacted), or says it is not (secret = false)
    if f.secret == nil and log.secret_name(f.key) then
      fail_at(path, key, "field %s looks secret: declare secret = true (or secret = false if it is not)", f.key)
    end
  end
end

--- Checks a value against a field's choices and pattern. Returns true, or false and why.
function M.check_field_value(f, value)
  if f.choices then
    for _, ch in ipairs(f.choices) do if ch == value then return true end end
    return false, string.format("%q is not one of: %s", value, table.concat(f.choices, ", "))
  end
  if f.pattern then
    -- the connector's pattern, matched with a step limit (sandbox.find): a pattern that
    -- backtracks without end on a value cannot stall connrt
    local ok, s, e = pcall(sandbox.find, value, f.pattern)
    if not ok then return false, string.format("cannot be checked against the pattern %s: %s", f.pattern, s) end
    if not (s == 1 and e == #value) then
      return false, string.format("%q does not match the pattern %s", value, f.pattern)
    end
  end
  return true
end

-- Compiles and runs source text in a fresh sandbox. Returns true and the value it
-- returned (a copy), or false and why (a connector error is raised for a syntax error).
local function run_sandboxed(src, path)
  if #src > limits.CONNECTOR_BYTES then
    fail(path, "the file is %d bytes; a connector may have at most %d", #src, limits.CONNECTOR_BYTES)
  end
  local made, box = pcall(sandbox.new, M.LIMITS)
  if not made then errors.wrap(box, "CONNRT_CONNECTOR_MEMORY and CONNRT_CONNECTOR_CPU: ") end
  local ok, v, reason = box:run(src, "@" .. path)
  if ok then return true, v end
  if reason == "syntax" then
    fail(path, "syntax error: %s", (tostring(v):gsub("^" .. path:gsub("%p", "%%%0") .. ":", "line ")))
  end
  return false, v
end

--- Runs connector source in a fresh sandbox without checking what it returns (for
-- `connrt check`). Returns true and the value, or false and the error message.
function M.evaluate(src, path)
  return run_sandboxed(src, path)
end

M.NEEDS, M.SECRET_NAMES, M.URL_KEYS = NEEDS, SECRET_NAMES, URL_KEYS

--- Every problem of the table `c` a connector returned, validated once for both the
-- loader (which raises the first) and `connrt check` (which prints them all, with
-- hints): a list of { kind = "schema" | "allowed" | "needs" | "connector", key (nil for
-- the file as a whole), message (what is wrong at the key), text (the loader's message,
-- without the path), problem and suggest (schema.validate's: "unknown_key" with the
-- closest known key, or "required") }. The checks past the schema need its types, so schema problems
-- come alone; past it, each group of checks reports its first problem.
function M.problems(c, path)
  local out = {}
  local errs = schema.validate(c, schema.connector)
  for _, e in ipairs(errs) do
    out[#out + 1] = { kind = "schema", key = e[1], message = e[2], problem = e.problem, suggest = e.suggest,
      text = ("key '%s': %s"):format(e[1], e[2]) }
  end
  if #errs > 0 then return out end
  if #c.allowed_urls == 0 then
    out[#out + 1] = { kind = "allowed", key = "allowed_urls", message = "needs at least one URL",
      text = "key 'allowed_urls': needs at least one URL" }
  end
  local auth = c.auth or "authorization_code"
  -- with `discovery`, the server's metadata fills what is left out (autoconf.lua), and
  -- says then whether the way of connecting has what it needs
  for _, k in ipairs(c.discovery and {} or NEEDS[auth]) do
    if c[k] == nil then
      local message = ("is required for auth = \"%s\""):format(auth)
      out[#out + 1] = { kind = "needs", key = k, message = message, text = ("key '%s': %s"):format(k, message) }
    end
  end
  if c.test == nil and not c.discovery then
    out[#out + 1] = { kind = "needs", key = "test", message = "is required", problem = "required",
      text = "key 'test': is required" }
  end
  local function group(fn)
    local ok, e = pcall(fn)
    if ok then return end
    if not errors.is(e) then error(e, 0) end
    local text = e.detail or e.message
    out[#out + 1] = { kind = "connector", key = e.key, message = text, text = text }
  end
  group(function()
    if c.registration and not c.discovery then
      fail_at(path, "registration", "key 'registration': registering a client needs the server's metadata: give "
        .. "`discovery` too")
    end
  end)
  group(function()
    if auth == "fields" and (c.discovery or c.resource) then
      local key = c.discovery and "discovery" or "resource"
      fail_at(path, key, "key '%s': auth = \"fields\" connections have no authorization server", key)
    end
  end)
  group(function() check_fields(c, path) end)
  group(function() check_templates(c, path) end)
  group(function()
    if c.pkce_encoding and c.pkce == false then
      fail_at(path, "pkce_encoding", "key 'pkce_encoding': the connector does not use PKCE (pkce = false)")
    end
    if c.redirect_uri and auth ~= "authorization_code" then
      fail_at(path, "redirect_uri", "key 'redirect_uri': only a browser sign-in (auth = \"authorization_code\") has a "
        .. "redirect")
    end
    local test = c.test
    if type(test) == "table" and (test.body ~= nil and 1 or 0) + (test.json ~= nil and 1 or 0)
        + (test.form ~= nil and 1 or 0) > 1 then
      fail_at(path, "test", "key 'test': give one of body, json and form")
    end
    local method = type(test) == "table" and test.method or "GET"
    if type(test) == "table" and (method == "GET" or method == "HEAD") and (test.body or test.json or test.form) then
      fail_at(path, "test", "key 'test': a %s request cannot have a body (give method = \"POST\")", method)
    end
  end)
  return out
end

-- Validates the table a connector returned (M.problems: the first problem is raised;
-- schema problems all at once) and fills in defaults.
local function check(c, src, path)
  local problems = M.problems(c, path)
  if #problems > 0 then
    local lines = {}
    for _, p in ipairs(problems) do
      if p.kind == "schema" then lines[#lines + 1] = p.text end
    end
    if #lines > 0 then fail(path, "%s", table.concat(lines, "; ")) end
    fail_at(path, problems[1].key, "%s", problems[1].text)
  end
  c.auth = c.auth or "authorization_code"
  c.title = c.title or c.id
  c.fields = c.fields or {}
  c.scopes = c.scopes or {}
  c.scope_separator = c.scope_separator or " "
  c.authorize_params = c.authorize_params or {}
  c.token_params = c.token_params or {}
  c.token_headers = c.token_headers or {}
  c.client_auth = c.client_auth or "basic"
  c.token_request_format = c.token_request_format or "form"
  c.values = c.values or {}
  if c.resource then
    -- RFC 8707: the resource indicator goes with the authorization request and every token
    -- request (the code exchange, refreshes, client credentials)
    if c.authorize_params.resource == nil then c.authorize_params.resource = c.resource end
    if c.token_params.resource == nil then c.token_params.resource = c.resource end
  end
  if c.pkce == nil then c.pkce = true end
  c.pkce_encoding = c.pkce_encoding or "base64url"
  c.client_id_param = c.client_id_param or "client_id"
  if type(c.test) == "string" then c.test = { url = c.test } end
  if c.test then c.test.method = c.test.method or "GET" end
  c.request = c.request or {}
  c.request.headers = c.request.headers or {}
  c.request.query = c.request.query or {}
  c.request.body = c.request.body or {}
  c.hooks = c.hooks or {}
  c.path = path
  c.source = src
  return c
end

-- The message of an error raised while a connector loads, with a hint when it reached
-- for what the sandbox leaves out.
local function load_error(path, e)
  local msg = tostring(e)
  local name = msg:match("a nil value %(global '([%w_]+)'%)") or msg:match("a nil value %(field '([%w_]+)'%)")
  local absent = { io = true, require = true, load = true, loadfile = true, dofile = true, debug = true,
    package = true, execute = true, getenv = true, remove = true, rename = true, exit = true, tmpname = true,
    collectgarbage = true, print = true }
  if name and absent[name] then
    msg = msg .. " (connectors run in a sandbox without io, os.execute, require, load or debug)"
  end
  fail(path, "error while loading: %s", msg)
end

--- Loads and validates connector source text; `path` names it in errors.
function M.load_source(src, path)
  local ok, c = run_sandboxed(src, path)
  if not ok then load_error(path, c) end
  if type(c) ~= "table" then
    fail(path, "must return a table, returned %s", type(c))
  end
  return check(c, src, path)
end

local function read(path)
  local src, err = require("connrt.text").read_file(path)
  if not src then errors.raise("connector", "cannot read connector: %s", err) end
  return src
end

--- Loads and validates a connector file.
function M.load(path)
  return M.load_source(read(path), path)
end

--- Runs a connector hook in its sandbox. Errors name the connector and the hook; an
-- error of the runtime that the hook called (a refused URL, a network failure) keeps its
-- kind.
function M.call_hook(c, name, ...)
  local res = table.pack(c.hooks[name](...))
  if not res[1] then
    local msg, reason, runtime_err = res[2], res[3], res[4]
    if reason == "runtime" and runtime_err ~= nil then error(runtime_err, 0) end
    -- (cut here, where the secrets are known: never inside one an answer it quotes holds)
    errors.fail("connector", "hook_failed", "%s: hooks.%s failed: %s", c.path, name, log.clip(tostring(msg), HOOK_MSG_MAX))
  end
  return table.unpack(res, 2, res.n)
end

--- A response as hooks see it: {status, headers, body}, the body cut to HOOK_BODY_MAX
-- (with `truncated = true`), so a large download cannot fill the sandbox.
function M.hook_response(resp)
  local body = resp.body or ""
  if #body > M.HOOK_BODY_MAX then
    return { status = resp.status, headers = resp.header, body = log.cut(body, M.HOOK_BODY_MAX), truncated = true }
  end
  return { status = resp.status, headers = resp.header, body = body }
end

-- The encoder of URL templates: a value that begins the template must be an absolute URL
-- itself (a base-URL field, as for self-hosted instances, or a base URL from the
-- provider); every other value is percent-encoded, so it can never add a '/', '@', ':' or
-- '?', and may not be empty, "." or "..", which would make a path segment that climbs or
-- vanishes ("/tenants/.." is "/"): either way it never moves the URL to another host or
-- path. `kind` is the error kind of a bad value; `from` says where values come from.
local function url_encoder(where, kind, from)
  return function(v, name, at_start)
    if at_start then
      local u, err = url.parse(v)
      if not u then errors.raise(kind, "%s: {{%s}}%s: %s", where, name, from, err) end
      if u.has_query or u.fragment ~= "" or u.userinfo then
        errors.raise(kind, "%s: {{%s}} must be a base URL without query, fragment or userinfo", where, name)
      end
      return (require("connrt.text").rstrip(v, "/")) -- linear, unlike gsub("/+$")
    end
    if v == "" or v == "." or v == ".." then
      errors.raise(kind, "%s: {{%s}}%s is %q, which would change the URL's path", where, name, from, v)
    end
    return url.encode(v)
  end
end

--- Resolves a URL template with `scope` (template.scope; see url_encoder).
function M.render_url_text(text, scope, where)
  return template.render(text, scope, where, url_encoder(where, "connector", ""))
end

--- True when allowed_urls[i] names only fields (so it is known before any token).
function M.allowed_url_static(c, i)
  local fieldset = {}
  for _, f in ipairs(c.fields) do fieldset[f.key] = true end
  for _, v in ipairs(template.variables(c.allowed_urls[i], c.path)) do
    local ns, name = template.split(v)
    if not ((ns == nil or ns == "fields") and fieldset[name]) then return false end
  end
  return true
end

--- Resolves allowed_urls[i] with `scope` (fields, then values kept with the connection)
-- and checks that it may carry credentials: https, or http to a loopback host. A value
-- that starts the URL (`{{instance_url}}`) must be an absolute URL itself.
function M.render_allowed(c, i, scope)
  local where = c.path .. ": allowed_urls[" .. i .. "]"
  local out = template.render(c.allowed_urls[i], scope, where, url_encoder(where, "provider", " from the provider"))
  local ok, why = url.check_secure(out, "allowed_urls[" .. i .. "]")
  if not ok then errors.raise("provider", "%s: %s", c.path, why) end
  return out
end

--- Resolves one of the connector's URL keys (or allowed_urls[i] for a number) with
-- field values and checks that it may carry credentials.
function M.render_url(c, key, fields)
  local text = c[key]
  if type(key) == "number" then text = c.allowed_urls[key]; key = "allowed_urls[" .. key .. "]" end
  if text == nil then return nil end
  local out = M.render_url_text(text, template.scope({ fields = fields }), c.path .. ": " .. key)
  local ok, why = url.check_secure(out, key)
  if not ok then errors.raise("connector", "%s: %s", c.path, why) end
  return out
end

return M
