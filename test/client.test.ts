/** createClient / agentIntent: timeouts cancel, aborts cancel, only transport failures are retried, config errors name the variable. */
import assert from 'node:assert/strict';
import { createServer as createNetServer, type Server } from 'node:net';
import { createClient } from '../src/client.js';
import { loadConfig } from '../src/config.js';
import { ConfigError, ReasoningAbortedError, ReasoningJobError, ReasoningTimeoutError, TransportError } from '../src/errors.js';
import { NonRetryableError } from '../src/errors.js';
import { createWorker } from '../src/worker.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { createHttpTransport } from '../transports/http/index.js';
import { startServer } from './server-helpers.js';
import { delay, intent, uniqueQueue } from './helpers.js';

describe('client', () => {
  for (const kind of ['memory', 'http'] as const) {
    describe(`agentIntent over ${kind}`, () => {
      const setup = async () => {
        if (kind === 'memory') {
          const store = createMemoryTransport();
          await store.init();
          return { store, transport: store, done: () => store.close() };
        }
        const { url, store } = await startServer();
        const transport = createHttpTransport({ url });
        return { store, transport, done: () => transport.close() };
      };

      it('resolves to the intent', async () => {
        const { store, transport, done } = await setup();
        const q = uniqueQueue();
        const worker = createWorker({ transport: store, queues: [q], handler: async (p) => ({ ...intent, args: { query: p.goal } }), claimWaitMs: 200 });
        await worker.start();
        try {
          const client = await createClient({ transport });
          const got = await client.agentIntent({ goal: 'hello', session_id: 's', step: 1 }, { queue: q, timeoutMs: 5000 });
          assert.deepEqual(got.args, { query: 'hello' });
        } finally {
          await worker.stop();
          await done();
        }
      });

      it('on timeout rejects with ReasoningTimeoutError and cancels the job so it does not run late', async () => {
        const { store, transport, done } = await setup();
        const q = uniqueQueue();
        try {
          const client = await createClient({ transport });
          const err = await client.agentIntent({ goal: 'x' }, { queue: q, timeoutMs: 300 }).catch((e: unknown) => e);
          assert.ok(err instanceof ReasoningTimeoutError, String(err));
          assert.equal(err.code, 'REASONING_TIMEOUT');
          assert.equal((await store.get(err.jobId))?.status, 'canceled');
        } finally {
          await done();
        }
      });

      it('an aborted signal rejects with ReasoningAbortedError and cancels the job', async () => {
        const { store, transport, done } = await setup();
        try {
          const client = await createClient({ transport });
          const ac = new AbortController();
          setTimeout(() => ac.abort(new Error('user left')), 150);
          const err = await client.agentIntent({ goal: 'x' }, { queue: uniqueQueue(), timeoutMs: 10_000, signal: ac.signal }).catch((e: unknown) => e);
          assert.ok(err instanceof ReasoningAbortedError, String(err));
          assert.equal((await store.get(err.jobId))?.status, 'canceled');
        } finally {
          await done();
        }
      });

      it("a job's own error is ReasoningJobError and is not retried", async () => {
        const { store, transport, done } = await setup();
        const q = uniqueQueue();
        let runs = 0;
        const worker = createWorker({ transport: store, queues: [q], handler: async () => { runs += 1; throw new NonRetryableError('no such tool', { code: 'NO_TOOL' }); }, claimWaitMs: 200 });
        await worker.start();
        try {
          const client = await createClient({ transport, config: { client: { timeoutMs: 5000, retries: 5 } } });
          const err = await client.agentIntent({ goal: 'x' }, { queue: q }).catch((e: unknown) => e);
          assert.ok(err instanceof ReasoningJobError, String(err));
          assert.equal(err.code, 'JOB_FAILED');
          assert.equal(err.jobError?.code, 'NO_TOOL');
          assert.equal(runs, 1);
          assert.equal((await store.stats()).queues[q]?.error, 1, 'one job, not one per retry');
        } finally {
          await worker.stop();
          await done();
        }
      });
    });
  }

  describe('transport retries (REASONING_API_RETRIES)', () => {
    let blackhole: Server;
    let port = 0;
    before(async () => {
      // Accepts and drops connections: the server is "down".
      blackhole = createNetServer((s) => s.destroy());
      await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
      port = (blackhole.address() as { port: number }).port;
    });
    after(() => new Promise<void>((r) => blackhole.close(() => r())));

    it('retries transport failures, then surfaces a TransportError', async () => {
      let connections = 0;
      blackhole.on('connection', () => (connections += 1));
      const transport = createHttpTransport({ url: `http://127.0.0.1:${port}` });
      const client = await createClient({ transport, config: { client: { timeoutMs: 1000, retries: 2 } } });
      const err = await client.stats().catch((e: unknown) => e);
      assert.ok(err instanceof TransportError, String(err));
      assert.equal(connections, 3, 'one try and two retries');
      await transport.close();
    });

    it('recovers when the server comes back between retries', async () => {
      const { url, app } = await startServer();
      const realPort = Number(new URL(url).port);
      await app.close();
      const transport = createHttpTransport({ url });
      const client = await createClient({ transport, config: { client: { timeoutMs: 1000, retries: 6 } } });
      const pending = client.stats();
      await delay(150);
      const again = await startServerOn(realPort);
      try {
        const stats = await pending;
        assert.ok(stats.totals);
      } finally {
        await again.close();
        await transport.close();
      }
    });
  });

  describe('configuration', () => {
    it('every message names the variable and what it accepts', () => {
      const cases: [Record<string, string>, string, RegExp][] = [
        [{ REASONING_TRANSPORT: 'kafka' }, 'REASONING_TRANSPORT', /must be one of mongo, redis, http, memory.*kafka/],
        [{ REASONING_API_TIMEOUT_MS: 'soon' }, 'REASONING_API_TIMEOUT_MS', /whole number/],
        [{ REASONING_API_RETRIES: '-1' }, 'REASONING_API_RETRIES', /whole number from 0 to 20/],
        [{ REASONING_API_URL: 'ftp://x' }, 'REASONING_API_URL', /http:\/\/ or https:\/\//],
        [{ MONGO_URI: 'localhost:27017' }, 'MONGO_URI', /mongodb:\/\//],
        [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL', /redis:\/\//],
        [{ REASONING_QUEUE_WORKER: 'maybe' }, 'REASONING_QUEUE_WORKER', /1 or 0/],
      ];
      for (const [env, variable, pattern] of cases) {
        assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && e.variable === variable && e.message.startsWith(variable) && pattern.test(e.message), `${variable}`);
      }
    });

    it('applies the documented defaults', () => {
      const c = loadConfig({});
      assert.equal(c.transport, 'http');
      assert.equal(c.mongo.uri, 'mongodb://127.0.0.1:27017');
      assert.equal(c.mongo.db, 'reasoning_queue');
      assert.equal(c.redis.url, 'redis://127.0.0.1:6379/0');
      assert.equal(c.http.url, 'http://127.0.0.1:8080');
      assert.equal(c.http.timeoutMs, 30_000);
      assert.equal(c.client.retries, 2);
      assert.equal(c.client.timeoutMs, 30_000);
      assert.equal(c.queueWorker, false);
      assert.equal(loadConfig({ MONGO_HOST: 'db:27018' }).mongo.uri, 'mongodb://db:27018');
    });
  });
});

async function startServerOn(port: number) {
  const { createServer } = await import('../src/server/app.js');
  const store = createMemoryTransport();
  await store.init();
  const app = await createServer({ transport: store });
  await app.listen({ host: '127.0.0.1', port });
  return { close: async () => { await app.close(); await store.close(); } };
}
