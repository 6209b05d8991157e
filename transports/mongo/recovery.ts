/**
 * Lease recovery and retention, shared by `sweep()` and by claims (which
 * recover as they poll, so no separate process is needed). Every write is
 * fenced on the token and the expired deadline it read, so a worker that
 * renews in between keeps its job, and two sweepers never both move a job.
 */
import type { Collection } from 'mongodb';
import { DEFAULTS } from '../../src/config.js';
import type { SweepResult } from '../../src/transport.js';
import { decideOutcome } from '../../src/outcome.js';
import type { JobDoc, WorkerDoc } from './codec.js';
import { expiredLeaseFilter, retentionFilter } from './queries.js';
import { PENDING_CALLBACK } from '../../src/job.js';

export interface RecoveryHooks {
  queued(queue: string): void;
  finished(id: string): void;
}

/** Expired leases → what src/outcome.ts decides: queued, error/LEASE_EXPIRED (poison pill) or canceled. */
export async function recoverLeases(jobs: Collection<JobDoc>, now: Date, retentionMs: number, hooks: RecoveryHooks, batch = 100): Promise<Omit<SweepResult, 'deleted'>> {
  const result = { requeued: 0, expired: 0, canceled: 0 };
  const expired = await jobs
    .find(expiredLeaseFilter(now), { limit: batch, projection: { _id: 1, queue: 1, lease: 1, attempts: 1, max_attempts: 1, stalls: 1, max_stalls: 1, cancel_requested: 1, callback_url: 1 } })
    .toArray();
  for (const doc of expired) {
    if (!doc.lease) continue;
    const subject = { attempts: doc.attempts, max_attempts: doc.max_attempts, stalls: doc.stalls ?? 0, max_stalls: doc.max_stalls ?? DEFAULTS.maxStalls, cancel_requested: doc.cancel_requested ?? null };
    const outcome = decideOutcome(subject, { kind: 'lease-expired' }, undefined, now.getTime());
    const fence = {
      _id: doc._id,
      status: 'processing' as const,
      'lease.token': doc.lease.token,
      'lease.until': doc.lease.until, // exactly the expired deadline we read: a renewal meanwhile wins
      // the outcome depends on it: a cancel asked meanwhile is decided on the next pass
      cancel_requested: doc.cancel_requested ? { $ne: null } : null,
    };
    const at = now;
    const set =
      outcome.status === 'queued'
        ? { status: 'queued' as const, lease: null, run_at: outcome.run_at ?? at, updated_at: at }
        : {
            status: outcome.status,
            lease: null,
            finished_at: at,
            updated_at: at,
            expire_at: new Date(at.getTime() + retentionMs),
            ...(outcome.error ? { error: outcome.error } : {}),
            // The outbox: the ending owes its callback (callback_url is in the fence's document: it never changes).
            ...(doc.callback_url ? { callback: { ...PENDING_CALLBACK }, callback_due: at, expire_at: null } : {}),
          };
    const res = await jobs.updateOne(fence, { $set: set, $inc: { attempts: outcome.give_back ? -1 : 0, stalls: outcome.stall ? 1 : 0 } });
    if (res.modifiedCount !== 1) continue;
    if (outcome.status === 'queued') {
      result.requeued += 1;
      hooks.queued(doc.queue);
    } else {
      result[outcome.status === 'error' ? 'expired' : 'canceled'] += 1;
      hooks.finished(doc._id);
    }
  }
  return result;
}

/** Delete finished jobs past the retention, and worker records not seen for an hour. */
export async function applyRetention(jobs: Collection<JobDoc>, workers: Collection<WorkerDoc>, now: Date, retentionMs: number, workerHorizonMs: number): Promise<number> {
  const res = await jobs.deleteMany(retentionFilter(new Date(now.getTime() - retentionMs)));
  await workers.deleteMany({ last_seen: { $lt: new Date(now.getTime() - workerHorizonMs) } });
  return res.deletedCount;
}
