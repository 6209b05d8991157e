/**
 * The transport conformance suite on the redis transport: once on a
 * standalone redis-server, once on a 3-master Cluster (same code), both
 * started on free ports by test/setup/redis.ts.
 */
import { describeTransport } from './conformance/index.js';
import { createRedisTransport } from '../transports/redis/index.js';
import { redisAvailable, removeRedis, startCluster, startRedis, type RedisCluster, type RedisServer } from './setup/redis.js';

function requireRedis(): void {
  if (!redisAvailable()) throw new Error('redis-server / redis-cli not on PATH: run scripts/redis/ensure-redis.sh');
}

describe('redis transport (standalone)', function () {
  this.timeout(60_000);
  let server: RedisServer | null = null;
  before(async () => {
    requireRedis();
    server = await startRedis();
  });
  after(async () => {
    if (server) await removeRedis(server);
  });
  describeTransport('redis', async (options) => {
    const t = createRedisTransport({ url: server!.url, ...options });
    await t.init();
    return t;
  });
});

describe('redis transport (cluster)', function () {
  this.timeout(60_000);
  let cluster: RedisCluster | null = null;
  before(async () => {
    requireRedis();
    cluster = await startCluster();
  });
  after(async () => {
    await cluster?.stop();
  });
  describeTransport('redis-cluster', async (options) => {
    const t = createRedisTransport({ url: cluster!.url, ...options });
    await t.init();
    return t;
  });
});
