// The real authorization server of the specs and of `make demo`: oidc-provider (a
// certified OpenID Connect server, pinned in spec/package-lock.json) on a loopback port.
//
// usage: node spec/support/oidc-server.mjs [--port N] [--redirect URL]... [--access-ttl S] [--rotate]
//   --access-ttl S   access tokens live S seconds (default 3600)
//   --rotate         every refresh rotates the refresh token (reuse of an old one is refused)
//   --device-ttl S   device codes live S seconds (default 600)
//   --latency MS     the token and userinfo endpoints are slow: each request is taken up
//                    MS/2 milliseconds late and answered MS/2 milliseconds after it was
//                    handled (so the crash spec's kills land in the token exchange and
//                    the test API, before and after the server acted on them)
//   --registration   dynamic client registration (RFC 7591) at /reg, open to anyone
//   --resource-server  a protected resource on a second loopback port (its origin is
//                    `resource` in the line printed), and resource indicators (RFC 8707)
//                    for it: see "The protected resource" below
// Prints one JSON line {"issuer": ..., "port": ...} on stdout when it listens; exits when
// its standard input closes (so a spec that dies cannot leave it behind) or on SIGTERM.
//
// Clients (their secrets are test fixtures, not secrets):
//   connrt-basic      client_secret_basic            secret basic-secret
//   connrt-post       client_secret_post             secret post-secret
//   connrt-shortcode  client_secret_basic, authorization codes live 1 s (so a late
//                     callback meets a real invalid_grant)     secret short-secret
// The protected resource (--resource-server), what an MCP server plays:
//   /mcp          answers 401 with `WWW-Authenticate: Bearer resource_metadata=...` unless
//                 the request carries an access token this server issued for the resource
//                 RESOURCE/mcp (its audience), then 200 {"sub", "resource"}
//   /.well-known/oauth-protected-resource/mcp   its RFC 9728 metadata, naming this server
//   /dead         a resource whose metadata names an authorization server that does not
//                 answer (a closed loopback port)
//   /noas, /httpas  resources whose metadata names no authorization server, or one on
//                 plain http off loopback
//   /bare         a resource that answers 401 without resource_metadata; its metadata is
//                 found at the origin's well-known URL (/.well-known/oauth-protected-resource)
//   /as/CASE      hostile authorization servers, issuer RESOURCE/as/CASE, their metadata at
//                 RFC 8414's well-known URL: wrong-issuer, http-endpoint (off loopback),
//                 other-host (the token endpoint on another loopback host), oversized
//                 (2 MiB), slow (a byte a second, without end), invalid-json, no-client-id (a registration that answers without
//                 one), id-is-secret (a registration whose client_id is its client_secret),
//                 no-registration (no registration endpoint), no-iss (its metadata says
//                 authorization_response_iss_parameter_supported, its /auth redirects back
//                 without iss)
// Accounts: any login signs in; `john` and `jane` have profile claims, others have none.
//
// Beside the provider, /test/* routes play what no real server plays on purpose:
//   /test/html-token   a token endpoint behind a broken gateway (502, text/html)
//   /test/slow-token   the token endpoint behind a gateway that answers the first poll
//                      with RFC 8628's slow_down (oidc-provider never sends it)
//   /test/move-token?to=same|other   the token endpoint moves: /token answers 404 from now
//                      on, and the metadata names /token2 (same: which works) or the same
//                      path on http://localhost:PORT (other: another origin)
//   /test/hold?ms=N    the next POST to /token is taken N ms late (a request that
//                      reaches the server at once and is handled after others: a
//                      refresher's lease can expire while its refresh is still to come)
//   /test/stats        grant counts, how clients authenticated at the token endpoint,
//                      userinfo (/me) requests received, when the last token and
//                      userinfo requests arrived (`at`, milliseconds since the epoch)
//                      and how many of those are being handled (`busy`) (JSON), for
//                      the specs to check what really happened and when
import http from 'node:http';
import Provider, { errors } from 'oidc-provider';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const all = (name) => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []));

const port = Number(opt('--port', '0'));
const redirects = all('--redirect');
if (redirects.length === 0) redirects.push('http://127.0.0.1:8400/callback');
const accessTtl = Number(opt('--access-ttl', '3600'));
const rotate = args.includes('--rotate');
const deviceTtl = Number(opt('--device-ttl', '600'));
const latency = Number(opt('--latency', '0'));
const registration = args.includes('--registration');
const withResource = args.includes('--resource-server');

const accounts = {
  john: { sub: 'john', name: 'John', given_name: 'John', family_name: 'Doe', email: 'john@example.com', email_verified: true },
  jane: { sub: 'jane', name: 'Jane', given_name: 'Jane', family_name: 'Roe', email: 'jane@example.com', email_verified: true },
};

const client = (id, secret, method, extra = {}) => ({
  client_id: id,
  client_secret: secret,
  token_endpoint_auth_method: method,
  redirect_uris: redirects,
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials',
    'urn:ietf:params:oauth:grant-type:device_code'],
  response_types: ['code'],
  ...extra,
});

// what the specs read back: grants by type, how clients authenticated at /token, userinfo
const stats = { grants: {}, token_auth: { basic: 0, other: 0 }, userinfo: 0, at: {}, busy: 0, registrations: 0,
  resource_ok: 0, resource_refused: 0 };

const configuration = {
  clients: [
    client('connrt-basic', 'basic-secret', 'client_secret_basic'),
    client('connrt-post', 'post-secret', 'client_secret_post'),
    client('connrt-shortcode', 'short-secret', 'client_secret_basic'),
  ],
  async findAccount(ctx, id) {
    const claims = accounts[id] || { sub: id };
    return { accountId: id, async claims() { return claims; } };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'api'],
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
  },
  // every client that may refresh gets a refresh token, offline_access or not
  issueRefreshToken: async (ctx, c) => c.grantTypeAllowed('refresh_token'),
  ...(rotate ? { rotateRefreshToken: () => true } : {}),
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: (ctx, token, c) => (c && c.clientId === 'connrt-shortcode' ? 1 : 60),
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
    RefreshToken: 86400,
    ClientCredentials: accessTtl,
    DeviceCode: deviceTtl,
  },
  cookies: { keys: ['connrt-spec-cookie-key'] },
  // expired means expired: the specs time token lifetimes to the second
  clockTolerance: 0,
  pkce: { required: () => false },
};

const issuerFor = (p) => `http://127.0.0.1:${p}`;

// The hostile authorization servers of the protected resource's origin: metadata of
// issuer `${base}/as/${name}`, made wrong in one way each.
function hostileMetadata(base, name) {
  const issuer = `${base}/as/${name}`;
  const md = {
    issuer,
    authorization_endpoint: `${issuer}/auth`,
    token_endpoint: `${issuer}/token`,
    registration_endpoint: `${issuer}/register`,
    token_endpoint_auth_methods_supported: ['client_secret_basic'],
  };
  switch (name) {
    case 'wrong-issuer': md.issuer = `${base}/as/someone-else`; break;
    case 'http-endpoint': md.token_endpoint = 'http://auth.example.com/token'; break;
    case 'other-host': md.token_endpoint = base.replace('127.0.0.1', 'localhost') + '/token'; break;
    case 'no-registration': delete md.registration_endpoint; break;
    // RFC 9207: promises iss on the callback, and its /auth sends none
    case 'no-iss': md.authorization_response_iss_parameter_supported = true; break;
    default: break;
  }
  return md;
}

async function resourceServer(issuer, state) {
  const rs = http.createServer();
  await new Promise((resolve) => rs.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${rs.address().port}`;
  // a port nothing listens on: the authorization server that does not answer
  const closed = http.createServer();
  await new Promise((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadIssuer = `http://127.0.0.1:${closed.address().port}`;
  await new Promise((resolve) => closed.close(resolve));
  const json = (res, status, doc, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(doc));
  };
  const servers = { dead: [deadIssuer], noas: [], httpas: ['http://auth.example.com'] };
  const metadataOf = (name) => ({
    resource: `${base}/${name}`,
    authorization_servers: servers[name] || [issuer],
    scopes_supported: ['api'],
    bearer_methods_supported: ['header'],
  });
  rs.on('request', async (req, res) => {
    const path = req.url.split('?')[0];
    const wk = path.match(/^\/\.well-known\/oauth-protected-resource(\/.*)?$/);
    if (wk) {
      if (['/mcp', '/dead', '/noas', '/httpas'].includes(wk[1])) return json(res, 200, metadataOf(wk[1].slice(1)));
      if (wk[1] === undefined) return json(res, 200, metadataOf('bare'));
      return json(res, 404, { error: 'not_found' });
    }
    const as = path.match(/^\/\.well-known\/oauth-authorization-server\/as\/([a-z-]+)$/);
    if (as) {
      const name = as[1];
      if (name === 'oversized') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"issuer": "${base}/as/oversized", "pad": "${'x'.repeat(2 * 1024 * 1024)}"}`);
        return undefined;
      }
      if (name === 'slow') {
        // answers at once, then a byte a second, without end
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`{"issuer": "${base}/as/slow", "pad": "`);
        const timer = setInterval(() => res.write('x'), 1000);
        res.on('close', () => clearInterval(timer));
        return undefined;
      }
      if (name === 'invalid-json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"issuer": "not closed');
        return undefined;
      }
      return json(res, 200, hostileMetadata(base, name));
    }
    if (path === '/as/no-iss/auth') {
      // signs in at once: back to the redirect URI with a code and the state, without iss
      const q = new URL(req.url, base).searchParams;
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', 'no-iss-code-0123456789');
      back.searchParams.set('state', q.get('state') || '');
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (req.method === 'POST' && path === '/as/id-is-secret/register') {
      // a registration answer whose client_id is its client_secret
      return json(res, 201, { client_id: 'cs-Reg1sterSecret77', client_secret: 'cs-Reg1sterSecret77', redirect_uris: [] });
    }
    if (req.method === 'POST' && /^\/as\/[a-z-]+\/register$/.test(path)) {
      // the no-client-id server: a registration answer without the client_id
      return json(res, 201, { client_secret: 'registered-but-nameless', redirect_uris: [] });
    }
    if (['/mcp', '/dead', '/bare', '/noas', '/httpas'].includes(path)) {
      const name = path.slice(1);
      const m = (req.headers.authorization || '').match(/^Bearer (.+)$/);
      if (m && name === 'mcp') {
        const token = await state.provider.AccessToken.find(m[1]);
        const aud = token && (Array.isArray(token.aud) ? token.aud : [token.aud]);
        if (token && aud.includes(`${base}/mcp`)) {
          stats.resource_ok += 1;
          return json(res, 200, { sub: token.accountId, resource: `${base}/mcp` });
        }
        stats.resource_refused += 1;
      }
      const challenge = name === 'bare' ? 'Bearer realm="bare"'
        : `Bearer realm="${name}", resource_metadata="${base}/.well-known/oauth-protected-resource/${name}"`;
      return json(res, 401, { error: 'invalid_token' }, { 'www-authenticate': challenge });
    }
    return json(res, 404, { error: 'not_found' });
  });
  return { base, resource: `${base}/mcp` };
}

async function main() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = server.address().port;
  const state = {};
  let rs;
  if (registration) {
    configuration.features.registration = { enabled: true };
  }
  if (withResource) {
    rs = await resourceServer(issuerFor(actual), state);
    configuration.features.resourceIndicators = {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, indicator) => {
        if (indicator !== rs.resource) throw new errors.InvalidTarget();
        return { scope: 'api', audience: rs.resource, accessTokenTTL: accessTtl, accessTokenFormat: 'opaque' };
      },
    };
  }
  const provider = new Provider(issuerFor(actual), configuration);
  state.provider = provider;
  provider.on('registration_create.success', () => { stats.registrations += 1; });
  provider.on('grant.success', (ctx) => {
    const g = ctx.oidc.params.grant_type;
    stats.grants[g] = (stats.grants[g] || 0) + 1;
  });
  const callback = provider.callback();
  let moved = null; // /test/move-token: where the metadata says the token endpoint went
  let hold = 0; // /test/hold: how late the next token request is taken
  server.on('request', async (req, res) => {
    if (req.url.startsWith('/test/hold')) {
      hold = Number(new URL(req.url, issuerFor(actual)).searchParams.get('ms')) || 0;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    if (hold > 0 && req.method === 'POST' && req.url.startsWith('/token')) {
      const ms = hold;
      hold = 0;
      stats.held = (stats.held || 0) + 1;
      req.pause();
      setTimeout(() => { stats.held -= 1; req.resume(); server.emit('request', req, res); }, ms);
      return;
    }
    if (req.url.startsWith('/test/move-token')) {
      moved = new URL(req.url, issuerFor(actual)).searchParams.get('to');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    if (moved && req.method === 'GET' && req.url.startsWith('/.well-known/') && !req.headers['x-internal']) {
      const real = await fetch(issuerFor(actual) + req.url, { headers: { 'x-internal': '1' } });
      const doc = await real.json();
      doc.token_endpoint = moved === 'other' ? `${issuerFor(actual).replace('127.0.0.1', 'localhost')}/token`
        : `${issuerFor(actual)}/token2`;
      res.writeHead(real.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(doc));
      return;
    }
    if (moved && req.method === 'POST') {
      const path = req.url.split('?')[0];
      if (path === '/token2') {
        req.url = '/token';
      } else if (path === '/token') {
        stats.gone_token = (stats.gone_token || 0) + 1;
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":"not_found"}');
        return;
      }
    }
    if (req.url === '/test/html-token') {
      res.writeHead(502, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>');
      return;
    }
    if (req.url === '/test/slow-token') {
      stats.slow_token_calls = (stats.slow_token_calls || 0) + 1;
      if (stats.slow_token_calls === 1) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'slow_down' }));
        return;
      }
      req.url = '/token';
    }
    if (req.url === '/test/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats));
      return;
    }
    if (req.url.startsWith('/me')) {
      stats.userinfo += 1;
      stats.at.userinfo = performance.timeOrigin + performance.now();
    }
    if (req.method === 'POST' && req.url.startsWith('/token')) {
      stats.at.token = performance.timeOrigin + performance.now();
      const auth = req.headers.authorization || '';
      stats.token_auth[auth.startsWith('Basic ') ? 'basic' : 'other'] += 1;
    }
    if (req.url.startsWith('/token') || req.url.startsWith('/me')) {
      // counted until handled, even when the client is gone before the answer
      stats.busy += 1;
      const handle = () => Promise.resolve(callback(req, res)).finally(() => { stats.busy -= 1; });
      if (latency > 0) {
        const end = res.end.bind(res);
        res.end = (...rest) => { setTimeout(() => end(...rest), latency / 2); return res; };
        setTimeout(handle, latency / 2);
      } else {
        handle();
      }
      return;
    }
    callback(req, res);
  });
  process.stdout.write(`${JSON.stringify({ issuer: issuerFor(actual), port: actual, resource: rs && rs.base })}\n`);
  const stop = () => { server.close(); process.exit(0); };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
}

main().catch((err) => { console.error(err); process.exit(1); });
