/**
 * Small pieces of transport logic that every store shares, so that the same
 * rule is written once: list cursors, the outcome of an expired lease, bounds.
 */
import { ValidationError } from './errors.js';
import { JobErrorCode } from './errors.js';
import type { Job, JobError } from './job.js';

/** A blocking claim never blocks longer than this, so shutdown stays prompt. */
export const MAX_CLAIM_WAIT_MS = 5_000;

export function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(`${createdAt.getTime()}:${id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { t: number; id: string } {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const colon = text.indexOf(':');
  const t = Number(text.slice(0, colon));
  if (colon < 1 || !Number.isFinite(t)) throw new ValidationError('cursor is not one this server handed out', 'cursor');
  return { t, id: text.slice(colon + 1) };
}

/**
 * What happens to a `processing` job whose lease expired: canceled if a cancel
 * was asked, `error`/`LEASE_EXPIRED` when no attempt is left (poison pill),
 * else back to `queued`.
 */
export function leaseExpiryOutcome(job: Pick<Job, 'attempts' | 'max_attempts' | 'cancel_requested'>): {
  status: 'queued' | 'error' | 'canceled';
  error: JobError | null;
} {
  if (job.cancel_requested) return { status: 'canceled', error: null };
  if (job.attempts >= job.max_attempts) {
    return {
      status: 'error',
      error: { code: JobErrorCode.LEASE_EXPIRED, message: `lease expired on attempt ${job.attempts} of ${job.max_attempts}; no attempt left`, retryable: false },
    };
  }
  return { status: 'queued', error: null };
}
