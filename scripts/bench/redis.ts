/**
 * Redis benchmark: the reasonq redis transport and BullMQ on the same fresh
 * redis-server (started here on a free port, AOF off, default settings), in
 * one run, through the same scenarios: awaited add, bulk add (batches of 200
 * concurrent adds), processing no-op jobs at concurrency 1 and 50, and
 * add→start latency (closed loop, idle worker already waiting; and again
 * while another queue is under load).
 *
 *   node --import tsx scripts/bench/redis.ts
 *
 * The reasonq side is scripts/bench/common.ts (the harness every transport
 * uses); the BullMQ side mirrors it scenario for scenario. BullMQ is a
 * devDependency used only here.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Queue, Worker as BullWorker, type Job as BullJob } from 'bullmq';
import { createRedisTransport } from '../../transports/redis/index.js';
import { DEFAULT_SIZES, fill, percentile, runScenarios, type BenchResult, type BenchSizes } from './common.js';
import { removeRedis, startRedis } from '../../test/setup/redis.js';

const noopIntent = { action: 'finish', finish: true };
const version = (path: string): string => (JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { version: string }).version;

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** The reasonq side: two transports, as a producer and a worker process would have. */
export async function benchReasonq(url: string, sizes: BenchSizes = DEFAULT_SIZES): Promise<BenchResult> {
  const producer = createRedisTransport({ url });
  const consumer = createRedisTransport({ url });
  await producer.init();
  await consumer.init();
  try {
    return await runScenarios(`reasonq ${version('../../package.json')}`, producer, consumer, sizes);
  } finally {
    await producer.close();
    await consumer.close();
  }
}

/** The same scenarios on BullMQ (Queue as the producer, Worker as the consumer). */
export async function benchBullmq(url: string, sizes: BenchSizes = DEFAULT_SIZES): Promise<BenchResult> {
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

  const processAll = async (n: number, concurrency: number) => {
    const q = open(`c${concurrency}`);
    await fillBull(q, n);
    let done = 0;
    let worker: BullWorker | null = null;
    const ms = await timed(async () => {
      await new Promise<void>((resolve) => {
        worker = new BullWorker(q.name, async () => noopIntent, { connection, concurrency });
        worker.on('completed', () => {
          if (++done === n) resolve();
        });
      });
    });
    await (worker as BullWorker | null)?.close();
    return (n / ms) * 1000;
  };

  const latency = async (samples: number) => {
    const q = open('lat');
    let onStart: ((t: bigint) => void) | null = null;
    let onEnd: (() => void) | null = null;
    const worker = new BullWorker(q.name, async () => {
      onStart?.(process.hrtime.bigint());
      return noopIntent;
    }, { connection, concurrency: 1 });
    worker.on('completed', () => onEnd?.());
    await worker.waitUntilReady();
    await new Promise((r) => setTimeout(r, 200)); // let the worker block on its fetch
    const values: number[] = [];
    for (let i = 0; i < samples; i++) {
      const started = new Promise<bigint>((r) => (onStart = r));
      const ended = new Promise<void>((r) => (onEnd = r));
      const t0 = process.hrtime.bigint();
      await add(q, 'latency');
      values.push(Number((await started) - t0) / 1e6);
      await ended;
    }
    await worker.close();
    values.sort((a, b) => a - b);
    return { p50: percentile(values, 50), p99: percentile(values, 99) };
  };

  const withLoad = async <T>(fn: () => Promise<T>): Promise<T> => {
    const q = open('load');
    const stop = new AbortController();
    const worker = new BullWorker(q.name, async (_job: BullJob) => noopIntent, { connection, concurrency: 20 });
    const pump = (async () => {
      while (!stop.signal.aborted) await fillBull(q, 200, 50);
    })();
    try {
      return await fn();
    } finally {
      stop.abort();
      await pump;
      await worker.close(true);
    }
  };

  try {
    const addQueue = open('add');
    const awaitedMs = await timed(async () => {
      for (let i = 0; i < sizes.awaitedAdds; i++) await add(addQueue, 'bench');
    });
    const bulkMs = await timed(() => fillBull(open('bulk'), sizes.bulkAdds));
    const processC1PerSec = await processAll(Math.min(sizes.processJobs, 2000), 1);
    const processC50PerSec = await processAll(sizes.processJobs, 50);
    const latencyIdle = await latency(sizes.latencySamples);
    const latencyLoaded = await withLoad(() => latency(Math.min(200, sizes.latencySamples)));
    return {
      name: `bullmq ${version('../../node_modules/bullmq/package.json')}`,
      awaitedAddPerSec: (sizes.awaitedAdds / awaitedMs) * 1000,
      bulkAddPerSec: (sizes.bulkAdds / bulkMs) * 1000,
      processC1PerSec,
      processC50PerSec,
      latencyIdle,
      latencyLoaded,
    };
  } finally {
    await Promise.all(queues.map((q) => q.close()));
  }
}

/** Rows are scenarios; ratio = reasonq ÷ BullMQ (throughput: higher is better; latency: lower is better). */
export function comparisonTable(ours: BenchResult, theirs: BenchResult): string {
  const n0 = (n: number) => Math.round(n).toLocaleString('en-US');
  const ms = (n: number) => n.toFixed(2);
  const rows: [string, number, number, (n: number) => string][] = [
    ['awaited add (jobs/s) ↑', ours.awaitedAddPerSec, theirs.awaitedAddPerSec, n0],
    ['bulk add, 200 concurrent (jobs/s) ↑', ours.bulkAddPerSec, theirs.bulkAddPerSec, n0],
    ['process no-op, c=1 (jobs/s) ↑', ours.processC1PerSec, theirs.processC1PerSec, n0],
    ['process no-op, c=50 (jobs/s) ↑', ours.processC50PerSec, theirs.processC50PerSec, n0],
    ['add→start p50, idle (ms) ↓', ours.latencyIdle.p50, theirs.latencyIdle.p50, ms],
    ['add→start p99, idle (ms) ↓', ours.latencyIdle.p99, theirs.latencyIdle.p99, ms],
    ['add→start p50, under load (ms) ↓', ours.latencyLoaded.p50, theirs.latencyLoaded.p50, ms],
    ['add→start p99, under load (ms) ↓', ours.latencyLoaded.p99, theirs.latencyLoaded.p99, ms],
  ];
  return [
    `| scenario | ${ours.name} | ${theirs.name} | ratio (reasonq ÷ bullmq) |`,
    '|---|---:|---:|---:|',
    ...rows.map(([name, a, b, f]) => `| ${name} | ${f(a)} | ${f(b)} | ${(a / b).toFixed(2)}× |`),
  ].join('\n');
}

/**
 * For scripts/bench/index.ts: start a fresh redis-server, run both sides,
 * stop it. Returns both results and the table.
 */
export async function runRedisBench(sizes: BenchSizes = DEFAULT_SIZES): Promise<{ results: BenchResult[]; table: string }> {
  const server = await startRedis({ aof: false });
  try {
    const ours = await benchReasonq(server.url, sizes);
    const theirs = await benchBullmq(server.url, sizes);
    return { results: [ours, theirs], table: comparisonTable(ours, theirs) };
  } finally {
    await removeRedis(server);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = Date.now();
  const { table } = await runRedisBench();
  const redisVersion = (await import('node:child_process')).spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(`Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'cpu'}); ${redisVersion}; AOF off; one run, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  console.log(table);
}
void fill;
