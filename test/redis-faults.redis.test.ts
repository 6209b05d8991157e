/**
 * Redis-specific faults on real redis-server processes: a restart under AOF
 * in the middle of a run, Redis down and back, eviction policies, NOSCRIPT
 * after SCRIPT FLUSH, a worker killed between claim and complete, and the
 * data layout that keeps a claimed job in Redis.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ConfigError, LeaseLostError, TransportError } from '../src/errors.js';
import { createWorker, type Worker } from '../src/worker.js';
import { createRedisTransport, type RedisTransport, type RedisTransportOptions } from '../transports/redis/index.js';
import { scriptSources } from '../transports/redis/scripts.js';
import { bounded } from '../src/bounded.js';
import { startFaultProxy } from './fault-proxy.js';
import { asDone, asReleased, claimOne, delay, intent, newJob, uniqueQueue, waitFor } from './helpers.js';
import { redisAvailable, removeRedis, restartRedis, startRedis, type RedisServer } from './setup/redis.js';

/** A pino logger whose lines the test can read. */
function captureLogger() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as (typeof lines)[number]);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

describe('redis transport: faults and layout', function () {
  this.timeout(60_000);
  const servers: RedisServer[] = [];
  const transports: RedisTransport[] = [];
  const workers: Worker[] = [];
  const server = async (options: Parameters<typeof startRedis>[0] = {}) => {
    const s = await startRedis(options);
    servers.push(s);
    return s;
  };
  const open = async (options: RedisTransportOptions, init = true) => {
    const t = createRedisTransport(options);
    transports.push(t);
    if (init) await t.init();
    return t;
  };

  before(function () {
    if (!redisAvailable()) throw new Error('redis-server / redis-cli not on PATH: run scripts/redis/ensure-redis.sh');
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop(0)));
    await Promise.all(transports.splice(0).map((t) => t.close()));
  });
  after(async () => {
    await Promise.all(servers.splice(0).map(removeRedis));
  });

  it('a claimed job stays in Redis: its record and its lease entry, never only in the worker', async () => {
    const s = await server();
    const t = await open({ url: s.url });
    const q = uniqueQueue();
    const job = newJob(q);
    await t.enqueue(job);
    const redis = new Redis(s.port);
    try {
      assert.equal(await redis.zscore(`rq:{${q}}:ready`, job.id) !== null, true, 'ready before the claim');
      const claimed = await claimOne(t, q, 5000);
      assert.equal(await redis.zscore(`rq:{${q}}:ready`, job.id), null, 'no longer ready');
      assert.equal(Number(await redis.zscore(`rq:{${q}}:leases`, job.id)), claimed.lease.until.getTime(), 'leases scored by deadline');
      assert.equal(await redis.hget(`rq:{${q}}:j:${job.id}`, 'status'), 'processing');
      assert.equal(await redis.hget(`rq:{${q}}:j:${job.id}`, 'lease_token'), claimed.lease.token);
      assert.equal(await redis.get(`rq:~id:${job.id}`), q, 'id index names the queue');
      const spec = JSON.parse((await redis.hget(`rq:{${q}}:j:${job.id}`, 'spec')) ?? 'null') as Record<string, unknown>;
      assert.deepEqual([spec.id, spec.queue, spec.payload], [job.id, q, job.payload], 'what never changes is in spec');
      assert.equal(await redis.hexists(`rq:{${q}}:j:${job.id}`, 'payload'), 0, 'and only there');
      await t.settle(claimed.id, claimed.lease.token, asDone(intent));
      assert.equal(await redis.zscore(`rq:{${q}}:leases`, job.id), null);
      assert.ok((await redis.zscore(`rq:{${q}}:done`, job.id)) !== null, 'in the done history');
    } finally {
      redis.disconnect();
    }
  });

  it('a record that does not decode ends error / CORRUPT_RECORD at its first claim; the other jobs of that claim run', async () => {
    const s = await server();
    const t = await open({ url: s.url });
    const q = uniqueQueue();
    const jobs = [newJob(q), newJob(q), newJob(q)];
    for (const job of jobs) await t.enqueue(job);
    const redis = new Redis(s.port);
    try {
      const key = `rq:{${q}}:j:${jobs[1]!.id}`;
      const spec = (await redis.hget(key, 'spec')) ?? '';
      await redis.hset(key, 'spec', spec.replace('"payload":', '"payload":{oops'));
      const worker = createWorker({ transport: t, queues: [q], concurrency: 5, handler: async () => intent });
      workers.push(worker);
      await worker.start();
      await waitFor(async () => (await redis.hget(key, 'status')) === 'error', 5000, 'the unreadable job to end');
      const error = JSON.parse((await redis.hget(key, 'error')) ?? '{}') as { code?: string; retryable?: boolean };
      assert.equal(error.code, 'CORRUPT_RECORD');
      assert.equal(error.retryable, false);
      assert.equal(await redis.hget(key, 'attempts'), '1', 'ended at its first claim, not retried');
      for (const job of [jobs[0]!, jobs[2]!]) await waitFor(async () => (await t.get(job.id))?.status === 'done', 5000, `job ${job.id} done`);
    } finally {
      redis.disconnect();
    }
  });

  it('a queued record that lacks what a claim needs ends CORRUPT_RECORD in the script; the jobs around it run (plain and prefetched claims)', async () => {
    const s = await server();
    const t = await open({ url: s.url });
    const q = uniqueQueue();
    const jobs = [newJob(q), newJob(q), newJob(q)];
    for (const job of jobs) await t.enqueue(job);
    const redis = new Redis(s.port);
    try {
      const key = `rq:{${q}}:j:${jobs[1]!.id}`;
      await redis.hdel(key, 'spec', 'attempts');
      // c=1: the second job is most likely taken by the first one's complete (prefetch), else by a claim.
      const worker = createWorker({ transport: t, queues: [q], concurrency: 1, handler: async () => intent });
      workers.push(worker);
      await worker.start();
      for (const job of [jobs[0]!, jobs[2]!]) await waitFor(async () => (await t.get(job.id))?.status === 'done', 5000, `job ${job.id} done`);
      assert.equal(await redis.hget(key, 'status'), 'error');
      assert.equal((JSON.parse((await redis.hget(key, 'error')) ?? '{}') as { code?: string }).code, 'CORRUPT_RECORD');
      assert.ok((await redis.zscore(`rq:{${q}}:error`, jobs[1]!.id)) !== null, 'in the error history');
      assert.equal(await redis.zcard(`rq:{${q}}:leases`), 0, 'no lease left behind');
    } finally {
      redis.disconnect();
    }
  });

  it('an intent that cannot be stored as JSON ends error / RESULT_REJECTED at once, not handed back again and again', async () => {
    const s = await server();
    const t = await open({ url: s.url });
    const q = uniqueQueue();
    const { job } = await t.enqueue(newJob(q, { max_attempts: 2 }));
    let runs = 0;
    const worker = createWorker({
      transport: t,
      queues: [q],
      handler: () => {
        runs += 1;
        return { action: 'finish', args: { n: 10n } };
      },
    });
    workers.push(worker);
    await worker.start();
    const ended = await waitFor(async () => {
      const j = await t.get(job.id);
      return j?.status === 'error' ? j : null;
    }, 5000, 'the job to end');
    assert.equal(ended.error?.code, 'RESULT_REJECTED');
    assert.match(ended.error?.message ?? '', /JSON/);
    await delay(100);
    assert.equal(runs, 1);
  });

  it('records of the first release (no spec field) are upgraded when a transport starts, once, and then run', async () => {
    const s = await server();
    const q = uniqueQueue();
    const id = `legacy-${q}`;
    const now = Date.now();
    const redis = new Redis(s.port);
    try {
      // The hash as jobToFields wrote it before `spec` existed.
      await redis.hset(`rq:{${q}}:j:${id}`, 'id', id, 'queue', q, 'status', 'queued', 'payload', JSON.stringify({ goal: 'legacy "quoted"' }), 'priority', '0',
        'run_at', String(now), 'attempts', '0', 'max_attempts', '3', 'created_at', String(now), 'updated_at', String(now), 'callback_url', 'http://127.0.0.1:9/cb');
      await redis.zadd(`rq:{${q}}:ready`, 1, id);
      await redis.zadd(`rq:{${q}}:all`, now, id);
      await redis.set(`rq:~id:${id}`, q);
      await redis.sadd('rq:{~meta}:queues', q);
      const t = await open({ url: s.url });
      assert.equal(await redis.hexists(`rq:{${q}}:j:${id}`, 'payload'), 0, 'upgraded: the old fields are gone');
      assert.equal(await redis.get(`rq:{${q}}:upgraded`), '1', 'the queue is marked as upgraded');
      const before = await t.get(id);
      assert.equal(before?.status, 'queued');
      assert.deepEqual(before?.payload, { goal: 'legacy "quoted"' });
      const claimed = await claimOne(t, q, 5000);
      assert.equal(claimed.id, id);
      assert.deepEqual(claimed.payload, { goal: 'legacy "quoted"' });
      assert.equal(claimed.callback_url, 'http://127.0.0.1:9/cb');
      assert.equal(claimed.created_at.getTime(), now);
      await t.settle(claimed.id, claimed.lease.token, asDone(intent));
      const after = await t.get(id);
      assert.equal(after?.status, 'done');
      assert.deepEqual(after?.payload, { goal: 'legacy "quoted"' });
    } finally {
      redis.disconnect();
    }
  });

  it('an idle claim runs its script behind the BLPOP; aborted as a job arrives, it never leaves that job leased with its reply lost', async () => {
    const s = await server();
    const producer = await open({ url: s.url });
    const t = await open({ url: s.url });
    const q = uniqueQueue();
    // Idle pickup without a round trip through the worker: claimed while the caller still waits.
    const waiting = t.claim({ queues: [q], owner: 'w-idle', lease_ms: 5000, wait_ms: 3000 });
    await delay(50);
    const { job } = await producer.enqueue(newJob(q));
    assert.equal((await waiting)?.id, job.id);

    for (let i = 0; i < 30; i++) {
      const stop = new AbortController();
      const claim = t.claimMany!({ queues: [q], owner: 'w-stop', lease_ms: 5000, wait_ms: 3000, signal: stop.signal }, 1);
      await delay(20);
      const added = producer.enqueue(newJob(q));
      await Promise.resolve(); // the enqueue goes out (batched on a microtask)
      await Promise.resolve();
      // Hold this thread while Redis wakes the BLPOP and runs the claim behind it: its reply
      // is then waiting, unread, when the abort comes — dropping the connection would lose it.
      if (i % 3 !== 2) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, i % 3 === 0 ? 5 : 0);
      stop.abort();
      const started = Date.now();
      const jobs = await claim;
      assert.ok(Date.now() - started < 1000, 'the abort ends the blocked claim at once');
      const { job: other } = await added;
      for (const claimed of jobs) await t.settle(claimed.id, claimed.lease.token, asReleased(claimed)); // as the worker does with jobs claimed while stopping
      const stored = await t.get(other.id);
      assert.equal(stored?.status, 'queued', `round ${i}: the job is back in the queue, not leased to a claim nobody heard`);
      assert.equal(stored?.attempts, 0);
      await t.cancel(other.id, 'test cleanup');
    }
  });

  it('an abort while the claim behind the BLPOP is already answering waits for that answer instead of dropping it (slow link)', async () => {
    const s = await server();
    // Every connection but the first (the command connection) gets its replies 300 ms late.
    let connections = 0;
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const late = connections++ > 0 ? 300 : 0;
      const upstream = connect(s.port, '127.0.0.1');
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (chunk) => upstream.write(chunk));
      upstream.on('data', (chunk) => (late ? setTimeout(() => client.writable && client.write(chunk), late) : client.write(chunk)));
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const t = await open({ url: `redis://127.0.0.1:${(proxy.address() as AddressInfo).port}/0` });
      const producer = await open({ url: s.url });
      const q = uniqueQueue();
      const stop = new AbortController();
      const claim = t.claimMany!({ queues: [q], owner: 'w-slow', lease_ms: 30_000, wait_ms: 4000, signal: stop.signal }, 5);
      await delay(1200); // the blocking connection is up (its replies are late) and blocked
      const { job } = await producer.enqueue(newJob(q));
      await delay(50); // Redis has run the claim; its reply is on its slow way back
      stop.abort();
      const jobs = await claim;
      assert.deepEqual(jobs.map((j) => j.id), [job.id], 'the claim answered, and its job reached the caller');
      await t.settle(jobs[0]!.id, jobs[0]!.lease.token, asReleased(jobs[0]!));
      const stored = await producer.get(job.id);
      assert.equal(stored?.status, 'queued');
      assert.equal(stored?.attempts, 0);
    } finally {
      for (const socket of sockets) socket.destroy();
      proxy.close();
    }
  });

  it('where an ACL refuses CLIENT, idle claims fall back to waking up first (warned once), and still pick up and abort promptly', async () => {
    const s = await server();
    const admin = new Redis(s.port);
    try {
      await admin.call('ACL', 'SETUSER', 'limited', 'on', '>secret', '~*', '&*', '+@all', '-client');
    } finally {
      admin.disconnect();
    }
    const { logger, lines } = captureLogger();
    const t = await open({ url: `redis://limited:secret@127.0.0.1:${s.port}/0`, logger });
    const producer = await open({ url: s.url });
    const q = uniqueQueue();
    for (let round = 0; round < 2; round++) {
      const waiting = t.claim({ queues: [q], owner: 'w-acl', lease_ms: 5000, wait_ms: 3000 });
      await delay(150);
      const started = Date.now();
      const { job } = await producer.enqueue(newJob(q));
      assert.equal((await waiting)?.id, job.id);
      assert.ok(Date.now() - started < 500, 'picked up without waiting out the block');
    }
    const stop = new AbortController();
    const idle = t.claimMany!({ queues: [q], owner: 'w-acl', lease_ms: 5000, wait_ms: 3000, signal: stop.signal }, 1);
    await delay(100);
    const started = Date.now();
    stop.abort();
    assert.deepEqual(await idle, []);
    assert.ok(Date.now() - started < 500, 'the abort ends the wait at once');
    assert.equal(lines.filter((l) => /CLIENT ID\/UNBLOCK refused/.test(l.msg)).length, 1, 'warned once');
  });

  it('a job key that is not a hash (WRONGTYPE) does not stop a claim: the other jobs it took are claimed', async () => {
    const s = await server();
    const t = await open({ url: s.url });
    const q = uniqueQueue();
    const jobs = [newJob(q), newJob(q), newJob(q)];
    for (const job of jobs) await t.enqueue(job);
    const redis = new Redis(s.port);
    try {
      await redis.del(`rq:{${q}}:j:${jobs[1]!.id}`);
      await redis.set(`rq:{${q}}:j:${jobs[1]!.id}`, 'not a hash');
      const claimed = await t.claimMany!({ queues: [q], owner: 'w-type', lease_ms: 5000, wait_ms: 0 }, 3);
      assert.deepEqual(claimed.map((j) => j.id).sort(), [jobs[0]!.id, jobs[2]!.id].sort());
      assert.equal(await redis.zcard(`rq:{${q}}:ready`), 0);
    } finally {
      redis.disconnect();
    }
  });

  it('one id lives in one queue: enqueueing it to another queue returns the first job', async () => {
    const s = await server();
    const t = await open({ url: s.url });
    const a = uniqueQueue('a');
    const b = uniqueQueue('b');
    const first = newJob(a, { id: `shared-${a}` });
    await t.enqueue(first);
    const again = await t.enqueue(newJob(b, { id: first.id }));
    assert.equal(again.created, false);
    assert.equal(again.job.queue, a);
    const other = await open({ url: s.url }); // no cached queue: goes through the id index
    assert.equal((await other.get(first.id))?.queue, a);
    assert.equal(await other.claim({ queues: [b], owner: 'w', lease_ms: 1000, wait_ms: 0 }), null);
  });

  it('a worker killed between claim and complete leaves the job reclaimable once its lease expires', async function () {
    const s = await server({ aof: true });
    const t = await open({ url: s.url });
    const q = uniqueQueue();
    const job = newJob(q, { max_attempts: 3 });
    await t.enqueue(job);
    const script = fileURLToPath(new URL('./redis-crash-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, s.url, q, '1500'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', () => reject(new Error('child exited before claiming')));
    });
    const claimedByChild = JSON.parse(line) as { id: string; token: string };
    assert.equal(claimedByChild.id, job.id);
    child.kill('SIGKILL');
    await exited;
    const held = await t.get(job.id);
    assert.equal(held?.status, 'processing', 'the job is still in Redis, leased to the dead worker');
    assert.equal(await t.claim({ queues: [q], owner: 'w2', lease_ms: 5000, wait_ms: 0 }), null, 'not claimable while the lease runs');
    const again = await waitFor(() => t.claim({ queues: [q], owner: 'w2', lease_ms: 5000, wait_ms: 1000 }), 6000, 'reclaim after lease expiry');
    assert.equal(again.id, job.id);
    assert.equal(again.attempts, 1, 'the killed run gave its attempt back');
    assert.equal(again.stalls, 1);
    await assert.rejects(t.settle(job.id, claimedByChild.token, asDone(intent)), LeaseLostError, "the dead worker's token is fenced out");
    assert.equal((await t.settle(again.id, again.lease.token, asDone(intent))).status, 'done');
  });

  it('keeps working after SCRIPT FLUSH (NOSCRIPT answered by resending the script)', async () => {
    const s = await server();
    const t = await open({ url: s.url });
    const q = uniqueQueue();
    await t.enqueue(newJob(q));
    const admin = new Redis(s.port);
    const sha = createHash('sha1').update(scriptSources().get('complete')!).digest('hex');
    const loaded = async () => ((await admin.call('SCRIPT', 'EXISTS', sha)) as number[])[0];
    try {
      await admin.script('FLUSH');
      assert.equal(await loaded(), 0, 'flushed');
      const job = newJob(q);
      await t.enqueue(job);
      const c1 = await claimOne(t, q);
      await t.settle(c1.id, c1.lease.token, asDone(intent));
      await admin.script('FLUSH');
      const c2 = await claimOne(t, q);
      await admin.script('FLUSH');
      assert.equal((await t.settle(c2.id, c2.lease.token, asDone(intent))).status, 'done');
      assert.equal(await loaded(), 1, 'loaded again by the fallback');
      assert.equal((await t.stats()).queues[q]?.done, 2);
    } finally {
      admin.disconnect();
    }
  });

  describe('eviction policy', () => {
    it('refuses allkeys-* at init, naming the fix', async () => {
      const s = await server({ args: ['--maxmemory-policy', 'allkeys-lru'] });
      const t = await open({ url: s.url }, false);
      await assert.rejects(t.init(), (e: unknown) => e instanceof ConfigError && /maxmemory-policy allkeys-lru/.test(e.message) && /noeviction/.test(e.message));
    });

    it('warns instead with allowEviction, and for volatile-*; says nothing for noeviction', async () => {
      const lru = await server({ args: ['--maxmemory-policy', 'allkeys-lru'] });
      const volatile = await server({ args: ['--maxmemory-policy', 'volatile-lru'] });
      const fine = await server();
      for (const [s, extra, expectWarning] of [[lru, { allowEviction: true }, true], [volatile, {}, true], [fine, {}, false]] as const) {
        const { logger, lines } = captureLogger();
        await open({ url: s.url, logger, ...extra });
        const warning = lines.find((l) => /maxmemory-policy/.test(l.msg));
        assert.equal(Boolean(warning), expectWarning, `port ${s.port}: ${JSON.stringify(lines)}`);
        if (warning) assert.equal(warning.level, 40, 'logged as warn');
      }
    });
  });

  it('while Redis is down: a TransportError naming the URL without its password; recovers when it returns, no restart', async function () {
    const s = await server({ args: ['--requirepass', 's3cret-pw'] });
    const url = `redis://:s3cret-pw@127.0.0.1:${s.port}`;
    const { logger, lines } = captureLogger();
    const t = await open({ url, logger });
    const q = uniqueQueue();
    await t.enqueue(newJob(q));
    await s.kill();
    const started = Date.now();
    const error = await t.enqueue(newJob(q)).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof TransportError, `got ${String(error)}`);
    assert.equal(error.code, 'TRANSPORT_UNAVAILABLE');
    assert.equal(error.retryable, true);
    assert.match(error.message, new RegExp(`redis://:\\*\\*\\*@127\\.0\\.0\\.1:${s.port}`));
    assert.doesNotMatch(error.message, /s3cret-pw/);
    assert.ok(Date.now() - started < 5000, `failed after ${Date.now() - started} ms, not hanging`);
    await assert.rejects(t.stats(), TransportError);
    assert.ok(lines.some((l) => l.level === 40 && /unavailable/.test(l.msg) && !JSON.stringify(l).includes('s3cret-pw')), 'outage logged once, redacted');
    servers.push(await restartRedis(s));
    const job = newJob(q);
    await waitFor(() => t.enqueue(job).then((r) => r.created, () => false), 10_000, 'enqueue after Redis returned');
    assert.equal((await claimOne(t, q)).queue, q);
  });

  it('a command in flight when the connection drops settles (outcome unknown), and every later call works: no call waits forever', async function () {
    this.timeout(30_000);
    const s = await server();
    const proxy = await startFaultProxy(s.port);
    try {
      const t = await open({ url: proxy.url('redis') });
      const q = uniqueQueue();
      const job = newJob(q);
      await t.enqueue(job);
      const c = await claimOne(t, q);
      proxy.freeze(); // the next commands are sent and never answered
      const inFlight = [t.get(job.id), t.extend(c.id, c.lease.token, 30_000), t.stats()].map((p) =>
        p.then(
          () => 'resolved',
          (e: unknown) => (e instanceof TransportError ? 'rejected' : `threw ${String(e)}`),
        ),
      );
      await delay(200);
      proxy.cut(); // the connection drops with them in flight; the reconnect succeeds
      proxy.thaw();
      const settled = await Promise.race([Promise.all(inFlight), delay(8_000).then(() => 'never settled')]);
      assert.notEqual(settled, 'never settled', 'calls in flight at the drop must settle');
      for (const outcome of settled as string[]) assert.match(outcome, /^(resolved|rejected)$/);
      // Every later call, auto-pipelined or not, answers.
      const after = await Promise.race([Promise.all([t.get(job.id), t.extend(c.id, c.lease.token, 30_000), t.stats()]), delay(8_000).then(() => null)]);
      assert.ok(after, 'calls after the reconnect must answer');
      assert.equal(after[0]?.status, 'processing');
      const done = await t.settle(c.id, c.lease.token, asDone(intent));
      assert.equal(done.status, 'done');
    } finally {
      await proxy.close();
    }
  });

  it('a frozen store: every call of a bounded transport settles within its bound (STORE_TIMEOUT, retryable), and works once it thaws', async function () {
    this.timeout(30_000);
    const s = await server();
    const proxy = await startFaultProxy(s.port);
    try {
      const raw = await open({ url: proxy.url('redis') });
      const t = bounded(raw, { timeoutMs: 500 });
      const q = uniqueQueue();
      const job = newJob(q);
      await t.enqueue(job);
      const c = await claimOne(t, q);
      proxy.freeze();
      const started = Date.now();
      const calls = await Promise.all(
        [t.get(job.id), t.extend(c.id, c.lease.token, 30_000), t.settle(c.id, c.lease.token, asDone(intent)), t.enqueue(newJob(q)), t.cancel(job.id, 'x'), t.stats(), t.claim({ queues: [q], owner: 'w', lease_ms: 1000, wait_ms: 200 })].map((p) =>
          (p as Promise<unknown>).then(
            () => null,
            (e: unknown) => e,
          ),
        ),
      );
      const took = Date.now() - started;
      assert.ok(took < 2_500, `settled in ${took} ms`);
      for (const e of calls) {
        assert.ok(e instanceof TransportError, `got ${String(e)}`);
        assert.equal(e.code, 'STORE_TIMEOUT');
        assert.equal(e.retryable, true);
      }
      proxy.thaw();
      await waitFor(async () => (await t.get(job.id).catch(() => null)) !== null, 10_000);
    } finally {
      await proxy.close();
    }
  });

  it('restart under AOF (appendfsync always) mid-run: no acknowledged job lost, every job finished exactly once', async function () {
    this.timeout(90_000);
    const s = await server({ aof: true });
    const producer = await open({ url: s.url });
    const consumer = await open({ url: s.url });
    const q = uniqueQueue('aof');
    const N = 400;
    const runs = new Map<string, number>();
    const doneOutcomes = new Map<string, number>();
    for (let i = 0; i < 2; i++) {
      const w = createWorker({ transport: consumer, queues: [q], concurrency: 8, leaseMs: 6000, claimWaitMs: 500, maintenanceMs: 500, handler: async (_p, ctx) => {
        runs.set(ctx.job_id, (runs.get(ctx.job_id) ?? 0) + 1);
        await delay(2);
        return intent;
      } });
      w.on('job:end', (job, outcome) => {
        if (outcome === 'done') doneOutcomes.set(job.id, (doneOutcomes.get(job.id) ?? 0) + 1);
      });
      w.on('transport-error', () => {}); // expected during the outage
      workers.push(w);
      await w.start();
    }
    const acked: string[] = [];
    let refused = 0;
    const produce = (async () => {
      for (let i = 0; i < N; i++) {
        const job = newJob(q, { payload: { goal: `job ${i}` } });
        // Retry the same id until acknowledged: enqueue is idempotent by id.
        for (;;) {
          try {
            await producer.enqueue(job);
            acked.push(job.id);
            break;
          } catch (error) {
            assert.ok(error instanceof TransportError, String(error));
            refused += 1;
            await delay(50);
          }
        }
        if (i % 20 === 0) await delay(5);
      }
    })();
    await waitFor(() => acked.length >= N / 3, 20_000, 'a third of the jobs acknowledged');
    await s.kill(); // kill -9 in the middle of the run
    await delay(500);
    servers.push(await restartRedis(s));
    await produce;
    assert.ok(refused > 0, 'the producer ran into the outage');
    const stats = await waitFor(async () => {
      const st = (await producer.stats()).queues[q];
      return st && st.done === N ? st : null;
    }, 60_000, `${N} jobs done after the restart`);
    assert.deepEqual(stats, { queued: 0, delayed: 0, processing: 0, done: N, error: 0, canceled: 0, moving: 0, moved: 0 });
    assert.equal(new Set(acked).size, N);
    for (const id of acked) {
      const job = await producer.get(id);
      assert.equal(job?.status, 'done', `job ${id} lost or unfinished`);
      assert.deepEqual(job.result, intent);
    }
    const twice = [...doneOutcomes].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'no job completed twice');
    const reran = [...runs].filter(([, n]) => n > 1);
    assert.deepEqual(reran, [], 'no handler ran twice');
    assert.equal(runs.size, N, 'every job ran');
  });
});
