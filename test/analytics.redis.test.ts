/**
 * Analytics rollups on Redis (lua/lib.lua rollup): hashes in the queue's
 * slot, one per minute and one per quarter hour of the ending, each expiring
 * 25 h after its start, written by the script that ends the job.
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { periodOf, ROLLUP_KEEP_MS } from '../src/analytics.js';
import { createRedisTransport } from '../transports/redis/index.js';
import { asDone, claimOne, intent, newJob, uniqueQueue } from './helpers.js';
import { redisAvailable, removeRedis, startRedis, type RedisServer } from './setup/redis.js';

describe('redis transport: analytics rollups', function () {
  this.timeout(30_000);
  let server: RedisServer;
  let redis: Redis;

  before(async () => {
    if (!redisAvailable()) throw new Error('redis-server / redis-cli not on PATH: run scripts/redis/ensure-redis.sh');
    server = await startRedis();
    redis = new Redis(server.port);
  });
  after(async () => {
    redis?.disconnect();
    if (server) await removeRedis(server);
  });

  it('an ending writes a minute and a quarter-hour hash in its queue slot, each expiring 25 h after its start', async () => {
    const t = createRedisTransport({ url: server.url });
    await t.init();
    try {
      const q = uniqueQueue('roll');
      await t.enqueue(newJob(q));
      const c = await claimOne(t, q);
      const done = await t.settle(c.id, c.lease.token, asDone(intent));
      const at = done.finished_at!.getTime();
      for (const step of [60_000, 900_000]) {
        const key = `rq:{${q}}:roll:${step}:${periodOf(at, step)}`;
        assert.equal(await redis.hget(key, 'done'), '1', key);
        const fields = await redis.hgetall(key);
        assert.equal(Object.entries(fields).filter(([k]) => /^r\d+$/.test(k)).reduce((n, [, v]) => n + Number(v), 0), 1, 'one run, in one bucket');
        const expireAt = Number(await redis.pexpiretime(key));
        assert.equal(expireAt, periodOf(at, step) + ROLLUP_KEEP_MS);
      }
    } finally {
      await t.close();
    }
  });

  it('a rollup counter that would overflow leaves the ending whole: the job done, in its history, its callback owed', async () => {
    const t = createRedisTransport({ url: server.url });
    await t.init();
    try {
      const q = uniqueQueue('roll-ov');
      const P = `rq:{${q}}:`;
      const job = newJob(q, { callback_url: 'https://receiver.invalid/cb' });
      await t.enqueue(job);
      const c = await claimOne(t, q);
      await t.appendEvents(c.id, c.lease.token, [{ type: 'usage', data: { prompt_tokens: 1e12, completion_tokens: 0 } }], null);
      // The rollups of this minute as after ~18,000 jobs of 5e14 tokens each: one more would pass 2^63.
      const [sec] = await redis.time();
      const now = Number(sec) * 1000;
      for (const step of [60_000, 900_000]) for (const at of [periodOf(now, step), periodOf(now + 60_000, step)]) await redis.hset(`${P}roll:${step}:${at}`, 'pt', '9223372036854000000');
      const done = await t.settle(c.id, c.lease.token, asDone(intent));
      assert.equal(done.status, 'done');
      assert.equal(await redis.zscore(`${P}leases`, job.id), null, 'out of the leases');
      assert.notEqual(await redis.zscore(`${P}done`, job.id), null, 'in the done history (retention deletes it)');
      assert.equal((await t.get(job.id))!.callback?.state, 'pending', 'the callback is owed');
    } finally {
      await t.close();
    }
  });
});
