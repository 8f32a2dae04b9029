// A person with a real browser: Debian's Chromium, headless, driven by playwright-core
// (pinned in spec/package-lock.json; it never downloads a browser). Used as connrt's
// CONNRT_BROWSER by spec/browser_spec.lua:
//
//   CONNRT_BROWSER="node spec/support/chromium.mjs"   (the URL is the last argument)
//
// It opens the sign-in URL, fills oidc-provider's login form (login, password), then on
// the consent page clicks Continue (BROWSER_ACTION=approve, the default) or [ Cancel ]
// (BROWSER_ACTION=deny), and waits for the browser to land on connrt's listener
// (BROWSER_LISTENER, its origin). It writes what the person saw there as one JSON
// object to BROWSER_OUT: { status, path, headers, title, text, style, console, error }.
// BROWSER_USER (default john) is the login; BROWSER_SCREENSHOT names a PNG to take of
// the landing page. The callback URL (it carries the code) is never written out.
//
// The browser reaches nothing but loopback addresses: every other request is aborted
// (oidc-provider's pages @import a web font). JavaScript is off, so the landing page is
// seen as it is without scripts.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const target = process.argv[process.argv.length - 1];
const out = process.env.BROWSER_OUT;
const action = process.env.BROWSER_ACTION || 'approve';
const user = process.env.BROWSER_USER || 'john';
const listener = process.env.BROWSER_LISTENER;
const executablePath = process.env.BROWSER_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 30000;

const result = { console: [] };
// codes and states in URLs are secrets: never written out
const scrub = (text) => String(text).replace(/\b(code|state)=[^&\s"']+/g, '$1=...');
// written whole or not at all: the spec reads it while we may still be writing
const write = () => {
  if (!out) return;
  writeFileSync(`${out}.tmp`, `${JSON.stringify(result)}\n`);
  renameSync(`${out}.tmp`, out);
};
const isLoopback = (u) => {
  try {
    const { hostname } = new URL(u);
    return hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]';
  } catch { return false; }
};

async function main() {
  if (!out || !listener) throw new Error('BROWSER_OUT and BROWSER_LISTENER must be set');
  const userDataDir = mkdtempSync(join(tmpdir(), 'connrt-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      javaScriptEnabled: false,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: TIMEOUT,
    });
    await context.route('**/*', (route) => (isLoopback(route.request().url()) ? route.continue() : route.abort()));
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('console', (m) => result.console.push(scrub(`${m.type()}: ${m.text()}`)));

    // the answer of connrt's listener: the last main-frame document from its origin
    let landing = null;
    page.on('response', (r) => {
      if (r.request().isNavigationRequest() && r.frame() === page.mainFrame() && r.url().startsWith(listener)) landing = r;
    });

    await page.goto(target);
    await page.locator('input[name="login"]').fill(user);
    await page.locator('input[name="password"]').fill('any password');
    await page.locator('button[type="submit"]').click();
    await page.getByRole('button', { name: 'Continue' }).waitFor();
    if (action === 'deny') {
      await page.getByRole('link', { name: '[ Cancel ]' }).click();
    } else {
      await page.getByRole('button', { name: 'Continue' }).click();
    }
    await page.waitForURL((u) => u.href.startsWith(listener), { waitUntil: 'load' });
    if (!landing) throw new Error('no response from the listener was seen');

    result.status = landing.status();
    result.path = new URL(landing.url()).pathname;
    result.headers = await landing.allHeaders();
    result.title = await page.title();
    result.text = await page.locator('body').innerText();
    // what the page's style did, to show the Content-Security-Policy let it apply
    const main = page.locator('main');
    result.style = {
      borderTopWidth: await main.evaluate((e) => getComputedStyle(e).borderTopWidth),
      borderTopColor: await main.evaluate((e) => getComputedStyle(e).borderTopColor),
      maxWidth: await main.evaluate((e) => getComputedStyle(e).maxWidth),
    };
    if (process.env.BROWSER_SCREENSHOT) await page.screenshot({ path: process.env.BROWSER_SCREENSHOT, fullPage: true });
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

const watchdog = setTimeout(() => { result.error = 'gave up after 60 s'; write(); process.exit(1); }, 60000);
main().then(() => { write(); clearTimeout(watchdog); }, (err) => {
  result.error = scrub(String(err && err.message ? err.message : err).split('\n')[0]);
  write();
  clearTimeout(watchdog);
  process.exitCode = 1;
});
