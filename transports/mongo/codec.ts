/**
 * Job ↔ document. A job is stored as one document with `_id` = job id and the
 * snake_case fields of DESIGN, plus `seq` (enqueue order, for FIFO) and
 * `expire_at` (see below); `dedupe_key` and `dedupe` (`queue \0 key`:
 * deduplication is per queue, as on every store) are present only when set
 * (the sparse unique index then ignores jobs without one), and `expire_at` is
 * the retention deadline of a finished job (the TTL index reads it).
 */
import type { Job } from '../../src/job.js';
import type { WorkerInfo } from '../../src/transport.js';

/** A job as stored in the `jobs` collection: the contract's fields, `_id` for `id`, and ours. */
export interface JobDoc extends Omit<Job, 'id' | 'dedupe_key'> {
  _id: string;
  /** enqueue order (ms since epoch × 1000 + a per-process counter): FIFO within a priority */
  seq: number;
  /** absent when the job has none */
  dedupe_key?: string;
  /** `queue \0 dedupe_key`, the unique key of per-queue deduplication; absent when the job has none */
  dedupe?: string;
  /** finished_at + retention, set when the job ends; read by the TTL index */
  expire_at?: Date;
}

/** A worker record in the `workers` collection. */
export interface WorkerDoc extends Omit<WorkerInfo, 'id'> {
  _id: string;
  /** last_seen + one hour; read by the TTL index where the server has one */
  expire_at: Date;
}

let lastSeq = 0;

/** Strictly increasing within this process, ordered by the clock (µs scale) across processes. */
export function nextSeq(now = Date.now()): number {
  lastSeq = Math.max(now * 1000, lastSeq + 1);
  return lastSeq;
}

export function jobToDoc(job: Job): JobDoc {
  const doc: JobDoc = {
    _id: job.id,
    queue: job.queue,
    status: job.status,
    seq: nextSeq(),
    payload: job.payload,
    result: job.result,
    error: job.error,
    priority: job.priority,
    run_at: job.run_at,
    attempts: job.attempts,
    max_attempts: job.max_attempts,
    timeout_ms: job.timeout_ms,
    lease: job.lease,
    cancel_requested: job.cancel_requested,
    callback_url: job.callback_url,
    progress: job.progress ?? null,
    created_at: job.created_at,
    updated_at: job.updated_at,
    started_at: job.started_at,
    finished_at: job.finished_at,
  };
  if (job.dedupe_key) {
    doc.dedupe_key = job.dedupe_key;
    doc.dedupe = dedupeScope(job.queue, job.dedupe_key);
  }
  return doc;
}

const date = (v: unknown): Date => (v instanceof Date ? v : new Date(v as string | number));
const dateOrNull = (v: unknown): Date | null => (v === null || v === undefined ? null : date(v));
const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

/** Every field of the contract present, null where empty, dates as Date. */
export function docToJob(doc: JobDoc): Job {
  return {
    id: doc._id,
    queue: doc.queue,
    status: doc.status,
    payload: doc.payload,
    result: orNull(doc.result) as Job['result'],
    error: orNull(doc.error),
    priority: doc.priority,
    run_at: date(doc.run_at),
    attempts: doc.attempts,
    max_attempts: doc.max_attempts,
    timeout_ms: orNull(doc.timeout_ms),
    lease: doc.lease ? { owner: doc.lease.owner, token: doc.lease.token, until: date(doc.lease.until) } : null,
    cancel_requested: doc.cancel_requested ? { at: date(doc.cancel_requested.at), reason: doc.cancel_requested.reason } : null,
    dedupe_key: doc.dedupe_key ?? null,
    callback_url: orNull(doc.callback_url),
    progress: orNull(doc.progress),
    created_at: date(doc.created_at),
    updated_at: date(doc.updated_at),
    started_at: dateOrNull(doc.started_at),
    finished_at: dateOrNull(doc.finished_at),
  };
}

export function workerToDoc(worker: WorkerInfo): WorkerDoc {
  const { id, ...rest } = worker;
  return { _id: id, ...rest, expire_at: new Date(worker.last_seen.getTime() + 3600_000) };
}

export function docToWorker(doc: WorkerDoc): WorkerInfo {
  return {
    id: doc._id,
    queues: doc.queues,
    concurrency: doc.concurrency,
    running: doc.running,
    host: doc.host,
    pid: doc.pid,
    started_at: date(doc.started_at),
    last_seen: date(doc.last_seen),
    ttl_ms: doc.ttl_ms,
    processed: doc.processed,
    failed: doc.failed,
  };
}

/** Deduplication is per queue: the same key in two queues makes two jobs. */
export function dedupeScope(queue: string, key: string): string {
  return `${queue}\u0000${key}`;
}
