/**
 * Analytics from the store: what a finished job adds to the numbers
 * (its rollup), and how rollups add up to an answer (`GET /v1/analytics`,
 * `reasonq stats`, the Prometheus histograms). The one place that defines
 * both; the stores only add the increments decided here (redis: the same
 * rules in lua/lib.lua `rollup`, its bucket bounds generated from
 * DURATION_BOUNDS_MS when the scripts load).
 *
 * Glossary
 * - ending: a job reaching done, error or canceled. A retry (a run that
 *   fails and is queued again) is not an ending; a job retried by hand
 *   and ended again ends twice. `moved` is not an ending (the job ends
 *   where it went).
 * - rollup: the endings of one queue in one period of `finished_at` (a
 *   minute, and a quarter of an hour: ROLLUP_STEPS_MS), as counters: per
 *   status, the wait and run times in fixed buckets (and their sums), the
 *   model tokens of the jobs' `usage`. Written with the terminal state, so
 *   the cost of an answer depends on the window and the number of queues,
 *   never on how many jobs there were. Each ending adds to one rollup of
 *   each step: the hour is read from 60 minute rollups per queue, the day
 *   from 96 quarter-hour ones (not 1,440 minutes: 15 times less to read,
 *   scripts/bench/analytics.ts), for twice the counters written.
 * - wait: `started_at − max(created_at, run_at)` of the run that ended the
 *   job: from when that run was due (enqueue, or the retry's backoff
 *   deadline) to when it started. run: `finished_at − started_at`.
 *   A job that ended without running (canceled while queued) counts in
 *   `canceled` and its tokens, not in wait or run.
 * - percentiles are estimated from the bucket counts: the bucket holding
 *   the rank, then linear interpolation inside it (the lower bound of the
 *   first bucket is 0; past the last bound the answer is that bound).
 */
import type { Job } from './job.js';

/** Upper bounds of the duration buckets (ms); one overflow bucket follows. */
export const DURATION_BOUNDS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, 900_000, 3_600_000] as const;
/** Buckets per duration: one per bound, plus the overflow. */
export const DURATION_BUCKETS = DURATION_BOUNDS_MS.length + 1;
export const MINUTE_MS = 60_000;
/** The periods rollups are kept by: each ending counts in one of each (the steps of the two windows). */
export const ROLLUP_STEPS_MS = [60_000, 900_000] as const;
export type RollupStep = (typeof ROLLUP_STEPS_MS)[number];
/** Rollups are kept a day and an hour (the longest window plus a margin); older ones are dropped. */
export const ROLLUP_KEEP_MS = 25 * 3_600_000;

export const ANALYTICS_WINDOWS = { '1h': { span_ms: 3_600_000, step_ms: 60_000 }, '24h': { span_ms: 86_400_000, step_ms: 900_000 } } as const;
export type AnalyticsWindow = keyof typeof ANALYTICS_WINDOWS;

/** The endings of one queue in one period (a minute or a quarter of an hour). */
export interface Rollup {
  queue: string;
  /** start of the period of `finished_at` */
  at: Date;
  /** its length: one of ROLLUP_STEPS_MS */
  step_ms: number;
  done: number;
  error: number;
  canceled: number;
  /** wait times per bucket (DURATION_BOUNDS_MS, then overflow) */
  wait: number[];
  wait_sum_ms: number;
  run: number[];
  run_sum_ms: number;
  prompt_tokens: number;
  completion_tokens: number;
}

/**
 * How a rollup is stored on every store: flat counters by field name,
 * each ending adding to some of them (memory: a record; redis: a hash, HINCRBY;
 * mongo: a document, `$inc`):
 * `done` `error` `canceled`; `w<i>` / `r<i>` the wait / run bucket i;
 * `ws` / `rs` their sums (ms); `pt` / `ct` prompt and completion tokens.
 */
export type RollupFields = Record<string, number>;

/** The bucket of a duration (ms): the first bound it does not pass, else the overflow. */
export function bucketOf(ms: number): number {
  for (let i = 0; i < DURATION_BOUNDS_MS.length; i++) if (ms <= DURATION_BOUNDS_MS[i]!) return i;
  return DURATION_BOUNDS_MS.length;
}

/** Start of the period of `step` (default: a minute) holding an instant (ms). */
export function periodOf(at: Date | number, step: number = MINUTE_MS): number {
  const ms = typeof at === 'number' ? at : at.getTime();
  return ms - (((ms % step) + step) % step);
}

/** Start of the minute of an instant (ms). */
export function minuteOf(at: Date | number): number {
  return periodOf(at, MINUTE_MS);
}

export type EndedJob = Pick<Job, 'status' | 'created_at' | 'run_at' | 'started_at' | 'finished_at'> & { usage?: Job['usage'] | undefined };

/**
 * What one ending adds to each rollup of its queue and periods. `ran`: the
 * job ended from a run (processing → done, error, canceled) rather than
 * while queued; for an imported job, whether it has a `started_at`.
 * Null for a job that is not finished.
 */
export function endingFields(job: EndedJob, ran: boolean): RollupFields | null {
  if (job.status !== 'done' && job.status !== 'error' && job.status !== 'canceled') return null;
  if (!job.finished_at) return null;
  const fields: RollupFields = { [job.status]: 1 };
  if (ran && job.started_at) {
    const due = Math.max(job.created_at.getTime(), job.run_at.getTime());
    const wait = Math.max(0, job.started_at.getTime() - due);
    const run = Math.max(0, job.finished_at.getTime() - job.started_at.getTime());
    fields[`w${bucketOf(wait)}`] = 1;
    fields.ws = wait;
    fields[`r${bucketOf(run)}`] = 1;
    fields.rs = run;
  }
  if (job.usage) {
    if (job.usage.prompt_tokens) fields.pt = job.usage.prompt_tokens;
    if (job.usage.completion_tokens) fields.ct = job.usage.completion_tokens;
  }
  return fields;
}

/** Add `more` into `into` (field by field). */
export function addFields(into: RollupFields, more: RollupFields): RollupFields {
  for (const [k, v] of Object.entries(more)) into[k] = (into[k] ?? 0) + v;
  return into;
}

/** A rollup from its stored counters (strings from redis are numbers too; unknown fields are ignored). */
export function rollupFromFields(queue: string, at: number, stepMs: number, fields: Readonly<Record<string, unknown>>): Rollup {
  const n = (k: string) => Number(fields[k] ?? 0) || 0;
  return {
    queue,
    at: new Date(at),
    step_ms: stepMs,
    done: n('done'),
    error: n('error'),
    canceled: n('canceled'),
    wait: Array.from({ length: DURATION_BUCKETS }, (_, i) => n(`w${i}`)),
    wait_sum_ms: n('ws'),
    run: Array.from({ length: DURATION_BUCKETS }, (_, i) => n(`r${i}`)),
    run_sum_ms: n('rs'),
    prompt_tokens: n('pt'),
    completion_tokens: n('ct'),
  };
}

// -- the answer -----------------------------------------------------------------

export interface DurationSummary {
  count: number;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

export interface Summary {
  finished: number;
  done: number;
  error: number;
  canceled: number;
  throughput_per_min: number;
  /** error / (done + error); null when neither */
  failure_rate: number | null;
  wait_ms: DurationSummary;
  run_ms: DurationSummary;
  usage: { prompt_tokens: number; completion_tokens: number };
}

export interface SeriesPoint {
  /** start of the step */
  at: string;
  done: number;
  error: number;
  canceled: number;
  wait_p50_ms: number | null;
  wait_p90_ms: number | null;
  run_p50_ms: number | null;
  run_p90_ms: number | null;
  prompt_tokens: number;
  completion_tokens: number;
}

/** The answer of `GET /v1/analytics`. */
export interface Analytics {
  window: AnalyticsWindow;
  from: string;
  to: string;
  step_ms: number;
  totals: Summary;
  /** per queue, the ANALYTICS_QUEUES_MAX queues that ended the most (the totals count every queue; `queue=` asks for any one) */
  queues: Record<string, Summary>;
  /** queues left out of `queues` (0 unless more than ANALYTICS_QUEUES_MAX ended something) */
  queues_omitted: number;
  /** one point per step, oldest first, empty steps included */
  series: SeriesPoint[];
}

/**
 * The minutes a window covers at `now`: `to` is the end of the step holding
 * `now` (the current step, still filling, is the last point), `from` one
 * span earlier.
 */
export function windowRange(window: AnalyticsWindow, now: number): { from: number; to: number } {
  const { span_ms, step_ms } = ANALYTICS_WINDOWS[window];
  const to = Math.floor(now / step_ms) * step_ms + step_ms;
  return { from: to - span_ms, to };
}

/** Estimate a percentile (0..1) from bucket counts (see the header). */
export function percentile(buckets: readonly number[], p: number): number | null {
  const count = buckets.reduce((a, b) => a + b, 0);
  if (count === 0) return null;
  const rank = p * count;
  let below = 0;
  for (let i = 0; i < buckets.length; i++) {
    const inBucket = buckets[i]!;
    if (inBucket > 0 && below + inBucket >= rank) {
      const lower = i === 0 ? 0 : DURATION_BOUNDS_MS[i - 1]!;
      if (i >= DURATION_BOUNDS_MS.length) return lower;
      const upper = DURATION_BOUNDS_MS[i]!;
      return Math.round(lower + ((upper - lower) * Math.max(0, rank - below)) / inBucket);
    }
    below += inBucket;
  }
  return DURATION_BOUNDS_MS[DURATION_BOUNDS_MS.length - 1]!;
}

/** Sums of rollups, before they become a Summary or a point. */
type Acc = Omit<Rollup, 'queue' | 'at' | 'step_ms'>;

const emptyAcc = (): Acc => ({ done: 0, error: 0, canceled: 0, wait: new Array<number>(DURATION_BUCKETS).fill(0), wait_sum_ms: 0, run: new Array<number>(DURATION_BUCKETS).fill(0), run_sum_ms: 0, prompt_tokens: 0, completion_tokens: 0 });

function add(acc: Acc, r: Rollup): void {
  acc.done += r.done;
  acc.error += r.error;
  acc.canceled += r.canceled;
  acc.wait_sum_ms += r.wait_sum_ms;
  acc.run_sum_ms += r.run_sum_ms;
  acc.prompt_tokens += r.prompt_tokens;
  acc.completion_tokens += r.completion_tokens;
  for (let i = 0; i < DURATION_BUCKETS; i++) {
    acc.wait[i]! += r.wait[i] ?? 0;
    acc.run[i]! += r.run[i] ?? 0;
  }
}

function duration(buckets: number[], sum: number): DurationSummary {
  const count = buckets.reduce((a, b) => a + b, 0);
  if (count === 0) return { count: 0, mean: null, p50: null, p90: null, p99: null };
  return { count, mean: Math.round(sum / count), p50: percentile(buckets, 0.5), p90: percentile(buckets, 0.9), p99: percentile(buckets, 0.99) };
}

function summary(acc: Acc, spanMinutes: number): Summary {
  const finished = acc.done + acc.error + acc.canceled;
  return {
    finished,
    done: acc.done,
    error: acc.error,
    canceled: acc.canceled,
    throughput_per_min: Math.round((finished / spanMinutes) * 1000) / 1000,
    failure_rate: acc.done + acc.error === 0 ? null : acc.error / (acc.done + acc.error),
    wait_ms: duration(acc.wait, acc.wait_sum_ms),
    run_ms: duration(acc.run, acc.run_sum_ms),
    usage: { prompt_tokens: acc.prompt_tokens, completion_tokens: acc.completion_tokens },
  };
}

/**
 * The answer for a window at `now` from the rollups of (at least) its
 * periods of its step; rollups of another step, outside the window, or of
 * another queue than `queue` when one is given, are left out.
 */
/** Queues an analytics answer details at most (the busiest). */
export const ANALYTICS_QUEUES_MAX = 100;

export function analyze(rollups: readonly Rollup[], window: AnalyticsWindow, now: number, queue?: string): Analytics {
  const { span_ms, step_ms } = ANALYTICS_WINDOWS[window];
  const { from, to } = windowRange(window, now);
  const totals = emptyAcc();
  const perQueue = new Map<string, Acc>();
  const steps = Array.from({ length: span_ms / step_ms }, emptyAcc);
  for (const r of rollups) {
    const t = r.at.getTime();
    if (r.step_ms !== step_ms || t < from || t >= to || (queue !== undefined && r.queue !== queue)) continue;
    add(totals, r);
    let q = perQueue.get(r.queue);
    if (!q) perQueue.set(r.queue, (q = emptyAcc()));
    add(q, r);
    add(steps[Math.floor((t - from) / step_ms)]!, r);
  }
  const spanMinutes = span_ms / MINUTE_MS;
  const queues = Object.create(null) as Record<string, Summary>;
  // Queue names are the callers': an answer holds the busiest ANALYTICS_QUEUES_MAX, whatever number of queues ended something.
  const shown = [...perQueue.entries()].sort(([, a], [, b]) => b.done + b.error + b.canceled - (a.done + a.error + a.canceled)).slice(0, ANALYTICS_QUEUES_MAX);
  for (const [name] of shown.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) queues[name] = summary(perQueue.get(name)!, spanMinutes);
  return {
    window,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    step_ms,
    totals: summary(totals, spanMinutes),
    queues,
    queues_omitted: perQueue.size - shown.length,
    series: steps.map((s, i) => ({
      at: new Date(from + i * step_ms).toISOString(),
      done: s.done,
      error: s.error,
      canceled: s.canceled,
      wait_p50_ms: percentile(s.wait, 0.5),
      wait_p90_ms: percentile(s.wait, 0.9),
      run_p50_ms: percentile(s.run, 0.5),
      run_p90_ms: percentile(s.run, 0.9),
      prompt_tokens: s.prompt_tokens,
      completion_tokens: s.completion_tokens,
    })),
  };
}
