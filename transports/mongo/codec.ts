/**
 * Job ↔ document, event ↔ document. A job is stored as one document with
 * `_id` = job id and the snake_case fields of the field table (src/job.ts),
 * plus `seq` (enqueue order, for FIFO) and
 * `expire_at` (see below); `dedupe_key` and `dedupe` (`queue \0 key`:
 * deduplication is per queue, as on every store) are present only when set
 * (the sparse unique index then ignores jobs without one), and `expire_at` is
 * the retention deadline of a finished job (the TTL index reads it). `usage`
 * is absent until the first `usage` event (a `$inc` of its two totals makes
 * it; it cannot add into a null). The event-stream counters (`event_seq` …)
 * are described in events.ts. While a migration holds a job (`moving`,
 * moves.ts), `move_from` and `move_token` say what it was and which take
 * holds it.
 */
import { DEFAULTS } from '../../src/config.js';
import type { JobEvent, Usage } from '../../src/events.js';
import { FIELD_NAMES, JOB_FIELDS, type CancelRequest, type Job, type JobStatus, type Lease } from '../../src/job.js';
import type { WorkerInfo } from '../../src/transport.js';

/** A job as stored in the `jobs` collection: the contract's fields, `_id` for `id`, and ours. */
export interface JobDoc extends Omit<Job, 'id' | 'dedupe_key' | 'usage'> {
  _id: string;
  /** absent until the job's first `usage` event */
  usage?: Usage | null;
  /** the id of the job's newest event: every write that adds an event `$inc`s it (absent on a job from before events: 0) */
  event_seq?: number;
  /** the id of the last event trimmed away (absent: none) */
  events_floor?: number;
  /** the run that appended last: its lease token and how many events it appended (a repeated try is told by these) */
  emitted?: { t: string; n: number } | null;
  /** ids the store took since that run's last append: its newest event is `event_seq - emitted_lag` */
  emitted_lag?: number;
  /** enqueue order (ms since epoch × 1000 + a per-process counter): FIFO within a priority */
  seq: number;
  /** absent when the job has none */
  dedupe_key?: string;
  /** `queue \0 dedupe_key`, the unique key of per-queue deduplication; absent when the job has none */
  dedupe?: string;
  /** finished_at + retention, set when the job ends (null while its callback is owed); read by the TTL index */
  expire_at?: Date | null;
  /** when the next try of the callback's delivery is due; present only while one is owed (the outbox) */
  callback_due?: Date;
  /** while `moving`: the status the job had, which a release gives back */
  move_from?: JobStatus;
  /** while `moving`: the take that holds it (random), which tells the jobs it took from those a racing write won */
  move_token?: string;
}

/** A worker record in the `workers` collection. */
export interface WorkerDoc extends Omit<WorkerInfo, 'id'> {
  _id: string;
  /** last_seen + the registry horizon; read by the TTL index where the server has one */
  expire_at: Date;
}

let lastSeq = 0;

/** Strictly increasing within this process, ordered by the clock (µs scale) across processes. */
function nextSeq(now = Date.now()): number {
  lastSeq = Math.max(now * 1000, lastSeq + 1);
  return lastSeq;
}

/** The document of a job: every field of the table as it is (BSON keeps dates), `_id` for `id`. */
export function jobToDoc(job: Job): JobDoc {
  const { id, dedupe_key, usage, ...fields } = job;
  const doc: JobDoc = { ...fields, _id: id, seq: nextSeq(), progress: job.progress ?? null };
  if (usage) doc.usage = usage;
  if (dedupe_key) {
    doc.dedupe_key = dedupe_key;
    doc.dedupe = dedupeScope(job.queue, dedupe_key);
  }
  return doc;
}

const date = (v: unknown): Date => (v instanceof Date ? v : new Date(v as string | number));

/** Every field of the table present, null where empty, dates as Date (a server may hand back strings or numbers). */
export function docToJob(doc: JobDoc): Job {
  const job: Record<string, unknown> = {};
  for (const f of FIELD_NAMES) {
    const v = f === 'id' ? doc._id : (doc as unknown as Record<string, unknown>)[f];
    const kind = JOB_FIELDS[f].kind;
    if (v === undefined || v === null) job[f] = null;
    else if (kind === 'date') job[f] = date(v);
    else if (kind === 'lease') job[f] = { owner: (v as Lease).owner, token: (v as Lease).token, until: date((v as Lease).until) };
    else if (kind === 'cancel') job[f] = { at: date((v as CancelRequest).at), reason: (v as CancelRequest).reason };
    else job[f] = v;
  }
  // A document from before stalls were counted, or run histories kept.
  job.stalls ??= 0;
  job.runs ??= [];
  job.max_stalls ??= DEFAULTS.maxStalls;
  return job as unknown as Job;
}

/**
 * An event as stored in the `events` collection: `seq` is its id in the
 * job's stream, `job_seq` the `seq` of the job that wrote it (it tells a
 * job's events from those an earlier job of the same id left behind).
 * `expire_at` (servers with TTL indexes): set once the job has its own.
 */
export interface EventDoc {
  job_id: string;
  job_seq: number;
  seq: number;
  type: string;
  at: Date;
  attempt: number;
  data: unknown;
  expire_at?: Date;
}

export function docToEvent(doc: EventDoc): JobEvent {
  return { id: doc.seq, type: doc.type, at: date(doc.at), attempt: doc.attempt, data: doc.data ?? null };
}

export function workerToDoc(worker: WorkerInfo, horizonMs: number = DEFAULTS.workerHorizonMs): WorkerDoc {
  const { id, ...rest } = worker;
  return { _id: id, ...rest, expire_at: new Date(worker.last_seen.getTime() + horizonMs) };
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
function dedupeScope(queue: string, key: string): string {
  return `${queue}\u0000${key}`;
}
