--- flow/paste.lua - the paste way of connecting, for a machine without a browser: the
-- authorization URL is printed, the user signs in elsewhere and pastes back the address
-- the browser was sent to, a bare code (with PKCE), or the one-line result of `connrt
-- authorize` run on a machine with a browser. That result's format (BLOB_PREFIX and
-- base64url JSON) is made and read here alone.
local browser = require("connrt.flow.browser")
local cjson = require("cjson.safe")
local code = require("connrt.flow.code")
local errors = require("connrt.errors")
local finish = require("connrt.flow.finish")
local log = require("connrt.log")
local oauth = require("connrt.oauth")
local redirect = require("connrt.flow.redirect")
local sys = require("connrt.sys")
local text = require("connrt.text")
local url = require("connrt.url")
local values = require("connrt.flow.values")

local M = {}

local BLOB_PREFIX = "connrt-authorized-v1:"

--- The one line `connrt authorize` prints: the token the code bought and the values
-- hooks.callback kept, for `connrt run --paste` to finish with.
function M.blob(ctx, token, extras)
  -- the fields the callback set (Zoho's data centre), for run --paste to follow
  local set = {}
  for k in pairs(ctx.c.callback_fields or {}) do set[k] = ctx.fields[k] end
  local doc = { connector = ctx.c.id, extras = extras, fields = next(set) and set or nil, token = {
    access_token = token.access_token, refresh_token = token.refresh_token, id_token = token.id_token,
    token_type = token.token_type, scope = token.scope, expires_in = token.expires_in, values = token.values } }
  return BLOB_PREFIX .. require("connrt.crypto").b64url_encode(cjson.encode(doc))
end

-- What was pasted: the redirected URL, a bare code, or a blob from `connrt authorize`.
local function read_paste(ctx, a)
  log.err("Sign in with a browser, then paste the address the browser was sent to (or the code):")
  local timeout = ctx.opts.timeout or browser.DEFAULT_TIMEOUT
  if not sys.readable(0, timeout) then
    errors.raise("connect", "nothing was pasted within %ds; nothing was saved", timeout)
  end
  local line = io.stdin:read("l")
  if not line then errors.raise("connect", "nothing was pasted on standard input; nothing was saved") end
  line = text.trim(line)
  if line == "" then errors.raise("connect", "an empty line was pasted; nothing was saved") end
  if line:sub(1, #BLOB_PREFIX) == BLOB_PREFIX then
    local doc = cjson.decode(require("connrt.crypto").b64url_decode(line:sub(#BLOB_PREFIX + 1)) or "")
    if type(doc) ~= "table" or type(doc.token) ~= "table" then
      errors.fail("connect", "bad_paste", "the pasted line is not a connrt authorize result (damaged in copying?); nothing was saved")
    end
    if doc.connector ~= ctx.c.id then
      errors.fail("connect", "bad_paste", "the pasted result is for connector %s, not %s; nothing was saved", tostring(doc.connector), ctx.c.id)
    end
    return "blob", doc
  end
  if line:match("^%a[%w+.-]*://") then
    local query = line:match("%?([^#]*)") or ""
    local q = url.form_decode(query)
    log.secret(q.code)
    if q.state == nil or q.state ~= a.state then
      errors.fail("connect", "wrong_state", "the pasted address carries %s state than this sign-in's (an old or forged link?); nothing was saved",
        q.state and "another" or "no")
    end
    if not q.code and not q.error then
      errors.fail("connect", "no_code", "the pasted address carries no code; nothing was saved")
    end
    return "query", q
  end
  if not line:match("^[%w%-._~+/=]+$") then
    errors.fail("connect", "bad_paste", "the pasted text is neither an address, a code nor a connrt authorize result; nothing was saved")
  end
  if not ctx.c.pkce then
    -- without PKCE only the state ties a code to this sign-in: ask for the whole address
    errors.raise("connect", "%s does not use PKCE: paste the whole address, so its state can be checked", ctx.c.id)
  end
  return "query", { code = log.secret(line) }
end

--- The authorization code flow without a listener: the URL is printed and the result of
-- the sign-in is pasted back on standard input. Returns what flow/finish.lua does.
function M.run(ctx)
  local redirect_uri = redirect.get()
  local a = code.new_attempt(ctx, redirect_uri)
  code.show_url(ctx, a.url)
  if ctx.opts.browser ~= false then browser.open(a.url) end
  local kind, v = read_paste(ctx, a)
  if kind == "blob" then
    -- fields the callback set on the machine that signed in (Zoho's data centre), checked
    -- against their choices as the callback's own values are
    local q = {}
    for k, param in pairs(ctx.c.callback_fields or {}) do
      if type(v.fields) == "table" and type(v.fields[k]) == "string" then q[param] = v.fields[k] end
    end
    code.callback_fields(ctx, q)
    local tok = oauth.finish_token(v.token, "the pasted authorize result", ctx.c, "pasted")
    return finish.run(ctx, tok, values.check(ctx.c, "callback", v.extras or {}))
  end
  local token, extras = code.to_token(ctx, v, a.verifier, redirect_uri)
  return finish.run(ctx, token, extras)
end

return M
