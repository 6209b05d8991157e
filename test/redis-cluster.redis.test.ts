/**
 * Redis Cluster specifics on a real 3-master cluster: both URL forms, one
 * queue = one slot, queues spread over the masters, a blocking claim across
 * queues of different slots, and fencing across nodes.
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { LeaseLostError } from '../src/errors.js';
import { createRedisTransport, type RedisTransport } from '../transports/redis/index.js';
import { keySlot } from '../transports/redis/connection.js';
import { asDone, claimOne, delay, intent, newJob, uniqueQueue } from './helpers.js';
import { redisAvailable, startCluster, type RedisCluster } from './setup/redis.js';

describe('redis transport: cluster', function () {
  this.timeout(60_000);
  let cluster: RedisCluster;
  const transports: RedisTransport[] = [];
  const open = async (url: string) => {
    const t = createRedisTransport({ url });
    transports.push(t);
    await t.init();
    return t;
  };
  /** Every key of every node, with the node's port. */
  const allKeys = async () => {
    const out: { port: number; key: string }[] = [];
    for (const node of cluster.nodes) {
      const r = new Redis(node.port);
      try {
        for (const key of await r.keys('rq:*')) out.push({ port: node.port, key });
      } finally {
        r.disconnect();
      }
    }
    return out;
  };

  before(async function () {
    if (!redisAvailable()) throw new Error('redis-server / redis-cli not on PATH: run scripts/redis/ensure-redis.sh');
    cluster = await startCluster();
  });
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close()));
  });
  after(async () => {
    await cluster?.stop();
  });

  it('accepts redis+cluster:// and a comma-separated node list; both see the same jobs', async () => {
    const a = await open(cluster.url);
    const b = await open(cluster.listUrl);
    const q = uniqueQueue();
    const job = newJob(q);
    await a.enqueue(job);
    assert.equal((await b.get(job.id))?.status, 'queued');
    const c = await claimOne(b, q);
    assert.equal((await a.settle(c.id, c.lease.token, asDone(intent))).status, 'done');
  });

  it("keeps every key of a queue in one slot, and spreads queues over the masters", async () => {
    const t = await open(cluster.url);
    const queues = Array.from({ length: 12 }, () => uniqueQueue('spread'));
    for (const q of queues) {
      await t.enqueue(newJob(q));
      await t.enqueue(newJob(q, { delay_ms: 60_000 }));
      const c = await claimOne(t, q);
      await t.settle(c.id, c.lease.token, asDone(intent));
    }
    const keys = await allKeys();
    const ports = new Set<number>();
    for (const q of queues) {
      const mine = keys.filter((k) => k.key.startsWith(`rq:{${q}}:`));
      assert.ok(mine.length >= 6, `${q}: ${mine.map((k) => k.key).join(', ')}`);
      assert.equal(new Set(mine.map((k) => keySlot(k.key))).size, 1, `${q}: one slot`);
      assert.equal(new Set(mine.map((k) => k.port)).size, 1, `${q}: one node`);
      ports.add(mine[0]!.port);
    }
    assert.ok(ports.size >= 2, `12 queues on ${ports.size} master(s)`);
  });

  it('a blocking claim over queues in different slots wakes for any of them', async () => {
    const t = await open(cluster.url);
    const producer = await open(cluster.url);
    let a = uniqueQueue('a');
    let b = uniqueQueue('b');
    while (keySlot(`rq:{${a}}:`) === keySlot(`rq:{${b}}:`)) b = uniqueQueue('b');
    for (const target of [b, a]) {
      const started = Date.now();
      const pending = t.claim({ queues: [a, b], owner: 'w', lease_ms: 5000, wait_ms: 4000 });
      await delay(300);
      const job = newJob(target);
      await producer.enqueue(job);
      const claimed = await pending;
      assert.equal(claimed?.id, job.id);
      const took = Date.now() - started;
      assert.ok(took < 1500, `woke after ${took} ms (enqueued at 300 ms)`);
      [a, b] = [b, a];
    }
  });

  it('claimMany fills up from several slots and fences each job on its own node', async () => {
    const t = await open(cluster.url);
    const queues = Array.from({ length: 4 }, () => uniqueQueue('many'));
    for (const q of queues) for (let i = 0; i < 3; i++) await t.enqueue(newJob(q));
    const got: string[] = [];
    for (let round = 0; round < 10 && got.length < 12; round++) {
      const jobs = await t.claimMany!({ queues, owner: 'w', lease_ms: 5000, wait_ms: 0 }, 12);
      for (const j of jobs) {
        await assert.rejects(t.settle(j.id, 'stale-token', asDone(intent)), LeaseLostError);
        assert.equal((await t.settle(j.id, j.lease.token, asDone(intent))).status, 'done');
        got.push(j.id);
      }
    }
    assert.equal(new Set(got).size, 12);
    const stats = await t.stats();
    for (const q of queues) assert.equal(stats.queues[q]?.done, 3);
  });
});
