/**
 * Bulk retry (`POST /v1/jobs:retry`, `client.retryMany`): retry many failed
 * jobs in one call, each as `retry(id)` would (the state machine's rule:
 * error or canceled → queued, attempts reset, its run history kept).
 * Bounded: at most RETRY_MANY_MAX jobs a call, checked before any is
 * retried; one store call per job (plus one list to find them by status).
 * A job that cannot be retried (gone, not failed, retried meanwhile) is
 * reported and skipped; a store failure stops the call (the caller repeats
 * it: the jobs retried already are skipped as INVALID_STATE next time).
 */
import { z } from 'zod';
import { ReasonqError, TransportError } from './errors.js';
import { parseOrThrow, queueNameSchema } from './job.js';
import type { Transport } from './transport.js';

/** Most jobs one bulk retry touches. */
export const RETRY_MANY_MAX = 500;
/** Jobs found by status when the caller gives no `limit`. */
export const RETRY_MANY_DEFAULT_LIMIT = 100;
/** Retries in flight at once. */
const PARALLEL = 8;

const jobId = z.string().min(1).max(128);

/**
 * Either the ids, or the failed jobs of a queue (or of every queue), newest
 * failure first. One object, checked for the one mode it must be in, so a
 * refusal names the field (a union's error does not).
 */
export const retryManySchema = z
  .strictObject({
    ids: z.array(jobId).min(1, 'ids must hold at least one id').max(RETRY_MANY_MAX, `ids holds at most ${RETRY_MANY_MAX} ids a call`).optional(),
    queue: queueNameSchema.optional(),
    status: z.literal('error', { error: "status must be 'error' (the failed jobs)" }).optional(),
    limit: z.number().int().min(1, 'limit is at least 1').max(RETRY_MANY_MAX, `limit is at most ${RETRY_MANY_MAX}`).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.ids && (v.queue !== undefined || v.status !== undefined || v.limit !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['ids'], message: 'ids cannot be combined with queue, status or limit' });
    } else if (!v.ids && v.status === undefined) {
      ctx.addIssue({ code: 'custom', path: ['status'], message: "give ids, or status: 'error' (with queue and limit if wanted)" });
    }
  });

/** `{ids}` (1..500), or `{queue?, status: 'error', limit?}` (default 100, at most 500). */
export type RetryManyRequest = { ids: string[] } | { queue?: string; status: 'error'; limit?: number };

export interface RetryManySkip {
  id: string;
  /** the error code `retry(id)` raised: JOB_NOT_FOUND, INVALID_STATE, … */
  code: string;
  message: string;
}

export interface RetryManyResult {
  /** ids queued again, in the order asked (or found) */
  retried: string[];
  skipped: RetryManySkip[];
}

/**
 * Retry each job of `request` on `transport`: in one request where the
 * transport has it (`Transport.retryMany`, http), else job by job. `check(id)`
 * runs before each retry and may refuse it by throwing a ReasonqError (the
 * server's loop guard for callback deliveries); with it, always job by job.
 */
export async function retryMany(transport: Transport, request: RetryManyRequest, check?: (id: string) => void): Promise<RetryManyResult> {
  const body = parseOrThrow(retryManySchema, request);
  if (transport.retryMany && !check) return transport.retryMany(body as RetryManyRequest);
  const ids = body.ids
    ? [...new Set(body.ids)]
    : (await transport.list({ status: 'error', queue: body.queue, limit: body.limit ?? RETRY_MANY_DEFAULT_LIMIT, summary: true })).jobs.map((j) => j.id);
  const outcomes: (RetryManySkip | null)[] = new Array(ids.length).fill(null);
  let next = 0;
  let stopped = false;
  const lane = async () => {
    while (next < ids.length && !stopped) {
      const i = next++;
      const id = ids[i]!;
      try {
        check?.(id);
        await transport.retry(id);
      } catch (error) {
        // A store failure is not the job's: the call stops (the caller repeats it).
        if (!(error instanceof ReasonqError) || error instanceof TransportError) {
          stopped = true;
          throw error;
        }
        outcomes[i] = { id, code: error.code, message: error.message };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, ids.length) }, lane));
  return { retried: ids.filter((_, i) => outcomes[i] === null), skipped: outcomes.filter((o): o is RetryManySkip => o !== null) };
}
