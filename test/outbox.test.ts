/**
 * Callbacks are never lost (the outbox), on every store: a terminal write
 * records the callback it owes in the same step; whoever maintains the store
 * delivers it (deliverDue), tries again with backoff, replaces a deliverer
 * that died mid-delivery, and leaves the callback of a later ending alone.
 * Receivers are loopback listeners let through the allow-list.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { createCallbackSender, deliverDue, type CallbackSender } from '../src/callbacks.js';
import type { Transport } from '../src/transport.js';
import { createWorker } from '../src/worker.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { createMongoTransport } from '../transports/mongo/index.js';
import { createRedisTransport } from '../transports/redis/index.js';
import { itUnless } from './conformance/index.js';
import { asDone, claimOne, delay, intent, newJob, uniqueQueue, waitFor } from './helpers.js';
import { acquireMongo, freshDb, releaseMongo } from './setup/mongo.js';
import { redisAvailable, removeRedis, startRedis, type RedisServer } from './setup/redis.js';

async function receiver(statuses: number[] = []) {
  const got: { headers: IncomingHttpHeaders; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.writeHead(statuses.shift() ?? 200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/hook`, got, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function describeOutbox(name: string, open: (options?: { retentionMs?: number }) => Promise<Transport>, skip?: string): void {
  describe(`callback outbox: ${name}`, function () {
    this.timeout(30_000);
    let t: Transport;
    let sender: CallbackSender;
    let hook: Awaited<ReturnType<typeof receiver>>;
    before(async function () {
      if (skip) return;
      t = await open();
    });
    beforeEach(async () => {
      hook = await receiver();
      sender = createCallbackSender({ allow: ['127.0.0.1'], secrets: [] });
    });
    afterEach(async () => {
      await sender.close();
      await hook.close();
    });
    after(async () => {
      await t?.close();
    });
    /** Deliver until nothing is due, a few rounds at most. */
    const drain = async (s = sender) => {
      let n = 0;
      for (let round = 0; round < 5; round++) n += await deliverDue(t, s, 'test-deliverer');
      return n;
    };

    itUnless(skip, 'the terminal write records the callback owed; the next maintainer delivers it once, and the log is on the job', async () => {
      const q = uniqueQueue('ob');
      const { job } = await t.enqueue(newJob(q, { callback_url: hook.url }));
      const c = await claimOne(t, q);
      // The worker that wrote the result died before it could POST anything.
      const ended = await t.settle(c.id, c.lease.token, asDone(intent));
      assert.deepEqual(ended.callback, { state: 'pending', attempts: 0 });
      assert.deepEqual((await t.get(job.id))?.callback, { state: 'pending', attempts: 0 }, 'recorded with the terminal status');
      assert.equal(await drain(), 1);
      assert.equal(hook.got.length, 1);
      assert.equal(hook.got[0]!.headers['webhook-id'], `${job.id}.${ended.finished_at!.getTime()}`);
      assert.equal(JSON.parse(hook.got[0]!.body).job.status, 'done');
      const log = (await t.get(job.id))!.callback!;
      assert.equal(log.state, 'delivered');
      assert.equal(log.attempts, 1);
      assert.equal(log.last_status, 200);
      assert.ok(log.delivered_at);
      assert.equal(await drain(), 0, 'delivered once');
    });

    itUnless(skip, 'a job ended by the sweep (its worker died; WORKER_CRASHED) and a queued job canceled get theirs too', async () => {
      const q = uniqueQueue('obs');
      const { job } = await t.enqueue(newJob(q, { callback_url: hook.url, max_stalls: 1 }));
      await claimOne(t, q, 50);
      await delay(120);
      await t.sweep();
      assert.equal((await t.get(job.id))?.error?.code, 'WORKER_CRASHED');
      const { job: queued } = await t.enqueue(newJob(q, { callback_url: hook.url, delay_ms: 60_000 }));
      await t.cancel(queued.id, 'no longer needed');
      assert.equal(await drain(), 2);
      const statuses = hook.got.map((g) => JSON.parse(g.body).job.status as string).sort();
      assert.deepEqual(statuses, ['canceled', 'error']);
    });

    itUnless(skip, 'a failing receiver is tried again after a backoff, with the same delivery id; a deliverer that died mid-delivery is replaced once its lease runs out', async () => {
      const failing = await receiver([500]);
      try {
        const q = uniqueQueue('obf');
        const { job } = await t.enqueue(newJob(q, { callback_url: failing.url }));
        const c = await claimOne(t, q);
        await t.settle(c.id, c.lease.token, asDone(intent));
        assert.equal(await deliverDue(t, sender, 'd1'), 1);
        const first = (await t.get(job.id))!.callback!;
        assert.equal(first.state, 'pending');
        assert.equal(first.attempts, 1);
        assert.equal(first.last_status, 500);
        const due = new Date(first.next_at!).getTime() - Date.now();
        assert.ok(due > 300 && due <= 1100, `next try in ${due} ms (1 s backoff, jittered)`);
        assert.equal(await deliverDue(t, sender, 'd1'), 0, 'not due yet');
        // Due again: a deliverer takes it and dies before it writes anything.
        await waitFor(async () => (await t.claimCallbacks!('dying', 300, 10)).length === 1, 3000, 'the retry to come due');
        assert.equal(await deliverDue(t, sender, 'd2'), 0, 'leased to the dead deliverer');
        await delay(400);
        assert.equal(await deliverDue(t, sender, 'd2'), 1);
        const log = (await t.get(job.id))!.callback!;
        assert.equal(log.state, 'delivered');
        assert.equal(log.attempts, 2);
        assert.equal(failing.got.length, 2);
        assert.equal(failing.got[0]!.headers['webhook-id'], failing.got[1]!.headers['webhook-id'], 'receivers dedupe by it');
      } finally {
        await failing.close();
      }
    });

    itUnless(skip, 'a delivery given up after the period ends failed; a job retried and ended again owes a new callback that the old delivery does not overwrite', async () => {
      const q = uniqueQueue('obg');
      const brief = createCallbackSender({ allow: ['127.0.0.1'], secrets: [], periodMs: 1 });
      const gone = await receiver([503]);
      try {
        const { job } = await t.enqueue(newJob(q, { callback_url: gone.url }));
        const c = await claimOne(t, q);
        await t.settle(c.id, c.lease.token, { status: 'error', error: { code: 'X', message: 'x', retryable: false } });
        assert.equal(await deliverDue(t, brief, 'd'), 1);
        const failed = (await t.get(job.id))!.callback!;
        assert.equal(failed.state, 'failed');
        assert.equal(failed.next_at, null);
        // The race: a delivery of the first ending is under way while the job is retried and ends again.
        const { job: j3 } = await t.enqueue(newJob(q, { callback_url: hook.url }));
        const c3 = await claimOne(t, q);
        const e3 = await t.settle(c3.id, c3.lease.token, { status: 'error', error: { code: 'X', message: 'x', retryable: false } });
        const [old] = await t.claimCallbacks!('slow', 30_000, 10);
        assert.equal(old?.id, j3.id);
        await t.retry(j3.id);
        await delay(5); // another ending: another finished_at (the delivery id is made of it)
        const again = await claimOne(t, q);
        const e3b = await t.settle(again.id, again.lease.token, asDone(intent));
        assert.notEqual(e3b.finished_at!.getTime(), e3.finished_at!.getTime());
        await t.settleCallback!(j3.id, e3.finished_at!, { state: 'delivered', attempts: 1, last_status: 200 }, null);
        assert.deepEqual((await t.get(j3.id))?.callback, { state: 'pending', attempts: 0 }, 'the second ending still owes its callback');
      } finally {
        await brief.close();
        await gone.close();
      }
    });

    itUnless(skip, 'a receiver that trickles its answer is cut off at the delivery timeout: it cannot hold the maintainer', async () => {
      const sockets = new Set<import('node:net').Socket>();
      const slow = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const timer = setInterval(() => res.write('.'), 100); // a byte every 100 ms, for ever
        res.on('close', () => clearInterval(timer));
      });
      slow.on('connection', (s) => sockets.add(s));
      await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
      const quick = createCallbackSender({ allow: ['127.0.0.1'], secrets: [], timeoutMs: 400 });
      try {
        const q = uniqueQueue('obt');
        const { job } = await t.enqueue(newJob(q, { callback_url: `http://127.0.0.1:${(slow.address() as { port: number }).port}/hook` }));
        const c = await claimOne(t, q);
        await t.settle(c.id, c.lease.token, asDone(intent));
        const started = Date.now();
        assert.ok((await deliverDue(t, quick, 'd')) >= 1); // with what an earlier test left owed
        assert.ok(Date.now() - started < 2_000, `the round took ${Date.now() - started} ms`);
        const log = (await t.get(job.id))!.callback!;
        assert.equal(log.attempts, 1, 'the try was recorded');
        assert.equal(log.last_status, 200, 'it did answer 200 before trickling');
      } finally {
        await quick.close();
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => slow.close(() => r()));
      }
    });

    itUnless(skip, 'a job that still owes its callback outlives its retention; once delivered it goes', async () => {
      const brief = await open({ retentionMs: 1000 });
      try {
        const q = uniqueQueue('obr');
        const { job } = await brief.enqueue(newJob(q, { callback_url: hook.url }));
        const c = await claimOne(brief, q);
        await brief.settle(c.id, c.lease.token, asDone(intent));
        await delay(1100);
        await brief.sweep();
        assert.equal((await brief.get(job.id))?.callback?.state, 'pending', 'kept past its retention while the callback is owed');
        for (let round = 0; round < 5 && (await brief.get(job.id))?.callback?.state === 'pending'; round++) await deliverDue(brief, sender, 'd');
        assert.equal((await brief.get(job.id))?.callback?.state, 'delivered');
        await delay(1100);
        await waitFor(async () => {
          await brief.sweep();
          return (await brief.get(job.id)) === null;
        }, 5000, 'deleted by retention once delivered');
      } finally {
        if (brief !== t) await brief.close();
      }
    });

    itUnless(skip, 'a worker delivers the callbacks of the store it maintains, its own jobs or not', async () => {
      const q = uniqueQueue('obw');
      const worker = createWorker({ transport: t, queues: [q], claimWaitMs: 100, maintenanceMs: 100, callbacks: sender, handler: async () => intent });
      await worker.start();
      try {
        const { job } = await t.enqueue(newJob(q, { callback_url: hook.url }));
        await waitFor(async () => (await t.get(job.id))?.callback?.state === 'delivered', 10_000, 'the callback delivered');
        assert.equal(hook.got.length, 1);
      } finally {
        await worker.stop();
      }
    });
  });
}

it('REASONQ_CALLBACK_PERIOD_MS sets how long a callback is tried (24 h unless set)', async () => {
  const { loadCallbackConfig } = await import('../src/config.js');
  assert.equal(loadCallbackConfig({}).periodMs, 24 * 3600 * 1000);
  assert.equal(loadCallbackConfig({ REASONQ_CALLBACK_PERIOD_MS: '60000' }).periodMs, 60_000);
});

describeOutbox('memory', async (options = {}) => {
  const t = createMemoryTransport(options);
  await t.init();
  return t;
});

let redisServer: RedisServer | null = null;
describeOutbox(
  'redis',
  async (options = {}) => {
    redisServer ??= await startRedis();
    const t = createRedisTransport({ url: redisServer.url, ...options });
    await t.init();
    return t;
  },
  redisAvailable() ? undefined : 'redis-server not on PATH',
);
after(async () => {
  if (redisServer) await removeRedis(redisServer);
});

let mongoDb: string | null = null;
describeOutbox('mongo', async (options = {}) => {
  const server = await acquireMongo();
  if (!mongoDb) {
    mongoDb = freshDb('reasonq_outbox');
    after(releaseMongo);
  } else releaseMongo().catch(() => undefined); // one acquire per release
  const t = createMongoTransport({ uri: server.uri, db: mongoDb, ...options });
  await t.init();
  return t;
});
