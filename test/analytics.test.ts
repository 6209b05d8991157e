/**
 * Analytics: the arithmetic of src/analytics.ts (buckets, percentiles, the
 * window), GET /v1/analytics (shape, validation, scope) and the Prometheus
 * families fed once from the rollups. History is seeded the way a
 * migration writes it: imported finished jobs, counted at their own minute.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { analyze, ANALYTICS_QUEUES_MAX, bucketOf, DURATION_BOUNDS_MS, DURATION_BUCKETS, minuteOf, percentile, periodOf, type Rollup } from '../src/analytics.js';
import type { Job } from '../src/job.js';
import type { Transport } from '../src/transport.js';
import { intent, newJob, uniqueQueue } from './helpers.js';
import { startServer } from './server-helpers.js';
import { Registry } from 'prom-client';
import { registerRollupMetrics } from '../src/server/metrics-rollups.js';

const CLIENT = 'analytics-client-token';
const WORKER = 'analytics-worker-token';
const ADMIN = 'analytics-admin-token';

/** A finished job as a migration hands it over: ended `agoMs` ago after waiting `waitMs` and running `runMs`. */
function ended(queue: string, status: 'done' | 'error' | 'canceled', agoMs: number, waitMs: number | null, runMs: number, usage: Job['usage'] = null): Job {
  const finished = Date.now() - agoMs;
  const started = waitMs === null ? null : finished - runMs;
  const created = (started ?? finished) - (waitMs ?? 0);
  return {
    ...newJob(queue),
    status,
    result: status === 'done' ? intent : null,
    created_at: new Date(created),
    run_at: new Date(created),
    started_at: started === null ? null : new Date(started),
    finished_at: new Date(finished),
    updated_at: new Date(finished),
    usage,
  };
}

const CLI = fileURLToPath(new URL('../dist/src/cli/index.js', import.meta.url));

/** The built CLI against a server, as a user runs it (a failing run resolves with its exit code). */
async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, REASONQ_LOG_LEVEL: 'warn', ...env }, timeout: 15_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function seed(store: Transport, jobs: Job[]): Promise<void> {
  await store.enqueueMany(jobs, { imported: { events: jobs.map(() => []) } });
}

describe('analytics', () => {
  describe('src/analytics.ts', () => {
    it('buckets by upper bound, with an overflow bucket', () => {
      assert.equal(bucketOf(0), 0);
      assert.equal(bucketOf(10), 0);
      assert.equal(bucketOf(11), 1);
      assert.equal(bucketOf(60_000), DURATION_BOUNDS_MS.indexOf(60_000));
      assert.equal(bucketOf(3_600_001), DURATION_BUCKETS - 1);
    });

    it('estimates percentiles by linear interpolation inside the bucket', () => {
      const b = new Array<number>(DURATION_BUCKETS).fill(0);
      assert.equal(percentile(b, 0.5), null);
      b[3] = 10; // ten in (50, 100]
      assert.equal(percentile(b, 0.5), 75);
      assert.equal(percentile(b, 0.9), 95);
      b[DURATION_BUCKETS - 1] = 10; // ten past an hour
      assert.equal(percentile(b, 0.99), 3_600_000, 'past the last bound the answer is that bound');
      assert.equal(percentile(b, 0.25), 75);
    });

    it('an empty window has every point, zeros and nulls; rollups outside it are left out', () => {
      const now = Date.parse('2026-12-01T10:30:20Z');
      const far: Rollup = { queue: 'q', at: new Date(periodOf(now - 2 * 3_600_000, 900_000)), step_ms: 900_000, done: 5, error: 0, canceled: 0, wait: new Array<number>(DURATION_BUCKETS).fill(0), wait_sum_ms: 0, run: new Array<number>(DURATION_BUCKETS).fill(0), run_sum_ms: 0, prompt_tokens: 0, completion_tokens: 0 };
      const a = analyze([far], '1h', now);
      assert.equal(a.series.length, 60);
      assert.equal(a.to, '2026-12-01T10:31:00.000Z');
      assert.equal(a.from, '2026-12-01T09:31:00.000Z');
      assert.equal(a.series[0]!.at, a.from);
      assert.deepEqual(Object.keys(a.queues), []);
      assert.equal(a.totals.finished, 0);
      assert.equal(a.totals.failure_rate, null);
      assert.deepEqual(a.totals.wait_ms, { count: 0, mean: null, p50: null, p90: null, p99: null });
      assert.equal(a.series[59]!.wait_p50_ms, null);
      const day = analyze([far], '24h', now);
      assert.equal(day.series.length, 96);
      assert.equal(day.step_ms, 900_000);
      assert.equal(day.to, '2026-12-01T10:45:00.000Z');
      assert.equal(day.totals.done, 5);
      assert.equal(day.series[Math.floor((far.at.getTime() - Date.parse(day.from)) / 900_000)]!.done, 5);
      assert.equal(analyze([{ ...far, at: new Date(minuteOf(now)) }], '1h', now).totals.done, 0, 'a quarter-hour rollup is not read for the hour');
    });

    it('details the busiest ANALYTICS_QUEUES_MAX queues, counts the rest in the totals and says how many were left out', () => {
      const now = Date.parse('2026-12-01T10:30:20Z');
      const at = new Date(minuteOf(now) - 60_000);
      const many: Rollup[] = Array.from({ length: ANALYTICS_QUEUES_MAX + 50 }, (_, i) => ({ queue: `q${String(i).padStart(3, '0')}`, at, step_ms: 60_000, done: i + 1, error: 0, canceled: 0, wait: new Array<number>(DURATION_BUCKETS).fill(0), wait_sum_ms: 0, run: new Array<number>(DURATION_BUCKETS).fill(0), run_sum_ms: 0, prompt_tokens: 0, completion_tokens: 0 }));
      const a = analyze(many, '1h', now);
      assert.equal(Object.keys(a.queues).length, ANALYTICS_QUEUES_MAX);
      assert.equal(a.queues_omitted, 50);
      assert.equal(a.queues.q000, undefined, 'the quietest queue is left out');
      assert.equal(a.queues.q149!.done, 150, 'the busiest is in');
      assert.equal(a.totals.done, ((ANALYTICS_QUEUES_MAX + 50) * (ANALYTICS_QUEUES_MAX + 51)) / 2, 'the totals count every queue');
    });
  });

  describe('GET /v1/analytics', () => {
    it('answers the window from the store: totals, per queue, a series of every step', async () => {
      const { store, url } = await startServer({ tokens: { client: [CLIENT], worker: [WORKER] } });
      const q = uniqueQueue('an');
      const other = uniqueQueue('an-other');
      await seed(store, [
        ended(q, 'done', 10 * 60_000, 200, 1_500, { prompt_tokens: 300, completion_tokens: 40 }),
        ended(q, 'done', 11 * 60_000, 300, 2_000, { prompt_tokens: 100, completion_tokens: 10 }),
        ended(q, 'error', 12 * 60_000, 400, 20_000),
        ended(q, 'canceled', 13 * 60_000, null, 0),
        ended(q, 'done', 5 * 3_600_000, 100, 100),
        ended(other, 'done', 20 * 60_000, 50, 50),
      ]);
      const res = await fetch(`${url}/v1/analytics?window=1h&queue=${q}`, { headers: { authorization: `Bearer ${CLIENT}` } });
      assert.equal(res.status, 200);
      const body = (await res.json()) as Record<string, unknown> & { totals: Record<string, unknown>; queues: Record<string, Record<string, unknown>>; series: Record<string, unknown>[] };
      assert.deepEqual(Object.keys(body).sort(), ['from', 'queues', 'queues_omitted', 'series', 'step_ms', 'to', 'totals', 'window']);
      assert.equal(body.window, '1h');
      assert.equal(body.step_ms, 60_000);
      assert.equal(Date.parse(body.to as string) - Date.parse(body.from as string), 3_600_000);
      assert.deepEqual(Object.keys(body.queues), [q], 'queue= keeps one queue');
      assert.deepEqual(Object.keys(body.totals).sort(), ['canceled', 'done', 'error', 'failure_rate', 'finished', 'run_ms', 'throughput_per_min', 'usage', 'wait_ms']);
      assert.deepEqual(body.totals, body.queues[q]);
      const t = body.totals as { finished: number; done: number; error: number; canceled: number; throughput_per_min: number; failure_rate: number; wait_ms: Record<string, number>; run_ms: Record<string, number>; usage: unknown };
      assert.deepEqual([t.finished, t.done, t.error, t.canceled], [4, 2, 1, 1], 'the job of five hours ago is not in the hour');
      assert.equal(t.throughput_per_min, Math.round((4 / 60) * 1000) / 1000);
      assert.equal(t.failure_rate, 1 / 3);
      assert.deepEqual(Object.keys(t.wait_ms).sort(), ['count', 'mean', 'p50', 'p90', 'p99']);
      assert.equal(t.wait_ms.count, 3);
      assert.equal(t.wait_ms.mean, 300);
      assert.equal(t.run_ms.count, 3);
      assert.ok(t.run_ms.p99! > 10_000 && t.run_ms.p99! <= 30_000, `the 20 s run is the p99 (${t.run_ms.p99})`);
      assert.deepEqual(t.usage, { prompt_tokens: 400, completion_tokens: 50 });
      assert.equal(body.series.length, 60);
      assert.deepEqual(Object.keys(body.series[0]!).sort(), ['at', 'canceled', 'completion_tokens', 'done', 'error', 'prompt_tokens', 'run_p50_ms', 'run_p90_ms', 'wait_p50_ms', 'wait_p90_ms']);
      const at10 = body.series.find((p) => p.at === new Date(minuteOf(Date.now() - 10 * 60_000)).toISOString())!;
      assert.equal(at10.done, 1);
      assert.equal(at10.prompt_tokens, 300);

      const day = (await (await fetch(`${url}/v1/analytics?window=24h`, { headers: { authorization: `Bearer ${CLIENT}` } })).json()) as { step_ms: number; series: unknown[]; queues: Record<string, { finished: number }> };
      assert.equal(day.step_ms, 900_000);
      assert.equal(day.series.length, 96);
      assert.equal(day.queues[q]?.finished, 5);
      assert.equal(day.queues[other]?.finished, 1);
      const plain = (await (await fetch(`${url}/v1/analytics`, { headers: { authorization: `Bearer ${CLIENT}` } })).json()) as { window: string };
      assert.equal(plain.window, '1h', 'the window defaults to 1h');
    });

    it('validates the query strictly and needs the client scope', async () => {
      const { url } = await startServer({ tokens: { client: [CLIENT], worker: [WORKER] } });
      const as = (token: string | null, query: string) => fetch(`${url}/v1/analytics${query}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
      const bad = await as(CLIENT, '?window=2h');
      assert.equal(bad.status, 400);
      assert.match(((await bad.json()) as { error: { message: string } }).error.message, /window must be 1h or 24h/);
      assert.equal((await as(CLIENT, '?window=1h&limit=5')).status, 400, 'an unknown key is refused');
      assert.equal((await as(CLIENT, '?queue=no%20spaces')).status, 400);
      assert.equal((await as(null, '?window=1h')).status, 401);
      assert.equal((await as(WORKER, '?window=1h')).status, 403);
      assert.equal((await as(CLIENT, '?window=24h')).status, 200);
    });
  });

  describe('GET /metrics: wait and run histograms from the rollups', () => {
    it('observes each closed minute once, per queue: histograms, endings and tokens; a server starts from 0', async () => {
      const { store, url } = await startServer({ token: ADMIN });
      const q = uniqueQueue('an-metrics');
      await seed(store, [
        ended(q, 'done', 10 * 60_000, 40, 700, { prompt_tokens: 12, completion_tokens: 5 }),
        ended(q, 'error', 12 * 60_000, 4_000, 90_000),
        ended(q, 'canceled', 13 * 60_000, null, 0),
        ended(q, 'done', 2 * 3_600_000, 40, 700), // before the first scrape's hour
      ]);
      const sample = (text: string, name: string, labels: string) => {
        const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
        return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
      };
      // The server's first scrape marks where it starts: history before it is not added at once (a restart is a counter reset, not a spike).
      const served = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
      assert.match(served, /^# TYPE reasonq_job_wait_seconds histogram$/m);
      assert.equal(sample(served, 'reasonq_jobs_ended_total', `queue="${q}",status="done"`), undefined);
      // The same feed told to take the last hour at its first scrape: each closed minute observed once.
      const registry = new Registry();
      registerRollupMetrics(registry, store, (queue) => queue, { backfillMs: 3_600_000 });
      const scrape = () => registry.metrics();
      const first = await scrape();
      assert.match(first, /^# TYPE reasonq_job_wait_seconds histogram$/m);
      assert.match(first, /^# TYPE reasonq_job_run_seconds histogram$/m);
      assert.equal(sample(first, 'reasonq_job_wait_seconds_count', `queue="${q}"`), 2);
      assert.equal(sample(first, 'reasonq_job_wait_seconds_sum', `queue="${q}"`), 4.04);
      assert.equal(sample(first, 'reasonq_job_wait_seconds_bucket', `queue="${q}",le="0.05"`), 1);
      assert.equal(sample(first, 'reasonq_job_run_seconds_bucket', `queue="${q}",le="60"`), 1);
      assert.equal(sample(first, 'reasonq_job_run_seconds_bucket', `queue="${q}",le="120"`), 2);
      assert.equal(sample(first, 'reasonq_job_run_seconds_bucket', `queue="${q}",le="+Inf"`), 2);
      assert.equal(sample(first, 'reasonq_jobs_ended_total', `queue="${q}",status="done"`), 1);
      assert.equal(sample(first, 'reasonq_jobs_ended_total', `queue="${q}",status="error"`), 1);
      assert.equal(sample(first, 'reasonq_jobs_ended_total', `queue="${q}",status="canceled"`), 1);
      assert.equal(sample(first, 'reasonq_job_tokens_total', `queue="${q}",kind="prompt"`), 12);
      const second = await scrape();
      assert.equal(sample(second, 'reasonq_job_wait_seconds_count', `queue="${q}"`), 2, 'a minute observed once is not observed again');
      assert.equal(sample(second, 'reasonq_jobs_ended_total', `queue="${q}",status="done"`), 1);
    });
  });

  describe('reasonq stats', function () {
    this.timeout(30_000);
    it('prints the counts and the window summary (--window 24h), both in --json', async () => {
      const { store, url } = await startServer({ tokens: { client: [CLIENT] } });
      const q = uniqueQueue('an-cli');
      await seed(store, [ended(q, 'done', 5 * 60_000, 100, 2_000, { prompt_tokens: 9, completion_tokens: 2 }), ended(q, 'error', 3 * 3_600_000, 100, 2_000)]);
      const env = { REASONING_TRANSPORT: 'http', REASONING_API_URL: url, REASONQ_CLIENT_TOKEN: CLIENT };
      const hour = await cli(['stats'], env);
      assert.equal(hour.code, 0, hour.stderr);
      assert.match(hour.stdout, new RegExp(`^${q}\\s+0\\s+0\\s+0\\s+1\\s+1\\s+0$`, 'm'), 'the counts as before');
      assert.match(hour.stdout, /^last 1h \(.+\): 1 finished \(1 done, 0 error, 0 canceled\)/m);
      assert.match(hour.stdout, /^ {2}tokens 9 prompt, 2 completion$/m);
      const day = await cli(['stats', '--window', '24h', '--json'], env);
      assert.equal(day.code, 0, day.stderr);
      const body = JSON.parse(day.stdout) as { totals: { done: number }; analytics: { window: string; queues: Record<string, { finished: number; failure_rate: number }> } };
      assert.equal(body.totals.done, 1, 'the counts keep their place in the JSON');
      assert.equal(body.analytics.window, '24h');
      assert.equal(body.analytics.queues[q]?.finished, 2);
      assert.equal(body.analytics.queues[q]?.failure_rate, 0.5);
      const bad = await cli(['stats', '--window', '2h'], env);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--window must be 1h or 24h/);
    });
  });
});
