/**
 * Analytics benchmark: 100,000 finished jobs spread over the last 24 hours
 * (4 queues, done · error · canceled, waits and runs from 5 ms to 10 min,
 * tokens), seeded the way a migration writes history (`enqueueMany` with
 * `imported`, 1,000 a batch: each job counted in its rollup at its own
 * minute), then the answer of `GET /v1/analytics` computed as the route
 * computes it (readAnalytics: the store's rollups, then src/analytics.ts)
 * for the last hour and the last day, 50 times each after 5 warm-ups, on
 * the memory store and on a fresh redis-server (started here on a free
 * port). Target: under 50 ms. The cost is that of the window's rollups
 * (minutes × queues), whatever the number of jobs.
 *
 *   npm run bench:analytics
 */
import { cpus } from 'node:os';
import { spawnSync } from 'node:child_process';
import { readAnalytics } from '../../dist/src/analytics-read.js';
import { buildJob, type Job } from '../../dist/src/job.js';
import type { Transport } from '../../dist/src/transport.js';
import { createMemoryTransport } from '../../dist/transports/memory/index.js';
import { createRedisTransport } from '../../dist/transports/redis/index.js';
import { removeRedis, startRedis } from '../../test/setup/redis.js';

const JOBS = 100_000;
const BATCH = 1000;
const QUEUES = ['chat', 'plan', 'tools', 'batch'];
const RUNS = 50;
const WARMUP = 5;
const DAY_MS = 86_400_000;
const STATUSES = ['done', 'done', 'done', 'done', 'done', 'done', 'done', 'done', 'error', 'canceled'] as const;

/** A small deterministic generator, so that every run seeds the same history. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Job i of the history: it ended (i / JOBS) of a day ago, after a wait and a run drawn log-uniformly. */
function historyJob(i: number, now: number, random: () => number): Job {
  const finished = now - Math.floor(((i + 0.5) / JOBS) * (DAY_MS - 60_000));
  const status = STATUSES[i % STATUSES.length]!;
  const ran = !(status === 'canceled' && i % 20 === 9); // half the canceled ones never ran
  const run = Math.round(5 * 120_000 ** random());
  const wait = Math.round(5 * 120_000 ** random());
  const started = ran ? finished - run : null;
  const created = (started ?? finished) - wait;
  return {
    ...buildJob({ queue: QUEUES[i % QUEUES.length]!, payload: { goal: `history ${i}` } }),
    status,
    attempts: ran ? 1 : 0,
    created_at: new Date(created),
    run_at: new Date(created),
    started_at: started === null ? null : new Date(started),
    finished_at: new Date(finished),
    updated_at: new Date(finished),
    usage: ran ? { prompt_tokens: 200 + Math.floor(random() * 2000), completion_tokens: 20 + Math.floor(random() * 400) } : null,
  };
}

async function seed(transport: Transport): Promise<number> {
  const random = rng(42);
  const now = Date.now();
  const t0 = performance.now();
  for (let from = 0; from < JOBS; from += BATCH) {
    const jobs = Array.from({ length: Math.min(BATCH, JOBS - from) }, (_, k) => historyJob(from + k, now, random));
    await transport.enqueueMany(jobs, { imported: { events: jobs.map(() => []) } });
  }
  return performance.now() - t0;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

async function time(transport: Transport, window: '1h' | '24h'): Promise<{ p50: number; p99: number; finished: number }> {
  let finished = 0;
  for (let i = 0; i < WARMUP; i++) await readAnalytics(transport, window);
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const answer = await readAnalytics(transport, window);
    samples.push(performance.now() - t0);
    finished = answer.totals.finished;
  }
  samples.sort((a, b) => a - b);
  return { p50: quantile(samples, 0.5), p99: quantile(samples, 0.99), finished };
}

async function bench(name: string, transport: Transport): Promise<string[]> {
  const seedMs = await seed(transport);
  const rows: string[] = [];
  for (const window of ['1h', '24h'] as const) {
    const t = await time(transport, window);
    rows.push(`| ${name} | ${window} | ${t.finished.toLocaleString('en-US')} | ${t.p50.toFixed(2)} | ${t.p99.toFixed(2)} | ${(seedMs / 1000).toFixed(1)} s |`);
  }
  return rows;
}

const rows: string[] = [];
const memory = createMemoryTransport({ maxJobs: JOBS + 1000, maxBytes: 1024 * 1024 * 1024 });
await memory.init();
rows.push(...(await bench('memory', memory)));
await memory.close();

const server = await startRedis({ aof: false });
try {
  const redis = createRedisTransport({ url: server.url });
  await redis.init();
  rows.push(...(await bench('redis', redis)));
  await redis.close();
} finally {
  await removeRedis(server);
}

const redisVersion = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ').slice(0, 3).join(' ');
console.log(`Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'cpu'}); ${redisVersion}; ${JOBS.toLocaleString('en-US')} finished jobs over 24 h in ${QUEUES.length} queues; ${RUNS} runs after ${WARMUP} warm-ups\n`);
console.log('| store | window | jobs in the window | median (ms) | p99 (ms) | seeding 100k (imported) |');
console.log('|---|---|---:|---:|---:|---:|');
for (const row of rows) console.log(row);
