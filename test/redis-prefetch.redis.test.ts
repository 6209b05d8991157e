/**
 * Prefetch (transports/redis/prefetch.ts): a complete claims the owner's
 * next job in the same script call. The job is leased in Redis, handed out by
 * the owner's next claim, and released uncharged when the owner stops.
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { LeaseLostError } from '../src/errors.js';
import { createRedisTransport, type RedisTransport } from '../transports/redis/index.js';
import { asDone, intent, newJob, uniqueQueue, waitFor } from './helpers.js';
import { redisAvailable, removeRedis, startRedis, type RedisServer } from './setup/redis.js';

describe('redis transport: prefetch on complete', function () {
  this.timeout(30_000);
  let server: RedisServer;
  let t: RedisTransport;
  let redis: Redis;
  before(async () => {
    if (!redisAvailable()) throw new Error('redis-server / redis-cli not on PATH: run scripts/redis/ensure-redis.sh');
    server = await startRedis();
    t = createRedisTransport({ url: server.url });
    await t.init();
    redis = new Redis(server.port);
  });
  after(async () => {
    redis?.disconnect();
    await t?.close();
    if (server) await removeRedis(server);
  });

  it("claims the owner's next job in Redis, hands it out on the next claim, and releases it when the owner stops", async () => {
    const q = uniqueQueue();
    const jobs = [newJob(q), newJob(q), newJob(q)];
    for (const j of jobs) await t.enqueue(j);
    const stop = new AbortController();
    t.prefetchFor!('w-pre', stop.signal);
    const request = { queues: [q], owner: 'w-pre', lease_ms: 5000, wait_ms: 0, signal: stop.signal };

    const [a] = await t.claimMany!(request, 1);
    assert.equal(a?.id, jobs[0]!.id);
    await t.settle(a.id, a.lease.token, asDone(intent));
    const b = await t.get(jobs[1]!.id);
    assert.equal(b?.status, 'processing', 'the next job was claimed by the complete');
    assert.equal(b?.lease?.owner, 'w-pre');
    assert.ok((await redis.zscore(`rq:{${q}}:leases`, b.id)) !== null, 'and it is leased in Redis, not only held in memory');

    const started = Date.now();
    const [handed] = await t.claimMany!(request, 5);
    assert.ok(Date.now() - started < 50, 'handed out without waiting');
    assert.equal(handed?.id, b.id);
    assert.equal(handed.lease.token, b.lease!.token, 'the token stored in Redis');
    assert.equal(handed.attempts, 1);
    await t.settle(handed.id, handed.lease.token, asDone(intent));

    const c = await t.get(jobs[2]!.id);
    assert.equal(c?.status, 'processing', 'prefetched again');
    stop.abort();
    const released = await waitFor(async () => {
      const j = await t.get(jobs[2]!.id);
      return j?.status === 'queued' ? j : null;
    }, 3000, 'release of the prefetched job');
    assert.equal(released.attempts, 0, 'released without charging the attempt');
    assert.equal(await redis.zscore(`rq:{${q}}:leases`, released.id), null);
  });

  it('the job a complete returns from the held record equals the stored one', async () => {
    const q = uniqueQueue();
    const job = newJob(q, { max_attempts: 4, priority: 2 });
    await t.enqueue(job);
    const [c] = await t.claimMany!({ queues: [q], owner: 'w-held', lease_ms: 5000, wait_ms: 0 }, 1);
    await t.appendEvents(c!.id, c!.lease.token, [{ type: 'progress', data: { pct: 90, note: ['x'] } }, { type: 'usage', data: { prompt_tokens: 3, completion_tokens: 4 } }], 0);
    await t.cancel(c!.id, 'changed my mind'); // a write by somebody else while it runs
    const returned = await t.settle(c!.id, c!.lease.token, asDone(intent));
    const stored = await t.get(c!.id);
    assert.deepEqual(returned, stored);
    assert.equal(returned.status, 'done');
    assert.deepEqual(returned.progress, { pct: 90, note: ['x'] });
    assert.equal(returned.cancel_requested?.reason, 'changed my mind');
  });

  it('a job with earlier runs comes back from a held complete with its whole run history, as stored', async () => {
    const q = uniqueQueue();
    await t.enqueue(newJob(q, { max_attempts: 4 }));
    const [first] = await t.claimMany!({ queues: [q], owner: 'w-first', lease_ms: 5000, wait_ms: 0 }, 1);
    await t.settle(first!.id, first!.lease.token, { status: 'queued', error: { code: 'X', message: 'x', retryable: true }, run_at: new Date() });
    const [c] = await t.claimMany!({ queues: [q], owner: 'w-held', lease_ms: 5000, wait_ms: 0 }, 1);
    const returned = await t.settle(c!.id, c!.lease.token, asDone(intent));
    assert.deepEqual(returned, await t.get(c!.id));
    assert.deepEqual(returned.runs.map((r) => [r.worker, r.end]), [['w-first', 'retry'], ['w-held', 'done']]);
  });

  it('completes sent together share one script call, each fenced on its own token', async () => {
    const q = uniqueQueue();
    for (let i = 0; i < 6; i++) await t.enqueue(newJob(q));
    const jobs = await t.claimMany!({ queues: [q], owner: 'w-batch', lease_ms: 5000, wait_ms: 0 }, 6);
    assert.equal(jobs.length, 6);
    const before = Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
    const outcomes = await Promise.allSettled(jobs.map((j, i) => t.settle(j.id, i % 2 === 0 ? j.lease.token : 'stale-token', asDone(intent))));
    const after = Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
    assert.equal(after - before, 1, 'one script call for six completes');
    outcomes.forEach((o, i) => {
      if (i % 2 === 0) assert.equal(o.status === 'fulfilled' && o.value.status, 'done');
      else assert.ok(o.status === 'rejected' && o.reason instanceof LeaseLostError, `job ${i}: ${o.status}`);
    });
    for (const [i, j] of jobs.entries()) assert.equal((await t.get(j.id))?.status, i % 2 === 0 ? 'done' : 'processing');
  });

  it('does not prefetch for an owner that did not opt in (the HTTP API), one that stopped, or a claim over several queues', async () => {
    const q = uniqueQueue();
    const other = uniqueQueue();
    const stopped = new AbortController();
    t.prefetchFor!('w-stopped', stopped.signal);
    stopped.abort();
    t.prefetchFor!('w-multi', new AbortController().signal);
    for (const request of [
      { queues: [q], owner: 'w-remote', lease_ms: 5000, wait_ms: 0, signal: new AbortController().signal },
      { queues: [q], owner: 'w-stopped', lease_ms: 5000, wait_ms: 0 },
      { queues: [q, other], owner: 'w-multi', lease_ms: 5000, wait_ms: 0, signal: new AbortController().signal },
    ]) {
      const first = newJob(q);
      const second = newJob(q);
      await t.enqueue(first);
      await t.enqueue(second);
      const [a] = await t.claimMany!(request, 1);
      assert.equal(a?.id, first.id);
      await t.settle(a.id, a.lease.token, asDone(intent));
      assert.equal((await t.get(second.id))?.status, 'queued', `${request.owner}: next job left queued`);
      const [b] = await t.claimMany!(request, 1);
      await t.settle(b!.id, b!.lease.token, asDone(intent));
    }
  });

  it('does not claim ahead while the owner has a claim in flight, and never hands out a job whose lease ran down', async () => {
    const q = uniqueQueue();
    const stop = new AbortController();
    t.prefetchFor!('w-busy', stop.signal);
    const request = { queues: [q], owner: 'w-busy', lease_ms: 600, wait_ms: 0, signal: stop.signal };
    const [first, second] = [newJob(q), newJob(q)];
    await t.enqueue(first);
    const [a] = await t.claimMany!(request, 1);
    // The owner's other slot blocks in a claim; a job arrives and a complete happens meanwhile.
    const blocked = t.claimMany!({ ...request, wait_ms: 2000 }, 1);
    await t.enqueue(second);
    await t.settle(a!.id, a!.lease.token, asDone(intent));
    const got = await blocked;
    assert.equal(got[0]?.id, second.id, 'the blocked claim takes the new job itself');
    assert.equal(got[0]?.attempts, 1);
    await t.settle(got[0]!.id, got[0]!.lease.token, asDone(intent));

    // A prefetched job left waiting past two thirds of its lease is released, not handed out.
    const [third, fourth] = [newJob(q), newJob(q)];
    await t.enqueue(third);
    await t.enqueue(fourth);
    const [c] = await t.claimMany!(request, 1);
    await t.settle(c!.id, c!.lease.token, asDone(intent)); // prefetches fourth
    assert.equal((await t.get(fourth.id))?.status, 'processing');
    await new Promise((r) => setTimeout(r, 450));
    const after = await t.claimMany!(request, 1);
    assert.ok(after.every((j) => j.lease.until.getTime() > Date.now() + 300), 'only fresh leases are handed out');
    for (const j of after) await t.settle(j.id, j.lease.token, asDone(intent));
    stop.abort();
    await waitFor(async () => (await t.get(fourth.id))?.status !== 'processing' || null, 3000, 'fourth released or done');
  });
});
