/**
 * What a web page can make a browser do to a local server: Chromium on
 * another site (localhost vs 127.0.0.1: loopback both, different sites)
 * tries to cancel a job on a server without a token — the `reasonq dev`
 * default — and a DNS-rebound name reaches the server with its own Host.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { chromium, type Browser } from 'playwright-core';
import { SECURITY_HEADERS } from '../../src/server/auth.js';
import { newJob, uniqueQueue, waitFor } from '../helpers.js';
import { startServer } from '../server-helpers.js';
import { portOf, rawExchange, rawRequest } from './raw.js';

const CHROMIUM = '/usr/bin/chromium';

describe('security: browsers and DNS rebinding', function () {
  this.timeout(30_000);
  let browser: Browser;
  const pages: Server[] = [];

  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing; run scripts/ensure-chromium.sh`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run'] });
  });
  after(async () => {
    await browser?.close();
    for (const s of pages.splice(0)) await new Promise<void>((r) => s.close(() => r()));
  });

  /** A page on http://localhost:PORT/ that fires `script` and then sets its title to "done". */
  async function attackerPage(script: string): Promise<string> {
    const html = `<!doctype html><title>attacker</title><iframe name="sink"></iframe><script>(async () => { try { ${script} } finally { setTimeout(() => { document.title = 'done'; }, 300); } })();</script>`;
    const server = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    pages.push(server);
    return `http://localhost:${(server.address() as { port: number }).port}/`;
  }

  it('Chromium on another site cannot cancel a job, whatever the path spelling or request kind (server without a token)', async () => {
    const { url, store } = await startServer();
    const { job } = await store.enqueue(newJob(uniqueQueue('csrf'), { delay_ms: 60_000 }));
    const target = (path: string) => JSON.stringify(`${url}${path}`);
    const script = `
      const noCors = { method: 'POST', mode: 'no-cors', credentials: 'include' };
      await fetch(${target(`/v1/jobs/${job.id}/cancel`)}, noCors).catch(() => {});
      await fetch(${target(`/%761/jobs/${job.id}/cancel`)}, noCors).catch(() => {});
      await fetch(${target(`/v1/jobs/${job.id}/cancel`)}, { ...noCors, headers: { 'content-type': 'text/plain' }, body: '{}' }).catch(() => {});
      navigator.sendBeacon(${target(`/v1/jobs/${job.id}/cancel`)});
      const form = Object.assign(document.createElement('form'), { method: 'POST', action: ${target(`/v1/jobs/${job.id}/cancel`)}, target: 'sink' });
      document.body.append(form); form.submit();
      await new Promise((r) => setTimeout(r, 500));
    `;
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const refused: number[] = [];
      page.on('response', (r) => {
        if (r.url().includes('/cancel') && r.status() !== 0) refused.push(r.status());
      });
      await page.goto(await attackerPage(script));
      await waitFor(async () => (await page.title()) === 'done', 10_000, 'the attacker page to finish');
      await new Promise((r) => setTimeout(r, 300));
      const after = await store.get(job.id);
      assert.equal(after?.status, 'queued', 'the job was not canceled');
      assert.equal(after?.cancel_requested, null);
      // The requests did reach the server and were refused there (not merely blocked by the browser).
      assert.ok(refused.includes(403), `the server answered 403 to the cross-site cancel (saw ${JSON.stringify(refused)})`);
    } finally {
      await context.close();
    }
  });

  it('the dashboard itself (same origin) still cancels, and its page raises no CSP violation', async () => {
    const { url, store } = await startServer();
    const { job } = await store.enqueue(newJob(uniqueQueue('same'), { delay_ms: 60_000 }));
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const violations: string[] = [];
      page.on('console', (m) => {
        if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
      });
      await page.goto(`${url}/engine#job=${job.id}`);
      await page.locator('[data-testid="btn-cancel"]').waitFor({ state: 'visible' });
      await page.click('[data-testid="btn-cancel"]');
      await waitFor(async () => (await store.get(job.id))?.status === 'canceled', 5000, 'the dashboard cancel');
      assert.deepEqual(violations, []);
    } finally {
      await context.close();
    }
  });

  it('a Host that is not ours (DNS rebinding) gets 421 on the API, the dashboard and metrics; health checks still answer', async () => {
    const { url } = await startServer();
    const port = portOf(url);
    for (const path of ['/v1/stats', '/engine', '/metrics', '/v1/jobs', '/engine/app.js']) {
      const res = await rawRequest(port, 'GET', path, { headers: { host: 'evil.example' } });
      assert.equal(res.status, 421, `${path} with Host: evil.example`);
      assert.equal(JSON.parse(res.body).error.code, 'HOST_NOT_ALLOWED');
    }
    for (const host of ['evil.example:80', '127.0.0.1.evil.example', 'localhost.evil.example', '127.1', '0x7f000001', '2130706433', '[::ffff:127.0.0.1]', '', '[::1]evil.example', 'localhost:80:80']) {
      const res = await rawRequest(port, 'GET', '/v1/stats', { headers: { host } });
      assert.equal(res.status, 421, `Host: ${JSON.stringify(host)}`);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'LOCALHOST', 'localhost.']) {
      assert.equal((await rawRequest(port, 'GET', '/v1/stats', { headers: { host } })).status, 200, `Host: ${host}`);
    }
    assert.equal((await rawRequest(port, 'GET', '/healthz', { headers: { host: '10.1.2.3:8080' } })).status, 200);
    // Two Host headers: Node keeps the first, a proxy may route on the last: refused.
    const twice = await rawExchange(port, `GET /v1/stats HTTP/1.1\r\nhost: localhost:${port}\r\nhost: evil.example\r\nconnection: close\r\n\r\n`);
    assert.equal(twice.status, 421);
    const wide = await startServer({ allowedHosts: ['queue.internal'] });
    assert.equal((await rawRequest(portOf(wide.url), 'GET', '/v1/stats', { headers: { host: 'queue.internal:8080' } })).status, 200);
    assert.equal((await rawRequest(portOf(wide.url), 'GET', '/v1/stats')).status, 421, 'an explicit list replaces the loopback default');
  });

  it('every response carries the security headers: a CSP without inline script and no framing, nosniff, no referrer', async () => {
    const { url } = await startServer({ token: 'header-token-0123456789' });
    const port = portOf(url);
    for (const [method, path] of [['GET', '/engine'], ['GET', '/v1/stats'], ['GET', '/nope'], ['GET', '/healthz'], ['POST', '/v1/jobs']] as const) {
      const res = await rawRequest(port, method, path, method === 'POST' ? { body: '{}' } : {});
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(res.headers[k], v, `${k} on ${method} ${path} (${res.status})`);
    }
    const csp = SECURITY_HEADERS['content-security-policy']!;
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    // Errors raised before routing (a malformed URL) carry them too, and echo nothing of the URL.
    const malformed = await rawRequest(port, 'GET', '/v1/%E0%A4%A<script>');
    assert.equal(malformed.status, 400);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(malformed.headers[k], v, `${k} on a malformed URL`);
    assert.doesNotMatch(malformed.body, /script/);
    const page = (await rawRequest(port, 'GET', '/engine')).body;
    assert.doesNotMatch(page, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline <script> in the dashboard page');
    assert.doesNotMatch(page, /\sstyle=|<style/i, 'no inline style in the dashboard page');
    assert.doesNotMatch(page, /\son[a-z]+=/i, 'no inline event handlers');
  });
});

describe('security: the dashboard session', () => {
  const TOKEN = 'session-token-0123456789';

  it('the cookie alone is worth nothing: a request needs the session secret of the sign-in answer (or a one-job ticket for SSE)', async () => {
    const { url, store } = await startServer({ token: TOKEN });
    const port = portOf(url);
    const signIn = await rawRequest(port, 'POST', '/v1/session', { body: JSON.stringify({ token: TOKEN }) });
    assert.equal(signIn.status, 200);
    const cookie = signIn.headers['set-cookie']!.split(';')[0]!;
    const { csrf } = JSON.parse(signIn.body) as { csrf: string };
    assert.match(signIn.headers['set-cookie']!, /HttpOnly/);
    assert.match(signIn.headers['set-cookie']!, /SameSite=Strict/);
    // Another app on another port of this host receives the cookie (browsers do not separate ports): replayed alone, refused.
    assert.equal((await rawRequest(port, 'GET', '/v1/stats', { headers: { cookie } })).status, 401);
    assert.equal((await rawRequest(port, 'GET', '/v1/stats', { headers: { cookie, 'x-reasonq-csrf': 'guess' } })).status, 401);
    assert.equal((await rawRequest(port, 'GET', '/v1/stats', { headers: { cookie, 'x-reasonq-csrf': csrf } })).status, 200);
    assert.equal(JSON.parse((await rawRequest(port, 'GET', '/v1/session', { headers: { cookie } })).body).csrf, undefined, 'the secret is never handed out for the cookie');
    // A second session cookie (set by a page on another port to shadow ours): refused, not guessed between.
    assert.equal((await rawRequest(port, 'GET', '/v1/stats', { headers: { cookie: `reasonq_session=attacker; ${cookie}`, 'x-reasonq-csrf': csrf } })).status, 401);
    // SSE: a ticket for one job, only with the cookie.
    const { job } = await store.enqueue(newJob(uniqueQueue('sse'), { delay_ms: 60_000 }));
    const { job: other } = await store.enqueue(newJob(uniqueQueue('sse'), { delay_ms: 60_000 }));
    const t = JSON.parse((await rawRequest(port, 'POST', `/v1/jobs/${job.id}/events/ticket`, { headers: { cookie, 'x-reasonq-csrf': csrf } })).body) as { ticket: string };
    const stream = (path: string, headers: Record<string, string>) =>
      rawRequest(port, 'GET', path, { headers }, 1500).then((r) => r.status, (e: Error) => (/no complete answer/.test(e.message) ? 200 : 0));
    assert.equal(await stream(`/v1/jobs/${job.id}/events?ticket=${encodeURIComponent(t.ticket)}`, { cookie }), 200, 'the stream opens (and stays open)');
    assert.equal(await stream(`/v1/jobs/${job.id}/events?ticket=${encodeURIComponent(t.ticket)}`, {}), 401, 'a ticket without the cookie');
    assert.equal(await stream(`/v1/jobs/${other.id}/events?ticket=${encodeURIComponent(t.ticket)}`, { cookie }), 401, "another job's stream");
    assert.equal(await stream(`/v1/jobs/${job.id}/events`, { cookie }), 401, 'the cookie without a ticket');
    // The dashboard's push: its own ticket, only with the cookie; a ticket opens no other stream than the one it names.
    const d = JSON.parse((await rawRequest(port, 'POST', '/v1/dashboard/events/ticket', { headers: { cookie, 'x-reasonq-csrf': csrf } })).body) as { ticket: string };
    assert.equal(await stream(`/v1/dashboard/events?ticket=${encodeURIComponent(d.ticket)}`, { cookie }), 200, 'the dashboard feed opens with its ticket');
    assert.equal(await stream(`/v1/dashboard/events?ticket=${encodeURIComponent(d.ticket)}`, {}), 401, 'a feed ticket without the cookie');
    assert.equal(await stream(`/v1/dashboard/events?ticket=${encodeURIComponent(t.ticket)}`, { cookie }), 401, "a job's ticket does not open the feed");
    assert.equal(await stream(`/v1/jobs/${job.id}/events?ticket=${encodeURIComponent(d.ticket)}`, { cookie }), 401, "the feed's ticket does not open a job's stream");
    assert.equal(await stream('/v1/dashboard/events', { cookie }), 401, 'the feed with the cookie and no ticket');
    assert.equal((await rawRequest(port, 'POST', '/v1/dashboard/events/ticket', { headers: { cookie } })).status, 401, 'a feed ticket needs the session secret');
  });
});
