/**
 * Every query the mongo transport runs, written once, each with the index
 * that serves it declared right beside it. `init()` creates `INDEXES`; the
 * explain test (test/mongo.mongo.test.ts) runs `hotQueries()` through
 * `explain` and checks that each one is served by an index.
 */
import type { Document, Filter, Sort } from 'mongodb';
import { TERMINAL_STATUSES, type JobStatus } from '../../src/job.js';
import { decodeCursor } from '../../src/transport-helpers.js';
import type { JobDoc, WorkerDoc } from './codec.js';

export const JOBS = 'jobs';
export const WORKERS = 'workers';
/** Named locks: `{_id: name, owner, until}` (the elected maintainer). A handful of documents, read by _id. */
export const LOCKS = 'locks';

export interface IndexSpec {
  collection: typeof JOBS | typeof WORKERS;
  name: string;
  key: Record<string, 1 | -1>;
  unique?: boolean;
  sparse?: boolean;
  /** a TTL index (`expireAfterSeconds: 0` on a date field); optional, servers without TTL skip it */
  ttl?: boolean;
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

// -- fenced writes: id + lease token, still processing, lease not expired -----
// Served by the _id index.
export function fencedFilter(id: string, token: string, now: Date): Filter<JobDoc> {
  return { _id: id, status: 'processing', 'lease.token': token, 'lease.until': { $gt: now } };
}

// -- lease recovery: processing jobs whose lease ran out ----------------------
const LEASE_INDEX = declare({ collection: JOBS, name: 'lease_expiry', key: { status: 1, 'lease.until': 1 } });
export function expiredLeaseFilter(now: Date): Filter<JobDoc> {
  return { status: 'processing', 'lease.until': { $lte: now } };
}

// -- the outbox: callback deliveries that are due ------------------------------
// `callback_due` exists only while a delivery is owed (sparse).
declare({ collection: JOBS, name: 'callbacks_due', key: { callback_due: 1 }, sparse: true });
export function callbacksDueFilter(now: Date): Filter<JobDoc> {
  return { callback_due: { $lte: now } };
}

// -- retention: finished jobs older than the horizon --------------------------
const RETENTION_INDEX = declare({ collection: JOBS, name: 'retention', key: { status: 1, finished_at: 1 } });
export function retentionFilter(horizon: Date): Filter<JobDoc> {
  // A job that still owes its callback stays until it is delivered or given up.
  return { status: { $in: [...TERMINAL_STATUSES] }, finished_at: { $lt: horizon }, callback_due: { $exists: false } };
}
/** The server deletes a finished job by itself once `expire_at` passes (MongoDB; not FerretDB). */
declare({ collection: JOBS, name: 'retention_ttl', key: { expire_at: 1 }, ttl: true });

// -- idempotent enqueue: one job per (queue, dedupe_key) ----------------------
// Sparse: jobs without a key (the field is left out) are not indexed, so they
// never conflict. FerretDB rejects partial indexes, and treats two explicit
// nulls as equal, hence sparse + "absent when unset" on every server.
const DEDUPE_INDEX = declare({ collection: JOBS, name: 'dedupe', key: { dedupe: 1 }, unique: true, sparse: true });

// -- list: newest first, optional queue and status, keyset pagination ---------
declare({ collection: JOBS, name: 'list', key: { created_at: -1, _id: -1 } });
declare({ collection: JOBS, name: 'list_status', key: { status: 1, created_at: -1, _id: -1 } });
declare({ collection: JOBS, name: 'list_queue', key: { queue: 1, created_at: -1, _id: -1 } });
// also serves stats: sorted by queue then status, counted in one pass
declare({ collection: JOBS, name: 'list_queue_status', key: { queue: 1, status: 1, created_at: -1, _id: -1 } });
export const LIST_SORT: Sort = { created_at: -1, _id: -1 };
export function listFilter(filter: { status?: JobStatus | undefined; queue?: string | undefined; cursor?: string | undefined }): Filter<JobDoc> {
  const query: Filter<JobDoc> = {};
  if (filter.queue) query.queue = filter.queue;
  if (filter.status) query.status = filter.status;
  if (filter.cursor) {
    const after = decodeCursor(filter.cursor);
    const t = new Date(after.t);
    // The $lte bound gives the index scan its range; the $or breaks ties on _id.
    query.created_at = { $lte: t };
    query.$or = [{ created_at: { $lt: t } }, { _id: { $lt: after.id } }];
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

// -- worker registry ----------------------------------------------------------
const WORKERS_SEEN_INDEX = declare({ collection: WORKERS, name: 'last_seen', key: { last_seen: 1 } });
export function workersSeenSince(horizon: Date): Filter<WorkerDoc> {
  return { last_seen: { $gte: horizon } };
}
declare({ collection: WORKERS, name: 'workers_ttl', key: { expire_at: 1 }, ttl: true });

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
    { name: 'retention (delete)', expect: RETENTION_INDEX.name, command: { delete: JOBS, deletes: [{ q: retentionFilter(now), limit: 0 }] } },
    { name: 'dedupe lookup (find)', expect: DEDUPE_INDEX.name, command: { find: JOBS, filter: { dedupe: 'q\u0000k' }, limit: 1 } },
    { name: 'list by queue (find)', expect: 'list_queue', command: { find: JOBS, filter: listFilter({ queue: 'a' }), sort: LIST_SORT, limit: 51 } },
    { name: 'list by status, next page (find)', expect: 'list_status', command: { find: JOBS, filter: listFilter({ status: 'done', cursor: Buffer.from(`${now.getTime()}:x`).toString('base64url') }), sort: LIST_SORT, limit: 51 } },
    { name: 'wait poll (find)', expect: '_id_', command: { find: JOBS, filter: finishedAmongFilter(['a', 'b']), projection: { _id: 1 } } },
    { name: 'workers (find)', expect: WORKERS_SEEN_INDEX.name, command: { find: WORKERS, filter: workersSeenSince(now) } },
  ];
}
