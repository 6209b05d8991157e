/**
 * Mongo benchmark: the reasonq mongo transport on the server the tests use
 * (test/setup/mongo.ts: MONGO_URL, mongodb-memory-server, else FerretDB),
 * through the shared scenarios of scripts/bench/common.ts, plus a measured
 * "queries/s per idle worker": a few idle workers (default settings, no jobs)
 * for ~10 s while the driver's command monitoring counts what they send, and
 * "commands per job": what enqueue → claim → settle sends for one job alone
 * and for 100 at once (the lifecycle events share their inserts), and what
 * an append of 50 events sends.
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
import { buildJob, type Job } from '../../dist/src/job.js';
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

/** Commands per job (command monitoring), by command name; the claim's lease recovery (once a second, not per job) left out. */
export async function commandsPerJob(uri: string, db: string): Promise<string[]> {
  const seen: string[] = [];
  let counting = false;
  const t = createMongoTransport({ uri, db, commandListener: (name) => counting && seen.push(name) });
  await t.init();
  const intent = { action: 'finish', finish: true } as const;
  const quiet = () => new Promise((r) => setTimeout(r, 100)); // the batched lifecycle inserts go out
  const measure = async (label: string, jobs: number, run: () => Promise<void>) => {
    seen.length = 0;
    counting = true;
    await run();
    await quiet();
    counting = false;
    const byName: Record<string, number> = {};
    for (const name of seen) byName[name] = (byName[name] ?? 0) + 1;
    delete byName.find; // the claim's lease recovery
    const total = Object.values(byName).reduce((a, b) => a + b, 0);
    return `${label}: ${(total / jobs).toFixed(2)} (${Object.entries(byName).map(([k, v]) => `${k} ${(v / jobs).toFixed(2)}`).join(', ')})`;
  };
  const claim = (q: string) => t.claim({ queues: [q], owner: 'bench', lease_ms: 30_000, wait_ms: 2000 });
  const lines: string[] = [];
  try {
    lines.push(
      await measure('enqueue → claim → settle, one job alone', 1, async () => {
        const job = buildJob({ queue: 'rt-one', payload: { goal: 'bench' } });
        await t.enqueue(job);
        const c = (await claim('rt-one'))!;
        await t.settle(c.id, c.lease.token, { status: 'done', result: intent });
      }),
    );
    lines.push(
      await measure('enqueue → claim → settle, 100 jobs at once', 100, async () => {
        await Promise.all(Array.from({ length: 100 }, () => t.enqueue(buildJob({ queue: 'rt-many', payload: { goal: 'bench' } }))));
        const claimed = await Promise.all(Array.from({ length: 100 }, () => claim('rt-many')));
        await Promise.all(claimed.map((c) => t.settle(c!.id, c!.lease.token, { status: 'done', result: intent })));
      }),
    );
    await t.enqueue(buildJob({ queue: 'rt-append', payload: { goal: 'bench' } }));
    const running = (await claim('rt-append'))!;
    await quiet();
    const events = Array.from({ length: 50 }, (_, i) => ({ type: 'token', data: { text: `t${i} ` } }));
    lines.push(await measure('an append of 50 events', 1, () => t.appendEvents(running.id, running.lease.token, events, 0).then(() => undefined)));
  } finally {
    await t.close();
  }
  return lines;
}

export async function runMongoBench(sizes?: BenchSizes): Promise<{ result: BenchResult; table: string; idle: string; commands: string[]; server: string }> {
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
    const commands = await commandsPerJob(server.uri, freshDb('reasonq_commands'));
    const idle = await idleQueriesPerWorker(server.uri, freshDb('reasonq_idle'));
    const detail = Object.entries(idle.byCommand)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ');
    return {
      result,
      table: resultTable([result]),
      idle: `queries/s per idle worker (4 workers × concurrency 4, default polling 50 ms → 2 s, sweep every 1 s, heartbeat every 5 s): ${idle.perWorker.toFixed(2)} (${detail})`,
      commands,
      server: server.description,
    };
  } finally {
    await server.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = Date.now();
  const { table, idle, commands, server } = await runMongoBench();
  console.log(`Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'cpu'}); ${server}; one run, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  console.log(table);
  console.log(`\n${idle}`);
  console.log(`\ncommands per job (${server}):\n${commands.map((l) => `- ${l}`).join('\n')}`);
}
