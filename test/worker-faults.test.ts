/**
 * The worker under faults: renewals failing until the lease is lost, the
 * store refusing an outcome, a closed store, stop() racing start(), a server
 * closing with long-polls open. Stores are real; faults are injected by
 * wrapping one method of a real transport.
 */
import assert from 'node:assert/strict';
import { request } from 'undici';
import { createCallbackSender } from '../src/callbacks.js';
import { TransportError } from '../src/errors.js';
import { createWorker } from '../src/worker.js';
import type { Transport } from '../src/transport.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { createHttpTransport } from '../transports/http/index.js';
import { startServer } from './server-helpers.js';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { delay, intent, newJob, uniqueQueue, waitFor as waitForValue } from './helpers.js';

async function memory(): Promise<Transport> {
  const t = createMemoryTransport();
  await t.init();
  return t;
}

describe('worker under faults', () => {
  it('a job reclaimed by the same worker after renewals failed runs to the end with correct slot accounting', async () => {
    const store = await memory();
    const extend = store.extend.bind(store);
    const failUntil = Date.now() + 700;
    store.extend = (id, token, ms) => (Date.now() < failUntil ? Promise.reject(new TransportError('injected outage')) : extend(id, token, ms));
    const q = uniqueQueue();
    const job = newJob(q, { max_attempts: 5 });
    await store.enqueue(job);
    let runs = 0;
    let maxActive = 0;
    const worker = createWorker({ transport: store, queues: [q], concurrency: 1, leaseMs: 300, claimWaitMs: 100, handler: async (_p, ctx) => {
      runs += 1;
      await new Promise((resolve, reject) => {
        const t = setTimeout(resolve, 900);
        ctx.signal.addEventListener('abort', () => { clearTimeout(t); reject(ctx.signal.reason); });
      });
      return intent;
    } });
    worker.on('job:start', () => (maxActive = Math.max(maxActive, worker.active)));
    await worker.start();
    try {
      const final = await store.wait(job.id, { timeout_ms: 8000 });
      assert.equal(final.status, 'done');
      assert.ok(maxActive <= 1, `active reached ${maxActive} with concurrency 1`);
      assert.ok(runs >= 2 && runs <= 3, `handler ran ${runs} times`);
    } finally {
      await worker.stop();
      await store.close();
    }
  });

  it('an intent the server refuses (too large) ends error / RESULT_REJECTED at once, not retried', async () => {
    const { url } = await startServer({ bodyLimitBytes: 4096 });
    const t = createHttpTransport({ url });
    const q = uniqueQueue();
    const job = newJob(q, { max_attempts: 3 });
    await t.enqueue(job);
    let runs = 0;
    const worker = createWorker({ transport: t, queues: [q], claimWaitMs: 200, handler: async () => {
      runs += 1;
      return { action: 'finish', finish: true, reasoning: 'x'.repeat(10_000) };
    } });
    await worker.start();
    try {
      const final = await t.wait(job.id, { timeout_ms: 8000 });
      assert.equal(final.status, 'error');
      assert.equal(final.error?.code, 'RESULT_REJECTED');
      assert.equal(runs, 1);
    } finally {
      await worker.stop();
      await t.close();
    }
  });

  it('a huge handler error is stored truncated instead of being lost', async () => {
    const { url } = await startServer();
    const t = createHttpTransport({ url });
    const q = uniqueQueue();
    const job = newJob(q, { max_attempts: 1 });
    await t.enqueue(job);
    const worker = createWorker({ transport: t, queues: [q], claimWaitMs: 200, handler: async () => {
      throw new Error('y'.repeat(12_000));
    } });
    await worker.start();
    try {
      const final = await t.wait(job.id, { timeout_ms: 8000 });
      assert.equal(final.status, 'error');
      assert.equal(final.error?.code, 'HANDLER_ERROR');
      assert.ok(final.error!.message.length <= 8000 && final.error!.message.startsWith('yyyy'));
    } finally {
      await worker.stop();
      await t.close();
    }
  });

  it('a worker whose store was closed under it keeps the event loop free and stops', async () => {
    const store = await memory();
    const worker = createWorker({ transport: store, queues: [uniqueQueue()], claimWaitMs: 100, handler: async () => intent });
    await worker.start();
    await store.close();
    const ticked = await Promise.race([delay(100).then(() => true), delay(3000).then(() => false)]);
    assert.ok(ticked, 'timers still fire');
    await worker.stop();
  });

  it('stop() during start() leaves no registration, timers or second claim loop behind', async () => {
    const store = await memory();
    const worker = createWorker({ transport: store, queues: [uniqueQueue()], heartbeatMs: 50, claimWaitMs: 100, handler: async () => intent });
    const starting = worker.start();
    const again = worker.start();
    await worker.stop();
    await Promise.all([starting, again]);
    await delay(200);
    assert.equal((await store.workers()).find((w) => w.id === worker.id), undefined);
    assert.equal(worker.isRunning, false);
    await store.close();
  });

  it('the server closes promptly with an SSE stream and a long wait open', async () => {
    const { url, app, store } = await startServer();
    const job = newJob(uniqueQueue());
    await store.enqueue(job);
    const sse = await request(`${url}/v1/jobs/${job.id}/events`);
    const wait = request(`${url}/v1/jobs/${job.id}/wait?timeout_ms=60000`).catch(() => null);
    await delay(100);
    const started = Date.now();
    await app.close();
    assert.ok(Date.now() - started < 3000, `close took ${Date.now() - started} ms`);
    await sse.body.text().catch(() => '');
    await wait;
  });

  it('ctx behaves like a plain object: destructured, spread or proxied, signal, progress and log keep working', async () => {
    const store = await memory();
    const q = uniqueQueue();
    const { job } = await store.enqueue(newJob(q));
    let seen: { aborted: boolean; id: string; attempt: number } | null = null;
    const worker = createWorker({
      transport: store,
      queues: [q],
      handler: async (_payload, ctx) => {
        const { signal, progress, log, job_id, attempt } = ctx;
        await progress({ step: 1 });
        log.debug('destructured');
        const spread = { ...ctx, extra: 1 };
        assert.ok(spread.signal instanceof AbortSignal && typeof spread.progress === 'function' && typeof spread.log.info === 'function', 'spread keeps every member');
        assert.equal(new Proxy(ctx, {}).signal, signal, 'a Proxy reads through');
        assert.equal((Object.create(ctx) as typeof ctx).signal, signal, 'so does a derived object');
        seen = { aborted: signal.aborted, id: job_id, attempt };
        return intent;
      },
    });
    const ended = new Promise<string>((r) => worker.once('job:end', (_j, outcome) => r(outcome)));
    await worker.start();
    try {
      assert.equal(await ended, 'done');
      assert.deepEqual(seen, { aborted: false, id: job.id, attempt: 1 });
      assert.deepEqual((await store.get(job.id))?.progress, { step: 1 });
    } finally {
      await worker.stop();
      await store.close();
    }
  });

  it('a job:start listener that throws does not leave the job leased: the attempt fails (WORKER_ERROR), is retried, and the slot freed', async () => {
    const store = await memory();
    const q = uniqueQueue();
    const { job } = await store.enqueue(newJob(q));
    const worker = createWorker({ transport: store, queues: [q], concurrency: 1, handler: async () => intent, backoff: { baseMs: 10, maxMs: 20 } });
    worker.on('transport-error', () => {});
    let throws = true;
    worker.on('job:start', () => {
      if (throws) {
        throws = false;
        throw new Error('listener bug');
      }
    });
    const ended = new Promise<string>((r) => worker.once('job:end', (_j, outcome) => r(outcome)));
    await worker.start();
    try {
      assert.equal(await ended, 'done', 'the job came back and ran');
      const stored = await store.get(job.id);
      assert.equal(stored?.status, 'done');
      assert.equal(stored?.attempts, 2, 'the failed attempt was charged (a listener that always throws ends the job after max_attempts)');
      assert.equal(stored?.error?.code, 'WORKER_ERROR');
      assert.equal(worker.active, 0);
    } finally {
      await worker.stop();
      await store.close();
    }
  });

  it('a job:end listener that throws neither fails a finished job nor loses its callback', async () => {
    const posted: unknown[] = [];
    const receiver = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        posted.push(JSON.parse(body));
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const store = await memory();
    const q = uniqueQueue();
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/cb`;
    const { job } = await store.enqueue(newJob(q, { callback_url: url }));
    const callbacks = createCallbackSender({ allow: ['127.0.0.1'], secrets: [] });
    const worker = createWorker({ transport: store, queues: [q], handler: async () => intent, callbacks });
    const errors: unknown[] = [];
    worker.on('transport-error', (e) => errors.push(e));
    worker.on('job:end', () => {
      throw new Error('listener bug');
    });
    await worker.start();
    try {
      await waitForValue(() => (posted.length > 0 ? posted : null), 5000);
      assert.equal((await store.get(job.id))?.status, 'done');
      assert.equal((posted[0] as { job?: { id?: string } }).job?.id, job.id);
      assert.deepEqual(errors, [], 'no write was attempted for the finished job');
    } finally {
      await worker.stop();
      await callbacks.close();
      await store.close();
      receiver.close();
    }
  });

  it('rejects options that would overflow a timer', () => {
    const t = createMemoryTransport();
    assert.throws(() => createWorker({ transport: t, handler: async () => intent, leaseMs: 2 ** 31 }), /leaseMs must be a whole number from 1 to/);
    assert.throws(() => createWorker({ transport: t, handler: async () => intent, timeoutMs: 0 }), /timeoutMs/);
    assert.throws(() => createWorker({ transport: t, handler: async () => intent, claimWaitMs: 0 }), /claimWaitMs/);
  });
});

