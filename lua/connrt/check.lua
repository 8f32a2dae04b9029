--- check.lua - `connrt check CONNECTOR.lua...`: a linter for connector files.
--
-- Each finding names the file, the key and what is wrong, with a hint on how to fix it:
-- the format (schema.lua), the keys each way of connecting needs, URL syntax, https
-- everywhere except loopback, templates that name values that do not exist where they
-- are rendered, a test API covered by the allowed URLs, fields inside host names without
-- a pattern, and (as warnings) literal request parameters that look like secrets. Errors
-- make the command fail; warnings do not. The loader's own validation
-- (connector.problems, the one place a connector is validated) gives its problems as
-- findings, each at its key, so anything the loader refuses is an error here too.
local connector = require("connrt.connector")
local errors = require("connrt.errors")
local template = require("connrt.template")
local url = require("connrt.url")

local M = {}

-- Values every token-based connection has in its request templates: the token's
-- (also as {{token.X}}) and the client id (short form only).
local TOKEN_VALUES = { access_token = true, token_type = true, scope = true, expires_in = true, client_id = true }
local TOKEN_NS = { access_token = true, token_type = true, scope = true, expires_in = true }

local function finding(out, level, key, message, hint)
  out[#out + 1] = { level = level, key = key, message = message, hint = hint }
end

-- A hint for a problem of the schema (or a missing key the way of connecting needs), from
-- what connector.problems says of it: `problem` and `suggest`, never its message.
local function schema_hint(p)
  local key = p.key
  if p.problem == "required" then
    if key == "name" then return "add a name template, e.g. name = \"{{login}}'s Account\"" end
    if key == "unique_id" then return "add a unique id template from the test API, e.g. unique_id = \"{{id}}\"" end
    if key == "test" then return "add a test API, e.g. test = \"/me\"" end
    if key == "allowed_urls" then return "list the API base URLs credentials may go to, e.g. { \"https://api.example.com\" }" end
    return "add the key; docs/connectors.md lists what each key takes"
  end
  if p.problem == "unknown_key" then
    if p.suggest then return "rename it to " .. p.suggest end
    return "remove it, or see docs/connectors.md for the known keys"
  end
  return "see docs/connectors.md for what " .. key .. " takes"
end

local function field_info(c)
  local set, list = {}, {}
  for _, f in ipairs(type(c.fields) == "table" and c.fields or {}) do
    if type(f) == "table" and type(f.key) == "string" then set[f.key] = f; list[#list + 1] = f.key end
  end
  return set, list
end

-- Renders a template with stand-in values, so its URL can be parsed: a value that starts
-- the text becomes a base URL, any other one a plain label.
local function sample(text)
  local ok, parts = pcall(template.parse, text, "check")
  if not ok then return nil end
  local out = {}
  for i, p in ipairs(parts) do
    if type(p) == "string" then out[#out + 1] = p
    elseif i == 1 then out[#out + 1] = "https://" .. p.segs[1]:gsub("_", "-") .. ".value.test"
    else out[#out + 1] = "value" end
  end
  return table.concat(out)
end

-- The placeholders of a template as { path, namespace, name } each, or nil and why.
local function placeholders(text)
  local ok, vars = pcall(template.variables, text, "check")
  if not ok then return nil, tostring(vars.detail or vars) end
  local out = {}
  for _, v in ipairs(vars) do
    local ns, name = template.split(v)
    out[#out + 1] = { v, ns, name }
  end
  return out
end

-- Secret-looking literal text: known key prefixes, or a long run of random-looking
-- characters.
local PREFIXES = { "sk_", "sk-", "rk_", "pk_live_", "xoxb-", "xoxp-", "xoxa-", "ghp_", "gho_", "github_pat_",
  "glpat-", "AKIA", "shpat_", "secret_", "ntn_" }

function M.looks_secret(text)
  local literal = template.literal(text)
  for word in literal:gmatch("[%w_%-]+") do
    for _, p in ipairs(PREFIXES) do
      if word:sub(1, #p) == p and #word >= #p + 8 then return "it starts with " .. p end
    end
  end
  for run in literal:gmatch("[%w_%-+/=]+") do
    if #run >= 24 and run:find("%d") and run:find("%a") and not run:find("^%a+$") then
      local classes = (run:find("%l") and 1 or 0) + (run:find("%u") and 1 or 0) + (run:find("%d") and 1 or 0)
      local digits = select(2, run:gsub("%d", ""))
      if classes >= 2 and digits >= 4 then return "it is a long random-looking string" end
    end
  end
end

local function check_url(out, key, text, fieldset)
  local s = sample(text)
  if not s then return end
  local u, err = url.parse(s)
  if not u then
    finding(out, "error", key, err:gsub("\"https://[%w-]+%.value%.test", "\"{{...}}"),
      "write an absolute URL such as https://api.example.com/v1")
    return
  end
  if u.scheme ~= "https" and not url.is_loopback(u.host) then
    finding(out, "error", key, ("%s uses plain %s"):format(text, u.scheme),
      "use https: plain http is only for loopback hosts (127.0.0.1, localhost, [::1])")
  end
  if u.userinfo then
    finding(out, "error", key, "the URL carries credentials (userinfo)", "put credentials in fields and request parameters")
  end
  -- a field inside the host name: only its pattern keeps it a label
  local host_part = text:match("^%a[%w+.-]*://([^/?#]*)") or ""
  for var in host_part:gmatch("{{%s*([%w_]+)[^}]*}}") do
    local f = fieldset[var]
    if f and not f.pattern and not f.choices then
      finding(out, "warning", key, ("field %s is part of the host name but has no pattern or choices"):format(var),
        "give fields[" .. var .. "] a pattern such as \"[%w][%w-]*\" so only a host label is accepted")
    end
  end
end

-- The checks on a table that passed the schema.
local function check_table(c, out)
  local fieldset, field_list = field_info(c)
  local auth = c.auth or "authorization_code"
  local declared = {}
  for _, v in ipairs(c.values or {}) do declared[v] = true end
  local function known_list(extra)
    local names = {}
    for _, f in ipairs(field_list) do names[#names + 1] = f end
    for _, v in ipairs(c.values or {}) do names[#names + 1] = v end
    if extra then for k in pairs(TOKEN_VALUES) do names[#names + 1] = k end end
    table.sort(names)
    return #names > 0 and table.concat(names, ", ") or "none"
  end
  local has_token = auth ~= "fields"
  -- Is placeholder { path, namespace, name } known where `allow_token` and
  -- `allow_values` say? A namespaced one only in its own layer.
  local function known(p, allow_token, allow_values, allow_client)
    local ns, name = p[2], p[3]
    if allow_client and ns == nil and p[1] == "client_id" then return true end
    if ns == "fields" then return fieldset[name] ~= nil end
    if ns == "values" then return allow_values and declared[name] == true end
    if ns == "token" then return allow_token and has_token and TOKEN_NS[name] == true end
    if ns == "test" then return false end
    return fieldset[name] ~= nil or (allow_values and declared[name]) or (allow_token and has_token and TOKEN_VALUES[name])
  end
  local function unknown(key, text, allow_token, allow_values, allow_client)
    local ps, err = placeholders(text)
    if not ps then
      finding(out, "error", key, err, "write placeholders as {{name}} or {{a.b.0}}")
      return
    end
    for _, p in ipairs(ps) do
      if not known(p, allow_token, allow_values, allow_client) then
        local shown = p[2] and (p[2] .. "." .. p[3]) or p[3]
        local hint = "use one of: " .. known_list(allow_token and has_token) .. (allow_client and ", client_id" or "")
        if p[2] == "test" then
          hint = "the test API's answer is known in name and unique_id only"
        elseif allow_values then
          hint = hint .. "; declare a value the token response or a hook provides in `values`"
        end
        finding(out, "error", key, ("{{%s}} names a value that does not exist here"):format(shown), hint)
      end
    end
  end

  for _, k in ipairs(connector.URL_KEYS) do
    if c[k] then
      check_url(out, k, c[k], fieldset)
      unknown(k, c[k], false, false)
    end
  end
  local allowed_samples = {}
  for i, a in ipairs(c.allowed_urls) do
    local key = "allowed_urls[" .. i .. "]"
    check_url(out, key, a, fieldset)
    unknown(key, a, false, true)
    allowed_samples[#allowed_samples + 1] = sample(a)
  end
  for k, v in pairs(c.authorize_params or {}) do unknown("authorize_params." .. k, tostring(v), false, false, true) end
  if c.redirect_uri then unknown("redirect_uri", c.redirect_uri, false, false) end
  for k, v in pairs(c.token_params or {}) do unknown("token_params." .. k, tostring(v), false, false, true) end
  for k, v in pairs(c.token_headers or {}) do unknown("token_headers." .. k, tostring(v), false, false, true) end
  for _, part in ipairs({ "headers", "query", "body", "basic" }) do
    for k, v in pairs(c.request and c.request[part] or {}) do
      local key = "request." .. part .. "." .. k
      unknown(key, tostring(v), true, true)
      if part ~= "basic" or k == "password" then
        local why = M.looks_secret(tostring(v))
        if why then
          finding(out, "warning", key, "the literal value looks like a secret (" .. why .. ")",
            "secrets belong in a secret field ({{api_key}}) or the token ({{access_token}}), not in the script")
        end
      end
    end
  end
  local test = type(c.test) == "string" and { url = c.test } or c.test or {}
  if test.url then unknown("test.url", test.url, true, true) end
  for _, part in ipairs({ "headers", "query" }) do
    for k, v in pairs(test[part] or {}) do unknown("test." .. part .. "." .. k, tostring(v), true, true) end
  end
  local ts = test.url and sample(test.url)
  if ts and #allowed_samples > 0 then
    local target = url.join(allowed_samples[1], ts)
    local ok = url.allowed(target, allowed_samples)
    if not ok then
      finding(out, "error", "test", ("the test API %s is not under any allowed URL"):format(test.url),
        "add its base URL to allowed_urls, or make test relative to the first allowed URL (\"/me\")")
    end
  end
  for _, k in ipairs({ "name", "unique_id" }) do
    local ps = placeholders(c[k])
    -- (the one exception: unique_id = resource, one connection per protected resource,
    -- what `connrt connect URL --print-connector` writes)
    if ps and #ps == 0 and k == "unique_id" and c.unique_id ~= c.resource then
      finding(out, "error", k, "is a constant: every account would get the same id",
        "use a value from the test API, e.g. {{id}}")
    end
    -- name and unique_id also see the test API's answer, last: a short name found
    -- earlier (a token's, a field, a kept value) hides the answer's field of that name
    for _, p in ipairs(ps or {}) do
      local ns, name = p[2], p[3]
      if ns ~= nil and ns ~= "test" and not known(p, true, true) then
        finding(out, "error", k, ("{{%s}} names a value that does not exist here"):format(p[1]),
          "use one of: " .. known_list(has_token))
      elseif ns == nil then
        local layer = (has_token and TOKEN_VALUES[name] and (name == "client_id" and "the client id" or "the token"))
          or (fieldset[name] and "a field") or (declared[name] and "a kept value")
        if layer then
          local space = (fieldset[name] and "fields") or (declared[name] and "values") or "token"
          if p[1] ~= name then
            -- {{shop.name}} with a field `shop`: one value has no members, so it can only
            -- mean the test API's, found by luck after the field
            finding(out, "warning", k, ("{{%s}}: %s is %s, a single value without members, so this can only mean the "
              .. "test API's answer"):format(p[1], name, layer), ("write {{test.%s}}"):format(p[1]))
          else
            local hint = ("write {{%s.%s}} to say so, or {{test.%s}} for the test API's"):format(space, name, name)
            if name == "client_id" then hint = ("write {{test.%s}} for the test API's"):format(name) end
            finding(out, "warning", k, ("{{%s}} is %s, looked up before the test API's answer, whose own %s it "
              .. "would hide"):format(name, layer, name), hint)
          end
        end
      end
    end
  end
  -- a value or a field named like one of the token's: the short form finds the token's
  for i, v in ipairs(c.values or {}) do
    if has_token and TOKEN_VALUES[v] then
      finding(out, "warning", "values[" .. i .. "]", ("%s is also a name of the token, which {{%s}} finds first"):format(v, v),
        ("rename it, or write {{values.%s}} wherever it is meant"):format(v))
    end
  end
  for i, f in ipairs(type(c.fields) == "table" and c.fields or {}) do
    if has_token and type(f) == "table" and TOKEN_VALUES[f.key] then
      finding(out, "warning", "fields[" .. i .. "]", ("%s is also a name of the token, which {{%s}} finds first")
        :format(f.key, f.key), ("rename it, or write {{fields.%s}} wherever it is meant"):format(f.key))
    end
  end
end

--- Checks connector source text; `path` names it. Returns a list of findings
-- {level = "error" | "warning", key, message, hint}.
function M.check_source(src, path)
  local out = {}
  local pok, ok, c = pcall(connector.evaluate, src, path)
  if not pok then ok, c = false, ok end
  -- a failure that is not the connector's (the sandbox's limits) is not a finding
  if not ok and errors.is(c) and c.kind ~= "connector" then error(c, 0) end
  if not ok then
    -- the loader's own error keeps its message without the path (detail)
    local msg = errors.is(c) and (c.detail or c.message) or ("error while loading: " .. tostring(c))
    finding(out, "error", "(file)", msg,
      "fix the Lua error; the file must run in the connector sandbox (no io, require or os.execute)")
    return out
  end
  if type(c) ~= "table" then
    finding(out, "error", "(file)", "returns " .. type(c) .. ", not a connector table", "end the file with return { id = ..., ... }")
    return out
  end
  -- the loader's own validation (connector.problems), once: the format, allowed URLs and
  -- the keys each way of connecting needs first, with hints of their own
  local problems = connector.problems(c, path)
  local nschema = 0
  for _, p in ipairs(problems) do
    if p.kind == "schema" then
      nschema = nschema + 1
      finding(out, "error", p.key, p.message, schema_hint(p))
    elseif p.kind == "allowed" then
      finding(out, "error", p.key, p.message, "list at least one API base URL")
    elseif p.kind == "needs" then
      finding(out, "error", p.key, p.message, p.key == "test" and schema_hint(p)
        or ("add " .. p.key .. ", or set auth to the way the app connects"))
    end
  end
  -- the lint's deeper checks also run on a table with schema errors, as far as they can
  local more = {}
  local cok = pcall(check_table, c, more)
  if cok or nschema == 0 then
    for _, f in ipairs(more) do out[#out + 1] = f end
  end
  local nerr = 0
  for _, f in ipairs(out) do if f.level == "error" then nerr = nerr + 1 end end
  if nerr == 0 then
    -- anything else the loader refuses (secrets in names, field defaults, ...), where
    -- the lint found nothing to say with a better hint
    for _, p in ipairs(problems) do
      if p.kind == "connector" then finding(out, "error", p.key or "(file)", p.text, "see docs/connectors.md for this key") end
    end
  end
  return out
end

--- Checks a connector file. Returns its findings.
function M.check_file(path)
  local src, err = require("connrt.text").read_file(path)
  if not src then return { { level = "error", key = "(file)", message = tostring(err), hint = "check the path" } } end
  return M.check_source(src, path)
end

--- One finding as a line: FILE: key: [warning: ]message (hint: ...).
function M.format(path, fd)
  return ("%s: %s: %s%s (hint: %s)"):format(path, fd.key, fd.level == "warning" and "warning: " or "", fd.message, fd.hint)
end

return M
