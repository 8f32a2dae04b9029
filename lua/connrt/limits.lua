--- limits.lua - how much a provider's answer, or a connector, may make connrt keep or do.
--
-- A token endpoint's answer is parsed and part of it kept with the connection, in clear
-- (values, scope, token type) or sealed (tokens); `connrt list` reads every record. An
-- answer of tens of megabytes once made a 55 MB record that every later `list` paid
-- for. These bounds are far above what any provider sends (token responses are a few
-- hundred bytes, the largest access tokens a few kilobytes) and far below what hurts; a
-- provider that goes over one fails the connect or refresh with a provider error that
-- names the endpoint and the limit, and nothing is stored.
local M = {
  TOKEN_BODY = 1024 * 1024,    -- bytes a token endpoint's answer may have (the general limit is 64 MiB)
  -- bytes of any answer's body: the client request.lua sends with is made with it, and
  -- via_proxy.lua applies it without loading that client (src/api/http.c's default for
  -- clients made without max_body, such as a pipeline script's, is the same)
  ANSWER_BODY = 64 * 1024 * 1024,
  -- bytes of an answer's status line and headers: libcurl's own bound on them (300 KiB)
  ANSWER_HEAD = 300 * 1024,
  VALUES = 64,                 -- values a connector may declare, and so a connection keep
  VALUE_BYTES = 4 * 1024,      -- bytes of one kept value (and of token_type)
  SCOPE_BYTES = 16 * 1024,     -- bytes of the granted scope (long lists of scope URLs)
  TOKEN_BYTES = 64 * 1024,     -- bytes of an access, refresh or ID token (sealed)
  NAME_BYTES = 4 * 1024,       -- bytes of a connection's name or unique id
  RECORD_BYTES = 256 * 1024,   -- bytes of a whole connection: its plain record and sealed secrets
  UNIQUE_ID_BYTES = 256,       -- bytes of a unique id (LMDB keys are at most 511 bytes with the connector's id)
  LAST_ERROR_BYTES = 2048,     -- bytes of the last refresh error kept with a connection (cut, not refused)
  -- answers that connrt parses itself beside the token endpoint's: the test API's and those
  -- hooks.lookup asks for (identity calls, a few hundred bytes)
  API_BODY = 1024 * 1024,
  -- values (counted as the '[', '{' and ',' outside strings) of a JSON answer connrt
  -- decodes for its caller (connrt request --json, a pipeline's r.json): each costs ~100
  -- bytes decoded, so the 64 MiB an answer may have could be 2 GB of Lua tables
  JSON_VALUES = 1000000,
  -- connectors may come from anyone; their text is read by the runtime (templates, URLs)
  CONNECTOR_BYTES = 1024 * 1024, -- bytes of a connector file
  PATTERN_BYTES = 1024,        -- bytes of a field's pattern
  ALLOWED_URLS = 64,           -- allowed URLs of a connector
  -- a device authorization's pace and lifetime as the server gives them (RFC 8628 3.2),
  -- bounded: servers ask for 5 s and 15 to 30 minutes
  DEVICE_INTERVAL_MAX = 60,    -- seconds between polls at most (slow_down included)
  DEVICE_LIFETIME_MAX = 3600,  -- seconds a device code is polled for at most
  -- a refresh lease: CONNRT_LEASE_TTL may not be longer, and a lease that ends later than
  -- this from now was not written by connrt (planted: it would stall every refresh) and
  -- is taken over, on every backend
  LEASE_TTL_MAX = 300,
}

--- Raises a provider error (too_big) unless the JSON answer `body` of `what` (a URL) has
-- at most M.JSON_VALUES values (text.json_within): checked before connrt decodes an
-- answer for its caller (Connection:request's r.json, connrt request --json).
function M.check_json_size(body, what)
  if body and not require("connrt.text").json_within(body, M.JSON_VALUES) then
    require("connrt.errors").fail("provider", "too_big", "%s answered with JSON of more than %d values, more than "
      .. "connrt decodes; its body is still there as text (connrt request without --json)", what, M.JSON_VALUES)
  end
end

return M
