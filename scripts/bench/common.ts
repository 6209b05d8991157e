/**
 * Benchmark scenarios shared by every transport: awaited add, bulk add,
 * processing no-op jobs at concurrency 1 and 50, and add→start latency
 * (closed loop: add one job, measure until its handler starts) idle and under
 * load. Figures are printed side by side from one run.
 *
 * The benchmarks load the library from dist/ (the npm scripts build first):
 * the code users run, compiled by tsc, not the sources as tsx transforms them.
 */
import { randomUUID } from 'node:crypto';
import { buildJob } from '../../dist/src/job.js';
import type { Transport } from '../../dist/src/transport.js';
import { createWorker, type Worker } from '../../dist/src/worker.js';

export interface BenchSizes {
  awaitedAdds: number;
  bulkAdds: number;
  processJobs: number;
  latencySamples: number;
}

/**
 * processJobs: 20 000 so that a run at concurrency 50 lasts about a second on
 * the fast stores; at 5 000 a run took 130–400 ms and one GC pause or JIT
 * tier-up swung a figure by a third between runs. latencySamples: 1 000, so
 * that p99 is the 10th-worst sample rather than the 3rd.
 */
export const DEFAULT_SIZES: BenchSizes = { awaitedAdds: 2000, bulkAdds: 10_000, processJobs: 20_000, latencySamples: 1000 };

export interface BenchResult {
  name: string;
  awaitedAddPerSec: number;
  bulkAddPerSec: number;
  processC1PerSec: number;
  processC50PerSec: number;
  latencyIdle: { p50: number; p99: number };
  latencyLoaded: { p50: number; p99: number };
  extra?: Record<string, string>;
}

const noopIntent = { action: 'finish', finish: true };

/**
 * Pause between latency samples, so that the worker is back to waiting
 * (blocked in its claim) when the next job is added. Without it the add races
 * the worker's next claim, which then often finds the job without waiting at
 * all, and the figure depends on which of the two the event loop ran first.
 */
export const IDLE_GAP_MS = 2;
const queue = (tag: string) => `bench-${tag}-${randomUUID().slice(0, 8)}`;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Enqueue `n` jobs in batches of `batch` concurrent calls. */
export async function fill(t: Transport, q: string, n: number, batch = 200): Promise<void> {
  for (let i = 0; i < n; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => t.enqueue(buildJob({ queue: q, payload: { goal: 'bench' } }))));
  }
}

async function processAll(producer: Transport, consumer: Transport, n: number, concurrency: number): Promise<number> {
  const q = queue(`c${concurrency}`);
  await fill(producer, q, n);
  let done = 0;
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  const worker = createWorker({ transport: consumer, queues: [q], concurrency, handler: async () => noopIntent, leaseMs: 30_000, claimWaitMs: 1000 });
  worker.on('job:end', () => {
    if (++done === n) resolveAll();
  });
  const ms = await timed(async () => {
    await worker.start();
    await all;
  });
  await worker.stop();
  return (n / ms) * 1000;
}

async function latency(producer: Transport, consumer: Transport, samples: number): Promise<{ p50: number; p99: number }> {
  const q = queue('lat');
  let onStart: ((t: bigint) => void) | null = null;
  const worker = createWorker({ transport: consumer, queues: [q], concurrency: 1, handler: async () => { onStart?.(process.hrtime.bigint()); return noopIntent; }, claimWaitMs: 5000 });
  await worker.start();
  const ended = () => new Promise<void>((r) => worker.once('job:end', () => r()));
  const values: number[] = [];
  await new Promise((r) => setTimeout(r, 200)); // let the worker block on its claim
  for (let i = 0; i < samples; i++) {
    await new Promise((r) => setTimeout(r, IDLE_GAP_MS));
    const started = new Promise<bigint>((r) => (onStart = r));
    const end = ended();
    const t0 = process.hrtime.bigint();
    await producer.enqueue(buildJob({ queue: q, payload: { goal: 'latency' } }));
    values.push(Number((await started) - t0) / 1e6);
    await end;
  }
  await worker.stop();
  values.sort((a, b) => a - b);
  return { p50: percentile(values, 50), p99: percentile(values, 99) };
}

/** Background load on another queue of the same store while latency is probed. */
async function withLoad<T>(producer: Transport, consumer: Transport, fn: () => Promise<T>): Promise<T> {
  const q = queue('load');
  const stop = new AbortController();
  const worker: Worker = createWorker({ transport: consumer, queues: [q], concurrency: 20, handler: async () => noopIntent, claimWaitMs: 1000 });
  await worker.start();
  const pump = (async () => {
    // ~50 jobs every 5 ms; the pause also lets an in-process store yield to timers.
    while (!stop.signal.aborted) {
      await fill(producer, q, 50, 50);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    return await fn();
  } finally {
    stop.abort();
    await pump;
    await worker.stop(0);
  }
}

/**
 * Run every scenario. `producer` enqueues, `consumer` is what workers use
 * (the same transport for most stores; for http, both speak to one server).
 */
export async function runScenarios(name: string, producer: Transport, consumer: Transport = producer, sizes: BenchSizes = DEFAULT_SIZES): Promise<BenchResult> {
  const q = queue('add');
  const awaitedMs = await timed(async () => {
    for (let i = 0; i < sizes.awaitedAdds; i++) await producer.enqueue(buildJob({ queue: q, payload: { goal: 'bench' } }));
  });
  const bulkMs = await timed(() => fill(producer, queue('bulk'), sizes.bulkAdds));
  const processC1PerSec = await processAll(producer, consumer, Math.min(sizes.processJobs, 2000), 1);
  const processC50PerSec = await processAll(producer, consumer, sizes.processJobs, 50);
  const latencyIdle = await latency(producer, consumer, sizes.latencySamples);
  const latencyLoaded = await withLoad(producer, consumer, () => latency(producer, consumer, Math.min(200, sizes.latencySamples)));
  return {
    name,
    awaitedAddPerSec: (sizes.awaitedAdds / awaitedMs) * 1000,
    bulkAddPerSec: (sizes.bulkAdds / bulkMs) * 1000,
    processC1PerSec,
    processC50PerSec,
    latencyIdle,
    latencyLoaded,
  };
}

const n0 = (n: number) => Math.round(n).toLocaleString('en-US');
const ms2 = (n: number) => n.toFixed(2);

export function resultTable(results: BenchResult[]): string {
  const head = '| transport | awaited add (jobs/s) | bulk add (jobs/s) | process c=1 (jobs/s) | process c=50 (jobs/s) | add→start p50 / p99 idle (ms) | add→start p50 / p99 under load (ms) |';
  const sep = '|---|---:|---:|---:|---:|---:|---:|';
  const rows = results.map(
    (r) => `| ${r.name} | ${n0(r.awaitedAddPerSec)} | ${n0(r.bulkAddPerSec)} | ${n0(r.processC1PerSec)} | ${n0(r.processC50PerSec)} | ${ms2(r.latencyIdle.p50)} / ${ms2(r.latencyIdle.p99)} | ${ms2(r.latencyLoaded.p50)} / ${ms2(r.latencyLoaded.p99)} |`,
  );
  return [head, sep, ...rows].join('\n');
}
