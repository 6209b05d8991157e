/**
 * The one interface every store implements (`transports/<name>/`), in terms
 * of job operations. The worker loop, the client and the server only ever
 * speak to this interface; no driver type leaks through it.
 *
 * Glossary
 * - claim: atomically move the best due `queued` job of the given queues to
 *   `processing`, increment `attempts`, and hand out a fresh lease token.
 *   A claim also reclaims jobs whose lease expired (see `sweep`).
 * - fenced: the write matches on job id AND lease token; a stale token gets
 *   `LeaseLostError` and changes nothing.
 * - settle: write the outcome of a run, as decided by src/outcome.ts
 *   (done, error, queued for a retry or a hand-back, canceled), fenced.
 * - events: a job's ordered stream (src/events.ts). Handlers append to it,
 *   fenced; the store appends the lifecycle events (queued, started, retry,
 *   cancel_requested, canceled, done, error) in the same step as the change
 *   they report, keeps the newest `eventsMax`, and deletes them with the job.
 * - move: a migration's hold on a job in the store it leaves (src/migrate.ts):
 *   `moving` while copied (nobody claims, retries or cancels it at once),
 *   then `moved`, or handed back as it was.
 * - sweep: settle the jobs whose lease expired as src/outcome.ts decides
 *   (`lease-expired`: a stall; queued, `error`/`WORKER_CRASHED` when no
 *   stall is left, `canceled` when a cancel was asked); delete finished jobs
 *   older than the retention.
 */
import type { Analytics, AnalyticsWindow, Rollup, RollupStep } from './analytics.js';
import type { EventPage, JobEvent, NewEvent, ReadEventsOptions } from './events.js';
import type { CallbackLog, Job, JobStatus } from './job.js';
import type { Outcome } from './outcome.js';
import type { RetryManyRequest, RetryManyResult } from './retry-many.js';

export interface ClaimRequest {
  /** queues to claim from, in no particular order */
  queues: string[];
  /** worker id, stored as `lease.owner` */
  owner: string;
  /** lease length; the worker renews at about a third of it */
  lease_ms: number;
  /**
   * How long the call may block waiting for a job (0 = return at once).
   * Transports bound this so shutdown stays prompt.
   */
  wait_ms: number;
  /** aborts a blocking claim early (shutdown) */
  signal?: AbortSignal | undefined;
}

/** A claimed job always carries its lease. */
export type ClaimedJob = Job & { status: 'processing'; lease: NonNullable<Job['lease']> };

export interface ExtendResult {
  /** the new deadline */
  until: Date;
  /** set when somebody asked to cancel this job: the worker must abort */
  cancel_requested: Job['cancel_requested'];
}

export interface ListFilter {
  status?: JobStatus | undefined;
  queue?: string | undefined;
  /** only the jobs of this session (`payload.session_id`, exact match), served by an index on every store */
  session_id?: string | undefined;
  /** 1..500, default 50 */
  limit?: number | undefined;
  /** opaque, from the previous page's `next_cursor` */
  cursor?: string | undefined;
  /** only each job's summary is wanted (summarizeJob, src/job.ts): a store may leave out the rest instead of copying it */
  summary?: boolean | undefined;
}

export interface ListPage {
  /**
   * Newest first, by `created_at` then `id`; a list of one finished status
   * (done, error, canceled) without `session_id`: newest ending first, by
   * `finished_at` then `id` (listOrder, src/transport-helpers.ts).
   */
  jobs: Job[];
  next_cursor: string | null;
}

export interface QueueCounts {
  /** queued and due: a worker may claim them now (the delayed ones are not counted here) */
  queued: number;
  /** queued with `run_at` still in the future (not counted in `queued`: the two add up to every queued job) */
  delayed: number;
  processing: number;
  done: number;
  error: number;
  canceled: number;
  /** being copied to another store by a migration */
  moving: number;
  /** markers of jobs a migration moved to another store */
  moved: number;
}

export interface Stats {
  queues: Record<string, QueueCounts>;
  totals: QueueCounts;
}

export interface WorkerInfo {
  id: string;
  queues: string[];
  concurrency: number;
  /** jobs running right now */
  running: number;
  host: string;
  pid: number;
  started_at: Date;
  last_seen: Date;
  /** how long after `last_seen` this record counts as dead */
  ttl_ms: number;
  /** totals since the worker started */
  processed: number;
  failed: number;
}

export interface SweepResult {
  /** expired leases put back to `queued` */
  requeued: number;
  /** expired leases with no stall left, ended `error` / `WORKER_CRASHED` */
  expired: number;
  /** expired leases of jobs whose cancel was asked, ended `canceled` */
  canceled: number;
  /** finished jobs deleted by retention */
  deleted: number;
}

export interface WaitOptions {
  /** give up after this long and resolve with the job as it is then */
  timeout_ms: number;
  signal?: AbortSignal | undefined;
}

/** Features a store may lack; callers test for them instead of relying on silent no-ops. */
export interface TransportCapabilities {
  /** claims block until a job arrives instead of the caller polling */
  blockingClaim: boolean;
  /** `wait` is pushed by the store rather than polled */
  pushWait: boolean;
  /** the store deletes finished jobs by itself (TTL), otherwise `sweep` does */
  nativeRetention: boolean;
  /** concurrent claims are atomic in the store (FerretDB: no) */
  atomicClaim: boolean;
}

export interface Transport {
  /** `memory`, `mongo`, `redis` or `http` */
  readonly name: string;
  readonly capabilities: TransportCapabilities;

  /** Connect, create indexes / load scripts. Idempotent. */
  init(): Promise<void>;

  /**
   * Insert a job built by `buildJob`. If a job with the same id, or the same
   * `dedupe_key`, exists already, nothing is written and that job is returned
   * with `created: false`.
   */
  enqueue(job: Job): Promise<{ job: Job; created: boolean }>;

  /**
   * `enqueue` for many jobs in one round trip per batch (a store may split
   * very large batches), each idempotent by id and `dedupe_key` as `enqueue`
   * is; one reply per job, in order. Jobs of one queue keep their order.
   *
   * `options.imported` (the migrator): the jobs come from another store and
   * are written as given: status (queued or finished), attempts, stalls,
   * created_at, the callback log; each job's stream is `events[i]` with its
   * ids and times instead of a new `queued` event. A `dedupe_key` another
   * job holds already does not stop an imported job (both were
   * acknowledged): it is written without taking the key.
   */
  enqueueMany(jobs: Job[], options?: EnqueueManyOptions): Promise<EnqueueReply[]>;

  /**
   * Optional (the stores): the side a migration leaves (src/migrate.ts).
   * `take` is one round trip per call (plus what reading the streams costs).
   */
  moves?: MoveSource;

  /** Claim one job (see glossary), or null if none came within `wait_ms`. */
  claim(request: ClaimRequest): Promise<ClaimedJob | null>;

  /**
   * Optional: claim up to `max` jobs in one round trip. Blocks like `claim`
   * only while none is available; returns at least one job or none.
   */
  claimMany?(request: ClaimRequest, max: number): Promise<ClaimedJob[]>;

  /**
   * Optional (redis): `owner` is a worker loop in this process that claims
   * again as soon as a slot frees, until `until` aborts. The store may then
   * claim the owner's next job ahead, in the same call as a complete, and
   * hand it to the owner's next claim without a round trip. Trades: a job
   * claimed ahead waits in this process (released once a third of its lease
   * has gone unrenewed, or when the owner stops). Never called for remote
   * claimers (the HTTP API).
   */
  prefetchFor?(owner: string, until: AbortSignal): void;

  /** Renew a lease (fenced). Reports a pending cancel. */
  extend(id: string, token: string, lease_ms: number): Promise<ExtendResult>;

  /**
   * Write an outcome that was decided (`decideOutcome`, src/outcome.ts):
   * processing → done, error, queued or canceled, fenced on the token. The
   * store decides nothing but the one rule that depends on a concurrent
   * write: an outcome that would requeue or fail a job whose cancel was
   * asked meanwhile ends it `canceled` instead (the error kept).
   */
  settle(id: string, token: string, outcome: Outcome): Promise<Job>;

  /**
   * Append a handler's events to the job's stream, in order, fenced on the
   * token (checked by `checkEvent`, src/events.ts). Besides the stream, a
   * `progress` event's data becomes the job's `progress` and `usage` events
   * add to the job's `usage`, in the same write. Resolves with the id of the
   * job's newest event.
   *
   * `written`: how many events this run (this token) appended before these.
   * A try whose outcome is unknown (a timeout, a dropped connection) is
   * repeated with the same `written`, and the store skips the events of the
   * batch it has already: a repeat never writes an event twice. `null`: a
   * caller that never repeats (the first release's progress route): every
   * event is appended and the count left alone.
   */
  appendEvents(id: string, token: string, events: NewEvent[], written: number | null): Promise<number>;

  /**
   * A page of the job's stream after `after` (see EventPage). With `wait_ms`,
   * a read that finds nothing new waits up to that long for the next write
   * (pushed or polled, as the store can) before answering an empty page.
   * Throws JobNotFoundError when the job does not exist.
   */
  readEvents(id: string, options: ReadEventsOptions): Promise<EventPage>;

  /**
   * Cancel from anywhere: queued → canceled at once; processing → sets
   * `cancel_requested` (the worker ends it); terminal → unchanged.
   * Throws JobNotFoundError.
   */
  cancel(id: string, reason: string): Promise<Job>;

  /** error/canceled → queued with attempts reset (the run history kept); otherwise InvalidStateError. */
  retry(id: string): Promise<Job>;

  /**
   * Optional (http): a bulk retry in one request (`POST /v1/jobs:retry`).
   * Elsewhere `retryMany` (src/retry-many.ts) retries job by job through
   * `retry`; callers go through that function, which picks.
   */
  retryMany?(request: RetryManyRequest): Promise<RetryManyResult>;

  get(id: string): Promise<Job | null>;

  /**
   * Resolve with the job once it is terminal, or as it is when the timeout
   * runs out. Throws JobNotFoundError if it does not exist.
   */
  wait(id: string, options: WaitOptions): Promise<Job>;

  list(filter: ListFilter): Promise<ListPage>;
  stats(): Promise<Stats>;

  /**
   * Optional (the stores): the rollups of finished jobs (src/analytics.ts)
   * of period `step_ms` starting in [from, to), every queue, in no
   * particular order. The cost depends on the periods and queues asked
   * for, not on the jobs.
   */
  rollups?(from: Date, to: Date, step_ms: RollupStep): Promise<Rollup[]>;

  /**
   * Optional (http, whose server reads the rollups): the analytics answer
   * itself (`GET /v1/analytics`). A caller holding a store uses `rollups`
   * (readAnalytics in src/analytics-read.ts picks whichever is there).
   */
  analytics?(window: AnalyticsWindow, queue?: string): Promise<Analytics>;

  /** Worker registry: upsert this worker's record. */
  heartbeat(worker: WorkerInfo): Promise<void>;
  /** Remove a worker's record on clean shutdown. */
  unregisterWorker(id: string): Promise<void>;
  /** Workers seen within the registry horizon (`workerHorizonMs`), alive or not. */
  workers(): Promise<WorkerInfo[]>;

  /** Recover expired leases and apply retention (see glossary). Run by the elected maintainer (src/maintenance.ts). */
  sweep(now?: Date): Promise<SweepResult>;

  /**
   * Optional: take or renew the named lock for `ttl_ms` as `owner`; true
   * while `owner` holds it. `ttl_ms` 0 hands it back (when `owner` holds it).
   * Elects the one maintainer (src/maintenance.ts).
   * Absent where another process maintains the store (http: its server).
   */
  lead?(name: string, owner: string, ttl_ms: number): Promise<boolean>;

  /**
   * Optional (the stores; absent on http, whose server delivers): take up
   * to `max` callback deliveries that are due (the outbox, written with a
   * job's terminal status), each due again `lease_ms` later unless settled
   * meanwhile, so that a deliverer that dies mid-delivery is replaced.
   */
  claimCallbacks?(owner: string, lease_ms: number, max: number): Promise<Job[]>;

  /**
   * Record how a delivery went: the log on the job, and when the next try is
   * due (null: none, delivered or given up). Fenced on the ending it was
   * for (`finished_at`): a job retried and ended again meanwhile owes a new
   * callback, which this leaves alone.
   */
  settleCallback?(id: string, finished_at: Date, log: CallbackLog, next_at: Date | null): Promise<void>;

  /** Safe to call twice. */
  close(): Promise<void>;
}

/** Jobs a store writes per round trip of `enqueueMany` (a longer batch is written in slices of this); also the most one `POST /v1/jobs:batch` takes. */
export const ENQUEUE_MANY_MAX = 1000;

export interface EnqueueReply {
  job: Job;
  created: boolean;
}

export interface EnqueueManyOptions {
  /** the jobs are copies from another store, `events[i]` the stream of job i */
  imported?: { events: JobEvent[][] } | undefined;
}

/** A job on its way out of a store: as it was before the move, and its stream (the kept events, ids as they were). */
export interface MovingJob {
  /** the status is the one before the move (queued, or finished) */
  job: Job;
  events: JobEvent[];
}

/**
 * A migration's hold on jobs of the store it empties. Every step is atomic
 * per job and safe to repeat: a migrator killed at any point and run again
 * finds its `moving` jobs with `take('moving')` and finishes them.
 */
export interface MoveSource {
  /**
   * Up to `max` jobs of `queue`:
   * - `queued`: queued jobs (due or delayed), best first as claims take
   *   them, set `moving`;
   * - `finished`: done · error · canceled jobs, oldest ending first, set `moving`;
   * - `moving`: the jobs a migration holds already, unchanged (recovery).
   */
  take(queue: string, what: 'queued' | 'finished' | 'moving', max: number): Promise<MovingJob[]>;
  /** `moving` → `moved` with `moved_to = to`. Returns how many changed (one already moved is left alone). */
  finish(ids: string[], to: string): Promise<number>;
  /** `moving` → the status it had (queued ones runnable again). Returns how many changed. */
  release(ids: string[]): Promise<number>;
}

/** Options every transport factory accepts besides its own connection settings. */
export interface TransportOptions {
  /** how long finished jobs are kept (ms) */
  retentionMs?: number;
  /** events kept per job, newest first (older ones are trimmed, and readers told), default REASONQ_EVENTS_MAX */
  eventsMax?: number;
  /** a worker not seen for this long leaves the registry (ms), default REASONQ_WORKER_HORIZON_MS */
  workerHorizonMs?: number;
}

export const EMPTY_COUNTS: Readonly<QueueCounts> = Object.freeze({ queued: 0, delayed: 0, processing: 0, done: 0, error: 0, canceled: 0, moving: 0, moved: 0 });

/**
 * An empty queue → counts table. Without a prototype, so that a queue named
 * `constructor` or `toString` is a queue like any other.
 */
export function queueTable(): Record<string, QueueCounts> {
  return Object.create(null) as Record<string, QueueCounts>;
}

/** Sum per-queue counts into totals. */
export function buildStats(queues: Record<string, QueueCounts>): Stats {
  const totals: QueueCounts = { ...EMPTY_COUNTS };
  for (const counts of Object.values(queues)) {
    for (const key of Object.keys(totals) as (keyof QueueCounts)[]) totals[key] += counts[key];
  }
  return { queues, totals };
}
