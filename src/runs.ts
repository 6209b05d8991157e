/**
 * A job's run history (`Job.runs`): one record per run that ended, newest
 * last, the newest RUNS_MAX kept. A retry (the policy's or a user's) keeps
 * the history, so the timeline of a job that failed three times before it
 * worked shows the three failures and who ran them.
 *
 * Decided here, written by the stores: the record of a run is built from
 * the job as it was while the run held it (attempt, lease owner,
 * started_at) and the outcome that was written (src/outcome.ts). Nothing is
 * written at claim; a run leaves its record when it ends (a settle: done,
 * error, retry, canceled, released; or the sweep: stalled).
 *
 * Times are ISO 8601 strings, as in the callback log: a record is a JSON
 * value inside the job and reads the same from every store and the API.
 */
import type { Job, JobError } from './job.js';
import type { Outcome } from './outcome.js';

/** Records kept per job: the newest. */
export const RUNS_MAX = 25;
/** A record keeps this many characters of its error's message (the job's `error` has the whole of the last one). */
export const RUN_ERROR_MESSAGE_MAX = 1000;

/**
 * How a run ended:
 * - `done`, `error`: the job ended so;
 * - `retry`: the attempt failed and the job was queued again by the retry policy;
 * - `canceled`: the run stopped on a cancel (or failed after one was asked);
 * - `released`: its worker shut down and handed the job back (the attempt is not charged);
 * - `stalled`: the lease ran out (the worker died or froze), whatever the job became.
 */
export const RUN_ENDS = ['done', 'error', 'retry', 'canceled', 'released', 'stalled'] as const;
export type RunEndLabel = (typeof RUN_ENDS)[number];

export interface RunRecord {
  /** the attempt this run was (attempts after its claim) */
  attempt: number;
  /** the lease owner: the worker id that ran it */
  worker: string;
  /** ISO 8601 */
  started_at: string;
  /** ISO 8601 */
  ended_at: string;
  end: RunEndLabel;
  /** the run's error (message cut to RUN_ERROR_MESSAGE_MAX), null when it had none */
  error: JobError | null;
}

/**
 * How the run ended, given the outcome and the status actually written (a
 * store writes `canceled` instead of a requeue or an error when a cancel
 * was asked meanwhile: transport.ts `settle`).
 */
export function runEnd(outcome: Pick<Outcome, 'status' | 'give_back' | 'stall'>, written: Outcome['status'] = outcome.status): RunEndLabel {
  if (outcome.stall) return 'stalled';
  if (written === 'queued') return outcome.give_back ? 'released' : 'retry';
  return written;
}

/** The record's error: the outcome's, its message cut (a record is kept 25 times over). */
export function runError(outcome: Pick<Outcome, 'error'>): JobError | null {
  const e = outcome.error;
  if (!e) return null;
  return e.message.length > RUN_ERROR_MESSAGE_MAX ? { ...e, message: e.message.slice(0, RUN_ERROR_MESSAGE_MAX) } : e;
}

/** The record of the run of `job` (as the run held it: attempts, lease, started_at) that ended with `outcome`, written as `written`. */
export function runRecord(job: Pick<Job, 'attempts' | 'lease' | 'started_at'>, outcome: Outcome, written: Outcome['status'], endedAt: Date): RunRecord {
  return {
    attempt: job.attempts,
    worker: job.lease?.owner ?? '',
    started_at: (job.started_at ?? endedAt).toISOString(),
    ended_at: endedAt.toISOString(),
    end: runEnd(outcome, written),
    error: runError(outcome),
  };
}

/** `runs` with `record` appended, the newest RUNS_MAX kept (a new array). */
export function appendRun(runs: readonly RunRecord[] | null | undefined, record: RunRecord): RunRecord[] {
  const out = [...(runs ?? []), record];
  return out.length > RUNS_MAX ? out.slice(out.length - RUNS_MAX) : out;
}
