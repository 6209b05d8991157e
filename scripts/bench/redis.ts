/**
 * Redis benchmark: the reasonq redis transport and BullMQ on the same fresh
 * redis-server (started here on a free port, AOF off, default settings), in
 * one run, through the same scenarios: awaited add, bulk add (batches of 200
 * concurrent adds), `enqueueMany` against BullMQ's `addBulk` (1000 jobs a
 * call), processing no-op jobs at concurrency 1 and 50,
 * add→start latency (closed loop, idle worker already waiting; and again
 * while another queue is under load), and the agent runtime's round trip:
 * 32 concurrent callers, each awaiting one intent after another
 * (`agentIntent`; BullMQ: `add` + `waitUntilFinished`), a worker at
 * concurrency 32 answering them.
 *
 *   node --import tsx scripts/bench/redis.ts
 *
 * Both sides follow scripts/bench/common.ts (the harness every transport
 * uses: same sizes, same batches, same closed loop), scenario by scenario,
 * taking turns. BullMQ is a devDependency used only here.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Queue, QueueEvents, Worker as BullWorker, type Job as BullJob } from 'bullmq';
import { createClient } from '../../dist/src/client.js';
import { createRedisTransport } from '../../dist/transports/redis/index.js';
import { DEFAULT_SIZES, fill, IDLE_GAP_MS, percentile, type BenchResult, type BenchSizes } from './common.js';
import { buildJob } from '../../dist/src/job.js';
import { createWorker } from '../../dist/src/worker.js';
import { removeRedis, startRedis } from '../../test/setup/redis.js';

const noopIntent = { action: 'finish', finish: true };
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const version = (path: string): string => (JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { version: string }).version;

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

type Latency = { p50: number; p99: number };

/**
 * One side of the comparison: each scenario as a function, so that the two
 * sides can take turns scenario by scenario (this box is shared and noisy;
 * turns keep a burst of someone else's load from landing on one side only).
 */
interface Side {
  name: string;
  awaitedAdd(n: number): Promise<number>;
  bulkAdd(n: number): Promise<number>;
  /** `enqueueMany` / `addBulk` in batches of ADD_MANY_BATCH, one batch after another */
  addMany(n: number): Promise<number>;
  process(n: number, concurrency: number): Promise<number>;
  latency(samples: number, loaded: boolean): Promise<Latency>;
  /** `callers` concurrent callers each awaiting intents one after another until `n` are answered: intents/s and per-call latency */
  roundTrip(n: number, callers: number): Promise<{ perSec: number } & Latency>;
  close(): Promise<void>;
}

/** Run `callers` loops that each await `call()` until `n` calls are done; the calls' durations in ms. */
async function closedLoop(n: number, callers: number, call: () => Promise<unknown>): Promise<{ perSec: number } & Latency> {
  const durations: number[] = [];
  let next = 0;
  const ms = await timed(async () => {
    await Promise.all(
      Array.from({ length: callers }, async () => {
        while (next++ < n) {
          const t0 = process.hrtime.bigint();
          await call();
          durations.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      }),
    );
  });
  return { perSec: (durations.length / ms) * 1000, ...latencyOf(durations) };
}

const latencyOf = (values: number[]): Latency => {
  values.sort((a, b) => a - b);
  return { p50: percentile(values, 50), p99: percentile(values, 99) };
};

/** The reasonq side: a producer and a consumer transport, as two processes would have; the worker is src/worker.ts. */
async function reasonqSide(url: string): Promise<Side> {
  const producer = createRedisTransport({ url });
  const consumer = createRedisTransport({ url });
  await producer.init();
  await consumer.init();
  const queue = (tag: string) => `bench-${tag}-${randomUUID().slice(0, 8)}`;
  const add = (q: string, goal: string) => producer.enqueue(buildJob({ queue: q, payload: { goal } }));
  const worker = (q: string, concurrency: number, handler: () => Promise<typeof noopIntent>, claimWaitMs = 1000) =>
    createWorker({ transport: consumer, queues: [q], concurrency, handler, leaseMs: 30_000, claimWaitMs });
  const latency = async (samples: number): Promise<Latency> => {
    const q = queue('lat');
    let onStart: ((t: bigint) => void) | null = null;
    const w = worker(q, 1, async () => {
      onStart?.(process.hrtime.bigint());
      return noopIntent;
    }, 5000);
    await w.start();
    await delay(200); // let the worker block on its claim
    const values: number[] = [];
    for (let i = 0; i < samples; i++) {
      await delay(IDLE_GAP_MS); // the worker is back to waiting (common.ts)
      const started = new Promise<bigint>((r) => (onStart = r));
      const ended = new Promise<void>((r) => w.once('job:end', () => r()));
      const t0 = process.hrtime.bigint();
      await add(q, 'latency');
      values.push(Number((await started) - t0) / 1e6);
      await ended;
    }
    await w.stop();
    return latencyOf(values);
  };
  return {
    name: `reasonq ${version('../../package.json')}`,
    awaitedAdd: async (n) => {
      const q = queue('add');
      return (n / (await timed(async () => {
        for (let i = 0; i < n; i++) await add(q, 'bench');
      }))) * 1000;
    },
    bulkAdd: async (n) => (n / (await timed(() => fill(producer, queue('bulk'), n)))) * 1000,
    addMany: async (n) => {
      const q = queue('many');
      return (n / (await timed(async () => {
        for (let i = 0; i < n; i += ADD_MANY_BATCH) await producer.enqueueMany(Array.from({ length: Math.min(ADD_MANY_BATCH, n - i) }, () => buildJob({ queue: q, payload: { goal: 'bench' } })));
      }))) * 1000;
    },
    process: async (n, concurrency) => {
      const q = queue(`c${concurrency}`);
      await fill(producer, q, n);
      let done = 0;
      let all!: () => void;
      const finished = new Promise<void>((r) => (all = r));
      const w = worker(q, concurrency, async () => noopIntent);
      w.on('job:end', () => {
        if (++done === n) all();
      });
      const ms = await timed(async () => {
        await w.start();
        await finished;
      });
      await w.stop();
      return (n / ms) * 1000;
    },
    latency: async (samples, loaded) => {
      if (!loaded) return latency(samples);
      const q = queue('load');
      const stop = new AbortController();
      const w = worker(q, 20, async () => noopIntent);
      await w.start();
      const pump = (async () => {
        while (!stop.signal.aborted) await fill(producer, q, 200, 50);
      })();
      try {
        return await latency(samples);
      } finally {
        stop.abort();
        await pump;
        await w.stop(0);
      }
    },
    roundTrip: async (n, callers) => {
      const q = queue('rt');
      const w = worker(q, callers, async () => noopIntent);
      await w.start();
      const client = await createClient({ transport: producer });
      try {
        return await closedLoop(n, callers, () => client.agentIntent({ goal: 'round trip' }, { queue: q, timeoutMs: 30_000 }));
      } finally {
        await client.close();
        await w.stop();
      }
    },
    close: async () => {
      await producer.close();
      await consumer.close();
    },
  };
}

/** The BullMQ side: Queue as the producer, Worker as the consumer, default options. */
async function bullmqSide(url: string): Promise<Side> {
  const { hostname, port } = new URL(url);
  const connection = { host: hostname, port: Number(port) };
  const queues: Queue[] = [];
  const open = (tag: string) => {
    const q = new Queue(`bench-${tag}-${randomUUID().slice(0, 8)}`, { connection });
    queues.push(q);
    return q;
  };
  const add = (q: Queue, goal: string) => q.add('intent', { goal });
  const fillBull = async (q: Queue, n: number, batch = 200) => {
    for (let i = 0; i < n; i += batch) await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => add(q, 'bench')));
  };
  const latency = async (samples: number): Promise<Latency> => {
    const q = open('lat');
    let onStart: ((t: bigint) => void) | null = null;
    let onEnd: (() => void) | null = null;
    const w = new BullWorker(q.name, async () => {
      onStart?.(process.hrtime.bigint());
      return noopIntent;
    }, { connection, concurrency: 1 });
    w.on('completed', () => onEnd?.());
    await w.waitUntilReady();
    await delay(200); // let the worker block on its fetch
    const values: number[] = [];
    for (let i = 0; i < samples; i++) {
      await delay(IDLE_GAP_MS); // the worker is back to waiting (common.ts)
      const started = new Promise<bigint>((r) => (onStart = r));
      const ended = new Promise<void>((r) => (onEnd = r));
      const t0 = process.hrtime.bigint();
      await add(q, 'latency');
      values.push(Number((await started) - t0) / 1e6);
      await ended;
    }
    await w.close();
    return latencyOf(values);
  };
  return {
    name: `bullmq ${version('../../node_modules/bullmq/package.json')}`,
    awaitedAdd: async (n) => {
      const q = open('add');
      return (n / (await timed(async () => {
        for (let i = 0; i < n; i++) await add(q, 'bench');
      }))) * 1000;
    },
    bulkAdd: async (n) => (n / (await timed(() => fillBull(open('bulk'), n)))) * 1000,
    addMany: async (n) => {
      const q = open('many');
      return (n / (await timed(async () => {
        for (let i = 0; i < n; i += ADD_MANY_BATCH) await q.addBulk(Array.from({ length: Math.min(ADD_MANY_BATCH, n - i) }, () => ({ name: 'intent', data: { goal: 'bench' } })));
      }))) * 1000;
    },
    process: async (n, concurrency) => {
      const q = open(`c${concurrency}`);
      await fillBull(q, n);
      let done = 0;
      let w: BullWorker | null = null;
      const ms = await timed(
        () =>
          new Promise<void>((resolve) => {
            w = new BullWorker(q.name, async () => noopIntent, { connection, concurrency });
            w.on('completed', () => {
              if (++done === n) resolve();
            });
          }),
      );
      await (w as BullWorker | null)?.close();
      return (n / ms) * 1000;
    },
    latency: async (samples, loaded) => {
      if (!loaded) return latency(samples);
      const q = open('load');
      const stop = new AbortController();
      const w = new BullWorker(q.name, async (_job: BullJob) => noopIntent, { connection, concurrency: 20 });
      const pump = (async () => {
        while (!stop.signal.aborted) await fillBull(q, 200, 50);
      })();
      try {
        return await latency(samples);
      } finally {
        stop.abort();
        await pump;
        await w.close(true);
      }
    },
    roundTrip: async (n, callers) => {
      const q = open('rt');
      const events = new QueueEvents(q.name, { connection });
      const w = new BullWorker(q.name, async () => noopIntent, { connection, concurrency: callers });
      await Promise.all([events.waitUntilReady(), w.waitUntilReady()]);
      try {
        return await closedLoop(n, callers, async () => (await add(q, 'round trip')).waitUntilFinished(events, 30_000));
      } finally {
        await w.close();
        await events.close();
      }
    },
    close: async () => {
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}

const better = (a: number, b: number, higher: boolean) => (higher ? Math.max(a, b) : Math.min(a, b));

type RoundTrip = { perSec: number } & Latency;
/** The agent runtime's round trip: this many intents, from this many concurrent callers. */
const ROUND_TRIPS = 4_000;
const ROUND_TRIP_CALLERS = 32;
/** Jobs per `enqueueMany` / `addBulk` call (the migrator's default batch is 500; its most, 1000). */
const ADD_MANY_BATCH = 1000;

type Result = BenchResult & { roundTrip: RoundTrip; addManyPerSec: number };

/**
 * Run every scenario `rounds` times, the two sides taking turns (alternating
 * who goes first), and keep each side's best figure per scenario.
 */
export async function benchBoth(url: string, sizes: BenchSizes = DEFAULT_SIZES, rounds = 3): Promise<[Result, Result]> {
  const sides = [await reasonqSide(url), await bullmqSide(url)] as const;
  const results = sides.map((s) => ({
    name: s.name,
    awaitedAddPerSec: 0,
    bulkAddPerSec: 0,
    addManyPerSec: 0,
    processC1PerSec: 0,
    processC50PerSec: 0,
    latencyIdle: { p50: Infinity, p99: Infinity },
    latencyLoaded: { p50: Infinity, p99: Infinity },
    roundTrip: { perSec: 0, p50: Infinity, p99: Infinity },
  })) as [Result, Result];
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const i of order) {
        const r = results[i as 0 | 1];
        r.awaitedAddPerSec = better(r.awaitedAddPerSec, await sides[i as 0 | 1].awaitedAdd(sizes.awaitedAdds), true);
      }
      for (const i of order) {
        const r = results[i as 0 | 1];
        r.bulkAddPerSec = better(r.bulkAddPerSec, await sides[i as 0 | 1].bulkAdd(sizes.bulkAdds), true);
      }
      for (const i of order) {
        const r = results[i as 0 | 1];
        r.addManyPerSec = better(r.addManyPerSec, await sides[i as 0 | 1].addMany(sizes.bulkAdds), true);
      }
      for (const i of order) {
        const r = results[i as 0 | 1];
        r.processC1PerSec = better(r.processC1PerSec, await sides[i as 0 | 1].process(Math.min(sizes.processJobs, 2000), 1), true);
      }
      for (const i of order) {
        const r = results[i as 0 | 1];
        r.processC50PerSec = better(r.processC50PerSec, await sides[i as 0 | 1].process(sizes.processJobs, 50), true);
      }
      for (const i of order) {
        const r = results[i as 0 | 1];
        const rt = await sides[i as 0 | 1].roundTrip(ROUND_TRIPS, ROUND_TRIP_CALLERS);
        // Best run by throughput, with that run's latencies (one run's figures stay together).
        if (rt.perSec > r.roundTrip.perSec) r.roundTrip = rt;
      }
      for (const loaded of [false, true]) {
        for (const i of order) {
          const r = results[i as 0 | 1];
          const l = await sides[i as 0 | 1].latency(loaded ? Math.min(200, sizes.latencySamples) : sizes.latencySamples, loaded);
          const key = loaded ? 'latencyLoaded' : 'latencyIdle';
          r[key] = { p50: better(r[key].p50, l.p50, false), p99: better(r[key].p99, l.p99, false) };
        }
      }
    }
  } finally {
    for (const s of sides) await s.close();
  }
  return results;
}

/** Rows are scenarios; ratio = reasonq ÷ BullMQ (throughput: higher is better; latency: lower is better). */
export function comparisonTable(ours: Result, theirs: Result): string {
  const n0 = (n: number) => Math.round(n).toLocaleString('en-US');
  const ms = (n: number) => n.toFixed(2);
  const rows: [string, number, number, (n: number) => string][] = [
    ['awaited add (jobs/s) ↑', ours.awaitedAddPerSec, theirs.awaitedAddPerSec, n0],
    ['bulk add, 200 concurrent (jobs/s) ↑', ours.bulkAddPerSec, theirs.bulkAddPerSec, n0],
    [`enqueueMany / addBulk, ${ADD_MANY_BATCH} a call (jobs/s) ↑`, ours.addManyPerSec, theirs.addManyPerSec, n0],
    ['process no-op, c=1 (jobs/s) ↑', ours.processC1PerSec, theirs.processC1PerSec, n0],
    ['process no-op, c=50 (jobs/s) ↑', ours.processC50PerSec, theirs.processC50PerSec, n0],
    ['add→start p50, idle (ms) ↓', ours.latencyIdle.p50, theirs.latencyIdle.p50, ms],
    ['add→start p99, idle (ms) ↓', ours.latencyIdle.p99, theirs.latencyIdle.p99, ms],
    ['add→start p50, under load (ms) ↓', ours.latencyLoaded.p50, theirs.latencyLoaded.p50, ms],
    ['add→start p99, under load (ms) ↓', ours.latencyLoaded.p99, theirs.latencyLoaded.p99, ms],
    [`agentIntent, ${ROUND_TRIP_CALLERS} callers (intents/s) ↑`, ours.roundTrip.perSec, theirs.roundTrip.perSec, n0],
    [`agentIntent, ${ROUND_TRIP_CALLERS} callers, p50 (ms) ↓`, ours.roundTrip.p50, theirs.roundTrip.p50, ms],
    [`agentIntent, ${ROUND_TRIP_CALLERS} callers, p99 (ms) ↓`, ours.roundTrip.p99, theirs.roundTrip.p99, ms],
  ];
  return [
    `| scenario | ${ours.name} | ${theirs.name} | ratio (reasonq ÷ bullmq) |`,
    '|---|---:|---:|---:|',
    ...rows.map(([name, a, b, f]) => `| ${name} | ${f(a)} | ${f(b)} | ${(a / b).toFixed(2)}× |`),
  ].join('\n');
}

/**
 * For scripts/bench/index.ts: start a fresh redis-server, run both sides
 * (best of `rounds` turns each), stop it. Returns both results and the table.
 */
export async function runRedisBench(sizes: BenchSizes = DEFAULT_SIZES, rounds = 3): Promise<{ results: BenchResult[]; table: string }> {
  const server = await startRedis({ aof: false });
  try {
    const [ours, theirs] = await benchBoth(server.url, sizes, rounds);
    return { results: [ours, theirs], table: comparisonTable(ours, theirs) };
  } finally {
    await removeRedis(server);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = Date.now();
  const { table } = await runRedisBench();
  const redisVersion = (await import('node:child_process')).spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(`Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'cpu'}); ${redisVersion}; AOF off; best of 3 alternating rounds per scenario; one run, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  console.log(table);
}
