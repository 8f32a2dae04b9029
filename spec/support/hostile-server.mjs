// A loopback provider that answers badly on purpose, for spec/bad_input_spec.lua: the
// callbacks, token responses, test API answers and refresh responses that a real server
// (oidc-provider) never sends. Node built-ins only.
//
//   node spec/support/hostile-server.mjs
//
// Prints {"origin": "http://127.0.0.1:PORT"} once it listens; stops when standard input
// closes. The sign-in is steered by authorize parameters (connrt run --param NAME=VALUE):
//   cb=MODE    the callback: ok (default) | error | deny | nocode | iss
//   tok=MODE   the answer to the code exchange (see TOKEN below; default ok)
//   api=MODE   the test API's answer to the token that exchange hands out (see API)
// GET /_mode?refresh=MODE sets how later refresh grants are answered (TOKEN modes).
// POST /device/MODE answers a device authorization badly (see DEVICE); the device code it
// hands out is polled at /token, where "dc.ok" gets a token and "dc.pending" never does.
import http from "node:http";

let refreshMode = "ok";
let origin = "";

const json = (res, status, v, ctype = "application/json") => {
  res.writeHead(status, { "content-type": ctype });
  res.end(typeof v === "string" || Buffer.isBuffer(v) ? v : JSON.stringify(v));
};
const good = (api) => ({ access_token: `at.${api}`, token_type: "Bearer", expires_in: 3600, refresh_token: "rt-hostile" });

const TOKEN = {
  ok: (res, api) => json(res, 200, good(api)),
  html: (res) => json(res, 200, "<html><head><title>Sign in again</title></head><body>login</body></html>", "text/html"),
  noaccess: (res) => json(res, 200, { token_type: "bearer", expires_in: 3600 }),
  emptyaccess: (res) => json(res, 200, { access_token: "", token_type: "bearer" }),
  numaccess: (res) => json(res, 200, { access_token: 12345, token_type: "bearer" }),
  negexp: (res, api) => json(res, 200, { ...good(api), expires_in: -5 }),
  strexp: (res, api) => json(res, 200, { ...good(api), expires_in: "soon" }),
  typetable: (res, api) => json(res, 200, { ...good(api), token_type: { kind: "bearer" } }),
  truncated: (res) => json(res, 200, '{"access_token": "at.ok", "token_ty'),
  empty500: (res) => { res.writeHead(500); res.end(); },
  error200: (res) => json(res, 200, { error: "invalid_request", error_description: "the scope is missing" }),
  array: (res) => json(res, 200, "[]"),
  formasjson: (res) => json(res, 200, "access_token=at.ok&token_type=bearer"),
  huge: (res) => json(res, 200, Buffer.alloc(70 * 1024 * 1024, "x"), "application/json"),
  hangup: (res) => res.socket.destroy(),
  redirect: (res) => { res.writeHead(302, { location: "/elsewhere" }); res.end(); },
  // credentials under names of the provider's own, which only a token_response hook knows
  nested: (res) => json(res, 200, { result: { grant: { tok: "at.okNestedS3cretAccess", renew: "rtNestedS3cretRenewal",
    ttl: 3600 } }, kind: "grant" }),
};

const API = {
  ok: (res) => json(res, 200, { name: "Hostile User", email: "hostile@example.com" }),
  empty500: (res) => { res.writeHead(500); res.end(); },
  html: (res) => json(res, 200, "<html><head><title>Welcome</title></head><body>hi</body></html>", "text/html"),
  truncated: (res) => json(res, 200, '{"name": "Hostile'),
  unauthorized: (res) => json(res, 401, { error: "invalid_token" }),
  array: (res) => json(res, 200, "[1, 2]"),
  emptyid: (res) => json(res, 200, { name: "Hostile User", email: "" }),
  nameobj: (res) => json(res, 200, { name: { first: "Hostile" }, email: "hostile@example.com" }),
  escape: (res) => { res.writeHead(302, { location: "http://127.0.0.2:9/steal" }); res.end(); },
};

const device = (extra) => ({ device_code: "dc.ok", user_code: "WDJB-MJHT", verification_uri: `${origin}/device`,
  interval: 5, expires_in: 600, ...extra });
const DEVICE = {
  slowpoke: (res) => json(res, 200, device({ interval: 1e9, expires_in: 1e9 })),
  pending: (res) => json(res, 200, device({ device_code: "dc.pending", interval: 1e9 })),
  nan: (res) => json(res, 200, JSON.stringify(device({ interval: 0 })).replace('"interval":0', '"interval":NaN')),
  wordy: (res) => json(res, 200, device({ interval: "fast", expires_in: "later" })),
  descobj: (res) => json(res, 400, { error: "invalid_client", error_description: { text: "no such client" } }),
  errobj: (res) => json(res, 400, { error: { code: 7, message: "client blocked" } }),
  codeobj: (res) => json(res, 200, device({ user_code: { code: "X" } })),
  nocode: (res) => json(res, 200, device({ device_code: null })),
  fileuri: (res) => json(res, 200, device({ verification_uri: "file:///etc/passwd" })),
  badcomplete: (res) => json(res, 200, device({ interval: 1, verification_uri_complete: "javascript:alert(1)" })),
};

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const u = new URL(req.url, origin);
    const q = u.searchParams;
    if (u.pathname === "/_mode") {
      if (q.get("refresh")) refreshMode = q.get("refresh");
      return json(res, 200, { refresh: refreshMode });
    }
    if (u.pathname === "/auth") {
      const back = new URL(q.get("redirect_uri"));
      const cb = q.get("cb") || "ok";
      if (cb === "error") {
        back.searchParams.set("error", "server_error");
        back.searchParams.set("error_description", "the database is down");
      } else if (cb === "deny") {
        back.searchParams.set("error", "access_denied");
      } else if (cb !== "nocode") {
        back.searchParams.set("code", `${q.get("tok") || "ok"}.${q.get("api") || "ok"}`);
        if (cb === "iss") back.searchParams.set("iss", "https://evil.example");
      }
      back.searchParams.set("state", q.get("state"));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (req.method === "POST" && u.pathname.startsWith("/device/")) {
      return (DEVICE[u.pathname.slice(8)] || DEVICE.slowpoke)(res);
    }
    if (req.method === "POST" && u.pathname === "/token") {
      const p = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
      if (p.get("grant_type") === "urn:ietf:params:oauth:grant-type:device_code") {
        if (p.get("device_code") === "dc.ok") return TOKEN.ok(res, "ok");
        return json(res, 400, { error: "authorization_pending" });
      }
      let mode = refreshMode, api = "ok";
      if (p.get("grant_type") === "authorization_code") [mode, api] = (p.get("code") || "ok.ok").split(".");
      return (TOKEN[mode] || TOKEN.ok)(res, api);
    }
    if (u.pathname === "/me") {
      const m = (req.headers.authorization || "").match(/^Bearer at\.(\w+)$/);
      if (!m) return json(res, 401, { error: "no token" });
      return (API[m[1]] || API.ok)(res);
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
