/**
 * Mongo benchmark: the reasonq mongo transport on the server the tests use
 * (test/setup/mongo.ts: MONGO_URL, mongodb-memory-server, else FerretDB),
 * through the shared scenarios of scripts/bench/common.ts, plus a measured
 * "queries/s per idle worker": a few idle workers (default settings, no jobs)
 * for ~10 s while the driver's command monitoring counts what they send.
 *
 *   node --import tsx scripts/bench/mongo.ts
 *
 * FerretDB (SQLite, one connection, every query a full scan, so each gets
 * slower as the collection grows) gets smaller sizes, and the background load
 * of the "under load" latency is capped at FERRET_LOAD_PER_SEC enqueues/s:
 * uncapped, inserts (cheap) outpace claims (scans) and the backlog, hence
 * every query, grows without bound.
 */
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { Job } from '../../dist/src/job.js';
import type { Transport } from '../../dist/src/transport.js';
import { createWorker } from '../../dist/src/worker.js';
import { createMongoTransport } from '../../dist/transports/mongo/index.js';
import { freshDb, startMongoServer } from '../../test/setup/mongo.js';
import { DEFAULT_SIZES, resultTable, runScenarios, type BenchResult, type BenchSizes } from './common.js';

const FERRET_LOAD_PER_SEC = 3;
const FERRET_SIZES: BenchSizes = { awaitedAdds: 100, bulkAdds: 200, processJobs: 100, latencySamples: 15 };

/** The same transport, with enqueues to the background-load queue (`bench-load-*`) spaced to `perSecond`. */
function capLoad(t: Transport, perSecond: number): Transport {
  const interval = 1000 / perSecond;
  let next = 0;
  return new Proxy(t, {
    get(target, prop, receiver) {
      if (prop === 'enqueue') {
        return async (job: Job) => {
          if (job.queue.startsWith('bench-load-')) {
            const now = Date.now();
            const slot = Math.max(next, now);
            next = slot + interval;
            await new Promise((r) => setTimeout(r, slot - now));
          }
          return target.enqueue(job);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Idle workers on empty queues, each on its own transport; commands counted per worker. */
export async function idleQueriesPerWorker(uri: string, db: string, workers = 4, seconds = 10): Promise<{ perWorker: number; byCommand: Record<string, number> }> {
  const byCommand: Record<string, number> = {};
  let counting = false;
  const transports = Array.from({ length: workers }, () =>
    createMongoTransport({
      uri,
      db,
      commandListener: (name) => {
        if (counting) byCommand[name] = (byCommand[name] ?? 0) + 1;
      },
    }),
  );
  await Promise.all(transports.map((t) => t.init()));
  const started = transports.map((t, i) => createWorker({ transport: t, queues: [`idle-${i}`], concurrency: 4, handler: async () => ({ action: 'finish', finish: true }) }));
  await Promise.all(started.map((w) => w.start()));
  await new Promise((r) => setTimeout(r, 3_000)); // let the backoff settle at its ceiling
  counting = true;
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = (Date.now() - t0) / 1000;
  await Promise.all(started.map((w) => w.stop(0)));
  await Promise.all(transports.map((t) => t.close()));
  const total = Object.values(byCommand).reduce((a, b) => a + b, 0);
  for (const k of Object.keys(byCommand)) byCommand[k] = byCommand[k]! / elapsed / workers;
  return { perWorker: total / elapsed / workers, byCommand };
}

export async function runMongoBench(sizes?: BenchSizes): Promise<{ result: BenchResult; table: string; idle: string; server: string }> {
  const server = await startMongoServer();
  try {
    const db = freshDb('reasonq_bench');
    const producer = createMongoTransport({ uri: server.uri, db });
    const consumer = createMongoTransport({ uri: server.uri, db });
    await producer.init();
    await consumer.init();
    const ferret = producer.server?.kind === 'ferretdb';
    let result: BenchResult;
    try {
      const name = `reasonq mongo (${ferret ? `FerretDB, load capped at ${FERRET_LOAD_PER_SEC}/s` : `MongoDB ${producer.server?.version}`})`;
      result = await runScenarios(name, ferret ? capLoad(producer, FERRET_LOAD_PER_SEC) : producer, consumer, sizes ?? (ferret ? FERRET_SIZES : DEFAULT_SIZES));
    } finally {
      await producer.close();
      await consumer.close();
    }
    const idle = await idleQueriesPerWorker(server.uri, freshDb('reasonq_idle'));
    const detail = Object.entries(idle.byCommand)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ');
    return {
      result,
      table: resultTable([result]),
      idle: `queries/s per idle worker (4 workers × concurrency 4, default polling 50 ms → 2 s, sweep every 1 s, heartbeat every 5 s): ${idle.perWorker.toFixed(2)} (${detail})`,
      server: server.description,
    };
  } finally {
    await server.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = Date.now();
  const { table, idle, server } = await runMongoBench();
  console.log(`Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'cpu'}); ${server}; one run, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  console.log(table);
  console.log(`\n${idle}`);
}
