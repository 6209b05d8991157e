/** The HTTP API's own contract: auth, limits, validation messages, error shape, long-polls, SSE. */
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { request } from 'undici';
import { startServer } from './server-helpers.js';
import { createWorker } from '../src/worker.js';
import { delay, intent, uniqueQueue, waitFor } from './helpers.js';

async function call(url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await request(url + path, {
    method: method as 'GET',
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : null, headers: res.headers };
}

describe('HTTP API', () => {
  it('requires the bearer token on /v1 when one is set, and not on /healthz', async () => {
    const { url } = await startServer({ token: 's3cret' });
    const denied = await call(url, 'GET', '/v1/stats');
    assert.equal(denied.status, 401);
    assert.deepEqual(denied.body, { error: { code: 'UNAUTHORIZED', message: 'missing or invalid bearer token' } });
    assert.equal((await call(url, 'GET', '/v1/stats', undefined, { authorization: 'Bearer wrong!' })).status, 401);
    assert.equal((await call(url, 'GET', '/v1/stats', undefined, { authorization: 'Bearer s3cret' })).status, 200);
    assert.equal((await call(url, 'GET', '/healthz')).status, 200);
    assert.equal((await call(url, 'GET', '/metrics')).status, 401);
  });

  it('answers 400 naming the field, 404 for unknown jobs and routes, 413 past the body limit — never a stack trace', async () => {
    const { url } = await startServer({ bodyLimitBytes: 2048 });
    const bad = await call(url, 'POST', '/v1/jobs', { payload: { goal: 'x' }, priority: 'high' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'VALIDATION_ERROR');
    assert.match(bad.body.error.message, /^priority: /);
    const noPayload = await call(url, 'POST', '/v1/jobs', { queue: 'q' });
    assert.equal(noPayload.status, 400);
    assert.match(noPayload.body.error.message, /^payload: /);
    const notJson = await call(url, 'POST', '/v1/jobs', '{"payload": ');
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.error.code, 'VALIDATION_ERROR');
    const missing = await call(url, 'GET', '/v1/jobs/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'JOB_NOT_FOUND');
    assert.equal((await call(url, 'GET', '/v1/nothing-here')).status, 404);
    const big = await call(url, 'POST', '/v1/jobs', { payload: { goal: 'x'.repeat(5000) } });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'PAYLOAD_TOO_LARGE');
    for (const r of [bad, noPayload, notJson, missing, big]) assert.doesNotMatch(JSON.stringify(r.body), /at .*\.(ts|js):\d+/);
  });

  it('409 for a retry the state machine forbids and for a stale lease token', async () => {
    const { url } = await startServer();
    const created = await call(url, 'POST', '/v1/jobs', { payload: { goal: 'x' } });
    assert.equal(created.status, 201);
    const retry = await call(url, 'POST', `/v1/jobs/${created.body.job.id}/retry`, {});
    assert.equal(retry.status, 409);
    assert.equal(retry.body.error.code, 'INVALID_STATE');
    const claim = await call(url, 'POST', '/v1/claim', { queues: ['reasoning'], owner: 'w', lease_ms: 5000 });
    assert.equal(claim.body.jobs.length, 1);
    const stale = await call(url, 'POST', `/v1/jobs/${created.body.job.id}/settle`, { token: 'stale', outcome: { status: 'done', result: intent } });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.error.code, 'LEASE_LOST');
  });

  it('POST /v1/jobs:retry retries failed jobs in bulk (client scope, at most 500, checked first); GET /v1/jobs?session_id= lists a session', async () => {
    const { url, store } = await startServer({ tokens: { client: ['c-token'], worker: ['w-token'] } });
    const asClient = { authorization: 'Bearer c-token' };
    const q = uniqueQueue('bulk');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await call(url, 'POST', '/v1/jobs', { queue: q, payload: { goal: `b${i}`, session_id: `s-${q}` } }, asClient)).body.job.id);
    await call(url, 'POST', '/v1/jobs', { queue: q, payload: { goal: 'other', session_id: `t-${q}` } }, asClient);
    for (let i = 0; i < 2; i++) {
      const claimed = await store.claim({ queues: [q], owner: 'w', lease_ms: 30_000, wait_ms: 0 });
      await store.settle(claimed!.id, claimed!.lease.token, { status: 'error', error: { code: 'X', message: 'x', retryable: false } });
    }
    const session = await call(url, 'GET', `/v1/jobs?session_id=${encodeURIComponent(`s-${q}`)}`, undefined, asClient);
    assert.equal(session.status, 200);
    assert.deepEqual(session.body.jobs.map((j: { id: string }) => j.id), [...ids].reverse());
    assert.equal((await call(url, 'GET', `/v1/jobs?session_id=${'x'.repeat(257)}`, undefined, asClient)).status, 400);
    assert.equal((await call(url, 'GET', '/v1/jobs?session_id=', undefined, asClient)).status, 400);

    assert.equal((await call(url, 'POST', '/v1/jobs:retry', { ids }, { authorization: 'Bearer w-token' })).status, 403, 'the client scope');
    const tooMany = await call(url, 'POST', '/v1/jobs:retry', { ids: [...ids, ...Array.from({ length: 498 }, (_, i) => `n-${i}`)] }, asClient);
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.body.error.message, /at most 500/);
    for (const body of [{}, { ids: [] }, { status: 'done' }, { status: 'error', limit: 0 }, { ids, status: 'error' }]) {
      assert.equal((await call(url, 'POST', '/v1/jobs:retry', body, asClient)).status, 400, JSON.stringify(body));
    }
    assert.equal((await store.get(ids[0]!))!.status, 'error', 'nothing was retried by a refused call');
    const out = await call(url, 'POST', '/v1/jobs:retry', { ids: [ids[0], ids[2], 'missing'] }, asClient);
    assert.equal(out.status, 200);
    assert.deepEqual(out.body.retried, [ids[0]]);
    assert.deepEqual(
      out.body.skipped.map((s: { id: string; code: string }) => [s.id, s.code]),
      [
        [ids[2], 'INVALID_STATE'],
        ['missing', 'JOB_NOT_FOUND'],
      ],
    );
    const byStatus = await call(url, 'POST', '/v1/jobs:retry', { queue: q, status: 'error' }, asClient);
    assert.deepEqual(byStatus.body, { retried: [ids[1]], skipped: [] });
    assert.equal((await store.get(ids[1]!))!.status, 'queued');
  });

  it('hides the lease token everywhere but the claim answer', async () => {
    const { url } = await startServer();
    const q = uniqueQueue();
    const created = await call(url, 'POST', '/v1/jobs', { queue: q, payload: { goal: 'x' } });
    const claim = await call(url, 'POST', '/v1/claim', { queues: [q], owner: 'w', lease_ms: 5000 });
    assert.ok(claim.body.jobs[0].lease.token);
    const got = await call(url, 'GET', `/v1/jobs/${created.body.job.id}`);
    assert.equal(got.body.job.lease.owner, 'w');
    assert.equal(got.body.job.lease.token, undefined);
  });

  it('POST /v1/jobs is idempotent by id and can wait for the result with ?wait_ms', async () => {
    const { url, store } = await startServer();
    const q = uniqueQueue();
    const worker = createWorker({ transport: store, queues: [q], handler: async () => intent, claimWaitMs: 200 });
    await worker.start();
    try {
      const first = await call(url, 'POST', '/v1/jobs?wait_ms=5000', { id: `id-${q}`, queue: q, payload: { goal: 'x' } });
      assert.equal(first.status, 201);
      assert.equal(first.body.job.status, 'done');
      assert.deepEqual(first.body.job.result, intent);
      const again = await call(url, 'POST', '/v1/jobs', { id: `id-${q}`, queue: q, payload: { goal: 'other' } });
      assert.equal(again.status, 200);
      assert.equal(again.body.created, false);
      assert.equal(again.body.job.payload.goal, 'x');
    } finally {
      await worker.stop();
    }
  });

  it('POST /v1/intents waits for the intent, and on timeout cancels the job and answers 504', async () => {
    const { url, store } = await startServer();
    const q = uniqueQueue();
    const none = await call(url, 'POST', '/v1/intents', { queue: q, payload: { goal: 'x' }, timeout_ms: 200 });
    assert.equal(none.status, 504);
    assert.equal(none.body.error.code, 'REASONING_TIMEOUT');
    const id = none.body.error.details.job_id;
    assert.equal((await store.get(id))?.status, 'canceled', 'a timed-out intent does not run late');
    const worker = createWorker({ transport: store, queues: [q], handler: async () => intent, claimWaitMs: 200 });
    await worker.start();
    try {
      const ok = await call(url, 'POST', '/v1/intents', { queue: q, payload: { goal: 'x' }, timeout_ms: 5000 });
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body.intent, intent);
    } finally {
      await worker.stop();
    }
  });

  it('streams a job\'s events over SSE, each with its id, until its final event; then 204 for a reader that has them all', async () => {
    const { url, store } = await startServer();
    const q = uniqueQueue();
    const created = await call(url, 'POST', '/v1/jobs', { queue: q, payload: { goal: 'x' } });
    const id = created.body.job.id;
    const res = await request(`${url}/v1/jobs/${id}/events`);
    assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
    const worker = createWorker({
      transport: store,
      queues: [q],
      claimWaitMs: 200,
      handler: async (_p, ctx) => {
        for (const text of ['a ', 'b ', 'c']) {
          await ctx.emit('token', { text });
          await delay(50);
        }
        return intent;
      },
    });
    await worker.start();
    try {
      const text = await res.body.text(); // the server ends the stream after the job's final event
      const events = [...text.matchAll(/^id: (\d+)\ndata: (.*)$/gm)].map((m) => ({ sseId: Number(m[1]), ...JSON.parse(m[2]!) }));
      assert.deepEqual(events.map((e) => e.type), ['queued', 'started', 'token', 'token', 'token', 'done']);
      events.forEach((e, i) => assert.equal(e.sseId, i + 1, 'the SSE id is the event id'));
      assert.equal(events.map((e) => e.id).join(), '1,2,3,4,5,6');
      assert.match(text, /event: end\ndata: \{"last":6\}\n\n$/);
      const resumed = await request(`${url}/v1/jobs/${id}/events`, { headers: { 'last-event-id': '4' } });
      const rest = await resumed.body.text();
      assert.deepEqual([...rest.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])), [5, 6], 'Last-Event-ID resumes right after it');
      const all = await request(`${url}/v1/jobs/${id}/events`, { headers: { 'last-event-id': '6' } });
      assert.equal(all.statusCode, 204, 'nothing left: 204 tells EventSource to stop reconnecting');
      await all.body.dump();
      const page = await call(url, 'GET', `/v1/jobs/${id}/events?format=json&after=2&limit=2`);
      assert.deepEqual(page.body.events.map((e: { id: number }) => e.id), [3, 4]);
      assert.equal(page.body.last, 6);
      assert.equal(page.body.end, false);
      const bad = await request(`${url}/v1/jobs/${id}/events`, { headers: { 'last-event-id': 'abc' } });
      assert.equal(bad.statusCode, 400);
      await bad.body.dump();
    } finally {
      await worker.stop();
    }
  });

  it('POSTs the finished job to callback_url: from the worker when it ends, from the API when a cancel ends a queued job', async () => {
    const received: { id: string; status: string }[] = [];
    const receiver = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const { job } = JSON.parse(body) as { job: { id: string; status: string } };
        received.push({ id: job.id, status: job.status });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const cb = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
    const { url, store, callbacks } = await startServer({ callbackAllow: ['127.0.0.1'] });
    const q = uniqueQueue();
    const worker = createWorker({ transport: store, queues: [q], handler: async () => intent, claimWaitMs: 200, callbacks });
    try {
      const queuedOnly = await call(url, 'POST', '/v1/jobs', { queue: uniqueQueue(), payload: { goal: 'never runs' }, callback_url: cb });
      await call(url, 'POST', `/v1/jobs/${queuedOnly.body.job.id}/cancel`, { reason: 'no' });
      await worker.start();
      const ran = await call(url, 'POST', '/v1/jobs?wait_ms=5000', { queue: q, payload: { goal: 'x' }, callback_url: cb });
      await waitFor(() => received.length === 2, 5000, 'two callbacks');
      assert.deepEqual(received.sort((a, b) => a.status.localeCompare(b.status)), [
        { id: queuedOnly.body.job.id, status: 'canceled' },
        { id: ran.body.job.id, status: 'done' },
      ]);
    } finally {
      await worker.stop();
      await new Promise<void>((r) => receiver.close(() => r()));
    }
  });

  it('/readyz reports the store', async () => {
    const { url } = await startServer();
    const r = await call(url, 'GET', '/readyz');
    assert.deepEqual(r.body, { ok: true, transport: 'memory' });
  });
});
