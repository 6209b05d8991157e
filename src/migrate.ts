/**
 * Move a live queue from one store to another (MongoDB → Redis, or back)
 * while workers and clients keep running on both (README, "Migrating").
 *
 * A job moves in three steps, each atomic per job and safe to repeat:
 * 1. `take`: the source marks it `moving` (no worker can claim it there,
 *    nobody retry it), and hands over the job and its event stream;
 * 2. `enqueueMany(…, {imported})`: the target writes it as it was, its
 *    place in line (priority, then batch order) and stream ids kept; a job
 *    the target has already (an earlier, interrupted run) is left as it is;
 * 3. `finish`: the source marks it `moved` (where it went: `moved_to`).
 * Between 1 and 2 the job is runnable nowhere; from 2 on only in the
 * target. A migrator killed anywhere leaves jobs `moving`; the next run
 * takes them first (`take('moving')`) and carries them through 2 and 3.
 * A running job is never taken: it finishes where it runs, or is requeued
 * by the source's sweep once its lease has expired, and then moves.
 *
 * Glossary
 * - source / target: the store jobs leave / go to.
 * - pass: one round over the queues, taking until nothing is left; the run
 *   repeats passes while jobs still run in the source (unless told not to).
 * - conflict: the target holds another job under the same id (a client
 *   wrote it there directly): that job stays in the source, and is reported.
 */
import { sleep } from './backoff.js';
import { ReasonqError, TransportError } from './errors.js';
import { FINISHED_STATUSES, IMMUTABLE_FIELDS, type Job } from './job.js';
import type { Logger } from './logger.js';
import { EMPTY_COUNTS, type MoveSource, type MovingJob, type QueueCounts, type Transport } from './transport.js';

export interface MigrateOptions {
  from: Transport;
  to: Transport;
  /** recorded in the source's markers (`moved_to`); default the target's name */
  toName?: string | undefined;
  /** queues to move; default every queue the source has, looked up at every pass */
  queues?: string[] | undefined;
  /** move finished jobs too (their history and events), retention kept */
  includeFinished?: boolean | undefined;
  /** count what would move; change nothing (and verify nothing: `verifyMigration` compares) */
  dryRun?: boolean | undefined;
  /** jobs per step (default 500; 100 on FerretDB) */
  batch?: number | undefined;
  /** keep passing while jobs run in the source, so that their retries move too (default true) */
  waitRunning?: boolean | undefined;
  /** pause between passes while jobs run in the source (ms, default 1000) */
  pollMs?: number | undefined;
  /** jobs compared field by field at the end (default 100; 0: counts only) */
  verifySample?: number | undefined;
  /** skip the verification at the end */
  noVerify?: boolean | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: MigrateProgress) => void) | undefined;
  logger?: Logger | undefined;
}

export interface MigrateProgress {
  /** jobs moved so far in this run (recovered ones included) */
  moved: number;
  /** jobs left to move as of the last count (queued, moving, and finished with includeFinished) */
  remaining: number;
  /** jobs running in the source that the run waits for */
  running: number;
  phase: 'recovering' | 'moving' | 'waiting' | 'verifying' | 'done';
}

export interface QueueMoveCounts {
  /** jobs written to the target and marked moved */
  moved: number;
  /** of those, jobs an interrupted run had left `moving` */
  recovered: number;
  /** of those, jobs the target had already (written by an interrupted run) */
  already: number;
  /** jobs left in the source because the target holds another job with the id */
  conflicts: number;
}

export interface MigrateSummary {
  from: string;
  to: string;
  dry_run: boolean;
  /** what would move (dry run), per queue, as counted in the source */
  would_move?: Record<string, { queued: number; moving: number; finished: number; running: number }>;
  queues: Record<string, QueueMoveCounts>;
  totals: QueueMoveCounts;
  /** ids left in the source by a conflict (at most 100) */
  conflict_ids: string[];
  elapsed_ms: number;
  /** jobs moved per second */
  rate: number;
  verify: VerifyReport | null;
}

export interface VerifyOptions {
  from: Transport;
  to: Transport;
  queues?: string[] | undefined;
  /** jobs compared field by field (default 100) */
  sample?: number | undefined;
}

export interface VerifyReport {
  ok: boolean;
  /** counts per queue and status on each side */
  queues: Record<string, { source: QueueCounts; target: QueueCounts }>;
  /** jobs compared field by field */
  checked: number;
  /** what disagrees, one line each (at most 100) */
  problems: string[];
}

const DEFAULT_BATCH = 500;
/**
 * FerretDB (no atomic writes across connections, `atomicClaim: false`)
 * scans for every `$in`: a step of 1000 jobs took 40-46 s there, past the
 * store bound; 100 take about 4 s.
 */
const SLOW_STORE_BATCH = 100;
const MAX_PROBLEMS = 100;
/** Tries of a step whose outcome was unknown (a timeout) before the run fails; every step is safe to repeat. */
const STEP_TRIES = 3;

function movesOf(t: Transport): MoveSource {
  if (!t.moves) throw new TransportError(`the ${t.name} transport cannot be migrated from (migrate runs against the stores, not through the HTTP API)`, { code: 'NOT_SUPPORTED', retryable: false });
  return t.moves;
}

const zero = (): QueueMoveCounts => ({ moved: 0, recovered: 0, already: 0, conflicts: 0 });

/** The same job on both sides: what was set at enqueue agrees (a job runs on, so the rest may not). */
function sameJob(a: Job, b: Job): boolean {
  return a.id === b.id && a.queue === b.queue && a.created_at.getTime() === b.created_at.getTime();
}

/** Move the queues (see the header); resolves with what moved and the verification. */
export async function migrate(options: MigrateOptions): Promise<MigrateSummary> {
  const { from, to, signal } = options;
  const moves = movesOf(from);
  const toName = options.toName ?? to.name;
  const slow = !from.capabilities.atomicClaim || !to.capabilities.atomicClaim;
  const batch = Math.max(1, Math.min(options.batch ?? (slow ? SLOW_STORE_BATCH : DEFAULT_BATCH), 1000));
  const started = Date.now();
  const summary: MigrateSummary = { from: from.name, to: toName, dry_run: Boolean(options.dryRun), queues: {}, totals: zero(), conflict_ids: [], elapsed_ms: 0, rate: 0, verify: null };
  const progress: MigrateProgress = { moved: 0, remaining: 0, running: 0, phase: 'recovering' };
  const report = () => options.onProgress?.({ ...progress });
  const queuesNow = async () => options.queues ?? Object.keys((await retrying(() => from.stats(), signal)).queues).sort();

  if (options.dryRun) {
    const stats = await from.stats();
    summary.would_move = {};
    for (const q of await queuesNow()) {
      const c = stats.queues[q] ?? EMPTY_COUNTS;
      summary.would_move[q] = { queued: c.queued + c.delayed, moving: c.moving, finished: options.includeFinished ? c.done + c.error + c.canceled : 0, running: c.processing };
    }
    summary.elapsed_ms = Date.now() - started;
    return summary;
  }

  const counts = (q: string) => (summary.queues[q] ??= zero());
  /** ids the target holds for another job: they stay in the source (counted once) */
  const conflicted = new Set<string>();
  /** Steps 2 and 3 for jobs held `moving`; returns the conflicts, still held. */
  const carry = async (queue: string, held: MovingJob[], recovered: boolean): Promise<string[]> => {
    const replies = await retrying(() => to.enqueueMany(held.map((m) => m.job), { imported: { events: held.map((m) => m.events) } }), signal);
    const done: string[] = [];
    const conflicts: string[] = [];
    const c = counts(queue);
    const loops: string[] = [];
    replies.forEach((reply, i) => {
      const job = held[i]!.job;
      if (reply.created) done.push(job.id);
      else if (!sameJob(reply.job, job)) conflicts.push(job.id);
      else if (reply.job.status === 'moving' || reply.job.status === 'moved') loops.push(job.id);
      else {
        done.push(job.id);
        c.already += 1;
      }
    });
    await retrying(() => moves.finish(done, toName), signal);
    if (loops.length > 0) {
      // The target holds these very jobs as leaving it: it is the source, or is being migrated away itself.
      await retrying(() => moves.release([...loops, ...conflicts]), signal);
      throw new ReasonqError('MIGRATION_LOOP', `the target holds job ${loops[0]} as ${replies.find((r) => r.job.id === loops[0])!.job.status}: it is the source itself, or a migration is moving jobs out of it; those stay where they were`, { status: 409 });
    }
    const fresh = conflicts.filter((id) => !conflicted.has(id));
    for (const id of fresh) conflicted.add(id);
    c.conflicts += fresh.length;
    summary.conflict_ids.push(...fresh.slice(0, Math.max(0, 100 - summary.conflict_ids.length)));
    if (fresh.length > 0) options.logger?.warn({ queue, ids: fresh.slice(0, 10) }, 'migrate: the target holds other jobs under these ids; they stay in the source');
    c.moved += done.length;
    if (recovered) c.recovered += done.length;
    progress.moved += done.length;
    progress.remaining = Math.max(0, progress.remaining - done.length);
    report();
    return conflicts;
  };
  /**
   * Take and carry until the source has none left. Conflicts are handed
   * back once the queue is drained (handed back at once they would be
   * taken again first, their place in line being the best); held ones
   * found again by recovery are handed back at once.
   */
  const drain = async (queue: string, what: 'queued' | 'finished' | 'moving') => {
    const conflicts: string[] = [];
    try {
      for (;;) {
        if (signal?.aborted) throw signal.reason;
        const held = await retrying(() => moves.take(queue, what, batch), signal);
        if (held.length === 0) return;
        const refused = await carry(queue, held, what === 'moving');
        if (what === 'moving') await retrying(() => moves.release(refused), signal);
        else conflicts.push(...refused);
      }
    } finally {
      if (conflicts.length > 0) await retrying(() => moves.release(conflicts), undefined);
    }
  };

  // Passes until one moves nothing while nothing ran in the source when it
  // began: a job running then may end (a retry, a finished job to bring)
  // during the pass, so the pass after it looks again.
  for (let pass = 0; ; pass++) {
    const queues = await queuesNow();
    const stats = await retrying(() => from.stats(), signal);
    const count = (pick: (c: QueueCounts) => number) => queues.reduce((n, q) => n + pick(stats.queues[q] ?? EMPTY_COUNTS), 0);
    progress.remaining = count((c) => c.queued + c.delayed + c.moving + (options.includeFinished ? c.done + c.error + c.canceled : 0));
    progress.running = count((c) => c.processing);
    progress.phase = pass === 0 ? 'recovering' : 'moving';
    report();
    // Expired leases back to queued (as the source's own maintainer would), so that they move.
    await retrying(() => from.sweep(), signal);
    const before = progress.moved;
    for (const q of queues) {
      await drain(q, 'moving');
      progress.phase = 'moving';
      await drain(q, 'queued');
      if (options.includeFinished) await drain(q, 'finished');
    }
    const movedNow = progress.moved - before;
    if (options.waitRunning === false || (movedNow === 0 && progress.running === 0)) break;
    if (movedNow === 0) {
      progress.phase = 'waiting';
      report();
      await sleep(options.pollMs ?? 1000, signal);
    }
  }

  for (const c of Object.values(summary.queues)) for (const k of Object.keys(c) as (keyof QueueMoveCounts)[]) summary.totals[k] += c[k];
  if (!options.noVerify) {
    progress.phase = 'verifying';
    report();
    summary.verify = await verifyMigration({ from, to, queues: options.queues, sample: options.verifySample });
  }
  summary.elapsed_ms = Date.now() - started;
  summary.rate = summary.elapsed_ms > 0 ? Math.round((summary.totals.moved / summary.elapsed_ms) * 1000) : 0;
  progress.phase = 'done';
  report();
  return summary;
}

/** A step whose outcome may be unknown (a timeout) is repeated: every step is safe to repeat. */
async function retrying<T>(step: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      // told by the flag, not the class: the stores may come from another copy of this module graph (see fallback.ts)
      if ((error as { retryable?: unknown } | null)?.retryable !== true || attempt >= STEP_TRIES || signal?.aborted) throw error;
      await sleep(200 * attempt, signal);
    }
  }
}

const show = (v: unknown) => {
  const text = JSON.stringify(v instanceof Date ? v.toISOString() : v) ?? 'undefined';
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
};

/** JSON text with object keys sorted: two stores may hand back a payload's keys in another order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  );
}

/** The fields set at enqueue that differ between two copies of a job. */
function differences(a: Job, b: Job): string[] {
  const out: string[] = [];
  for (const field of IMMUTABLE_FIELDS) {
    const x = a[field] instanceof Date ? (a[field] as Date).getTime() : a[field];
    const y = b[field] instanceof Date ? (b[field] as Date).getTime() : b[field];
    if (canonical(x) !== canonical(y)) out.push(`${field}: source ${show(a[field])}, target ${show(b[field])}`);
  }
  return out;
}

/** Up to `n` of the newest jobs of a queue in a status, page by page. */
async function newest(t: Transport, queue: string, status: 'moved' | 'queued' | 'processing', n: number): Promise<Job[]> {
  const out: Job[] = [];
  let cursor: string | undefined;
  while (out.length < n) {
    const page = await t.list({ queue, status, limit: Math.min(n - out.length, 500), cursor });
    out.push(...page.jobs);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

/**
 * Compare both sides: counts per queue and status (shown), then a sample
 * of jobs field by field: the newest `moved` markers of each queue against
 * their copies, the newest live jobs of the source checked absent from the
 * target. A disagreement is a problem: a job marked moved that the target
 * lacks or holds differently, a job live in both stores, jobs left
 * `moving` (an interrupted run), queued jobs not moved yet. Counts are not
 * compared with each other: the target has jobs of its own, and retention
 * runs on each side by its own clock.
 */
export async function verifyMigration(options: VerifyOptions): Promise<VerifyReport> {
  const { from, to } = options;
  const sample = Math.max(0, options.sample ?? 100);
  const [a, b] = await Promise.all([from.stats(), to.stats()]);
  const queues = options.queues ?? Object.keys(a.queues).sort();
  const report: VerifyReport = { ok: true, queues: {}, checked: 0, problems: [] };
  const problem = (line: string) => {
    report.ok = false;
    if (report.problems.length < MAX_PROBLEMS) report.problems.push(line);
  };
  for (const q of queues) {
    const source = a.queues[q] ?? { ...EMPTY_COUNTS };
    const target = b.queues[q] ?? { ...EMPTY_COUNTS };
    report.queues[q] = { source, target };
    if (source.moving > 0) problem(`${q}: ${source.moving} jobs are held moving in the source (a migration was interrupted: run it again)`);
    if (source.queued + source.delayed > 0) problem(`${q}: ${source.queued + source.delayed} queued jobs are still in the source (not moved yet)`);
  }
  // The sample: the newest markers and the newest live jobs of each queue.
  const per = queues.length > 0 ? Math.max(1, Math.ceil(sample / queues.length)) : 0;
  for (const q of sample > 0 ? queues : []) {
    const moved = await newest(from, q, 'moved', per);
    const live = [...(await newest(from, q, 'queued', per)), ...(await newest(from, q, 'processing', per))];
    const targets = await Promise.all([...moved, ...live].map((j) => to.get(j.id)));
    moved.forEach((job, i) => {
      const there = targets[i];
      report.checked += 1;
      if (!there) return problem(`${job.id} (${q}): marked moved in the source, missing in the target`);
      for (const d of differences(job, there)) problem(`${job.id} (${q}): ${d}`);
      if (!FINISHED_STATUSES.includes(there.status) && there.status !== 'queued' && there.status !== 'processing') problem(`${job.id} (${q}): ${there.status} in the target`);
    });
    live.forEach((job, i) => {
      const there = targets[moved.length + i];
      report.checked += 1;
      if (there && sameJob(job, there)) problem(`${job.id} (${q}): ${job.status} in the source and ${there.status} in the target`);
    });
  }
  return report;
}
