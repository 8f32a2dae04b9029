-- Parsers of provider and connector text, timed on a megabyte of ordinary text and on a
-- megabyte made to make patterns backtrack (issue 13: linear in the input). spec/linear_spec
-- only checks that each finishes within a generous instruction budget; this measures.
-- usage: connrt script bench/linear.lua N   (prints a JSON object: parser -> {plain, hostile}
-- medians in seconds over N runs each, interleaved)
local n = tonumber(arg[1]) or 5
local sys = require("connrt.sys")
local MB = 1024 * 1024

local function swallow(f, ...) pcall(f, ...) end

local oauth = require("connrt.oauth")
local function token_answer(ctype)
  return function(body)
    swallow(oauth.normalize, { status = 200, header = { ["content-type"] = ctype }, headers = {}, body = body },
      "token endpoint")
  end
end

local url = require("connrt.url")
local log = require("connrt.log")
local text = require("connrt.text")
local template = require("connrt.template")
local check = require("connrt.check")
local connection = require("connrt.connection")
log.secret("s3cr+t/x=y&z")

-- template.parse caches what it parsed: each run gets a text of its own
local runs = 0
local function parse(t)
  runs = runs + 1
  swallow(template.parse, t .. runs, "t")
end

local prose = ("the quick brown fox jumps over the lazy dog "):rep(MB // 44)
-- name, parser, ordinary input, hostile input (each about a megabyte, built before timing)
local PARSERS = {
  { "HTML title of a token endpoint's page", token_answer("text/html"), "<html><title>Sign in</title>" .. prose,
    "<html><title>" .. (" "):rep(MB) },
  { "form-encoded token answer", token_answer("application/x-www-form-urlencoded"), ("a=b&"):rep(MB // 4),
    ("=&"):rep(MB // 2) },
  { "url.form_decode (callback query)", url.form_decode, ("code=abc&"):rep(MB // 9), ("%2"):rep(MB // 2) },
  { "log.redact", log.redact, prose, ("%25"):rep(MB // 3) },
  { "text.escape_controls", text.escape_controls, prose, ("\27[2J"):rep(MB // 4) },
  { "Retry-After", connection.retry_after, prose, ("Mon, 1 Jan "):rep(MB // 11) },
  { "template.parse (connector text)", parse, ("{{a}} b "):rep(MB // 8), ("{{a"):rep(MB // 3) },
  { "check.looks_secret (connector text)", check.looks_secret, prose, ("{{"):rep(MB // 2) },
}

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local out = {}
for _, p in ipairs(PARSERS) do
  local plain, hostile = {}, {}
  for _ = 1, n do
    for k, into in ipairs({ plain, hostile }) do
      collectgarbage()
      local t0 = sys.monotime()
      swallow(p[2], p[k + 2])
      into[#into + 1] = sys.monotime() - t0
    end
  end
  out[#out + 1] = ('"%s": {"plain": %.6f, "hostile": %.6f}'):format(p[1], median(plain), median(hostile))
end
print("{" .. table.concat(out, ", ") .. "}")
return 0
