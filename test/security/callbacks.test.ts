/**
 * Callbacks cannot be aimed inward, and can be verified. Every refusal is
 * asserted before any connection (no socket is created: the
 * `net.client.socket` diagnostics channel stays silent); every real delivery
 * goes to a loopback listener opened through the allow-list. No traffic
 * leaves 127.0.0.1: names are resolved by an injected resolver, and should
 * the guard under test break, the tripwire of test/loopback-only.ts stops the
 * connect (and its DNS query) and fails the test.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { createCallbackSender, type CallbackConfig, type CallbackSender } from '../../src/callbacks.js';
import { buildJob, type Job } from '../../src/job.js';
import { refusalReason } from '../../src/net-guard.js';
import { createReplayGuard, generateSecret, verifyCallback } from '../../src/webhooks.js';
import { createWorker } from '../../src/worker.js';
import { NonRetryableError } from '../../src/errors.js';
import { delay, uniqueQueue, waitFor } from '../helpers.js';
import { startServer } from '../server-helpers.js';

/** Every IPv4/IPv6 spelling of an address we must never dial, by what it is. */
const FORBIDDEN_URLS = [
  'http://127.0.0.1/', 'http://127.1/', 'http://2130706433/', 'http://0x7f000001/', 'http://0177.0.0.1/', 'http://0x7f.1/', 'http://127.000.000.001/',
  'http://[::1]/', 'http://[::ffff:7f00:1]/', 'http://[::ffff:127.0.0.1]/', 'http://[0:0:0:0:0:ffff:7f00:1]/', 'http://[::]/', 'http://0.0.0.0/', 'http://0/',
  'http://localhost/', 'http://LOCALHOST./', 'http://api.localhost/',
  'http://10.0.0.1/', 'http://172.16.5.4/', 'http://192.168.1.1/', 'http://[fc00::1]/', 'http://[fd12:3456::1]/',
  'http://169.254.169.254/latest/meta-data/', 'http://[fe80::1]/', 'http://100.64.0.1/', 'http://100.100.100.200/', 'http://168.63.129.16/', 'http://[fd00:ec2::254]/',
  'http://224.0.0.1/', 'http://[ff02::1]/', 'http://255.255.255.255/', 'http://240.0.0.1/', 'http://192.0.0.192/',
  'http://[::127.0.0.1]/', 'http://[::a9fe:a9fe]/', 'http://[::ffff:1:7f00:1]/', 'http://[::1:0:0:1]/',
  'http://[::ffff:10.0.0.1]/', 'http://[::ffff:a9fe:a9fe]/', 'http://[64:ff9b::a00:1]/', 'http://[64:ff9b::7f00:1]/', 'http://[2002:7f00:1::]/', 'http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/',
];

/** Counts sockets this process opens while `run` runs. */
async function socketsOpenedDuring(run: () => Promise<unknown>): Promise<number> {
  let n = 0;
  const onSocket = () => (n += 1);
  diagnostics.subscribe('net.client.socket', onSocket);
  try {
    await run();
  } finally {
    diagnostics.unsubscribe('net.client.socket', onSocket);
  }
  return n;
}

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  url: string;
}

async function receiver(answer: (r: Received) => [number, Record<string, string>?] = () => [200]) {
  const got: Received[] = [];
  let connections = 0;
  const server: Server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const r = { headers: req.headers, body, url: req.url ?? '' };
      got.push(r);
      const [status, headers] = answer(r);
      res.writeHead(status, headers).end('ok');
    });
  });
  server.on('connection', () => (connections += 1));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    got,
    connections: () => connections,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const finishedJob = (callback_url: string): Job => ({ ...buildJob({ payload: { goal: 'x' }, callback_url }), status: 'done', finished_at: new Date(), result: { action: 'finish', finish: true } });

/** One try of a delivery: true when the receiver answered 2xx. */
const deliverOk = async (s: CallbackSender, job: Job): Promise<boolean> => (await s.attempt(job)).ok;

describe('security: callbacks', function () {
  this.timeout(20_000);
  const senders: { close(): Promise<void> }[] = [];
  /** names the default test resolver was asked for: it answers none, so no test can dial off the machine */
  const asked: string[] = [];
  const sender = (config: Partial<CallbackConfig> = {}) => {
    const noDns = async (host: string): Promise<string[]> => {
      asked.push(host);
      throw new Error('no DNS in tests');
    };
    const s = createCallbackSender({ allow: [], secrets: [], timeoutMs: 2000, resolve: noDns, ...config });
    senders.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of senders.splice(0)) await s.close();
  });

  it('at enqueue: every loopback, private, link-local, CGNAT, ULA, multicast, mapped/NAT64 and metadata spelling is a 400 naming callback_url', async () => {
    const { url } = await startServer();
    for (const cb of FORBIDDEN_URLS) {
      const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ payload: { goal: 'x' }, callback_url: cb }) });
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 400, `${cb} → ${res.status}`);
      assert.equal(body.error.code, 'CALLBACK_FORBIDDEN', cb);
      assert.match(body.error.message, /callback_url/);
    }
    const stats = (await (await fetch(`${url}/v1/stats`)).json()) as { totals: { queued: number } };
    assert.equal(stats.totals.queued, 0, 'nothing was created');
  });

  it('at enqueue: scheme, user:password@, length and form are checked; the URL is stored normalised', async () => {
    const { url } = await startServer();
    const post = (cb: string) => fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ payload: { goal: 'x' }, callback_url: cb }) });
    for (const cb of ['ftp://example.com/x', 'file:///etc/passwd', 'gopher://example.com/', 'javascript:alert(1)', 'http://user:pw@example.com/', 'http://user@example.com/', `https://example.com/${'a'.repeat(2100)}`, 'not a url', '//example.com/x']) {
      const res = await post(cb);
      assert.equal(res.status, 400, cb);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /^callback_url/, cb);
    }
    const ok = await post('HTTPS://Hooks.Example.COM:443/a/../done#frag');
    assert.equal(ok.status, 201);
    assert.equal(((await ok.json()) as { job: { callback_url: string } }).job.callback_url, 'https://hooks.example.com/done');
  });

  it('at connect time: a forbidden address in any spelling is refused before any socket is opened (and before any lookup)', async () => {
    const s = sender();
    asked.length = 0;
    for (const cb of FORBIDDEN_URLS) {
      let delivered = true;
      const sockets = await socketsOpenedDuring(async () => (delivered = await deliverOk(s, finishedJob(cb))));
      assert.equal(delivered, false, cb);
      assert.equal(sockets, 0, `${cb}: a socket was opened`);
    }
    assert.deepEqual(asked, [], 'refused on the address or the localhost name itself, not for want of DNS');
    // The channel does report sockets: an allowed loopback delivery opens one.
    const r = await receiver();
    try {
      const opened = await socketsOpenedDuring(() => deliverOk(sender({ allow: ['127.0.0.1'] }), finishedJob(`http://127.0.0.1:${r.port}/`)));
      assert.ok(opened >= 1);
    } finally {
      await r.close();
    }
  });

  it('at connect time: a name is checked on every address it resolves to (one inward answer refuses it), then dialled at the checked address only', async () => {
    const answers: Record<string, string[]> = {
      'inward.test': ['10.1.2.3'],
      // The first answer is allowed (and loopback: were the check to stop there, nothing would leave the machine).
      'mixed.test': ['127.0.0.1', '10.0.0.1'],
      'metadata.test': ['169.254.169.254'],
      'mapped.test': ['::ffff:192.168.0.1'],
    };
    const s = sender({ allow: ['127.0.0.1'], resolve: async (host) => answers[host] ?? [] });
    for (const host of Object.keys(answers)) {
      let delivered = true;
      const sockets = await socketsOpenedDuring(async () => (delivered = await deliverOk(s, finishedJob(`http://${host}:8080/hook`))));
      assert.equal(delivered, false, host);
      assert.equal(sockets, 0, `${host}: a socket was opened`);
    }
  });

  it('the connection is pinned to the address that was checked: a rebinding resolver gets one question per connection, and the allow-list opens loopback', async () => {
    const r = await receiver();
    let lookups = 0;
    // First answer: the allowed loopback receiver; any later answer would be inward and unchecked.
    const s = sender({ allow: ['127.0.0.1/32'], resolve: async () => (lookups++ === 0 ? ['127.0.0.1'] : ['10.9.9.9']) });
    try {
      assert.equal(await deliverOk(s, finishedJob(`http://hooks.test:${r.port}/done`)), true);
      assert.equal(lookups, 1, 'one lookup, made by the guard; the socket layer did not ask again');
      assert.equal(r.got.length, 1);
      assert.equal(r.got[0]!.headers.host, `hooks.test:${r.port}`, 'the Host header keeps the name');
    } finally {
      await r.close();
    }
  });

  it('without the allow-list a loopback receiver gets nothing; redirects are not followed', async () => {
    const target = await receiver();
    const redirector = await receiver(() => [302, { location: `http://127.0.0.1:${target.port}/stolen` }]);
    try {
      assert.equal(await deliverOk(sender(), finishedJob(`http://127.0.0.1:${target.port}/x`)), false);
      assert.equal(await deliverOk(sender(), finishedJob(`http://127.1:${target.port}/x`)), false);
      assert.equal(target.connections(), 0, 'the loopback listener saw no connection');
      const allowed = sender({ allow: ['127.0.0.1'] });
      assert.equal(await deliverOk(allowed, finishedJob(`http://127.0.0.1:${redirector.port}/hook`)), false, 'a 302 is not a delivery');
      assert.equal(redirector.got.length, 1);
      assert.equal(target.connections(), 0, 'the redirect was not followed');
    } finally {
      await target.close();
      await redirector.close();
    }
  });

  it('deliveries are signed (Standard Webhooks): they verify with our helper and with the reference library; tampered, stale, replayed or foreign ones do not', async () => {
    const r = await receiver();
    const current = generateSecret();
    const previous = generateSecret();
    try {
      const s = sender({ allow: ['127.0.0.1'], secrets: [current, previous] });
      const job = finishedJob(`http://127.0.0.1:${r.port}/hook`);
      assert.equal(await deliverOk(s, job), true);
      const { headers, body } = r.got[0]!;
      assert.match(String(headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/);
      assert.equal(headers['webhook-id'], `${job.id}.${job.finished_at!.getTime()}`);
      const h = headers as Record<string, string>;

      assert.equal(verifyCallback(h, body, [current]).job.id, job.id);
      assert.equal(verifyCallback(h, body, `${previous},${current}`).job.id, job.id, 'any of several secrets (rotation)');
      assert.doesNotThrow(() => new Webhook(current).verify(body, h), 'the reference implementation accepts it');

      assert.throws(() => verifyCallback(h, body, [previous]), { code: 'CALLBACK_SIGNATURE_INVALID' }, 'signed with the first secret only');
      assert.throws(() => verifyCallback(h, body.replace('"done"', '"error"'), [current]), { code: 'CALLBACK_SIGNATURE_INVALID' });
      assert.throws(() => verifyCallback({ ...h, 'webhook-id': 'other' }, body, [current]), { code: 'CALLBACK_SIGNATURE_INVALID' });
      assert.throws(() => verifyCallback({ ...h, 'webhook-signature': '' }, body, [current]), { code: 'CALLBACK_SIGNATURE_INVALID' });
      const later = new Date(Number(h['webhook-timestamp']) * 1000 + 301_000);
      assert.throws(() => verifyCallback(h, body, [current], { now: later }), { code: 'CALLBACK_SIGNATURE_INVALID' }, 'stale');
      assert.throws(() => verifyCallback(h, body, [current], { now: later, toleranceSec: 10 }), /tolerance 10 s/);
      const replay = createReplayGuard();
      verifyCallback(h, body, [current], { replay });
      assert.throws(() => verifyCallback(h, body, [current], { replay }), { code: 'CALLBACK_REPLAYED' });
    } finally {
      await r.close();
    }
  });

  it('a callback aimed at its own job\'s retry route stops after a bounded number of retries (allow-listed loopback)', async () => {
    const secret = generateSecret();
    const { url, store, callbacks } = await startServer({ callbackAllow: ['127.0.0.1'], callbackSecrets: [secret] });
    const q = uniqueQueue('loop');
    let runs = 0;
    const worker = createWorker({
      transport: store,
      queues: [q],
      claimWaitMs: 100,
      callbacks,
      handler: async () => {
        runs += 1;
        throw new NonRetryableError('always fails');
      },
    });
    await worker.start();
    try {
      const id = `loop-${q}`;
      const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, queue: q, payload: { goal: 'x' }, callback_url: `${url}/v1/jobs/${id}/retry` }) });
      assert.equal(res.status, 201);
      await waitFor(() => runs >= 4, 10_000, 'the loop to run');
      await delay(1500);
      assert.equal(runs, 4, 'one run and three callback retries, then the loop is refused');
      assert.equal((await store.get(id))?.status, 'error');
    } finally {
      await worker.stop();
    }
  });

  it('by default (no allow-list) a callback to our own loopback API is refused outright', async () => {
    const { url, store } = await startServer();
    const q = uniqueQueue('self');
    let runs = 0;
    const worker = createWorker({
      transport: store,
      queues: [q],
      claimWaitMs: 100,
      callbacks: sender(),
      handler: async () => {
        runs += 1;
        throw new NonRetryableError('fails');
      },
    });
    await worker.start();
    try {
      // Past the enqueue check on purpose: the store is written directly, as a worker of another server might find it.
      const { job } = await store.enqueue({ ...buildJob({ queue: q, payload: { goal: 'x' } }), callback_url: `${url}/v1/jobs/self/retry` });
      await waitFor(async () => (await store.get(job.id))?.status === 'error', 5000, 'the job to fail');
      await delay(500);
      assert.equal(runs, 1);
    } finally {
      await worker.stop();
    }
  });

  it('refusalReason classifies by range, and the allow-list opens exactly what it names', () => {
    assert.equal(refusalReason('8.8.8.8'), null);
    assert.equal(refusalReason('2606:4700::1111'), null);
    assert.equal(refusalReason('127.0.0.1'), 'loopback');
    assert.equal(refusalReason('::ffff:127.0.0.1'), 'ipv4Mapped');
    assert.equal(refusalReason('10.0.0.1', { allow: ['10.0.0.0/8'] }), null);
    assert.equal(refusalReason('10.0.0.1', { allow: ['10.0.0.2'] }), 'private');
    assert.equal(refusalReason('fe80::1%eth0'), 'an IPv6 zone (link-local)');
  });
});
