// A plain loopback OAuth provider that records every request, for the specs of what a
// store, a connector or a provider must not be able to make connrt do
// (spec/binding_spec.lua, spec/values_spec.lua, spec/limits_spec.lua). Node built-ins only.
//
//   node spec/support/provider.mjs
//
// Prints {"origin": "http://127.0.0.1:PORT"} once it listens; stops when standard input
// closes. Routes:
//   GET  /auth            302 back to redirect_uri with a code and the state
//   POST /token           a token for any grant (authorization_code, refresh_token,
//                         client_credentials): access and refresh token, expires_in 3600,
//                         scope, and the values api_base (ORIGIN/api), region and quota
//                         (an integer). The answer is shaped by the mode (below) of the
//                         grant: `tok` for the first two, `refresh` for refresh_token
//   POST /revoke          200, or the status `revoke` says
//   GET  /api/me          the account (u-1, or u-TENANT for an X-Tenant other than t1), with a
//                         Bearer token this server issued; else 401.
//                         With me=error200: 200 {"ok": false, "error": "invalid_auth"}, as
//                         Slack answers errors
//   any  /api/...         200 {"ok": true, "path"} with such a token; with api=expired200,
//                         200 {"ok": false, "error": "token_expired"} whatever the token
//   any  /api/redir?to=URL&code=N   N (302 unless given) to URL, whatever the token
//   GET  /_mode?tok=M&refresh=M&size=N&count=N&me=M&api=M&revoke=N   sets the modes
//   GET  /_log            every request so far (not /_ ones): {method, path, headers, body}
// Modes: ok | extras (beside the token: `token` = the access token as Intercom sends it,
// session_token, api_key, a `secret` and an `account` that is the access token) | big
// (a `filler` string of `size` bytes) | manykeys (`count` extra keys k0, k1, ...) |
// bigvalue (region of `size` bytes) | bigscope (scope of `size` bytes) | bigtoken (access
// token of `size` bytes) | wide (`count` values v0, v1, ... of `size` bytes each, and a
// scope of 4 * `size` bytes) | norefresh (no refresh token) |
// noexpiry (no expires_in) | invalid_grant (400 {"error": "invalid_grant"}: the code or
// refresh token is no longer valid). api=unauthorized answers 401 to every /api/ request;
// api=slow answers /api/ requests after 3 s; api=bigjson answers them with a JSON array of
// `count` empty objects, whatever the token.
import http from "node:http";
import crypto from "node:crypto";

let origin = "";
const mode = { tok: "ok", refresh: "ok", size: 0, count: 0, me: "ok", api: "ok", revoke: 200 };
const issued = new Set();
const received = [];

const json = (res, status, v) => {
  const body = typeof v === "string" ? v : JSON.stringify(v);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
};
const rand = () => crypto.randomBytes(12).toString("hex");

function token(m) {
  const at = m === "bigtoken" ? "at-" + "a".repeat(mode.size) : `at-${rand()}`;
  issued.add(at);
  const t = { access_token: at, token_type: "Bearer", expires_in: 3600, refresh_token: `rt-${rand()}`,
    scope: "read", api_base: `${origin}/api`, region: "eu", quota: 8726400 };
  if (m === "extras") {
    Object.assign(t, { token: at, session_token: `st-${rand()}`, api_key: `ak-${rand()}`, secret: `se-${rand()}`,
      account: at });
  } else if (m === "big") {
    t.filler = "f".repeat(mode.size);
  } else if (m === "manykeys") {
    for (let i = 0; i < mode.count; i++) t[`k${i}`] = i;
  } else if (m === "bigvalue") {
    t.region = "r".repeat(mode.size);
  } else if (m === "bigscope") {
    t.scope = "s".repeat(mode.size);
  } else if (m === "norefresh") {
    delete t.refresh_token;
  } else if (m === "noexpiry") {
    delete t.expires_in;
  } else if (m === "wide") {
    for (let i = 0; i < mode.count; i++) t[`v${i}`] = "w".repeat(mode.size);
    t.scope = "s".repeat(4 * mode.size);
  }
  return t;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const u = new URL(req.url, origin);
    const q = u.searchParams;
    if (u.pathname === "/_mode") {
      for (const k of ["tok", "refresh", "me", "api"]) if (q.get(k)) mode[k] = q.get(k);
      for (const k of ["size", "count", "revoke"]) if (q.get(k)) mode[k] = Number(q.get(k));
      return json(res, 200, mode);
    }
    if (u.pathname === "/_log") return json(res, 200, received);
    received.push({ method: req.method, path: u.pathname, headers: req.headers, body });
    if (u.pathname === "/auth") {
      const back = new URL(q.get("redirect_uri"));
      back.searchParams.set("code", `code-${rand()}`);
      back.searchParams.set("state", q.get("state"));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (req.method === "POST" && u.pathname === "/token") {
      const grant = new URLSearchParams(body).get("grant_type");
      const m = grant === "refresh_token" ? mode.refresh : mode.tok;
      if (m === "invalid_grant") return json(res, 400, { error: "invalid_grant", error_description: "expired" });
      return json(res, 200, token(m));
    }
    if (req.method === "POST" && u.pathname === "/revoke") {
      return json(res, mode.revoke, mode.revoke === 200 ? {} : { error: "unsupported_token_type" });
    }
    if (u.pathname === "/api/redir") {
      // a redirect, token or not: to `to` with status `code` (302 unless given)
      res.writeHead(Number(q.get("code") || 302), { location: q.get("to") });
      return res.end();
    }
    if (u.pathname.startsWith("/api/")) {
      if (mode.api === "expired200") return json(res, 200, { ok: false, error: "token_expired" });
      if (mode.api === "unauthorized") return json(res, 401, { error: "invalid_token" });
      if (mode.api === "slow") return void setTimeout(() => json(res, 200, { ok: true }), 3000);
      if (mode.api === "bigjson") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end("[" + "{},".repeat(Math.max(mode.count - 1, 0)) + "{}]");
      }
      const m = (req.headers.authorization || "").match(/^Bearer (\S+)$/);
      if (!m || !issued.has(m[1])) return json(res, 401, { error: "invalid_token" });
      if (u.pathname === "/api/me" && mode.me === "error200") return json(res, 200, { ok: false, error: "invalid_auth" });
      if (u.pathname === "/api/me") {
        // another account per tenant (the default tenant t1 is account u-1)
        const t = req.headers["x-tenant"];
        return json(res, 200, t && t !== "t1" ? { id: `u-${t}`, name: `User ${t}` } : { id: "u-1", name: "User One" });
      }
      return json(res, 200, { ok: true, path: u.pathname });
    }
    json(res, 404, { error: "not_found", path: u.pathname });
  });
});

server.listen(0, "127.0.0.1", () => {
  origin = `http://127.0.0.1:${server.address().port}`;
  process.stdout.write(JSON.stringify({ origin }) + "\n");
});
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
