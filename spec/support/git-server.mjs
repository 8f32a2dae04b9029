// A git server over HTTP for the specs (spec/git_credential_spec.lua): git's own
// `git http-backend` (CGI) behind a node server that requires a valid access token, as
// GitHub and GitLab do for https remotes. Node built-ins only.
//
// usage: node spec/support/git-server.mjs --root DIR --issuer URL [--user NAME]
//   --root DIR     the directory of bare repositories served (GIT_PROJECT_ROOT)
//   --issuer URL   the authorization server (spec/support/oidc-server.mjs) that says
//                  whether a token is valid (RFC 7662 introspection, as client connrt-basic)
//   --user NAME    the username git must present the token with (default x-access-token)
// Prints the port on the first line of stdout; exits when its standard input closes.
//
// Git requests carry HTTP Basic (NAME:TOKEN); GET /api/whoami takes the token as Bearer
// (the connection's test API). A missing or wrong username or an inactive token gets 401
// with WWW-Authenticate: Basic. GET /_log answers the JSON list of every request:
// {method, url, user, token_ok}.
import http from 'node:http';
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const root = opt('--root');
const issuer = opt('--issuer');
const wantUser = opt('--user', 'x-access-token');
const received = [];

async function active(token) {
  if (!token) return false;
  const res = await fetch(`${issuer}/token/introspection`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from('connrt-basic:basic-secret').toString('base64')}`,
    },
    body: new URLSearchParams({ token }).toString(),
  });
  const doc = await res.json();
  return doc.active === true;
}

function deny(res, why) {
  res.writeHead(401, { 'www-authenticate': 'Basic realm="git"', 'content-type': 'text/plain' });
  res.end(`${why}\n`);
}

// Runs git http-backend for the request and streams its CGI answer back.
function backend(req, res, user) {
  const url = new URL(req.url, 'http://127.0.0.1');
  const env = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.slice(1),
    REQUEST_METHOD: req.method,
    CONTENT_TYPE: req.headers['content-type'] || '',
    REMOTE_USER: user,
    REMOTE_ADDR: '127.0.0.1',
    GIT_PROTOCOL: req.headers['git-protocol'] || '',
    HTTP_CONTENT_ENCODING: req.headers['content-encoding'] || '',
  };
  const cgi = spawn('git', ['http-backend'], { env });
  req.pipe(cgi.stdin);
  let head = Buffer.alloc(0);
  let headDone = false;
  cgi.stdout.on('data', (chunk) => {
    if (headDone) { res.write(chunk); return; }
    head = Buffer.concat([head, chunk]);
    let end = head.indexOf('\r\n\r\n');
    let sep = 4;
    if (end < 0) { end = head.indexOf('\n\n'); sep = 2; }
    if (end < 0) return;
    headDone = true;
    let status = 200;
    const headers = {};
    for (const line of head.subarray(0, end).toString().split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const k = line.slice(0, i).trim();
      const v = line.slice(i + 1).trim();
      if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]);
      else headers[k] = v;
    }
    res.writeHead(status, headers);
    res.write(head.subarray(end + sep));
  });
  cgi.stderr.on('data', (d) => process.stderr.write(d));
  cgi.on('close', () => {
    if (!headDone) { res.writeHead(500); }
    res.end();
  });
}

const server = http.createServer(async (req, res) => {
  if (req.url === '/_log') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(received));
    return;
  }
  const auth = req.headers.authorization || '';
  let user = null;
  let token = null;
  if (auth.startsWith('Basic ')) {
    const plain = Buffer.from(auth.slice(6), 'base64').toString();
    const i = plain.indexOf(':');
    user = plain.slice(0, i);
    token = plain.slice(i + 1);
  } else if (auth.startsWith('Bearer ')) {
    token = auth.slice(7);
  }
  const ok = await active(token).catch(() => false);
  received.push({ method: req.method, url: req.url, user, token_ok: ok });
  if (req.url === '/api/whoami') {
    if (!ok) { deny(res, 'invalid token'); return; }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'git-robot', name: 'Git Robot' }));
    return;
  }
  if (!token) { deny(res, 'authentication required'); return; }
  if (user !== wantUser) { deny(res, `username must be ${wantUser}`); return; }
  if (!ok) { deny(res, 'invalid or expired token'); return; }
  backend(req, res, user);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
