// A hostile neighbour on the redirect listener, used as CONNRT_BROWSER by
// spec/abuse_spec.lua: before the real (scripted) user signs in, it opens silent
// connections and keeps them open, sends oversized request lines and headers, other
// methods and paths, callbacks with a wrong or no state and garbage, many at once, and
// tries the listener's port on addresses it must not listen on. Then it runs the real
// browser (spec/support/browser.lua through connrt) and writes what every attempt got to
// $HOSTILE_OUT as JSON. Node built-ins only.
//
// usage: HOSTILE_OUT=FILE CONNRT_BIN=build/connrt node spec/support/hostile.mjs SIGNIN_URL
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { spawnSync } from 'node:child_process';

const signin = new URL(process.argv[process.argv.length - 1]);
const redirect = new URL(signin.searchParams.get('redirect_uri'));
const host = redirect.hostname;
const port = Number(redirect.port);
const path = redirect.pathname;
const results = {};

// Connects, writes `data`, and resolves with the status line's code ('closed' when the
// connection closed without an answer, or the error code) once the server closes.
function attempt(data, where = host) {
  return new Promise((resolve) => {
    const chunks = [];
    const s = net.connect(port, where, () => s.write(Buffer.from(data, 'latin1')));
    s.setTimeout(15000, () => { s.destroy(); resolve('hung'); });
    s.on('data', (c) => chunks.push(c));
    s.on('error', (e) => resolve(e.code || 'error'));
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = text.match(/^HTTP\/1\.1 (\d{3}) /);
      resolve(m ? Number(m[1]) : 'closed');
    });
  });
}

function connectOnly(where) {
  return new Promise((resolve) => {
    const s = net.connect(port, where, () => { resolve({ socket: s, status: 'connected' }); });
    s.on('error', (e) => resolve({ status: e.code || 'error' }));
  });
}

const get = (target, extra = '') => `GET ${target} HTTP/1.1\r\nHost: ${host}:${port}\r\n${extra}\r\n`;

// 1. silent connections, kept open through the real sign-in
const silent = [];
for (let i = 0; i < 4; i++) {
  const c = await connectOnly(host);
  if (c.socket) { c.socket.on('error', () => {}); silent.push(c.socket); }
}
results.silent_connected = silent.length;

// 2. one at a time: each must get its own answer
const single = {
  long_line: get('/' + 'a'.repeat(20000)),
  long_headers: get(path, Array.from({ length: 400 }, (_, i) => `X-Pad-${i}: ${'b'.repeat(60)}\r\n`).join('')),
  post: `POST ${path}?code=x&state=y HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd`,
  put: `PUT ${path} HTTP/1.1\r\nHost: h\r\n\r\n`,
  other_path: get('/admin'),
  wrong_state: get(`${path}?code=stolen&state=forged`),
  no_state: get(`${path}?code=stolen`),
  garbage: '\x00\x01\x02 not http at all\r\n\r\n',
  bad_version: 'GET / HTTP/9.9\r\n\r\n',
  nul_in_target: get('/cb\x00x'),
};
for (const [name, data] of Object.entries(single)) results[name] = await attempt(data);

// 3. many at once: wrong states and garbage together
const many = await Promise.all(Array.from({ length: 40 }, (_, i) =>
  attempt(i % 2 ? get(`${path}?code=c${i}&state=s${i}`) : `junk ${i}\r\n\r\n`)));
results.many = many;

// 4. the listener's port on addresses it must not listen on
const others = ['::1'];
for (const list of Object.values(os.networkInterfaces())) {
  for (const a of list || []) if (!a.internal && a.family === 'IPv4') others.push(a.address);
}
results.elsewhere = {};
for (const a of others) {
  const c = await connectOnly(a);
  if (c.socket) c.socket.destroy();
  results.elsewhere[a] = c.status;
}

// 5. the real user signs in while the silent ones are still open
const browser = spawnSync(process.env.CONNRT_BIN, ['script', 'spec/support/browser.lua', signin.href],
  { stdio: 'inherit', env: process.env });
results.browser_exit = browser.status;
for (const s of silent) s.destroy();
fs.writeFileSync(process.env.HOSTILE_OUT + '.tmp', JSON.stringify(results));
fs.renameSync(process.env.HOSTILE_OUT + '.tmp', process.env.HOSTILE_OUT);
