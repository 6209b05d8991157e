/**
 * A job's event stream on Redis (transports/redis/events.ts): a waiting
 * reader blocks in XREAD on the job's stream and the append wakes it (push,
 * not polling); the stream key goes with its job.
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { createRedisTransport, type RedisTransport } from '../transports/redis/index.js';
import { asDone, claimOne, delay, intent, newJob, uniqueQueue, waitFor } from './helpers.js';
import { redisAvailable, removeRedis, startRedis, type RedisServer } from './setup/redis.js';

describe('redis transport: event streams', function () {
  this.timeout(30_000);
  let server: RedisServer;
  let redis: Redis;
  const transports: RedisTransport[] = [];
  const open = async (options: { retentionMs?: number; historyLimit?: number } = {}) => {
    const t = createRedisTransport({ url: server.url, ...options });
    transports.push(t);
    await t.init();
    return t;
  };
  /** Script calls the server ran (EVALSHA, and EVAL for a script sent again after NOSCRIPT). */
  const scriptCalls = async () => {
    const stats = await redis.info('commandstats');
    return ['evalsha', 'eval'].reduce((n, cmd) => n + Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0), 0);
  };

  before(async () => {
    if (!redisAvailable()) throw new Error('redis-server / redis-cli not on PATH: run scripts/redis/ensure-redis.sh');
    server = await startRedis();
    redis = new Redis(server.port);
  });
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close()));
  });
  after(async () => {
    redis?.disconnect();
    if (server) await removeRedis(server);
  });

  it('a waiting reader blocks in XREAD on the stream and an append wakes it at once (no polling)', async () => {
    const t = await open();
    const q = uniqueQueue();
    const job = newJob(q);
    await t.enqueue(job);
    const c = await claimOne(t, q);
    const before = await scriptCalls();
    const pending = t.readEvents(job.id, { after: 2, wait_ms: 10_000 });
    await delay(300);
    const blocked = (await redis.client('LIST')) as string;
    assert.match(blocked, /cmd=xread\b/, 'a connection is in XREAD');
    assert.ok(/flags=b\b[^\n]*cmd=xread/.test(blocked), `that connection is blocked (flags=b): ${blocked}`);
    assert.equal((await scriptCalls()) - before, 1, 'one read, then no script call while it waits: nothing polls');
    await t.appendEvents(c.id, c.lease.token, [{ type: 'token', data: { text: 'hi' } }], 0);
    const appended = Date.now();
    const page = await pending;
    const took = Date.now() - appended;
    assert.ok(took < 100, `the reader answered ${took} ms after the append`);
    assert.deepEqual(page.events.map((e) => [e.id, e.type, e.data]), [[3, 'token', { text: 'hi' }]]);
    assert.equal(page.end, false);

    // The ending is written to the same stream: it wakes a reader too.
    const ending = t.readEvents(job.id, { after: 3, wait_ms: 10_000 });
    await delay(100);
    await t.settle(c.id, c.lease.token, asDone(intent));
    const ended = Date.now();
    const last = await ending;
    assert.ok(Date.now() - ended < 100, 'the ending woke the reader');
    assert.equal(last.events[0]?.type, 'done');
    assert.equal(last.end, true);
  });

  it('an aborted wait answers at once with what is there', async () => {
    const t = await open();
    const q = uniqueQueue();
    const job = newJob(q);
    await t.enqueue(job);
    await claimOne(t, q);
    const stop = new AbortController();
    const started = Date.now();
    const pending = t.readEvents(job.id, { after: 2, wait_ms: 10_000, signal: stop.signal });
    await delay(100);
    stop.abort();
    const page = await pending;
    assert.ok(Date.now() - started < 1000, 'the abort ended the wait');
    assert.deepEqual(page, { events: [], last: 2, end: false });
  });

  it('a stream left behind by a job that vanished otherwise (evicted, deleted by hand) does not stop a new job of that id', async () => {
    const t = await open();
    const q = uniqueQueue();
    const job = newJob(q);
    await redis.xadd(`rq:{${q}}:ev:${job.id}`, '7-0', 'type', 'token', 'at', '1', 'attempt', '1', 'data', '{}');
    await t.enqueue(job);
    const page = await t.readEvents(job.id, { after: 0 });
    assert.deepEqual(page.events.map((e) => `${e.id}:${e.type}`), ['1:queued']);
    const c = await claimOne(t, q);
    await t.appendEvents(c.id, c.lease.token, [{ type: 'token', data: 'x' }], 0);
    assert.deepEqual((await t.readEvents(job.id, { after: 0 })).events.map((e) => `${e.id}:${e.type}`), ['1:queued', '2:started', '3:token']);
  });

  it('a job nobody follows and whose handler emits nothing has no stream: its events wait in its hash; a reader about to block makes the stream, and the ending wakes it', async () => {
    const t = await open();
    const q = uniqueQueue();
    const job = newJob(q);
    await t.enqueue(job);
    const c = await claimOne(t, q);
    const key = `rq:{${q}}:ev:${job.id}`;
    assert.equal(await redis.exists(key), 0, 'no stream for queued and started');
    assert.deepEqual((await t.readEvents(job.id, { after: 0 })).events.map((e) => `${e.id}:${e.type}`), ['1:queued', '2:started']);
    assert.deepEqual((await t.readEvents(job.id, { after: 1 })).events.map((e) => e.id), [2], 'read after an offset from the hash too');
    const waiting = t.readEvents(job.id, { after: 2, wait_ms: 5000 });
    await waitFor(async () => (await redis.exists(key)) === 1, 2000, 'the blocking reader to make the stream');
    const t0 = Date.now();
    await t.settle(c.id, c.lease.token, asDone(intent));
    const page = await waiting;
    assert.deepEqual(page.events.map((e) => `${e.id}:${e.type}`), ['3:done']);
    assert.ok(Date.now() - t0 < 1000, 'the ending woke the reader');
    assert.equal(await redis.xlen(key), 3, 'the waiting events moved into the stream, in order');
    assert.deepEqual((await t.readEvents(job.id, { after: 0 })).events.map((e) => e.id), [1, 2, 3]);

    const quiet = newJob(q);
    await t.enqueue(quiet);
    const run = await claimOne(t, q);
    await t.settle(run.id, run.lease.token, asDone(intent));
    assert.equal(await redis.exists(`rq:{${q}}:ev:${quiet.id}`), 0, 'a finished job nobody followed: no stream');
    const quietEvents = (await t.readEvents(quiet.id, { after: 0 })).events;
    assert.deepEqual(quietEvents.map((e) => e.type), ['queued', 'started', 'done']);
    assert.deepEqual(quietEvents[2]!.data, intent, 'the waiting done event reads as the intent');
    assert.ok(!(await redis.hget(`rq:{${q}}:j:${quiet.id}`, 'evp'))!.includes(JSON.stringify(intent)), 'without a second copy of it in the hash');
    const atEnd = await t.readEvents(quiet.id, { after: 3, wait_ms: 2000 });
    assert.equal(atEnd.end, true);
    assert.equal(await redis.exists(`rq:{${q}}:ev:${quiet.id}`), 0, 'a reader at the end of a finished job makes no stream');
  });

  it("a job's stream key is deleted with it: by retention and by the history cap", async () => {
    const t = await open({ retentionMs: 200 });
    const q = uniqueQueue();
    const job = newJob(q);
    await t.enqueue(job);
    const c = await claimOne(t, q);
    await t.appendEvents(c.id, c.lease.token, [{ type: 'token', data: { text: 'a' } }], 0);
    await t.settle(c.id, c.lease.token, asDone(intent));
    const key = `rq:{${q}}:ev:${job.id}`;
    assert.equal(await redis.exists(key), 1);
    assert.equal(await redis.xlen(key), 4, 'queued, started, token, done');
    await delay(300);
    await t.sweep();
    assert.equal(await redis.exists(`rq:{${q}}:j:${job.id}`), 0, 'the job is gone');
    assert.equal(await redis.exists(key), 0, 'and its stream with it');

    const capped = await open({ historyLimit: 1 });
    const q2 = uniqueQueue();
    const jobs = [newJob(q2), newJob(q2)];
    for (const j of jobs) {
      await capped.enqueue(j);
      const run = await claimOne(capped, q2);
      await capped.appendEvents(run.id, run.lease.token, [{ type: 'token', data: { text: 'a' } }], 0);
      await capped.settle(run.id, run.lease.token, asDone(intent));
      await delay(5); // distinct finished_at: the older one is over the cap
    }
    await capped.sweep();
    assert.equal(await redis.exists(`rq:{${q2}}:ev:${jobs[0]!.id}`), 0, 'the job over the cap went with its stream');
    assert.equal(await redis.exists(`rq:{${q2}}:ev:${jobs[1]!.id}`), 1, 'the one kept keeps its stream');
  });
});
