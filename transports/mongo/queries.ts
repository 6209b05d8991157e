/**
 * Every query the mongo transport runs, written once, each with the index
 * that serves it declared right beside it. `init()` creates `INDEXES`; the
 * explain test (test/mongo.mongo.test.ts) runs `hotQueries()` through
 * `explain` and checks that each one is served by an index.
 */
import type { Document, Filter, Sort } from 'mongodb';
import { JobNotFoundError, LeaseLostError } from '../../src/errors.js';
import { FINISHED_STATUSES, TERMINAL_STATUSES, type JobStatus } from '../../src/job.js';
import { decodeCursor, listOrder } from '../../src/transport-helpers.js';
import { ROLLUP_STEPS_MS } from '../../src/analytics.js';
import type { EventDoc, JobDoc, WorkerDoc } from './codec.js';

export const JOBS = 'jobs';
export const WORKERS = 'workers';
/** Every job's event stream: one document per event (codec.ts, EventDoc). */
export const EVENTS = 'events';
/** Named locks: `{_id: name, owner, until}` (the elected maintainer). A handful of documents, read by _id. */
export const LOCKS = 'locks';
/** Analytics: one document per queue and minute of endings (rollups.ts). */
export const ROLLUPS = 'rollups';

export interface IndexSpec {
  collection: typeof JOBS | typeof WORKERS | typeof EVENTS | typeof ROLLUPS;
  name: string;
  key: Record<string, 1 | -1>;
  unique?: boolean;
  sparse?: boolean;
  /** a TTL index (`expireAfterSeconds: 0` on a date field); optional, servers without TTL skip it */
  ttl?: boolean;
}

/**
 * The `batchSize` of a find expected to match at most `n` documents, so that
 * the first answer holds them all and closes the cursor: one round trip, not
 * the server's default first batch of 101 and getMores after. One more than
 * `n`: an answer of exactly `batchSize` documents leaves the cursor open, and
 * the driver asks again to find nothing.
 */
export function wholeBatch(n: number): number {
  return n + 1;
}

/** Every index, in the order `init()` creates them. */
export const INDEXES: IndexSpec[] = [];
const declare = (spec: IndexSpec): IndexSpec => {
  INDEXES.push(spec);
  return spec;
};

// -- claim: the best due queued job of some queues ---------------------------
// Equality on status and queue ($in explodes into one sorted scan per queue,
// merged), then the sort keys: priority (higher first), then enqueue order.
const CLAIM_INDEX = declare({ collection: JOBS, name: 'claim', key: { status: 1, queue: 1, priority: -1, seq: 1 } });
export const CLAIM_SORT: Sort = { priority: -1, seq: 1 };
export function claimFilter(queues: string[], now: Date): Filter<JobDoc> {
  return { status: 'queued', queue: { $in: queues }, run_at: { $lte: now } };
}
// The same index serves a migration's takes (moves.ts): the queued jobs of a
// queue in claim order (due or not), and the ones it holds already.
export function moveQueuedFilter(queue: string): Filter<JobDoc> {
  return { status: 'queued', queue };
}
export function movingFilter(queue: string): Filter<JobDoc> {
  return { status: 'moving', queue };
}

// -- fenced writes: id + lease token, still processing, lease not expired -----
// Served by the _id index.
export function fencedFilter(id: string, token: string, now: Date): Filter<JobDoc> {
  return { _id: id, status: 'processing', 'lease.token': token, 'lease.until': { $gt: now } };
}

/** Whether a fenced write on `current` (the job as read back) would match. */
export function leaseHeld(current: Pick<JobDoc, 'status' | 'lease'>, token: string, now: Date): boolean {
  return current.status === 'processing' && current.lease?.token === token && current.lease.until.getTime() > now.getTime();
}

/** Why a fenced write missed, from the job as read after it (null: gone). */
export function fenceError(id: string, current: Pick<JobDoc, 'status' | 'lease'> | null, now: Date): Error {
  if (!current) return new JobNotFoundError(id);
  const expired = current.status === 'processing' && current.lease && current.lease.until.getTime() <= now.getTime();
  return new LeaseLostError(id, expired ? { details: { reason: 'expired' } } : {});
}

// -- lease recovery: processing jobs whose lease ran out ----------------------
const LEASE_INDEX = declare({ collection: JOBS, name: 'lease_expiry', key: { status: 1, 'lease.until': 1 } });
export function expiredLeaseFilter(now: Date): Filter<JobDoc> {
  return { status: 'processing', 'lease.until': { $lte: now } };
}

// -- the outbox: callback deliveries that are due ------------------------------
// `callback_due` exists only while a delivery is owed (sparse). A job a
// migration holds is left alone: its copy carries the callback log, and owes
// the delivery where it goes once it is moved (a release hands it back here).
declare({ collection: JOBS, name: 'callbacks_due', key: { callback_due: 1 }, sparse: true });
export function callbacksDueFilter(now: Date): Filter<JobDoc> {
  return { callback_due: { $lte: now }, status: { $ne: 'moving' } };
}

// -- retention: finished jobs older than the horizon --------------------------
const RETENTION_INDEX = declare({ collection: JOBS, name: 'retention', key: { status: 1, finished_at: 1 } });
export function retentionFilter(horizon: Date): Filter<JobDoc> {
  // A job that still owes its callback stays until it is delivered or given up.
  return { status: { $in: [...TERMINAL_STATUSES] }, finished_at: { $lt: horizon }, callback_due: { $exists: false } };
}
/** The server deletes a finished job by itself once `expire_at` passes (MongoDB; not FerretDB). */
declare({ collection: JOBS, name: 'retention_ttl', key: { expire_at: 1 }, ttl: true });
/** One batch of the retention delete: the jobs found, if they still qualify (one retried meanwhile stays). */
export function retentionBatchFilter(ids: string[], horizon: Date): Filter<JobDoc> {
  return { ...retentionFilter(horizon), _id: { $in: ids } };
}
// The same index serves a migration's take of finished jobs, oldest ending
// first (one range per status, merged; the queue is checked on each job the
// scan reaches).
export const MOVE_FINISHED_SORT: Sort = { finished_at: 1 };
export function moveFinishedFilter(queue: string): Filter<JobDoc> {
  return { status: { $in: [...FINISHED_STATUSES] }, queue };
}

// -- moves: a take's writes and reads, by id ----------------------------------
// Served by the _id index.
/** The candidates of a take that still have the status they were found with. */
export function takeFilter(ids: string[], from: JobStatus): Filter<JobDoc> {
  return { _id: { $in: ids }, status: from };
}
/** The jobs one take holds: its token, still moving (a write that won the race in between carries neither). */
export function takenFilter(ids: string[], token: string): Filter<JobDoc> {
  return { _id: { $in: ids }, status: 'moving', move_token: token };
}
/** The jobs among `ids` a migration holds (finish, release). */
export function heldFilter(ids: string[]): Filter<JobDoc> {
  return { _id: { $in: ids }, status: 'moving' };
}
/** The jobs one finish moved (written with exactly this `finished_at`). */
export function movedAtFilter(ids: string[], at: Date): Filter<JobDoc> {
  return { _id: { $in: ids }, status: 'moved', finished_at: at };
}

// -- idempotent enqueue: one job per (queue, dedupe_key) ----------------------
// Sparse: jobs without a key (the field is left out) are not indexed, so they
// never conflict. FerretDB rejects partial indexes, and treats two explicit
// nulls as equal, hence sparse + "absent when unset" on every server.
const DEDUPE_INDEX = declare({ collection: JOBS, name: 'dedupe', key: { dedupe: 1 }, unique: true, sparse: true });
/** The jobs an `enqueueMany` collided with, in one query: by id (the _id index) or by key (this one). */
export function existingJobsFilter(ids: string[], dedupes: string[]): Filter<JobDoc> {
  return dedupes.length > 0 ? { $or: [{ _id: { $in: ids } }, { dedupe: { $in: dedupes } }] } : { _id: { $in: ids } };
}

// -- list: newest first, optional queue and status, keyset pagination ---------
declare({ collection: JOBS, name: 'list', key: { created_at: -1, _id: -1 } });
declare({ collection: JOBS, name: 'list_status', key: { status: 1, created_at: -1, _id: -1 } });
declare({ collection: JOBS, name: 'list_queue', key: { queue: 1, created_at: -1, _id: -1 } });
// also serves stats: sorted by queue then status, counted in one pass
declare({ collection: JOBS, name: 'list_queue_status', key: { queue: 1, status: 1, created_at: -1, _id: -1 } });
// A finished status lists newest ending first (listOrder, src/transport-helpers.ts).
declare({ collection: JOBS, name: 'list_finished', key: { status: 1, finished_at: -1, _id: -1 } });
declare({ collection: JOBS, name: 'list_queue_finished', key: { queue: 1, status: 1, finished_at: -1, _id: -1 } });
// A session's jobs (exact session_id), in creation order; sparse: jobs without a session are not indexed.
declare({ collection: JOBS, name: 'list_session', key: { 'payload.session_id': 1, created_at: -1, _id: -1 }, sparse: true });
export const LIST_SORT: Sort = { created_at: -1, _id: -1 };
export function listSort(order: 'created_at' | 'finished_at'): Sort {
  return order === 'finished_at' ? { finished_at: -1, _id: -1 } : LIST_SORT;
}
export function listFilter(filter: { status?: JobStatus | undefined; queue?: string | undefined; session_id?: string | undefined; cursor?: string | undefined }): Filter<JobDoc> {
  const query: Filter<JobDoc> = {};
  if (filter.session_id !== undefined) query['payload.session_id'] = filter.session_id;
  if (filter.queue) query.queue = filter.queue;
  if (filter.status) query.status = filter.status;
  if (filter.cursor) {
    const after = decodeCursor(filter.cursor);
    const t = new Date(after.t);
    const key = listOrder(filter);
    // The $lte bound gives the index scan its range; the $or breaks ties on _id.
    query[key] = { $lte: t };
    query.$or = [{ [key]: { $lt: t } }, { _id: { $lt: after.id } }];
  }
  return query;
}

// -- stats: counts per queue and status (one accumulator: FerretDB computes only the first) --
export const STATS_PIPELINE: Document[] = [
  { $sort: { queue: 1, status: 1 } },
  { $group: { _id: { queue: '$queue', status: '$status' }, n: { $sum: 1 } } },
];
/** Queued jobs not yet due; served by the claim index (status prefix). */
export function delayedFilter(now: Date): Filter<JobDoc> {
  return { status: 'queued', run_at: { $gt: now } };
}

// -- wait: which of these jobs have finished (the polling fallback) -----------
// Served by the _id index.
export function finishedAmongFilter(ids: string[]): Filter<JobDoc> {
  return { _id: { $in: ids }, status: { $in: [...TERMINAL_STATUSES] } };
}

// -- event streams: a job's events after an id, in id order ------------------
// One index serves every query on `events`: a page (job_id, then a seq
// range, in seq order), the trim (seq ≤ floor) and the deletion with the job
// (job_id prefix). Unique: an id is written once, so a repeated insert is a
// duplicate-key error to ignore, never a second copy.
const STREAM_INDEX = declare({ collection: EVENTS, name: 'stream', key: { job_id: 1, seq: 1 }, unique: true });
export const STREAM_SORT: Sort = { seq: 1 };
/** Events after `after` up to the job's counter (ids past it are not allocated: leftovers of an earlier job of this id). */
export function eventsAfterFilter(id: string, after: number, upTo: number): Filter<EventDoc> {
  return { job_id: id, seq: { $gt: after, $lte: upTo } };
}
export function eventsTrimFilter(id: string, floor: number): Filter<EventDoc> {
  return { job_id: id, seq: { $lte: floor } };
}
/** The events of deleted jobs, each told by its id and its `seq` (a new job of the same id keeps its own). */
export function eventsOfJobsFilter(jobs: Pick<JobDoc, '_id' | 'seq'>[]): Filter<EventDoc> {
  return { job_id: { $in: jobs.map((j) => j._id) }, job_seq: { $in: jobs.map((j) => j.seq) } };
}
/** Every event of one job: its retention deadline set or cleared (servers with TTL indexes). */
export function eventsOfJobFilter(id: string): Filter<EventDoc> {
  return { job_id: id };
}
/** Every event of some jobs, job by job in id order (a migration copies their streams). */
export const STREAMS_SORT: Sort = { job_id: 1, seq: 1 };
export function eventsOfJobIdsFilter(ids: string[]): Filter<EventDoc> {
  return { job_id: { $in: ids } };
}
/** The server deletes events by itself once `expire_at` passes; set no earlier than their job's (events.ts). */
declare({ collection: EVENTS, name: 'events_ttl', key: { expire_at: 1 }, ttl: true });

// -- appends: fenced, and the run's count of events where the caller left it ---
// `had` = 0: this run has appended nothing yet (`emitted` is another run's or
// none). A repeated try whose first try landed misses (the count moved on):
// see events.ts. Served by the _id index.
export function appendFilter(id: string, token: string, now: Date, had: number): Filter<JobDoc> {
  return { ...fencedFilter(id, token, now), ...(had === 0 ? { 'emitted.t': { $ne: token } } : { 'emitted.t': token, 'emitted.n': had }) };
}

// -- readers waiting for events: their jobs' counters (the polling fallback) --
// Served by the _id index.
export function eventCountersFilter(ids: string[]): Filter<JobDoc> {
  return { _id: { $in: ids } };
}

// -- worker registry ----------------------------------------------------------
const WORKERS_SEEN_INDEX = declare({ collection: WORKERS, name: 'last_seen', key: { last_seen: 1 } });
export function workersSeenSince(horizon: Date): Filter<WorkerDoc> {
  return { last_seen: { $gte: horizon } };
}
declare({ collection: WORKERS, name: 'workers_ttl', key: { expire_at: 1 }, ttl: true });

// -- analytics rollups: a window's periods of one step, and the ones past keeping --
const ROLLUPS_INDEX = declare({ collection: ROLLUPS, name: 'step_at', key: { step: 1, at: 1 } });
export function rollupsFilter(step: number, from: Date, to: Date): { step: number; at: { $gte: Date; $lt: Date } } {
  return { step, at: { $gte: from, $lt: to } };
}
/** Served by the same index: one range per step ($in). */
export function oldRollupsFilter(before: Date): { step: { $in: number[] }; at: { $lt: Date } } {
  return { step: { $in: [...ROLLUP_STEPS_MS] }, at: { $lt: before } };
}

/**
 * The hot queries as explainable commands (`{explain: command}`), built with
 * the same builders the transport uses. `expect` names the index meant to
 * serve each.
 */
export function hotQueries(now = new Date()): { name: string; expect: string; command: Document }[] {
  const queues = ['a', 'b'];
  return [
    { name: 'claim (findAndModify)', expect: CLAIM_INDEX.name, command: { findAndModify: JOBS, query: claimFilter(queues, now), sort: CLAIM_SORT, update: { $set: { status: 'processing' } } } },
    { name: 'fenced write (update)', expect: '_id_', command: { update: JOBS, updates: [{ q: fencedFilter('id', 'token', now), u: { $set: { progress: 1 } } }] } },
    { name: 'expired leases (find)', expect: LEASE_INDEX.name, command: { find: JOBS, filter: expiredLeaseFilter(now), limit: 100 } },
    { name: 'retention (find)', expect: RETENTION_INDEX.name, command: { find: JOBS, filter: retentionFilter(now), projection: { _id: 1, seq: 1 }, limit: 500 } },
    { name: 'dedupe lookup (find)', expect: DEDUPE_INDEX.name, command: { find: JOBS, filter: { dedupe: 'q\u0000k' }, limit: 1 } },
    { name: 'enqueueMany collisions (find)', expect: DEDUPE_INDEX.name, command: { find: JOBS, filter: existingJobsFilter(['a', 'b'], ['q\u0000k']) } },
    { name: 'move: queued in claim order (find)', expect: CLAIM_INDEX.name, command: { find: JOBS, filter: moveQueuedFilter('a'), sort: CLAIM_SORT, projection: { _id: 1, status: 1 }, limit: 1000 } },
    { name: 'move: held already (find)', expect: CLAIM_INDEX.name, command: { find: JOBS, filter: movingFilter('a'), sort: CLAIM_SORT, limit: 1000 } },
    { name: 'move: finished, oldest first (find)', expect: RETENTION_INDEX.name, command: { find: JOBS, filter: moveFinishedFilter('a'), sort: MOVE_FINISHED_SORT, projection: { _id: 1, status: 1 }, limit: 1000 } },
    { name: 'move: take (update)', expect: '_id_', command: { update: JOBS, updates: [{ q: takeFilter(['a', 'b'], 'queued'), u: { $set: { status: 'moving' } }, multi: true }] } },
    { name: 'move: taken (find)', expect: '_id_', command: { find: JOBS, filter: takenFilter(['a', 'b'], 'token') } },
    { name: 'move: finish (update)', expect: '_id_', command: { update: JOBS, updates: [{ q: heldFilter(['a', 'b']), u: { $set: { status: 'moved' } }, multi: true }] } },
    { name: 'move: moved by a finish (find)', expect: '_id_', command: { find: JOBS, filter: movedAtFilter(['a', 'b'], now), projection: { _id: 1 } } },
    { name: 'list by queue (find)', expect: 'list_queue', command: { find: JOBS, filter: listFilter({ queue: 'a' }), sort: LIST_SORT, limit: 51 } },
    { name: 'list by status, next page (find)', expect: 'list_status', command: { find: JOBS, filter: listFilter({ status: 'done', cursor: Buffer.from(`${now.getTime()}:x`).toString('base64url') }), sort: LIST_SORT, limit: 51 } },
    { name: 'list errors, newest ending first, next page (find)', expect: 'list_finished', command: { find: JOBS, filter: listFilter({ status: 'error', cursor: Buffer.from(`${now.getTime()}:x`).toString('base64url') }), sort: listSort('finished_at'), limit: 51 } },
    { name: 'list a session (find)', expect: 'list_session', command: { find: JOBS, filter: listFilter({ session_id: 's' }), sort: LIST_SORT, limit: 51 } },
    { name: 'wait poll (find)', expect: '_id_', command: { find: JOBS, filter: finishedAmongFilter(['a', 'b']), projection: { _id: 1 } } },
    { name: 'append (findAndModify)', expect: '_id_', command: { findAndModify: JOBS, query: appendFilter('id', 'token', now, 3), update: { $inc: { event_seq: 2 } } } },
    { name: 'events page (find)', expect: STREAM_INDEX.name, command: { find: EVENTS, filter: eventsAfterFilter('id', 10, 20), sort: STREAM_SORT, limit: 1000 } },
    { name: 'events of taken jobs (find)', expect: STREAM_INDEX.name, command: { find: EVENTS, filter: eventsOfJobIdsFilter(['a', 'b']), sort: STREAMS_SORT } },
    { name: 'events trim (delete)', expect: STREAM_INDEX.name, command: { delete: EVENTS, deletes: [{ q: eventsTrimFilter('id', 10), limit: 0 }] } },
    { name: 'events of deleted jobs (delete)', expect: STREAM_INDEX.name, command: { delete: EVENTS, deletes: [{ q: eventsOfJobsFilter([{ _id: 'a', seq: 1 }, { _id: 'b', seq: 2 }]), limit: 0 }] } },
    { name: 'event readers poll (find)', expect: '_id_', command: { find: JOBS, filter: eventCountersFilter(['a', 'b']), projection: { event_seq: 1 } } },
    { name: 'workers (find)', expect: WORKERS_SEEN_INDEX.name, command: { find: WORKERS, filter: workersSeenSince(now) } },
    { name: 'analytics rollups of a window (find)', expect: ROLLUPS_INDEX.name, command: { find: ROLLUPS, filter: rollupsFilter(60_000, new Date(now.getTime() - 3_600_000), now) } },
  ];
}
