/**
 * A job's fate, decided in one place. Whatever ended a run — the handler
 * returned or threw, timed out, was canceled, its worker shut down, or the
 * sweep found its lease run out — `decideOutcome` says what the job becomes;
 * the worker and the sweep only ask it, and the stores only write the answer
 * (fenced on the lease token).
 *
 * The retry policy is one interface (river's `ClientRetryPolicy`): when may
 * a failed attempt run again, or not at all. Today's exponential backoff
 * with jitter is the default; pass another to a worker to change it.
 */
import { backoffDelay, type BackoffOptions } from './backoff.js';
import { DEFAULTS } from './config.js';
import { JobErrorCode } from './errors.js';
import type { Intent, Job, JobError } from './job.js';

/** What happened to a run. */
export type RunEnd =
  /** the handler returned a valid intent */
  | { kind: 'returned'; intent: Intent }
  /** the attempt failed: the handler threw, timed out, returned an invalid intent, or the worker failed around it; `error.retryable` says whether the policy may retry */
  | { kind: 'failed'; error: JobError }
  /** a cancel was asked and the run stopped */
  | { kind: 'canceled' }
  /** the worker is shutting down and hands the job back: the attempt is not charged */
  | { kind: 'released' }
  /** the sweep found the lease run out (the worker crashed or froze) */
  | { kind: 'lease-expired' };

/** The transition to write. Fields left out stay as they are. */
export interface Outcome {
  status: 'done' | 'error' | 'queued' | 'canceled';
  result?: Intent;
  /** set on a failure (and kept when it is retried) */
  error?: JobError;
  /** when queued: not claimable before this instant */
  run_at?: Date;
  /** the run ended without the handler failing (released, or its lease lost): the attempt is given back (the store takes one off `attempts`; never an absolute value a caller could set) */
  give_back?: true;
  /** the run lost its lease: the store adds one to `stalls` */
  stall?: true;
}

/** When may a failed attempt run again? null: never (the job ends `error`). */
export interface RetryPolicy {
  nextRetry(job: Pick<Job, 'attempts' | 'max_attempts'>, error: JobError, now: number): Date | null;
}

/** Retry until `max_attempts`, after base·2^(attempts−1) ms capped at `maxMs`, jittered to 50–100 %. */
export function exponentialBackoff(options: Partial<BackoffOptions> = {}): RetryPolicy {
  const backoff = { baseMs: options.baseMs ?? DEFAULTS.backoffBaseMs, maxMs: options.maxMs ?? DEFAULTS.backoffMaxMs };
  return {
    nextRetry(job, _error, now) {
      return job.attempts < job.max_attempts ? new Date(now + backoffDelay(job.attempts, backoff)) : null;
    },
  };
}

const defaultRetryPolicy: RetryPolicy = exponentialBackoff();

type Subject = Pick<Job, 'attempts' | 'max_attempts' | 'stalls' | 'max_stalls' | 'cancel_requested'>;

/**
 * A job whose run lost its lease comes back after up to this much per stall
 * so far, at random: the jobs of a process that died (all its leases expire
 * together) are not handed back together as a block, with the job that
 * killed it among them.
 */
const STALL_SPREAD_MS = 500;

/**
 * What a job becomes after `end`. A cancel that was asked wins over a retry
 * or a hand-back: the job ends `canceled`, never runs again by itself.
 */
export function decideOutcome(job: Subject, end: RunEnd, policy: RetryPolicy = defaultRetryPolicy, now = Date.now()): Outcome {
  switch (end.kind) {
    case 'returned':
      return { status: 'done', result: end.intent };
    case 'canceled':
      return { status: 'canceled' };
    case 'failed': {
      if (job.cancel_requested) return { status: 'canceled', error: end.error };
      const at = end.error.retryable ? policy.nextRetry(job, end.error, now) : null;
      return at ? { status: 'queued', error: end.error, run_at: at } : { status: 'error', error: end.error };
    }
    case 'released':
      if (job.cancel_requested) return { status: 'canceled' };
      return { status: 'queued', run_at: new Date(now), give_back: true };
    case 'lease-expired': {
      // The worker died or froze: that costs the job a stall, not an attempt of its handler.
      const lost = { give_back: true, stall: true } as const;
      if (job.cancel_requested) return { status: 'canceled', ...lost };
      const stalls = job.stalls + 1;
      if (stalls >= job.max_stalls) {
        const message = `the worker running this job died or froze ${stalls} times (max_stalls ${job.max_stalls}): the job is likely what brings its worker down`;
        return { status: 'error', error: { code: JobErrorCode.WORKER_CRASHED, message, retryable: false }, ...lost };
      }
      return { status: 'queued', run_at: new Date(now + Math.floor(Math.random() * STALL_SPREAD_MS * stalls)), ...lost };
    }
  }
}
