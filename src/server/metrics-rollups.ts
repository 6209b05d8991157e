/**
 * Prometheus histograms of wait and run time, and counters of endings and
 * tokens, fed from the store's rollups (src/analytics.ts), never from a
 * worker: what every worker of every process ended, counted once by the
 * store. Each closed minute is observed exactly once per server process:
 * the feed remembers the last minute it observed and, at each scrape, adds
 * the minutes closed since (a minute is closed CLOSE_GRACE_MS after its end,
 * for clocks that differ a little). The first scrape only marks where the
 * process starts (`backfillMs` 0, the server's choice): its counters start
 * at 0 like any process's, so a restart reads to Prometheus as a counter
 * reset, not as an hour of endings landing in one interval. Several replicas each observe every minute: aggregate them with
 * `max by (queue, le)` (or scrape one), not `sum`. An ending written into
 * a minute the feed has passed (a migration importing history) is in
 * /v1/analytics but not here.
 */
import type { Registry } from 'prom-client';
import { DURATION_BOUNDS_MS, DURATION_BUCKETS, MINUTE_MS, minuteOf, ROLLUP_KEEP_MS, type Rollup } from '../analytics.js';
import type { Transport } from '../transport.js';

/** A minute counts as closed this long after its end. */
const CLOSE_GRACE_MS = 5_000;

interface QueueTotals {
  wait: number[];
  wait_sum_ms: number;
  run: number[];
  run_sum_ms: number;
  ended: { done: number; error: number; canceled: number };
  tokens: { prompt: number; completion: number };
}

type Sample = { metricName?: string; labels: Record<string, string | number>; value: number };

/**
 * Register the four families on `registry`; nothing is read before a scrape.
 * `backfillMs`: how much closed history the first scrape observes (0: none,
 * what a server uses; tests observe seeded minutes with it).
 */
export function registerRollupMetrics(registry: Registry, transport: Transport, queueLabel: (queue: string) => string, { backfillMs = 0 } = {}): void {
  const totals = new Map<string, QueueTotals>();
  let fedUntil: number | null = null;
  let feeding: Promise<void> | null = null;

  const observe = (r: Rollup) => {
    const label = queueLabel(r.queue);
    let t = totals.get(label);
    if (!t) {
      t = { wait: new Array<number>(DURATION_BUCKETS).fill(0), wait_sum_ms: 0, run: new Array<number>(DURATION_BUCKETS).fill(0), run_sum_ms: 0, ended: { done: 0, error: 0, canceled: 0 }, tokens: { prompt: 0, completion: 0 } };
      totals.set(label, t);
    }
    for (let i = 0; i < DURATION_BUCKETS; i++) {
      t.wait[i]! += r.wait[i] ?? 0;
      t.run[i]! += r.run[i] ?? 0;
    }
    t.wait_sum_ms += r.wait_sum_ms;
    t.run_sum_ms += r.run_sum_ms;
    t.ended.done += r.done;
    t.ended.error += r.error;
    t.ended.canceled += r.canceled;
    t.tokens.prompt += r.prompt_tokens;
    t.tokens.completion += r.completion_tokens;
  };

  // One feed at a time: the four families of a scrape share it.
  const feed = (): Promise<void> => {
    feeding ??= (async () => {
      if (!transport.rollups) return;
      const closedEnd = minuteOf(Date.now() - CLOSE_GRACE_MS);
      const start = Math.max(fedUntil ?? closedEnd - backfillMs, closedEnd - ROLLUP_KEEP_MS);
      if (start >= closedEnd) return;
      const rollups = await transport.rollups(new Date(start), new Date(closedEnd), MINUTE_MS);
      for (const r of rollups) if (r.step_ms === MINUTE_MS && r.at.getTime() >= start && r.at.getTime() < closedEnd) observe(r);
      fedUntil = closedEnd;
    })().finally(() => (feeding = null));
    return feeding;
  };

  const histogram = (name: string, help: string, pick: (t: QueueTotals) => { buckets: number[]; sum_ms: number }) => ({
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    async get() {
      await feed();
      const values: Sample[] = [];
      for (const [queue, t] of totals) {
        const { buckets, sum_ms } = pick(t);
        let cumulative = 0;
        for (let i = 0; i < DURATION_BOUNDS_MS.length; i++) {
          cumulative += buckets[i]!;
          values.push({ metricName: `${name}_bucket`, labels: { queue, le: DURATION_BOUNDS_MS[i]! / 1000 }, value: cumulative });
        }
        cumulative += buckets[DURATION_BOUNDS_MS.length]!;
        values.push({ metricName: `${name}_bucket`, labels: { queue, le: '+Inf' }, value: cumulative });
        values.push({ metricName: `${name}_sum`, labels: { queue }, value: sum_ms / 1000 });
        values.push({ metricName: `${name}_count`, labels: { queue }, value: cumulative });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  });
  const counter = (name: string, help: string, label: string, pick: (t: QueueTotals) => Record<string, number>) => ({
    name,
    help,
    type: 'counter',
    aggregator: 'sum',
    async get() {
      await feed();
      const values: Sample[] = [];
      for (const [queue, t] of totals) for (const [k, v] of Object.entries(pick(t))) values.push({ labels: { queue, [label]: k }, value: v });
      return { name, help, type: 'counter', aggregator: 'sum', values };
    },
  });

  const families = [
    histogram('reasonq_job_wait_seconds', 'Wait of the run that ended a job (due to started), from the store rollups, each closed minute once', (t) => ({ buckets: t.wait, sum_ms: t.wait_sum_ms })),
    histogram('reasonq_job_run_seconds', 'Run time of the run that ended a job, from the store rollups, each closed minute once', (t) => ({ buckets: t.run, sum_ms: t.run_sum_ms })),
    counter('reasonq_jobs_ended_total', 'Jobs that ended, by status, from the store rollups, each closed minute once', 'status', (t) => t.ended),
    counter('reasonq_job_tokens_total', 'Model tokens of the jobs that ended (their usage), from the store rollups', 'kind', (t) => t.tokens),
  ];
  // prom-client takes any object with a name and an async get() as a metric.
  for (const family of families) registry.registerMetric(family as unknown as Parameters<Registry['registerMetric']>[0]);
}


