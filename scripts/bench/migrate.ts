/**
 * Migration rate: N queued jobs (default 10,000, each with its `queued`
 * event) moved by `migrate()` from one store to another, timed from the
 * first take to the last mark, verification apart. Pairs: redis → redis
 * (two servers: the migrator's own cost), and mongo ⇄ redis on the Mongo
 * server test/setup/mongo.ts picks (MONGO_URL, mongodb-memory-server or
 * FerretDB, whose scans dominate there).
 *
 *   npm run bench:migrate [-- N] [-- --pairs redis-redis,mongo-redis,redis-mongo]
 */
import { cpus } from 'node:os';
import { createMongoTransport } from '../../dist/transports/mongo/index.js';
import { createRedisTransport } from '../../dist/transports/redis/index.js';
import { bounded } from '../../dist/src/bounded.js';
import { buildJob } from '../../dist/src/job.js';
import { migrate } from '../../dist/src/migrate.js';
import type { Transport } from '../../dist/src/transport.js';
import { removeRedis, startRedis } from '../../test/setup/redis.js';
import { acquireMongo, freshDb, releaseMongo } from '../../test/setup/mongo.js';

const n = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 10_000);
const pairsArg = process.argv.find((a) => a.startsWith('--pairs='))?.slice(8) ?? 'redis-redis,mongo-redis,redis-mongo';
const pairs = pairsArg.split(',').map((p) => p.split('-') as ['mongo' | 'redis', 'mongo' | 'redis']);

const redisA = await startRedis({ aof: false });
const redisB = await startRedis({ aof: false });
const mongo = pairs.some((p) => p.includes('mongo')) ? await acquireMongo() : null;
const open = async (kind: 'mongo' | 'redis', side: 'a' | 'b', db: string): Promise<Transport> => {
  const t = kind === 'mongo' ? createMongoTransport({ uri: mongo!.uri, db }) : createRedisTransport({ url: (side === 'a' ? redisA : redisB).url });
  const b = bounded(t, { timeoutMs: 120_000 });
  await b.init();
  return b;
};
console.log(`Node ${process.version}, ${cpus().length} cores; ${n} queued jobs per pair; Mongo: ${mongo?.description ?? '–'}`);
try {
  for (const [from, to] of pairs) {
    const db = freshDb('reasonq_bench_migrate');
    const source = await open(from, 'a', db);
    const target = await open(to, from === to ? 'b' : 'a', db);
    const q = `bench-migrate-${from}-${to}-${Date.now()}`;
    const seedStart = Date.now();
    for (let i = 0; i < n; i += 1000) await source.enqueueMany(Array.from({ length: Math.min(1000, n - i) }, (_, k) => buildJob({ queue: q, priority: k % 3, payload: { goal: `job ${i + k}`, context: { files: ['a.ts'] } } })));
    const seeded = Date.now() - seedStart;
    const summary = await migrate({ from: source, to: target, toName: to, queues: [q], noVerify: true });
    const moved = summary.totals.moved;
    console.log(`${from} → ${to}: ${moved} jobs in ${(summary.elapsed_ms / 1000).toFixed(1)} s = ${summary.rate} jobs/s (batch ${from === 'mongo' || to === 'mongo' ? 'auto' : 500}; seeding ${n} took ${(seeded / 1000).toFixed(1)} s)`);
    await source.close();
    await target.close();
  }
} finally {
  await removeRedis(redisA);
  await removeRedis(redisB);
  if (mongo) await releaseMongo();
}
