/**
 * Bounded resources: a flood meets a limit before anything is created and
 * the server keeps answering; long-polls are limited per kind; stalled
 * requests and endless streams are cut.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { newJob, uniqueQueue, waitFor } from '../helpers.js';
import { startServer } from '../server-helpers.js';
import { portOf, rawExchange, rawRequest } from './raw.js';

async function call(url: string, method: string, path: string, body?: unknown, signal?: AbortSignal) {
  const res = await request(url + path, {
    method: method as 'GET',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : null, bytes: Buffer.byteLength(text) };
}

describe('security: bounded resources', function () {
  this.timeout(60_000);

  it('a payload flood on the memory store answers 507 once full, keeps every accepted job, and /healthz stays quick', async () => {
    const { url } = await startServer({ maxBytes: 24 * 1024 * 1024, bodyLimitBytes: 1024 * 1024 });
    const big = 'x'.repeat(1000 * 1024);
    const accepted: string[] = [];
    const statuses = new Map<number, number>();
    let slowestHealth = 0;
    const health = setInterval(() => {
      const t = Date.now();
      void call(url, 'GET', '/healthz').then(() => (slowestHealth = Math.max(slowestHealth, Date.now() - t)));
    }, 50);
    try {
      for (let round = 0; round < 5; round++) {
        const results = await Promise.all(Array.from({ length: 10 }, () => call(url, 'POST', '/v1/jobs', { queue: 'flood', payload: { goal: 'x', context: big } })));
        for (const r of results) {
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status === 201) accepted.push(r.body.job.id);
          else {
            assert.equal(r.status, 507);
            assert.equal(r.body.error.code, 'STORE_FULL');
            assert.match(r.body.error.message, /REASONQ_MEMORY_MAX_BYTES/);
          }
        }
      }
    } finally {
      clearInterval(health);
    }
    assert.ok((statuses.get(507) ?? 0) > 0, `the limit was reached (${JSON.stringify([...statuses])})`);
    assert.ok(accepted.length >= 15 && accepted.length <= 24, `accepted ${accepted.length}`);
    for (const id of accepted) {
      const r = await call(url, 'GET', `/v1/jobs/${id}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.job.payload.context.length, big.length, 'every accepted job is whole');
    }
    const stats = await call(url, 'GET', '/v1/stats');
    assert.equal(stats.body.queues.flood.queued, accepted.length, 'nothing half-created');
    // A list of them is a summary: bounded in bytes whatever the payloads weigh.
    const list = await call(url, 'GET', '/v1/jobs?limit=500');
    assert.equal(list.body.jobs.length, accepted.length);
    assert.ok(list.bytes < 64 * 1024, `list body is ${list.bytes} bytes`);
    assert.equal(list.body.jobs[0].summarized, true);
    assert.ok(slowestHealth < 2000, `healthz took up to ${slowestHealth} ms`);
  });

  it('a payload of many tiny objects is weighed by what it takes in the heap, not by its text: 507 long before memory runs out, and a list of them stays cheap', async () => {
    const { url } = await startServer({ maxBytes: 24 * 1024 * 1024 });
    // 300 KB of text, about 20 MB of heap as objects.
    const tiny = `{"queue":"tiny","payload":{"goal":"x","context":[${Array.from({ length: 100_000 }, () => '{}').join(',')}]}}`;
    const heapBefore = process.memoryUsage().heapUsed;
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await request(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: tiny });
      statuses.push(res.statusCode);
      await res.body.dump();
    }
    const accepted = statuses.filter((s) => s === 201).length;
    assert.ok(accepted >= 1 && accepted <= 4, `accepted ${accepted} of 10 (${statuses.join(',')})`);
    assert.ok(statuses.includes(507));
    assert.ok(process.memoryUsage().heapUsed - heapBefore < 400 * 1024 * 1024, 'the heap grew within the limit, give or take');
    const list = await call(url, 'GET', '/v1/jobs?limit=500');
    assert.equal(list.body.jobs.length, accepted);
    assert.ok(list.bytes < 16 * 1024, 'a summary of each, not the payloads');
  });

  it('results and progress reports count against the memory limit too', async () => {
    const { url, store } = await startServer({ maxBytes: 2 * 1024 * 1024 });
    const q = uniqueQueue('res');
    const big = { action: 'finish', finish: true, args: { blob: 'x'.repeat(600_000) } };
    let refused = false;
    for (let i = 0; i < 6 && !refused; i++) {
      const { job } = await store.enqueue(newJob(q));
      const c = await store.claim({ queues: [q], owner: 'w', lease_ms: 5000, wait_ms: 0 });
      await store.appendEvents(c!.id, c!.lease.token, [{ type: 'progress', data: { note: 'y'.repeat(100_000) } }], 0);
      await store.settle(c!.id, c!.lease.token, { status: 'done', result: big });
      assert.equal((await store.get(job.id))?.status, 'done');
      // Every enqueue from here on must make room: finished jobs go first, the newest kept.
      const r = await call(url, 'POST', '/v1/jobs', { queue: uniqueQueue('other'), payload: { goal: 'x' } });
      refused = r.status === 507;
    }
    const stats = await call(url, 'GET', '/v1/stats');
    assert.ok((stats.body.queues[q]?.done ?? 0) <= 3, `finished jobs with large results were evicted to make room (${stats.body.queues[q]?.done} kept)`);
  });

  it('finished jobs make room before an enqueue is refused (the oldest ending first)', async () => {
    const { url, store } = await startServer({ maxJobs: 3 });
    const q = uniqueQueue('room');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await call(url, 'POST', '/v1/jobs', { queue: q, payload: { goal: `${i}` } })).body.job.id);
    assert.equal((await call(url, 'POST', '/v1/jobs', { queue: q, payload: { goal: 'full' } })).status, 507);
    await call(url, 'POST', `/v1/jobs/${ids[1]}/cancel`, {});
    const fourth = await call(url, 'POST', '/v1/jobs', { queue: q, payload: { goal: 'fits' } });
    assert.equal(fourth.status, 201);
    assert.equal(await store.get(ids[1]!), null, 'the finished job gave its place');
    assert.ok(await store.get(ids[0]!));
    assert.ok(await store.get(ids[2]!));
  });

  it('long-poll limits are per kind: client waits at their limit do not block worker claims; the limit answers 429 with Retry-After before creating anything', async () => {
    const { url, store } = await startServer({ maxWaits: 3, maxClaims: 2 });
    const q = uniqueQueue('polls');
    const { job } = await store.enqueue(newJob(q, { delay_ms: 60_000 }));
    const holders = new AbortController();
    const waits = Array.from({ length: 3 }, () => call(url, 'GET', `/v1/jobs/${job.id}/wait?timeout_ms=20000`, undefined, holders.signal).catch(() => null));
    try {
      await waitFor(async () => (await call(url, 'GET', `/v1/jobs/${job.id}/wait?timeout_ms=1`)).status === 429, 5000, 'the wait limit');
      const refused = await call(url, 'GET', `/v1/jobs/${job.id}/wait?timeout_ms=1`);
      assert.equal(refused.status, 429);
      assert.equal(refused.headers['retry-after'], '1');
      assert.equal(refused.body.error.code, 'RATE_LIMITED');

      // Enqueue-and-wait at the limit creates nothing, so a retry without an id cannot duplicate work.
      const before = (await call(url, 'GET', '/v1/stats')).body.totals.queued;
      const withWait = await call(url, 'POST', '/v1/jobs?wait_ms=1000', { id: 'not-created-1', queue: q, payload: { goal: 'x' } });
      assert.equal(withWait.status, 429);
      const intent = await call(url, 'POST', '/v1/intents', { id: 'not-created-2', queue: q, payload: { goal: 'x' }, timeout_ms: 1000 });
      assert.equal(intent.status, 429);
      assert.equal((await call(url, 'GET', '/v1/jobs/not-created-1')).status, 404);
      assert.equal((await call(url, 'GET', '/v1/jobs/not-created-2')).status, 404);
      assert.equal((await call(url, 'GET', '/v1/stats')).body.totals.queued, before);

      // Workers are not starved by the client waits.
      const claim = await call(url, 'POST', '/v1/claim', { queues: [uniqueQueue('other')], owner: 'w', lease_ms: 5000, wait_ms: 0 });
      assert.equal(claim.status, 200);
    } finally {
      holders.abort();
      await Promise.all(waits);
    }
  });

  it('a flood of idle connections stops at maxConnections; the server answers again once they go', async () => {
    const { url } = await startServer({ maxConnections: 3 });
    const port = portOf(url);
    const idle = await Promise.all(Array.from({ length: 3 }, () => new Promise<Socket>((resolve) => { const s = connect({ host: '127.0.0.1', port }, () => resolve(s)); })));
    try {
      await new Promise((r) => setTimeout(r, 100));
      const past = await rawRequest(port, 'GET', '/healthz', {}, 2000).catch(() => ({ status: 0 }));
      assert.equal(past.status, 0, 'a connection past the limit is closed unanswered');
    } finally {
      for (const s of idle) s.destroy();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await rawRequest(port, 'GET', '/healthz')).status, 200);
  });

  it('an SSE stream ends at its maximum lifetime (the client reconnects)', async () => {
    const { url, store } = await startServer({ sseMaxMs: 1000 });
    const { job } = await store.enqueue(newJob(uniqueQueue('sse'), { delay_ms: 60_000 }));
    const t = Date.now();
    const res = await request(`${url}/v1/jobs/${job.id}/events`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.statusCode, 200);
    const text = await res.body.text().catch((error: Error) => assert.fail(`the stream was still open after 5 s (${error.name})`));
    assert.ok(Date.now() - t < 5000, 'closed by the server');
    assert.match(text, /^id: 1\ndata: \{"id":1,"type":"queued"/m);
    assert.doesNotMatch(text, /event: end/, 'cut by its lifetime, not ended: the reader comes back');
  });

  it("the dashboard's push holds a stream slot each: past the limit 429, and it ends at its lifetime with a retry", async () => {
    const { url } = await startServer({ maxStreams: 2, sseMaxMs: 1000 });
    const t = Date.now();
    const open = [0, 1].map(() => request(`${url}/v1/dashboard/events`, { signal: AbortSignal.timeout(5000) }));
    const [first] = await Promise.all(open);
    assert.equal(first!.statusCode, 200);
    assert.equal((await call(url, 'GET', '/v1/dashboard/events')).status, 429, 'a third viewer is refused');
    const text = await first!.body.text().catch((error: Error) => assert.fail(`the push was still open after 5 s (${error.name})`));
    assert.ok(Date.now() - t < 5000, 'closed by the server');
    assert.match(text, /^retry: \d+$/m);
    assert.match(text, /^event: stats\ndata: \{.*"totals":\{.*"seq":1\}$/m);
    assert.match(text, /^event: workers\ndata: \{"workers":\[\]\}$/m);
    await Promise.all(open.slice(1).map(async (p) => (await p).body.text().catch(() => '')));
    assert.equal((await call(url, 'GET', '/v1/stats')).status, 200);
  });

  it('a request whose body stalls is answered 408 in our error shape (a long-poll past the limit is not); headers past the limit 431', async () => {
    const { url, store } = await startServer({ requestTimeoutMs: 1000 });
    const port = portOf(url);
    const t = Date.now();
    const stalled = await rawExchange(port, `POST /v1/jobs HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"payload":`, { timeoutMs: 8000 });
    assert.ok(Date.now() - t < 6000, `answered after ${Date.now() - t} ms`);
    assert.equal(stalled.status, 408);
    assert.equal(JSON.parse(stalled.body).error.code, 'REQUEST_TIMEOUT');
    // The limit is on receiving the request, not on a long-poll's answer.
    const { job } = await store.enqueue(newJob(uniqueQueue('lp'), { delay_ms: 60_000 }));
    const waited = await call(url, 'GET', `/v1/jobs/${job.id}/wait?timeout_ms=2500`);
    assert.equal(waited.status, 200);
    assert.equal(waited.body.job.status, 'queued');
    const huge = await rawRequest(port, 'GET', '/v1/stats', { headers: { 'x-filler': 'a'.repeat(20_000) } });
    assert.equal(huge.status, 431);
    assert.equal(JSON.parse(huge.body).error.code, 'HEADERS_TOO_LARGE');
  });
});
