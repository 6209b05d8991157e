/**
 * Small pieces of transport logic that every store shares, so that the same
 * rule is written once: list cursors, the state machine check of a settle, bounds.
 */
import { InvalidStateError, ValidationError } from './errors.js';
import { assertTransition, FINISHED_STATUSES, type Job, type Transition } from './job.js';
import type { Outcome } from './outcome.js';

/** A blocking claim never blocks longer than this, so shutdown stays prompt. */
export const MAX_CLAIM_WAIT_MS = 5_000;

export function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(`${createdAt.getTime()}:${id}`, 'utf8').toString('base64url');
}

/**
 * What a list is ordered by: a list of one finished status (without a
 * session) by `finished_at`, newest ending first — "recent errors" are the
 * ones that just failed, not the ones created last; every other list by
 * `created_at` (a session's jobs in the order its steps were asked). Ties
 * by `id`, both descending; the cursor holds the order key of the last job.
 */
export function listOrder(filter: { status?: string | undefined; session_id?: string | undefined }): 'created_at' | 'finished_at' {
  return filter.status && !filter.session_id && (FINISHED_STATUSES as readonly string[]).includes(filter.status) ? 'finished_at' : 'created_at';
}

/** A job's place in a list ordered by `order` (ms). */
export function listKey(job: Pick<Job, 'created_at' | 'finished_at'>, order: 'created_at' | 'finished_at'): number {
  return (order === 'finished_at' ? (job.finished_at ?? job.created_at) : job.created_at).getTime();
}

export function decodeCursor(cursor: string): { t: number; id: string } {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const colon = text.indexOf(':');
  const t = Number(text.slice(0, colon));
  if (colon < 1 || !Number.isFinite(t)) throw new ValidationError('cursor is not one this server handed out', 'cursor');
  return { t, id: text.slice(colon + 1) };
}

/** The move of the state machine (job.ts) by which a running job reaches each outcome. */
const SETTLE_MOVE = { done: 'complete', error: 'fail', queued: 'requeue', canceled: 'cancel' } as const;

/**
 * Check an outcome against the state machine before a store writes it (the
 * fence has made sure the job is `processing`): the one table decides on
 * every store, with the one error (InvalidStateError, INVALID_STATE).
 */
export function assertSettle(id: string, outcome: Outcome): void {
  const move = (SETTLE_MOVE as Record<string, Transition | undefined>)[outcome.status];
  if (!move) throw new InvalidStateError(`job ${id}: ${String(outcome.status)} is not a status a run can end in`);
  assertTransition({ id, status: 'processing' }, move, outcome.status);
}
