// A tiny HTTP server for the specs: the upstream API that connections call, recording
// what each request really carried. Node built-ins only, no npm packages.
//
// usage: [ECHO_TLS_CERT=PEM ECHO_TLS_KEY=PEM] node spec/support/echo-server.js [LIFETIME_SECONDS]
// Listens on 127.0.0.1, port chosen by the system, and prints the port as the first line
// on stdout. Exits by itself after 60 s, when its standard input (if a pipe) closes, or
// on GET /exit (what the spec's teardown calls, so closing its pipe does not wait).
//
// Routes:
//   /echo, /api/...  any method: JSON {method, url, headers, body, body_base64, port}
//                    (headers as node gives them, names lowercased; body_base64 is the exact
//                    bytes; port is the client's source port, to see connection reuse)
//   /status/N        answers with status N
//   /redirect        302 with Location: /echo, or the `to` query parameter when given
//   /ratelimit?key=K&n=N&after=S
//                    the first N requests with key K answer 429 with Retry-After: S
//                    (S as given: seconds or an HTTP date), later ones as /echo
//   /log             JSON array of every request received so far (not /log itself)
//   /keyed/me        200 with an account when the X-Api-Key header is $ECHO_API_KEY, else 401
//   /keyed-query/me  the same with the api_key query parameter
//   /basic/me        200 when HTTP Basic carries $ECHO_BASIC_USER and $ECHO_BASIC_PASS, else 401
//   /set-cookie      sets the cookie sid=abc
//   /slow            answers after 3 s
//   /big             2 MB (2,000,000 bytes) of 'x'
//   /hold?id=K       answers only once /release?id=K is asked (state at /held: the ids
//                    held now and those answered), so a spec can hold a request in flight
//   /release?id=K&status=S&location=L&size=N
//                    answers the held request K with status S (default 200), a
//                    Location header L when given, and N bytes of 'z' when given
//   /stream?n=N      N bytes of 'y', written 64 KiB at a time as the client takes them
//                    (&chunked: without a Content-Length)
//   /headers?A=1&b=2 answers with the query's names and values as response headers, in
//                    that order and with the names' case as given (_nodate: without Date)
//   /gzip            a gzip-encoded text body (Content-Encoding: gzip)
//   /early-hints     a 103 Early Hints (with a Link header) before the final 200
//   /repeat?status=N&type=T&head=H&unit=U&n=N&tail=X[&hex]
//                    answers N (default 200) with Content-Type T and the body H, U
//                    repeated N times, X: adversarial answers of any size (linear_spec);
//                    with hex, H, U and X are given in hex
//   /exit            answers, then exits
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import zlib from 'node:zlib';

const LIFETIME_MS = Number(process.argv[2] || 60) * 1000;
const received = [];
const ratelimits = {};
const holding = new Map();
const answered = [];
const BIG = 2_000_000;

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

// ECHO_TLS_CERT and ECHO_TLS_KEY (PEM files): serve HTTPS instead (spec/tls_spec.lua)
const tls = process.env.ECHO_TLS_CERT
  ? { cert: fs.readFileSync(process.env.ECHO_TLS_CERT), key: fs.readFileSync(process.env.ECHO_TLS_KEY) }
  : null;
const server = (tls ? (h) => https.createServer(tls, h) : (h) => http.createServer(h))((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const url = new URL(req.url, 'http://127.0.0.1');
    const path = url.pathname;
    let m;
    if (path !== '/log') {
      received.push({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') });
    }
    if (path === '/ratelimit') {
      const key = url.searchParams.get('key');
      ratelimits[key] = (ratelimits[key] || 0) + 1;
      if (ratelimits[key] <= Number(url.searchParams.get('n') || 1)) {
        send(res, 429, 'slow down\n', { 'Retry-After': url.searchParams.get('after') || '1' });
        return;
      }
    }
    const account = () => send(res, 200, JSON.stringify({ id: 'acct-1', name: 'Key Holder', email: 'key@example.com' }),
      { 'Content-Type': 'application/json' });
    const denied = (why) => send(res, 401, JSON.stringify({ error: why }), { 'Content-Type': 'application/json' });
    if (path === '/keyed/me') {
      if (process.env.ECHO_API_KEY && req.headers['x-api-key'] === process.env.ECHO_API_KEY) account();
      else denied('invalid api key');
      return;
    }
    if (path === '/keyed-query/me') {
      if (process.env.ECHO_API_KEY && url.searchParams.get('api_key') === process.env.ECHO_API_KEY) account();
      else denied('invalid api key');
      return;
    }
    if (path === '/basic/me') {
      const expected = `Basic ${Buffer.from(`${process.env.ECHO_BASIC_USER}:${process.env.ECHO_BASIC_PASS}`).toString('base64')}`;
      if (process.env.ECHO_BASIC_USER && req.headers.authorization === expected) {
        send(res, 200, JSON.stringify({ login: process.env.ECHO_BASIC_USER, id: 7 }), { 'Content-Type': 'application/json' });
      } else denied('bad credentials');
      return;
    }
    if (path === '/log') {
      send(res, 200, JSON.stringify(received), { 'Content-Type': 'application/json' });
    } else if (path === '/echo' || path === '/ratelimit' || path.startsWith('/api/')) {
      const json = JSON.stringify({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: body.toString('utf8'),
        body_base64: body.toString('base64'),
        port: req.socket.remotePort,
      });
      send(res, 200, json, { 'Content-Type': 'application/json' });
    } else if ((m = path.match(/^\/status\/(\d{3})$/))) {
      send(res, Number(m[1]), `status ${m[1]}\n`, { 'Content-Type': 'text/plain' });
    } else if (path === '/redirect') {
      send(res, 302, '', { Location: url.searchParams.get('to') || '/echo' });
    } else if (path === '/set-cookie') {
      send(res, 200, 'cookie set\n', { 'Set-Cookie': 'sid=abc; Path=/; HttpOnly' });
    } else if (path === '/slow') {
      setTimeout(() => send(res, 200, 'slow\n'), 3000);
    } else if (path === '/hold') {
      const id = url.searchParams.get('id') || '';
      holding.set(id, res);
      res.on('close', () => holding.delete(id));
    } else if (path === '/release') {
      const id = url.searchParams.get('id') || '';
      const held = holding.get(id);
      holding.delete(id);
      if (held) {
        const to = url.searchParams.get('location');
        const size = url.searchParams.get('size');
        send(held, Number(url.searchParams.get('status') || '200'), size ? 'z'.repeat(Number(size)) : `released ${id}\n`,
          to ? { Location: to } : {});
        answered.push(id);
      }
      send(res, held ? 200 : 404, held ? 'released\n' : 'not held\n');
    } else if (path === '/held') {
      send(res, 200, JSON.stringify({ held: [...holding.keys()], answered }), { 'Content-Type': 'application/json' });
    } else if (path === '/stream') {
      let left = Number(url.searchParams.get('n') || '0');
      const head = { 'Content-Type': 'application/octet-stream' };
      if (!url.searchParams.has('chunked')) head['Content-Length'] = left; // else no length: chunked
      res.writeHead(200, head);
      const piece = Buffer.alloc(65536, 'y');
      const more = () => {
        while (left > 0) {
          const n = Math.min(left, piece.length);
          left -= n;
          if (!res.write(n === piece.length ? piece : piece.subarray(0, n))) {
            res.once('drain', more);
            return;
          }
        }
        res.end();
      };
      more();
    } else if (path === '/big') {
      send(res, 200, Buffer.alloc(BIG, 'x'), { 'Content-Type': 'application/octet-stream' });
    } else if (path === '/headers') {
      const raw = [];
      for (const [name, value] of url.searchParams) {
        if (name === '_nodate') res.sendDate = false; // no Date header at all
        else raw.push(name, value);
      }
      raw.push('Content-Length', '0');
      res.writeHead(200, raw);
      res.end();
    } else if (path === '/gzip') {
      const gz = zlib.gzipSync(Buffer.from('hello, compressed world\n'.repeat(100)));
      send(res, 200, gz, { 'Content-Type': 'text/plain', 'Content-Encoding': 'gzip' });
    } else if (path === '/repeat') {
      // (&hex: head, unit and tail given in hex, so a URL that carries a token answer
      // does not carry the token in a spelling connrt knows: it keeps URLs in clear)
      const raw = (k, d) => url.searchParams.get(k) ?? d;
      const q = url.searchParams.has('hex')
        ? (k, d) => (['head', 'unit', 'tail'].includes(k) ? Buffer.from(raw(k, ''), 'hex').toString('latin1') : raw(k, d))
        : raw;
      const body = Buffer.from(q('head', '') + q('unit', '').repeat(Number(q('n', '0'))) + q('tail', ''),
        url.searchParams.has('hex') ? 'latin1' : 'utf8');
      send(res, Number(q('status', '200')), body, { 'Content-Type': q('type', 'text/plain') });
    } else if (path === '/early-hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      send(res, 200, 'final\n', { 'X-Final': 'yes' });
    } else if (path === '/exit') {
      send(res, 200, 'bye\n', { Connection: 'close' });
      res.on('finish', () => process.exit(0));
    } else {
      send(res, 404, 'not found\n', { 'Content-Type': 'text/plain' });
    }
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});

setTimeout(() => process.exit(0), LIFETIME_MS).unref();

// Only a pipe's end means the parent is gone: a terminal or /dev/null says nothing.
let stdin = null;
try { stdin = fs.fstatSync(0); } catch { /* no standard input at all */ }
if (stdin && (stdin.isFIFO() || stdin.isSocket())) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
