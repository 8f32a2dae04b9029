// A loopback stand-in for one OAuth provider, driven by a fixture file
// (spec/fixtures/providers/NAME.json) that holds the provider's documented response
// shapes, errors included. Node built-ins only.
//
//   node spec/support/standin.mjs FIXTURE.json
//
// Prints {"origin": "http://127.0.0.1:PORT"} once it listens; stops when standard input
// closes. It plays the provider strictly: the authorize endpoint checks the client, the
// redirect URI, the state and (when the fixture says so) PKCE S256, then redirects back
// with a code (and the fixture's extra callback values); the token endpoint checks the
// client authentication the provider uses, the body format (form or JSON), the code, the
// redirect URI and the PKCE verifier, and answers the fixture's token shape with fresh
// tokens; API routes answer only with a currently valid credential in the place the
// provider expects it, and with the required headers.
//
// Fixture strings may use $CONNRT_VERSION, $ORIGIN, $ACCESS_TOKEN, $REFRESH_TOKEN and $ISO_AFTER:N (the
// time N seconds from now, ISO 8601, for providers that send an expiry date instead of
// expires_in). An API route may list `require_query` values its query must carry. A
// route with `revokes` is a revocation in the provider's shape: it checks the token
// named in a JSON body (json_token) or a form field (form_token, RFC 7009: an unknown
// token is answered 200 and ends nothing), an access or a refresh token, and fixed form
// values (form), then ends every access and refresh token. A
// `refresh` shape with rotate: false keeps the refresh token it is given valid and
// answers with that same one as $REFRESH_TOKEN (Square's code flow); otherwise each
// refresh spends it. An API route with auth "none" is authenticated by its body. The
// token shape's `require_headers` are headers every token request must carry (Reddit's
// User-Agent). The client's `id_param` names the client id parameter (TikTok's
// client_key); the authorize shape's `pkce_encoding: "hex"` takes a hex S256 challenge
// (TikTok's desktop apps) and `redirect_name: {name, url}` a registered name as
// redirect_uri that stands for url (eBay's RuName). An API route with `registers`
// (values its form must carry) registers an app (Mastodon's /api/v1/apps); an authorize
// shape with `registered_only` then takes only that app's redirect URI and scopes
// (GET /_standin/registered counts the registrations).
// Control endpoints: GET /_standin/log (requests seen), POST /_standin/fail?what=token
// (the next token response is the fixture's error), POST /_standin/fail?what=api (the
// next API request is answered with its route's `fail` shape, else `unauthorized`: an
// error the provider sends whatever the credential, such as Slack's 200 {"ok": false}),
// POST /_standin/expire (every access token stops working).
import http from "node:http";
import crypto from "node:crypto";
import fs from "node:fs";

const fixture = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const codes = new Map();          // code -> { challenge, redirect_uri }
let access = new Set();           // valid access tokens
const refresh = new Set();        // valid refresh tokens
const seen = [];
const failNext = new Set();
let origin = "";
let lastAccess = "", lastRefresh = "";
let exchanged = 0;                // token exchanges answered
let registered = null;            // the app registered (Mastodon's /api/v1/apps): { redirect_uris, scopes }
let registrations = 0;

const rand = (p) => p + crypto.randomBytes(12).toString("hex");
const b64url = (buf) => buf.toString("base64").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

// $CONNRT_VERSION: the Makefile's VERSION, connrt's one definition of it (Reddit's User-Agent)
const connrtVersion = fs.readFileSync(new URL("../../Makefile", import.meta.url), "utf8").match(/^VERSION\s*=\s*(\S+)/m)[1];

function subst(v) {
  if (typeof v === "string") {
    return v.replaceAll("$CONNRT_VERSION", connrtVersion).replaceAll("$ORIGIN", origin).replaceAll("$ACCESS_TOKEN", lastAccess)
      .replaceAll("$REFRESH_TOKEN", lastRefresh)
      .replaceAll("$REDIRECT_URI", registered ? registered.redirect_uris[0] : "")
      .replace(/\$ISO_AFTER:(\d+)/g, (_, n) => new Date(Date.now() + Number(n) * 1000).toISOString().replace(/\.\d+Z$/, "Z"));
  }
  if (Array.isArray(v)) return v.map(subst);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = subst(x);
    return o;
  }
  return v;
}

function send(res, shape, defaults = {}) {
  const status = shape.status ?? defaults.status ?? 200;
  const headers = { ...(shape.headers || {}) };
  let body;
  if (shape.body_text !== undefined) {
    body = subst(shape.body_text);
    headers["content-type"] ??= shape.content_type || "text/plain";
  } else if (shape.form !== undefined) {
    body = new URLSearchParams(subst(shape.form)).toString();
    headers["content-type"] ??= "application/x-www-form-urlencoded; charset=utf-8";
  } else {
    body = JSON.stringify(subst(shape.body ?? {}));
    headers["content-type"] ??= "application/json; charset=utf-8";
  }
  res.writeHead(status, headers);
  res.end(body);
}

function oauthError(res, status, error, description) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ error, error_description: description }));
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
  });
}

// The token request's parameters and the client it authenticates, as the provider reads them.
function tokenParams(req, text) {
  const c = fixture.client;
  const ctype = req.headers["content-type"] || "";
  let params;
  if ((c.format || "form") === "json") {
    if (!ctype.startsWith("application/json")) return { error: "the token request must be a JSON body" };
    try { params = JSON.parse(text); } catch { return { error: "the token request body is not JSON" }; }
  } else {
    if (!ctype.startsWith("application/x-www-form-urlencoded")) return { error: "the token request must be a form" };
    params = Object.fromEntries(new URLSearchParams(text));
  }
  let id, secret;
  const auth = req.headers.authorization || "";
  if ((c.auth || "basic") === "basic") {
    const m = auth.match(/^Basic (.+)$/);
    if (!m) return { error: "client authentication must be HTTP Basic", status: 401 };
    const dec = Buffer.from(m[1], "base64").toString("utf8");
    const i = dec.indexOf(":");
    id = decodeURIComponent(dec.slice(0, i));
    secret = decodeURIComponent(dec.slice(i + 1));
  } else {
    if (auth) return { error: "client authentication must be in the body", status: 401 };
    id = params[c.id_param || "client_id"];
    secret = params.client_secret;
  }
  if (id !== c.id || secret !== c.secret) return { error: "invalid_client", status: 401 };
  return { params };
}

// `keep`: a refresh token that stays (a refresh that does not rotate answers with it)
function tokenResponse(req, res, shape, kind, keep) {
  if (failNext.has(kind)) {
    failNext.delete(kind);
    return send(res, fixture.token.error);
  }
  lastAccess = rand("at-");
  lastRefresh = keep || rand("rt-");
  access.add(lastAccess);
  refresh.add(lastRefresh);
  // GitHub: form-encoded unless the client asks for JSON
  if (shape.form && shape.json_when_asked && (req.headers.accept || "").includes("application/json")) {
    return send(res, { status: shape.status, body: shape.form });
  }
  send(res, shape);
}

async function onToken(req, res, isRefreshPath) {
  const text = await readBody(req);
  const t = tokenParams(req, text);
  seen[seen.length - 1].body = text;
  if (t.error) return oauthError(res, t.status || 400, t.status === 401 ? "invalid_client" : "invalid_request", t.error);
  for (const [k, v] of Object.entries(subst(fixture.token.require_headers || {}))) {
    if (req.headers[k.toLowerCase()] !== v) return oauthError(res, 400, "invalid_request", `the token request needs ${k}: ${v}`);
  }
  const p = t.params;
  if (p.grant_type === "authorization_code" && !isRefreshPath) {
    const entry = codes.get(p.code);
    codes.delete(p.code);
    if (!entry) return send(res, fixture.token.error);
    if (entry.redirect_uri !== p.redirect_uri) return oauthError(res, 400, "invalid_grant", "redirect_uri mismatch");
    if (entry.challenge) {
      const digest = crypto.createHash("sha256").update(p.code_verifier || "").digest();
      const expect = fixture.authorize.pkce_encoding === "hex" ? digest.toString("hex") : b64url(digest);
      if (expect !== entry.challenge) return oauthError(res, 400, "invalid_grant", "PKCE verification failed");
    }
    return tokenResponse(req, res, fixture.token, "token");
  }
  if (fixture.exchange && p.grant_type === fixture.exchange.grant_type) {
    // a token exchange (Facebook's fb_exchange_token): a valid token in, a new one out
    if (!access.has(p[fixture.exchange.token_param])) return oauthError(res, 400, "invalid_grant", "unknown token to exchange");
    exchanged += 1;
    return tokenResponse(req, res, fixture.exchange, "exchange");
  }
  if (p.grant_type === "refresh_token" && (isRefreshPath || !fixture.refresh?.path)) {
    if (!refresh.has(p.refresh_token)) return oauthError(res, 400, "invalid_grant", "unknown refresh token");
    const rotate = fixture.refresh?.rotate !== false;
    if (rotate) refresh.delete(p.refresh_token);
    return tokenResponse(req, res, fixture.refresh || fixture.token, "refresh", rotate ? undefined : p.refresh_token);
  }
  return oauthError(res, 400, "unsupported_grant_type", `grant_type ${p.grant_type} is not taken here`);
}

function onAuthorize(req, res, q) {
  const a = fixture.authorize;
  const idParam = fixture.client.id_param || "client_id";
  if (q.get(idParam) !== fixture.client.id) return oauthError(res, 400, "invalid_client", `unknown ${idParam}`);
  if (q.get("response_type") !== "code") return oauthError(res, 400, "unsupported_response_type", "code only");
  // a redirect name (eBay's RuName) stands for the URL registered with it
  const sent = q.get("redirect_uri");
  if (a.redirect_name && sent !== a.redirect_name.name) return oauthError(res, 400, "invalid_request", "redirect_uri must be the RuName");
  const redirect = a.redirect_name ? a.redirect_name.url : sent;
  if (!redirect || !/^http:\/\/127\.0\.0\.1:\d+\//.test(redirect)) return oauthError(res, 400, "invalid_request", "redirect_uri");
  if (!q.get("state")) return oauthError(res, 400, "invalid_request", "state is required");
  for (const [k, v] of Object.entries(subst(a.require_params || {}))) {
    if (q.get(k) !== v) return oauthError(res, 400, "invalid_request", `${k} must be ${v}`);
  }
  if (a.registered_only) {
    // an app registered here (Mastodon): its redirect URI, and scopes among those registered
    if (!registered || !registered.redirect_uris.includes(redirect)) return oauthError(res, 400, "invalid_client", "no app registered with this redirect URI");
    const asked = (q.get("scope") || "").split(" ");
    if (!asked.every((s) => registered.scopes.includes(s))) return oauthError(res, 400, "invalid_scope", "scope not registered");
  }
  const challenge = q.get("code_challenge");
  if (a.pkce === "required" && (!challenge || q.get("code_challenge_method") !== "S256")) {
    return oauthError(res, 400, "invalid_request", "PKCE S256 is required");
  }
  const back = new URL(redirect);
  if (failNext.has("authorize")) {
    failNext.delete("authorize");
    back.searchParams.set("error", "access_denied");
  } else {
    const code = rand("code-");
    codes.set(code, { challenge: a.pkce === "none" ? null : challenge, redirect_uri: sent });
    back.searchParams.set("code", code);
    for (const [k, v] of Object.entries(subst(a.extra || {}))) back.searchParams.set(k, v);
  }
  back.searchParams.set("state", q.get("state"));
  res.writeHead(302, { location: back.toString() });
  res.end();
}

// Does the request carry a valid credential where this route expects it?
function authorized(req, q, how, body) {
  const h = req.headers;
  if (how === "none") return true; // a revocation that its body authenticates
  if (how.form_token) {
    // the token in a form body (RFC 7662 introspection), with the client's own credentials
    const f = Object.fromEntries(new URLSearchParams(body || ""));
    return access.has(f[how.form_token]) &&
      (!how.client || (f.client_id === fixture.client.id && f.client_secret === fixture.client.secret));
  }
  if (how === "bearer" || how === "oauth") {
    const m = (h.authorization || "").match(how === "bearer" ? /^Bearer (.+)$/ : /^OAuth (.+)$/);
    return !!m && access.has(m[1]);
  }
  if (how.scheme) {
    // a token after an authorization scheme of the provider's own (Zoho-oauthtoken)
    const m = (h.authorization || "").match(/^(\S+) (.+)$/);
    return !!m && m[1] === how.scheme && access.has(m[2]);
  }
  if (how.header) return how.value !== undefined ? h[how.header.toLowerCase()] === how.value : access.has(h[how.header.toLowerCase()]);
  if (how.query) return Object.entries(how.query).every(([k, v]) => q.get(k) === v);
  if (how.basic) return h.authorization === "Basic " + Buffer.from(how.basic.join(":")).toString("base64");
  return false;
}

const server = http.createServer(async (req, res) => {
  const u = new URL(req.url, origin);
  const entry = { method: req.method, path: u.pathname, query: u.search, headers: req.headers };
  if (!u.pathname.startsWith("/_standin/")) seen.push(entry);
  try {
    if (u.pathname === "/_standin/log") return send(res, { body: seen });
    if (u.pathname === "/_standin/exchanged") return send(res, { body: { exchanged } });
    if (u.pathname === "/_standin/registered") return send(res, { body: { registrations } });
    if (u.pathname === "/_standin/fail") { failNext.add(u.searchParams.get("what")); return send(res, { body: { ok: true } }); }
    if (u.pathname === "/_standin/expire") { access = new Set(); return send(res, { body: { ok: true } }); }
    if (req.method === "GET" && u.pathname === fixture.authorize?.path) return onAuthorize(req, res, u.searchParams);
    if (req.method === "POST" && u.pathname === fixture.token?.path) return await onToken(req, res, false);
    if (req.method === "POST" && fixture.refresh?.path && u.pathname === fixture.refresh.path) return await onToken(req, res, true);
    for (const r of fixture.api || []) {
      const match = r.path.endsWith("*") ? u.pathname.startsWith(r.path.slice(0, -1)) : r.path === u.pathname;
      if (r.method === req.method && match) {
        const body = await readBody(req);
        entry.body = body;
        if (failNext.has("api")) {
          failNext.delete("api");
          return send(res, r.fail || fixture.unauthorized || { status: 401, body: { error: "unauthorized" } });
        }
        if (!authorized(req, u.searchParams, r.auth, body)) return send(res, fixture.unauthorized || { status: 401, body: { error: "unauthorized" } });
        for (const [k, v] of Object.entries(r.require_query || {})) {
          if (u.searchParams.get(k) !== v) return send(res, r.missing_query || { status: 400, body: { error: `query ${k}=${v} is required` } });
        }
        for (const [k, v] of Object.entries(subst(r.require_headers || {}))) {
          if (req.headers[k.toLowerCase()] !== v) return send(res, r.missing_header || { status: 400, body: { error: `${k} is required` } });
        }
        if (r.registers) {
          // an app registration in the provider's shape (a form): its name, redirect URIs and scopes
          const form = Object.fromEntries(new URLSearchParams(body));
          for (const [k, v] of Object.entries(r.registers)) {
            if (form[k] !== v) return send(res, { status: 422, body: { error: `Validation failed: ${k} must be ${v}` } });
          }
          if (!/^https?:\/\//.test(form.redirect_uris || "")) return send(res, r.fail);
          registered = { redirect_uris: form.redirect_uris.split("\n"), scopes: (form.scopes || "read").split(" ") };
          registrations += 1;
        }
        if (r.revokes) {
          // a revocation in the provider's own shape: check what it names, then end every token
          if (r.revokes.json_token) {
            let doc = {};
            try { doc = JSON.parse(body); } catch { /* checked below */ }
            const t = doc[r.revokes.json_token];
            if (!access.has(t) && !refresh.has(t)) return send(res, { status: 422, body: { error: "unknown token" } });
          }
          const form = Object.fromEntries(new URLSearchParams(body));
          if (r.revokes.form_token) {
            // RFC 7009 2.2: a token the server does not know is answered 200 and changes nothing
            const named = form[r.revokes.form_token];
            if (!access.has(named) && !refresh.has(named)) return send(res, r);
          }
          for (const [k, v] of Object.entries(r.revokes.form || {})) {
            if (form[k] !== v) return send(res, { status: 400, body: { error: `${k} must be ${v}` } });
          }
          access = new Set();
          refresh.clear();
        }
        return send(res, r);
      }
    }
    send(res, { status: 404, body: { error: "not_found", path: u.pathname } });
  } catch (e) {
    send(res, { status: 500, body: { error: String(e) } });
  }
});

server.listen(0, "127.0.0.1", () => {
  origin = `http://127.0.0.1:${server.address().port}`;
  process.stdout.write(JSON.stringify({ origin }) + "\n");
});
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
