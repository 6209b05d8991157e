/**
 * Mongo transport: MongoDB, and MongoDB-compatible servers (FerretDB).
 *
 * Data layout, database `reasoning_queue` by default:
 * - `jobs`: one document per job, `_id` = job id, the snake_case fields of
 *   docs/architecture.md (`status` is queued · processing · done · error · canceled,
 *   or moving · moved while a migration takes jobs out (moves.ts), `lease`
 *   is `{owner, token, until}` while processing), plus `seq` (enqueue
 *   order: FIFO within a priority). `dedupe_key` is left out when unset;
 *   `expire_at` (finished_at + retention) is set when a job ends. The
 *   counters of its event stream: `event_seq` (newest event id),
 *   `events_floor` (last id trimmed away), `emitted` / `emitted_lag` (the
 *   appending run, for repeat-safety); `move_from` / `move_token` while
 *   `moving`.
 * - `events`: one document per event, `{job_id, job_seq, seq, type, at,
 *   attempt, data}`, `seq` = the event id; deleted with their job.
 * - `workers`: one document per worker, `_id` = worker id, `last_seen`.
 * - `locks`: the maintainer's lock.
 * - `rollups`: analytics, one document per queue and minute (and quarter
 *   hour) of endings (rollups.ts), written after the ending, deleted by the
 *   sweep after 25 h.
 * Indexes are declared beside their queries in queries.ts.
 *
 * `enqueueMany` is one `insertMany` per slice (enqueue-many.ts).
 * A claim is one `findOneAndUpdate` (queued and due → processing, fresh
 * token, attempts + 1), sorted by priority then age. Every later write of the
 * worker is fenced on `_id` + token + processing + unexpired lease; a settle
 * writes `runs` with the run's record appended (src/runs.ts) in its fenced
 * write, from what this process's claim returned (`held`; a job claimed
 * elsewhere is read by `_id` first). FerretDB 1.24 ignores `$push`'s
 * `$slice`, so the cap is applied here; the token fences the
 * read-modify-write: only this run's settle or the sweep of its expired
 * lease can write `runs` under it, and only one of them matches. Expired
 * leases are recovered by claims as they poll and by `sweep()` (recovery.ts).
 * Every write that changes a job takes the id of its lifecycle event in the
 * same write (`$inc: {event_seq: 1}`); the event follows in a batched insert
 * (event-batch.ts). A handler's events: one fenced `findOneAndUpdate` takes
 * their ids, one `insertMany` writes them (events.ts, with the rule readers
 * follow when an id is taken but its event not in yet).
 * Wake-ups (notifier.ts): adaptive polling with jitter, plus change streams
 * where the server has them. On FerretDB one connection serialises this
 * process's writes, which FerretDB does not make atomic across connections.
 */
import { randomUUID } from 'node:crypto';
import type { Collection, MongoClient, UpdateFilter } from 'mongodb';
import { sleep } from '../../src/backoff.js';
import { DEFAULTS } from '../../src/config.js';
import { JobNotFoundError, TransportError } from '../../src/errors.js';
import { EVENTS_PAGE_MAX, type EventPage, type NewEvent, type ReadEventsOptions } from '../../src/events.js';
import { assertTransition, isTerminal, PENDING_CALLBACK, RETRY_FROM, type CallbackLog, type Job } from '../../src/job.js';
import type { Outcome } from '../../src/outcome.js';
import { appendRun, runRecord } from '../../src/runs.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import {
  ENQUEUE_MANY_MAX,
  type ClaimRequest,
  type ClaimedJob,
  type EnqueueManyOptions,
  type EnqueueReply,
  type ExtendResult,
  type ListFilter,
  type ListPage,
  type MoveSource,
  type Stats,
  type SweepResult,
  type Transport,
  type TransportCapabilities,
  type TransportOptions,
  type WaitOptions,
  type WorkerInfo,
} from '../../src/transport.js';
import { assertSettle, MAX_CLAIM_WAIT_MS } from '../../src/transport-helpers.js';
import { docToJob, docToWorker, jobToDoc, workerToDoc, type EventDoc, type JobDoc, type WorkerDoc } from './codec.js';
import { insertSlice } from './enqueue-many.js';
import { isDuplicateKey, fromMongoError } from './errors.js';
import { EventBatch } from './event-batch.js';
import { EventStreams } from './events.js';
import { MongoMoves } from './moves.js';
import { Notifier } from './notifier.js';
import { callbacksDueFilter, CLAIM_SORT, claimFilter, EVENTS, fenceError, fencedFilter, JOBS, LOCKS, ROLLUPS, WORKERS, workersSeenSince } from './queries.js';
import { applyRetention, recoverLeases } from './recovery.js';
import { countJobs, listJobs } from './reads.js';
import { MongoRollups, type RollupDoc } from './rollups.js';
import type { Rollup, RollupStep } from '../../src/analytics.js';
import { connectServer, ServerClock, type ServerInfo } from './server.js';

export type { ServerInfo } from './server.js';

/** A reader at a missing id looks again this often (events.ts, the gap rule). */
const GAP_POLL_MS = 200;
export { hotQueries, INDEXES } from './queries.js';

export interface MongoTransportOptions extends TransportOptions {
  /** connection string, default `mongodb://127.0.0.1:27017` */
  uri?: string;
  /** database, default `reasoning_queue` */
  db?: string;
  /** `majority` (default) or a number of nodes */
  writeConcern?: 'majority' | number;
  logger?: Logger | undefined;
  /** first pause of an idle claim (ms), doubled up to `pollMaxMs`; default 50 */
  pollMinMs?: number;
  /** ceiling of the idle claim backoff (ms); default 2000 */
  pollMaxMs?: number;
  /** ceiling of the `wait` polling backoff (ms); default 1000 */
  waitPollMaxMs?: number;
  /** how long to look for a server before failing (ms); default 5000 */
  serverSelectionTimeoutMS?: number;
  /** connection pool size; forced to 1 on FerretDB */
  maxPoolSize?: number;
  /** called with the name of every command sent (command monitoring), for benchmarks */
  commandListener?: (commandName: string) => void;
}

/** Build a mongo transport; call `init()` (createTransport does) before use. */
export function createMongoTransport(options: MongoTransportOptions = {}): MongoTransport {
  return new MongoTransport(options);
}

/** How often a polling claim also recovers expired leases, at most. */
const RECOVER_EVERY_MS = 1_000;
/** the server's clock is measured again at most this often (ServerClock) */
const CLOCK_SYNC_MS = 60_000;
/** How often sweep() runs the retention delete, at most (the first call always does). */
const RETENTION_EVERY_MS = 5_000;

interface Ready {
  jobs: Collection<JobDoc>;
  events: Collection<EventDoc>;
  workers: Collection<WorkerDoc>;
  locks: Collection<LockDoc>;
  notifier: Notifier;
  batch: EventBatch;
  streams: EventStreams;
  rollups: MongoRollups;
}

/** Claims of this process remembered for their settle (`held`); past it the oldest is forgotten and its settle reads the job. */
const HELD_MAX = 10_000;

/** What a write that adds one lifecycle event adds to the job's counters (its id; one more taken since the last append). */
const NEXT_EVENT = { event_seq: 1, emitted_lag: 1 } as const;

interface LockDoc {
  _id: string;
  owner: string;
  until: Date;
}

export class MongoTransport implements Transport {
  readonly name = 'mongo';
  /** Filled in by init() from what the server can do. */
  readonly capabilities: TransportCapabilities = { blockingClaim: false, pushWait: false, nativeRetention: false, atomicClaim: true };

  private readonly uri: string;
  private readonly dbName: string;
  private readonly options: MongoTransportOptions;
  private readonly retentionMs: number;
  private readonly workerHorizonMs: number;
  private readonly eventsMax: number;
  private readonly pollMinMs: number;
  private readonly pollMaxMs: number;
  private readonly log: Logger;
  private client: MongoClient | null = null;
  private ready: Ready | null = null;
  private starting: Promise<Ready> | null = null;
  private info: ServerInfo | null = null;
  private readonly idle = new Map<string, { step: number; nextAt: number }>();
  private readonly clock = new ServerClock();
  private lastRecovery = 0;
  /**
   * What a settle needs of the run it ends (its attempt, owner, start and the
   * job's `runs`), kept from this process's claims by id: the record of the
   * run goes into the settle's one fenced write without a read first (a
   * settle is one round trip, not two). A settle of a job claimed elsewhere
   * (another process, a token this map no longer has) reads it. Measured
   * (scripts/bench/mongo.ts commandsPerJob, counting `find` too, FerretDB):
   * 100 jobs enqueued, claimed and settled at once cost 4.08 commands a job
   * with the read, 3.07 without.
   */
  private readonly held = new Map<string, Pick<JobDoc, 'attempts' | 'lease' | 'started_at' | 'runs'>>();
  private lastRetention = 0;
  private closed = false;

  /** The side a migration leaves (moves.ts). */
  readonly moves: MoveSource = new MongoMoves({
    run: (fn) => this.op(fn),
    now: () => this.clock.now(),
    ended: (now) => this.ended(now),
    atomicWrites: () => this.capabilities.atomicClaim,
    ttl: () => this.capabilities.nativeRetention,
    workArrived: (queue) => {
      if (this.ready) this.workArrived(queue, this.ready.notifier);
    },
  });

  constructor(options: MongoTransportOptions) {
    this.options = options;
    this.uri = options.uri ?? DEFAULTS.mongoUri;
    this.dbName = options.db ?? DEFAULTS.mongoDb;
    this.retentionMs = options.retentionMs ?? DEFAULTS.retentionMs;
    this.workerHorizonMs = options.workerHorizonMs ?? DEFAULTS.workerHorizonMs;
    this.eventsMax = options.eventsMax ?? DEFAULTS.eventsMax;
    this.pollMinMs = options.pollMinMs ?? DEFAULTS.pollMinMs;
    this.pollMaxMs = options.pollMaxMs ?? DEFAULTS.pollMaxMs;
    this.log = options.logger ?? silentLogger;
  }

  /** What init() detected about the server; null before init. */
  get server(): ServerInfo | null {
    return this.info;
  }

  async init(): Promise<void> {
    await this.connection();
  }

  async enqueue(job: Job): Promise<{ job: Job; created: boolean }> {
    return this.op(async ({ jobs, notifier, streams }) => {
      // Event 1 is its `queued`.
      const doc: JobDoc = { ...jobToDoc(job), event_seq: 1 };
      for (let tries = 0; ; tries++) {
        try {
          await jobs.insertOne(doc);
          streams.logged(doc, 'queued', {}, this.clock.now());
          if (job.run_at.getTime() <= Date.now()) this.workArrived(job.queue, notifier);
          return { job: docToJob(doc), created: true };
        } catch (error) {
          if (!isDuplicateKey(error) || tries >= 2) throw error;
          const existing = (await jobs.findOne({ _id: job.id })) ?? (doc.dedupe ? await jobs.findOne({ dedupe: doc.dedupe }) : null);
          if (existing) return { job: docToJob(existing), created: false };
          // the job we collided with was deleted meanwhile: insert again
        }
      }
    });
  }

  async enqueueMany(jobs: Job[], options: EnqueueManyOptions = {}): Promise<EnqueueReply[]> {
    const replies: EnqueueReply[] = [];
    for (let from = 0; from < jobs.length; from += ENQUEUE_MANY_MAX) {
      const slice = jobs.slice(from, from + ENQUEUE_MANY_MAX);
      const events = options.imported ? options.imported.events.slice(from, from + ENQUEUE_MANY_MAX) : null;
      const written = await this.op(async (ready) => {
        const result = await insertSlice({ jobs: ready.jobs, streams: ready.streams, now: this.clock.now(), retentionMs: this.retentionMs }, slice, events);
        for (const queue of result.arrived) this.workArrived(queue, ready.notifier);
        // An imported finished job counts at its own minute (a migration carries the analytics of the last day).
        if (events) for (const r of result.replies) if (r.created) ready.rollups.add(r.job.queue, r.job, r.job.started_at !== null);
        return result.replies;
      });
      replies.push(...written);
    }
    return replies;
  }

  async claim(request: ClaimRequest): Promise<ClaimedJob | null> {
    const { notifier } = await this.connection();
    const deadline = Date.now() + Math.min(Math.max(request.wait_ms, 0), MAX_CLAIM_WAIT_MS);
    const key = [...request.queues].sort().join('\n');
    for (let first = true; ; first = false) {
      // Idle queues are polled on a backoff that outlives a single call (the
      // worker calls again as soon as one returns empty), shared by every
      // claimer of these queues in this process; wait_ms 0 always asks.
      const idle = this.idle.get(key);
      const due = idle && !(first && request.wait_ms === 0) ? idle.nextAt - Date.now() : 0;
      if (due > 0) {
        const left = deadline - Date.now();
        if (left <= 0 || this.closed || request.signal?.aborted) return null;
        if (await notifier.sleep(request.queues, Math.min(due, left), request.signal)) this.idle.delete(key);
        continue;
      }
      const job = await this.claimOnce(request);
      if (job) {
        this.idle.delete(key);
        return job;
      }
      // Empty: back off, doubling up to the ceiling, jittered (50-100 %) so
      // that idle workers spread out instead of polling in step.
      const step = idle ? Math.min(idle.step * 2, this.pollMaxMs) : this.pollMinMs;
      this.idle.set(key, { step, nextAt: Date.now() + Math.round(step * (0.5 + Math.random() * 0.5)) });
      if (deadline - Date.now() <= 0 || this.closed || request.signal?.aborted) return null;
    }
  }

  async claimMany(request: ClaimRequest, max: number): Promise<ClaimedJob[]> {
    const first = await this.claim(request);
    if (!first) return [];
    const jobs = [first];
    while (jobs.length < max && !request.signal?.aborted) {
      const next = await this.claimOnce(request);
      if (!next) break;
      jobs.push(next);
    }
    return jobs;
  }

  async extend(id: string, token: string, leaseMs: number): Promise<ExtendResult> {
    const now = this.clock.now();
    const doc = await this.fenced(id, token, { $set: { 'lease.until': new Date(now.getTime() + leaseMs), updated_at: now } });
    return { until: doc.lease!.until, cancel_requested: docToJob(doc).cancel_requested };
  }

  async settle(id: string, token: string, outcome: Outcome): Promise<Job> {
    assertSettle(id, outcome);
    const now = this.clock.now();
    const set: Partial<JobDoc> = {};
    if (outcome.result !== undefined) set.result = outcome.result;
    if (outcome.error !== undefined) set.error = outcome.error;
    const inc = { attempts: outcome.give_back ? -1 : 0, stalls: outcome.stall ? 1 : 0, ...NEXT_EVENT };
    const { streams, jobs } = await this.connection();
    // The run as it holds the job: the record of its end goes into the same write (a job not held by this token fails the fence below).
    const kept = this.held.get(id);
    this.held.delete(id);
    const held = kept?.lease?.token === token ? kept : await this.op(() => jobs.findOne({ _id: id }, { projection: { attempts: 1, lease: 1, started_at: 1, runs: 1 } }));
    const runs = (written: Outcome['status']) => appendRun(held?.runs, runRecord(held ?? { attempts: 0, lease: null, started_at: null }, outcome, written, now));
    const logged = (doc: JobDoc) => {
      streams.loggedOutcome(doc, outcome, now);
      return docToJob(doc);
    };
    if (outcome.status === 'done' || outcome.status === 'canceled') {
      return logged(await this.fencedEnd(id, token, now, { $set: { ...set, status: outcome.status, runs: runs(outcome.status), ...this.ended(now) }, $inc: inc }));
    }
    // A requeue or an error holds only while no cancel was asked; the filter decides that atomically, else the job ends canceled.
    const write =
      outcome.status === 'queued'
        ? { ...set, status: 'queued' as const, runs: runs('queued'), lease: null, run_at: outcome.run_at ?? now, updated_at: now }
        : { ...set, status: 'error' as const, runs: runs('error'), ...this.ended(now) };
    // A claimed job has attempts ≥ 1, so giving one back never goes below 0.
    const written =
      write.status === 'queued'
        ? await this.fenced(id, token, { $set: write, $inc: inc }, { cancel_requested: null }, false)
        : await this.fencedEnd(id, token, now, { $set: write, $inc: inc }, { cancel_requested: null }, false);
    if (written) return logged(written);
    return logged(await this.fencedEnd(id, token, now, { $set: { ...set, status: 'canceled', runs: runs('canceled'), ...this.ended(now) }, $inc: inc }, { cancel_requested: { $ne: null } }));
  }

  async appendEvents(id: string, token: string, events: NewEvent[], written: number | null): Promise<number> {
    return this.op(({ streams }) => streams.append(id, token, events, written));
  }

  async readEvents(id: string, options: ReadEventsOptions): Promise<EventPage> {
    const { batch, notifier, streams } = await this.connection();
    const after = Math.max(0, options.after ?? 0);
    const limit = Math.min(Math.max(options.limit ?? EVENTS_PAGE_MAX, 1), EVENTS_PAGE_MAX);
    const deadline = Date.now() + Math.max(0, options.wait_ms ?? 0);
    await batch.settled(id); // this process reads its own lifecycle events
    for (;;) {
      const { page, gapWaitMs } = await this.op(() => streams.page(id, after, limit));
      const left = deadline - Date.now();
      if (page.events.length > 0 || page.end || left <= 0 || options.signal?.aborted || this.closed) return page;
      // At a missing id (its counter is already past it): look again shortly, until its insert lands or it counts as lost.
      if (gapWaitMs > 0) await sleep(Math.min(left, gapWaitMs, GAP_POLL_MS), options.signal);
      else await notifier.waitEvents(id, Math.max(after, page.last), left, options.signal);
    }
  }

  async cancel(id: string, reason: string): Promise<Job> {
    return this.op(async ({ jobs, notifier, streams, rollups }) => {
      for (;;) {
        const now = this.clock.now();
        const request = { at: now, reason };
        const end = { status: 'canceled' as const, cancel_requested: request, ...this.ended(now) };
        // A job with a callback owes it (the outbox); the two kinds of job are told apart in the filter, so the write stays one step.
        const canceled =
          (await jobs.findOneAndUpdate({ _id: id, status: 'queued', callback_url: null }, { $set: end, $inc: NEXT_EVENT }, { returnDocument: 'after' })) ??
          (await jobs.findOneAndUpdate({ _id: id, status: 'queued', callback_url: { $ne: null } }, { $set: { ...end, ...this.owed(now) }, $inc: NEXT_EVENT }, { returnDocument: 'after' }));
        if (canceled) {
          streams.logged(canceled, 'canceled', { reason }, now);
          rollups.add(canceled.queue, canceled, false);
          notifier.jobFinished(id);
          return docToJob(canceled);
        }
        const asked = await jobs.findOneAndUpdate({ _id: id, status: 'processing', cancel_requested: null }, { $set: { cancel_requested: request, updated_at: now }, $inc: NEXT_EVENT }, { returnDocument: 'after' });
        if (asked) {
          streams.logged(asked, 'cancel_requested', { reason }, now);
          return docToJob(asked);
        }
        const current = await jobs.findOne({ _id: id });
        if (!current) throw new JobNotFoundError(id);
        // queued again in between (lease expired, released): cancel that
        if (current.status !== 'queued') return docToJob(current);
      }
    });
  }

  async retry(id: string): Promise<Job> {
    return this.op(async ({ jobs, notifier, streams }) => {
      const now = this.clock.now();
      const doc = await jobs.findOneAndUpdate(
        { _id: id, status: { $in: [...RETRY_FROM] } },
        {
          $set: { status: 'queued', attempts: 0, stalls: 0, cancel_requested: null, finished_at: null, result: null, callback: null, lease: null, run_at: now, updated_at: now },
          $unset: { expire_at: '', callback_due: '' },
          $inc: NEXT_EVENT,
        },
        { returnDocument: 'after' },
      );
      if (doc) {
        streams.expireWith(id, null); // the job has no deadline any more: nor have its events
        streams.logged(doc, 'queued', { retried: true }, now);
        notifier.jobQueued(doc.queue);
        return docToJob(doc);
      }
      const current = await jobs.findOne({ _id: id });
      if (!current) throw new JobNotFoundError(id);
      assertTransition(docToJob(current), 'retry', 'queued');
      throw new TransportError(`job ${id} changed while it was being retried`, { retryable: true });
    });
  }

  async get(id: string): Promise<Job | null> {
    return this.op(async ({ jobs }) => {
      const doc = await jobs.findOne({ _id: id });
      return doc ? docToJob(doc) : null;
    });
  }

  async wait(id: string, options: WaitOptions): Promise<Job> {
    const { notifier } = await this.connection();
    const deadline = Date.now() + Math.max(0, options.timeout_ms);
    for (;;) {
      const job = await this.get(id);
      if (!job) throw new JobNotFoundError(id);
      const left = deadline - Date.now();
      if (isTerminal(job.status) || left <= 0 || options.signal?.aborted || this.closed) return job;
      await notifier.waitFinished(id, left, options.signal);
    }
  }

  async list(filter: ListFilter): Promise<ListPage> {
    return this.op(({ jobs }) => listJobs(jobs, filter));
  }

  async stats(): Promise<Stats> {
    return this.op(({ jobs }) => countJobs(jobs));
  }

  async rollups(from: Date, to: Date, step: RollupStep): Promise<Rollup[]> {
    return this.op(({ rollups }) => rollups.read(from, to, step));
  }

  async heartbeat(worker: WorkerInfo): Promise<void> {
    await this.op(async ({ workers }) => {
      const { _id, ...fields } = workerToDoc(worker, this.workerHorizonMs);
      await workers.updateOne({ _id }, { $set: fields }, { upsert: true });
    });
  }

  async unregisterWorker(id: string): Promise<void> {
    await this.op(({ workers }) => workers.deleteOne({ _id: id }));
  }

  async workers(): Promise<WorkerInfo[]> {
    return this.op(async ({ workers }) => (await workers.find(workersSeenSince(new Date(this.clock.now().getTime() - this.workerHorizonMs))).toArray()).map(docToWorker));
  }

  async sweep(at?: Date): Promise<SweepResult> {
    return this.op(async ({ jobs, events, workers, rollups }) => {
      const now = at ?? this.clock.now();
      this.lastRecovery = Date.now();
      const recovered = await recoverLeases(jobs, now, this.retentionMs, this.hooks());
      let deleted = 0;
      if (Date.now() - this.lastRetention >= RETENTION_EVERY_MS) {
        this.lastRetention = Date.now();
        deleted = await applyRetention(jobs, events, workers, now, this.retentionMs, this.workerHorizonMs);
        await rollups.prune(now);
      }
      return { ...recovered, deleted };
    });
  }

  async lead(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.op(async ({ locks }) => {
      if (ttlMs <= 0) {
        await locks.deleteOne({ _id: name, owner });
        return false;
      }
      await this.clock.sync(this.client!, CLOCK_SYNC_MS); // deadlines written by other processes: read them on the server's clock
      const now = this.clock.now();
      try {
        // Ours to renew, or free to take once its holder stopped renewing; held by another, the upsert collides.
        const doc = await locks.findOneAndUpdate({ _id: name, $or: [{ owner }, { until: { $lte: now } }] }, { $set: { owner, until: new Date(now.getTime() + ttlMs) } }, { upsert: true, returnDocument: 'after' });
        return doc?.owner === owner;
      } catch (error) {
        if (isDuplicateKey(error)) return false;
        throw error;
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.starting?.catch(() => undefined);
    await this.ready?.batch.flush();
    await this.ready?.rollups.close().catch(() => undefined);
    await this.ready?.notifier.close();
    await this.client?.close().catch(() => undefined);
  }

  // -- internals ------------------------------------------------------------

  private connection(): Promise<Ready> {
    if (this.closed) return Promise.reject(new TransportError('the mongo transport is closed', { retryable: false, code: 'TRANSPORT_CLOSED' }));
    if (this.ready) return Promise.resolve(this.ready);
    this.starting ??= this.connect().catch((error: unknown) => {
      this.starting = null;
      throw fromMongoError(error, this.uri);
    });
    return this.starting;
  }

  private async connect(): Promise<Ready> {
    const settings = {
      writeConcern: this.options.writeConcern ?? (DEFAULTS.mongoWriteConcern as 'majority'),
      serverSelectionTimeoutMS: this.options.serverSelectionTimeoutMS ?? DEFAULTS.serverSelectionTimeoutMs,
      maxPoolSize: this.options.maxPoolSize,
      commandListener: this.options.commandListener,
    };
    const { db, info } = await connectServer(this.uri, this.dbName, settings, this.log, this.clock, (client) => (this.client = client));
    this.info = info;
    Object.assign(this.capabilities, { blockingClaim: info.changeStreams, pushWait: info.changeStreams, nativeRetention: info.ttlIndexes, atomicClaim: info.atomicWrites });
    const jobs = db.collection<JobDoc>(JOBS);
    const events = db.collection<EventDoc>(EVENTS);
    const notifier = new Notifier(jobs, events, { changeStreams: info.changeStreams, waitPollMinMs: this.pollMinMs, waitPollMaxMs: this.options.waitPollMaxMs ?? DEFAULTS.waitPollMaxMs, logger: this.log });
    const batch = new EventBatch(events, this.log, (ids) => {
      for (const id of ids) notifier.eventsWritten(id);
    });
    const streams = new EventStreams({ jobs, events, batch, notifier, clock: this.clock, eventsMax: this.eventsMax, ttl: info.ttlIndexes });
    const rollups = new MongoRollups(db.collection<RollupDoc>(ROLLUPS), this.log);
    this.ready = { jobs, events, workers: db.collection<WorkerDoc>(WORKERS), locks: db.collection<LockDoc>(LOCKS), notifier, batch, streams, rollups };
    return this.ready;
  }

  /** Run one operation with the connection, translating driver errors. */
  private async op<T>(fn: (ready: Ready) => Promise<T>): Promise<T> {
    const ready = await this.connection();
    try {
      return await fn(ready);
    } catch (error) {
      if (this.closed) throw new TransportError('the mongo transport is closed', { cause: error, retryable: false, code: 'TRANSPORT_CLOSED' });
      throw fromMongoError(error, this.uri);
    }
  }

  private async claimOnce(request: ClaimRequest): Promise<ClaimedJob | null> {
    return this.op(async ({ jobs, streams }) => {
      const now = this.clock.now();
      if (Date.now() - this.lastRecovery >= RECOVER_EVERY_MS) {
        this.lastRecovery = Date.now();
        await recoverLeases(jobs, now, this.retentionMs, this.hooks());
      }
      const lease = { owner: request.owner, token: randomUUID(), until: new Date(now.getTime() + request.lease_ms) };
      const doc = await jobs.findOneAndUpdate(
        claimFilter(request.queues, now),
        { $set: { status: 'processing', lease, started_at: now, updated_at: now }, $inc: { attempts: 1, ...NEXT_EVENT } },
        { sort: CLAIM_SORT, returnDocument: 'after' },
      );
      if (!doc) return null;
      streams.logged(doc, 'started', { worker: request.owner }, now);
      this.held.delete(doc._id); // set again: newest last, the order the purge below relies on
      this.held.set(doc._id, { attempts: doc.attempts, lease: doc.lease, started_at: doc.started_at, runs: doc.runs });
      // Claims never settled here (a lease lost, a settle through another replica) go once their lease has run out, oldest first.
      for (const [id, run] of this.held) {
        if (this.held.size <= HELD_MAX && (run.lease?.until.getTime() ?? 0) > now.getTime()) break;
        this.held.delete(id);
      }
      return docToJob(doc) as ClaimedJob;
    });
  }

  /**
   * A write fenced on id + token + processing + unexpired lease (plus
   * `extra`). Throws LeaseLostError / JobNotFoundError when nothing matched,
   * or returns null with `orThrow = false`.
   */
  private fenced(id: string, token: string, update: UpdateFilter<JobDoc>, extra?: object, orThrow?: true): Promise<JobDoc>;
  private fenced(id: string, token: string, update: UpdateFilter<JobDoc>, extra: object, orThrow: false): Promise<JobDoc | null>;
  private fenced(id: string, token: string, update: UpdateFilter<JobDoc>, extra: object = {}, orThrow = true): Promise<JobDoc | null> {
    return this.op(async ({ jobs, notifier, rollups }) => {
      const doc = await jobs.findOneAndUpdate({ ...fencedFilter(id, token, this.clock.now()), ...extra }, update, { returnDocument: 'after' });
      if (doc && isTerminal(doc.status)) {
        notifier.jobFinished(id);
        rollups.add(doc.queue, doc, true);
      }
      if (doc && doc.status === 'queued') notifier.jobQueued(doc.queue);
      if (doc || !orThrow) return doc;
      throw await this.lostOrMissing(id);
    });
  }

  /**
   * A fenced move to a terminal status that also records the callback a job
   * with a `callback_url` owes (the outbox), in the same write: the filter
   * tells the two kinds of job apart (callback_url never changes), so a job
   * without a callback costs one write and one with a callback two.
   */
  private fencedEnd(id: string, token: string, now: Date, update: UpdateFilter<JobDoc>, extra?: object, orThrow?: true): Promise<JobDoc>;
  private fencedEnd(id: string, token: string, now: Date, update: UpdateFilter<JobDoc>, extra: object, orThrow: false): Promise<JobDoc | null>;
  private async fencedEnd(id: string, token: string, now: Date, update: UpdateFilter<JobDoc>, extra: object = {}, orThrow = true): Promise<JobDoc | null> {
    const plain = await this.fenced(id, token, update, { ...extra, callback_url: null }, false);
    if (plain) return plain;
    const owed = { ...update, $set: { ...(update.$set as object), ...this.owed(now) } } as UpdateFilter<JobDoc>;
    return orThrow ? this.fenced(id, token, owed, { ...extra, callback_url: { $ne: null } }) : this.fenced(id, token, owed, { ...extra, callback_url: { $ne: null } }, false);
  }

  /** The fields of an owed callback: its log starts pending, due now; no retention deadline until it is delivered or given up (settleCallback sets it). */
  private owed(now: Date): { callback: CallbackLog; callback_due: Date; expire_at: null } {
    return { callback: { ...PENDING_CALLBACK }, callback_due: now, expire_at: null };
  }

  async claimCallbacks(_owner: string, leaseMs: number, max: number): Promise<Job[]> {
    return this.op(async ({ jobs }) => {
      const out: Job[] = [];
      while (out.length < max) {
        const now = this.clock.now();
        const doc = await jobs.findOneAndUpdate(callbacksDueFilter(now), { $set: { callback_due: new Date(now.getTime() + leaseMs) } }, { sort: { callback_due: 1 }, returnDocument: 'after' });
        if (!doc) break;
        out.push(docToJob(doc));
      }
      return out;
    });
  }

  async settleCallback(id: string, finishedAt: Date, log: CallbackLog, nextAt: Date | null): Promise<void> {
    await this.op(async ({ jobs, streams }) => {
      const expireAt = new Date(finishedAt.getTime() + this.retentionMs);
      const res = await jobs.updateOne(
        { _id: id, finished_at: finishedAt },
        nextAt ? { $set: { callback: log, callback_due: nextAt } } : { $set: { callback: log, expire_at: expireAt }, $unset: { callback_due: '' } },
      );
      // Delivered or given up: the job has its retention deadline now, and its events follow it.
      if (!nextAt && res.matchedCount > 0) streams.expireWith(id, expireAt);
    });
  }

  private async lostOrMissing(id: string): Promise<Error> {
    const { jobs } = await this.connection();
    const current = await jobs.findOne({ _id: id }, { projection: { status: 1, lease: 1 } });
    return fenceError(id, current, this.clock.now());
  }

  /** A job became claimable on `queue` in this process: poll it again at once. */
  private workArrived(queue: string, notifier: Notifier): void {
    for (const key of this.idle.keys()) if (key.split('\n').includes(queue)) this.idle.delete(key);
    notifier.jobQueued(queue);
  }

  /** The fields every move to a terminal status sets. */
  private ended(now: Date): { lease: null; finished_at: Date; updated_at: Date; expire_at: Date } {
    return { lease: null, finished_at: now, updated_at: now, expire_at: new Date(now.getTime() + this.retentionMs) };
  }

  private hooks() {
    const notifier = this.ready?.notifier;
    const streams = this.ready?.streams;
    const rollups = this.ready?.rollups;
    return {
      queued: (queue: string) => notifier?.jobQueued(queue),
      finished: (id: string) => notifier?.jobFinished(id),
      settled: (doc: JobDoc, outcome: Outcome, at: Date) => {
        streams?.loggedOutcome(doc, outcome, at);
        if (isTerminal(doc.status)) rollups?.add(doc.queue, doc, true);
      },
    };
  }
}
