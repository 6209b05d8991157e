/**
 * Lease recovery and retention, shared by `sweep()` and by claims (which
 * recover as they poll, so no separate process is needed). Every write is
 * fenced on the token and the expired deadline it read, so a worker that
 * renews in between keeps its job, and two sweepers never both move a job.
 * Each move takes the id of its event (`retry`, `error`, `canceled`) in the
 * same write; retention deletes a job's events after the job.
 */
import type { Collection } from 'mongodb';
import { DEFAULTS } from '../../src/config.js';
import type { SweepResult } from '../../src/transport.js';
import { decideOutcome, type Outcome } from '../../src/outcome.js';
import type { EventDoc, JobDoc, WorkerDoc } from './codec.js';
import { eventsOfJobsFilter, expiredLeaseFilter, retentionBatchFilter, retentionFilter } from './queries.js';
import { PENDING_CALLBACK } from '../../src/job.js';
import { appendRun, runRecord } from '../../src/runs.js';

export interface RecoveryHooks {
  queued(queue: string): void;
  finished(id: string): void;
  /** the move was written: `doc` is the job after it (its event's id taken) */
  settled(doc: JobDoc, outcome: Outcome, at: Date): void;
}

/** Jobs found and deleted per command of the retention delete, and batches per pass (the sweep's bound: src/bounded.ts). */
const RETENTION_BATCH = 500;
const RETENTION_BATCHES = 10;

/** Expired leases → what src/outcome.ts decides: queued, error/LEASE_EXPIRED (poison pill) or canceled. */
export async function recoverLeases(jobs: Collection<JobDoc>, now: Date, retentionMs: number, hooks: RecoveryHooks, batch = 100): Promise<Omit<SweepResult, 'deleted'>> {
  const result = { requeued: 0, expired: 0, canceled: 0 };
  const expired = await jobs
    .find(expiredLeaseFilter(now), { limit: batch, projection: { _id: 1, queue: 1, lease: 1, attempts: 1, max_attempts: 1, stalls: 1, max_stalls: 1, cancel_requested: 1, callback_url: 1, started_at: 1, runs: 1 } })
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
    // The run's record (src/runs.ts); the fence (token and the deadline read) makes the read-modify-write of `runs` safe.
    const runs = appendRun(doc.runs, runRecord(doc, outcome, outcome.status, at));
    const set =
      outcome.status === 'queued'
        ? { status: 'queued' as const, runs, lease: null, run_at: outcome.run_at ?? at, updated_at: at }
        : {
            status: outcome.status,
            runs,
            lease: null,
            finished_at: at,
            updated_at: at,
            expire_at: new Date(at.getTime() + retentionMs),
            ...(outcome.error ? { error: outcome.error } : {}),
            // The outbox: the ending owes its callback (callback_url is in the fence's document: it never changes).
            ...(doc.callback_url ? { callback: { ...PENDING_CALLBACK }, callback_due: at, expire_at: null } : {}),
          };
    const moved = await jobs.findOneAndUpdate(fence, { $set: set, $inc: { attempts: outcome.give_back ? -1 : 0, stalls: outcome.stall ? 1 : 0, event_seq: 1, emitted_lag: 1 } }, { returnDocument: 'after' });
    if (!moved) continue;
    hooks.settled(moved, outcome, at);
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

/**
 * Delete finished jobs past the retention, RETENTION_BATCH at a time (at
 * most RETENTION_BATCHES a pass), each batch's events after it, then worker
 * records not seen for an hour. The jobs go first: a reader never finds a
 * job whose events are gone. A job retried between the find and the delete
 * stays, and so do its events; a new job of a deleted one's id keeps its own
 * events (they are told apart by `seq`).
 */
export async function applyRetention(jobs: Collection<JobDoc>, events: Collection<EventDoc>, workers: Collection<WorkerDoc>, now: Date, retentionMs: number, workerHorizonMs: number): Promise<number> {
  const horizon = new Date(now.getTime() - retentionMs);
  let deleted = 0;
  for (let batch = 0; batch < RETENTION_BATCHES; batch++) {
    const found = await jobs.find(retentionFilter(horizon), { projection: { _id: 1, seq: 1 }, limit: RETENTION_BATCH }).toArray();
    if (found.length === 0) break;
    const ids = found.map((j) => j._id);
    const count = (await jobs.deleteMany(retentionBatchFilter(ids, horizon))).deletedCount;
    deleted += count;
    let gone = found;
    if (count < found.length) {
      const kept = new Set((await jobs.find({ _id: { $in: ids } }, { projection: { _id: 1, seq: 1 } }).toArray()).map((j) => `${j._id}\u0000${j.seq}`));
      gone = found.filter((j) => !kept.has(`${j._id}\u0000${j.seq}`));
    }
    if (gone.length > 0) await events.deleteMany(eventsOfJobsFilter(gone));
    if (found.length < RETENTION_BATCH) break;
  }
  await workers.deleteMany({ last_seen: { $lt: new Date(now.getTime() - workerHorizonMs) } });
  return deleted;
}
