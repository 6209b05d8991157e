/**
 * Memory transport: the embedded store of `reasonq dev` and of tests.
 *
 * Data layout (all in this process, gone when it exits):
 * - `jobs`: Map id → Job, the one copy of each record (callers get clones).
 * - `ready`: per queue, a ReadyQueue of `queued` ids: FIFO buckets per
 *   priority (highest first) and a list of not-yet-due ones by `run_at`;
 *   `readySeq` says which entry of a job is current (older ones are stale).
 * - `leased`: ids of `processing` jobs, scanned for expired leases by the
 *   sweep and by a claim once the earliest lease deadline (`nextExpiry`) passed.
 * - `claimWaiters` / `jobWaiters`: pending blocking claims and `wait` calls,
 *   woken by the write that concerns them (no polling).
 * - `streams`: per job, its events (streams.ts).
 * - `sessions`: `payload.session_id` → ids of its jobs (list by session).
 * - `sizes` / `finishedOrder`: what each job weighs (its payload and trace context) and the
 *   finished ones in the order they ended. The store holds at most `maxJobs`
 *   jobs and `maxBytes` of payload: at the limit the oldest finished jobs go
 *   first (as retention would take them), and when only unfinished ones are
 *   left an enqueue is refused with STORE_FULL before anything is created,
 *   so a flood answers 507 instead of exhausting the process and losing all.
 * - `rollupTable`: per queue and period (a minute, a quarter of an hour) of
 *   `finished_at`, the counters of the jobs that ended then
 *   (src/analytics.ts), added by `finish` and by an imported finished job;
 *   dropped by the sweep after ROLLUP_KEEP_MS.
 */
import { randomUUID } from 'node:crypto';
import { JobNotFoundError, LeaseLostError, StoreFullError, TransportError } from '../../src/errors.js';
import { assertTransition, FINISHED_STATUSES, isTerminal, PENDING_CALLBACK, summarizeJob, type CallbackLog, type Job, type JobStatus } from '../../src/job.js';
import {
  buildStats,
  EMPTY_COUNTS,
  queueTable,
  type ClaimRequest,
  type ClaimedJob,
  type EnqueueManyOptions,
  type EnqueueReply,
  type MoveSource,
  type ExtendResult,
  type ListFilter,
  type ListPage,
  type Stats,
  type SweepResult,
  type Transport,
  type TransportOptions,
  type WaitOptions,
  type WorkerInfo,
} from '../../src/transport.js';
import { decideOutcome, type Outcome } from '../../src/outcome.js';
import { assertSettle, decodeCursor, encodeCursor, listKey, listOrder, MAX_CLAIM_WAIT_MS } from '../../src/transport-helpers.js';
import { appendRun, runRecord } from '../../src/runs.js';
import { DEFAULTS } from '../../src/config.js';
import { ReadyQueue, type ReadyEntry } from './ready-queue.js';
import { EVENTS_PAGE_MAX, type EventPage, type JobEvent, type NewEvent, type ReadEventsOptions } from '../../src/events.js';
import { Streams } from './streams.js';
import { weigh } from './weigh.js';
import { addFields, endingFields, periodOf, ROLLUP_KEEP_MS, ROLLUP_STEPS_MS, rollupFromFields, type Rollup, type RollupFields, type RollupStep } from '../../src/analytics.js';

interface ClaimWaiter {
  queues: Set<string>;
  wake: () => void;
}

export interface MemoryTransportOptions extends TransportOptions {
  /** most jobs held (every status), default REASONQ_MEMORY_MAX_JOBS */
  maxJobs?: number;
  /** most payload bytes held, default REASONQ_MEMORY_MAX_BYTES */
  maxBytes?: number;
}

/** What a job weighs beyond its payload (fields, maps), counted against maxBytes. */
const JOB_OVERHEAD_BYTES = 512;
/** Rollup records kept at most (per queue and period; 1,600 a day for a queue that ends something every minute). */
const ROLLUPS_MAX = 200_000;

export function createMemoryTransport(options: MemoryTransportOptions = {}): Transport {
  return new MemoryTransport(options);
}

const clone = <T>(value: T): T => structuredClone(value);

/** Deduplication is per queue, as on Redis where a queue is one Cluster slot. */
const dedupeKey = (job: Pick<Job, 'queue' | 'dedupe_key'>) => `${job.queue}\u0000${job.dedupe_key}`;

export class MemoryTransport implements Transport {
  readonly name = 'memory';
  readonly capabilities = { blockingClaim: true, pushWait: true, nativeRetention: false, atomicClaim: true };

  private readonly jobs = new Map<string, Job>();
  /** `queue \0 dedupe_key` → id */
  private readonly dedupe = new Map<string, string>();
  /** `payload.session_id` → its jobs' ids */
  private readonly sessions = new Map<string, Set<string>>();
  private readonly ready = new Map<string, ReadyQueue>();
  private readonly readySeq = new Map<string, number>();
  private readonly leased = new Set<string>();
  /** the outbox: job id → when its callback's next try is due (ms) */
  private readonly outbox = new Map<string, number>();
  private readonly workerRecords = new Map<string, WorkerInfo>();
  private readonly claimWaiters = new Set<ClaimWaiter>();
  private readonly jobWaiters = new Map<string, Set<() => void>>();
  private readonly sizes = new Map<string, number>();
  private readonly streams: Streams;
  /** what result, error and progress weigh, per job (counted in `heldBytes` too, and redone when they change) */
  private readonly outputSizes = new Map<string, number>();
  /** finished ids, oldest ending first (a Set keeps insertion order) */
  private readonly finishedOrder = new Set<string>();
  private heldBytes = 0;
  /** ready entries left behind by jobs canceled while queued (deletion is lazy); compacted past a bound */
  private staleEntries = 0;
  private readonly maxJobs: number;
  private readonly maxBytes: number;
  private readonly retentionMs: number;
  private readonly workerHorizonMs: number;
  /** no lease runs out before this (it may be earlier than the real first deadline: extends only push deadlines out) */
  private nextExpiry = Infinity;
  private readonly locks = new Map<string, { owner: string; until: number }>();
  /** jobs a migration holds (`moving`) → the status they had */
  private readonly movedFrom = new Map<string, JobStatus>();
  /** `step \0 period start \0 queue` → that period's rollup counters */
  private readonly rollupTable = new Map<string, { queue: string; at: number; step: RollupStep; fields: RollupFields }>();
  private delayTimer: NodeJS.Timeout | null = null;
  private delayTimerAt = Infinity;
  private seq = 0;
  private closed = false;

  constructor(options: MemoryTransportOptions) {
    this.retentionMs = options.retentionMs ?? DEFAULTS.retentionMs;
    this.workerHorizonMs = options.workerHorizonMs ?? DEFAULTS.workerHorizonMs;
    this.maxJobs = options.maxJobs ?? DEFAULTS.memoryMaxJobs;
    this.maxBytes = options.maxBytes ?? DEFAULTS.memoryMaxBytes;
    this.streams = new Streams(options.eventsMax ?? DEFAULTS.eventsMax, (bytes) => (this.heldBytes += bytes));
  }

  async init(): Promise<void> {}

  async enqueue(job: Job): Promise<{ job: Job; created: boolean }> {
    return this.insert(job, null);
  }

  async enqueueMany(jobs: Job[], options: EnqueueManyOptions = {}): Promise<EnqueueReply[]> {
    const events = options.imported?.events;
    // The limits are met for the whole batch before any job is written (at most: some may exist already).
    this.makeRoom(jobs.reduce((n, j) => n + JOB_OVERHEAD_BYTES + weigh(j.payload) + weigh(j.trace), 0), jobs.length);
    const out: EnqueueReply[] = [];
    for (const [i, job] of jobs.entries()) out.push(this.insert(job, events ? (events[i] ?? []) : null));
    return out;
  }

  /** One enqueue; `imported`: the job comes from another store with this stream (EnqueueManyOptions). */
  private insert(job: Job, imported: JobEvent[] | null): EnqueueReply {
    const marker = this.jobs.get(job.id);
    // A job coming back (a migration rolled back) replaces the marker it left here.
    if (imported && marker?.status === 'moved') this.remove(marker);
    const holder = job.dedupe_key ? this.jobs.get(this.dedupe.get(dedupeKey(job)) ?? '') : undefined;
    const existing = this.jobs.get(job.id) ?? (imported ? undefined : holder);
    if (existing) return { job: clone(existing), created: false };
    const size = JOB_OVERHEAD_BYTES + weigh(job.payload) + weigh(job.trace);
    this.makeRoom(size);
    const stored = clone(job);
    this.jobs.set(stored.id, stored);
    this.sizes.set(stored.id, size);
    this.heldBytes += size;
    if (stored.dedupe_key && !holder) this.dedupe.set(dedupeKey(stored), stored.id);
    const session = stored.payload.session_id;
    if (typeof session === 'string') {
      let ids = this.sessions.get(session);
      if (!ids) this.sessions.set(session, (ids = new Set()));
      ids.add(stored.id);
    }
    if (!imported) {
      this.streams.log(stored, 'queued', {});
      this.pushReady(stored);
      return { job: clone(stored), created: true };
    }
    this.streams.adopt(stored, imported);
    this.weighOutputs(stored);
    if (stored.status === 'queued') this.pushReady(stored);
    else {
      this.finishedOrder.add(stored.id);
      if (stored.callback?.state === 'pending') this.outbox.set(stored.id, Date.now());
      this.rollup(stored, stored.started_at !== null);
    }
    return { job: clone(stored), created: true };
  }

  /** The migration's side of this store (MoveSource). */
  readonly moves: MoveSource = {
    take: async (queue, what, max) => {
      const picked: Job[] = [];
      if (what === 'moving') {
        for (const job of this.jobs.values()) if (job.queue === queue && job.status === 'moving' && picked.length < max) picked.push(job);
      } else {
        const wanted = what === 'queued' ? (j: Job) => j.status === 'queued' : (j: Job) => FINISHED_STATUSES.includes(j.status);
        const order =
          what === 'queued'
            ? (a: Job, b: Job) => b.priority - a.priority || (this.readySeq.get(a.id) ?? 0) - (this.readySeq.get(b.id) ?? 0)
            : (a: Job, b: Job) => (a.finished_at?.getTime() ?? 0) - (b.finished_at?.getTime() ?? 0);
        picked.push(...[...this.jobs.values()].filter((j) => j.queue === queue && wanted(j)).sort(order).slice(0, max));
        for (const job of picked) {
          assertTransition(job, 'take', 'moving');
          this.movedFrom.set(job.id, job.status);
          if (job.status === 'queued') {
            this.readySeq.delete(job.id);
            if (++this.staleEntries > Math.max(1000, this.jobs.size)) this.compact();
          } else this.finishedOrder.delete(job.id); // retention does not take a job mid-move
          job.status = 'moving';
          job.updated_at = new Date();
        }
      }
      return picked.map((job) => ({ job: { ...clone(job), status: this.movedFrom.get(job.id) ?? 'queued' }, events: this.streams.all(job.id) }));
    },
    finish: async (ids, to) => {
      let n = 0;
      for (const id of ids) {
        const job = this.jobs.get(id);
        if (job?.status !== 'moving') continue;
        this.movedFrom.delete(id);
        job.moved_to = to;
        job.lease = null;
        this.outbox.delete(id); // a callback still owed goes with the job: the target delivers it
        this.finish(job, 'moved');
        n += 1;
      }
      return n;
    },
    release: async (ids) => {
      let n = 0;
      for (const id of ids) {
        const job = this.jobs.get(id);
        if (job?.status !== 'moving') continue;
        const was = this.movedFrom.get(id) ?? 'queued';
        this.movedFrom.delete(id);
        job.updated_at = new Date();
        if (was === 'queued') this.requeue(job, job.run_at);
        else {
          job.status = was;
          this.finishedOrder.add(id);
        }
        n += 1;
      }
      return n;
    },
  };

  async claim(request: ClaimRequest): Promise<ClaimedJob | null> {
    if (this.closed) throw new TransportError('memory transport is closed', { code: 'TRANSPORT_CLOSED', retryable: false });
    const deadline = Date.now() + Math.min(request.wait_ms, MAX_CLAIM_WAIT_MS);
    for (;;) {
      const job = this.claimNow(request);
      if (job) return job;
      const left = deadline - Date.now();
      if (left <= 0 || this.closed || request.signal?.aborted) return null;
      await this.waitForWork(new Set(request.queues), left, request.signal);
    }
  }

  async claimMany(request: ClaimRequest, max: number): Promise<ClaimedJob[]> {
    const first = await this.claim(request);
    if (!first) return [];
    const jobs = [first];
    for (let job = jobs.length < max ? this.claimNow(request) : null; job; job = jobs.length < max ? this.claimNow(request) : null) jobs.push(job);
    return jobs;
  }

  async extend(id: string, token: string, leaseMs: number): Promise<ExtendResult> {
    const job = this.fenced(id, token);
    job.lease!.until = new Date(Date.now() + leaseMs);
    job.updated_at = new Date();
    return { until: new Date(job.lease!.until), cancel_requested: clone(job.cancel_requested) };
  }

  async settle(id: string, token: string, outcome: Outcome): Promise<Job> {
    assertSettle(id, outcome);
    const job = this.fenced(id, token);
    if (outcome.result !== undefined) job.result = clone(outcome.result);
    if (outcome.error !== undefined) job.error = clone(outcome.error);
    this.weighOutputs(job);
    // A cancel asked meanwhile wins over a requeue or an error (the one rule a store applies).
    const status = job.cancel_requested && (outcome.status === 'queued' || outcome.status === 'error') ? 'canceled' : outcome.status;
    this.streams.logOutcome(job, status, outcome);
    this.endRun(job, outcome, status);
    this.count(job, outcome);
    if (status === 'queued') {
      this.requeue(job, outcome.run_at ?? new Date());
    } else {
      this.finish(job, status);
    }
    return clone(job);
  }

  async appendEvents(id: string, token: string, events: NewEvent[], written: number | null): Promise<number> {
    const job = this.fenced(id, token);
    // Events are held like payloads: past the byte limit the oldest finished jobs make room, else STORE_FULL and nothing is written.
    this.makeRoom(this.streams.weighOf(events), 0);
    const last = this.streams.append(job, token, events, written);
    job.updated_at = new Date();
    this.weighOutputs(job);
    return last;
  }

  async readEvents(id: string, options: ReadEventsOptions): Promise<EventPage> {
    const after = options.after ?? 0;
    const limit = Math.min(Math.max(options.limit ?? EVENTS_PAGE_MAX, 1), EVENTS_PAGE_MAX);
    const page = () => {
      const job = this.jobs.get(id);
      if (!job) throw new JobNotFoundError(id);
      return this.streams.page(job, after, limit);
    };
    const first = page();
    const waitMs = options.wait_ms ?? 0;
    if (first.events.length > 0 || first.end || waitMs <= 0 || this.closed || options.signal?.aborted) return first;
    await this.streams.waitForMore(id, waitMs, options.signal);
    return page();
  }

  async cancel(id: string, reason: string): Promise<Job> {
    const job = this.jobs.get(id);
    if (!job) throw new JobNotFoundError(id);
    if (job.status === 'queued') {
      this.readySeq.delete(job.id);
      job.cancel_requested = { at: new Date(), reason };
      this.streams.log(job, 'canceled', { reason });
      this.finish(job, 'canceled');
      if (++this.staleEntries > Math.max(1000, this.jobs.size)) this.compact();
    } else if (job.status === 'processing' && !job.cancel_requested) {
      job.cancel_requested = { at: new Date(), reason };
      job.updated_at = new Date();
      this.streams.log(job, 'cancel_requested', { reason });
    }
    return clone(job);
  }

  async retry(id: string): Promise<Job> {
    const job = this.jobs.get(id);
    if (!job) throw new JobNotFoundError(id);
    assertTransition(job, 'retry', 'queued');
    job.attempts = 0;
    job.stalls = 0;
    job.cancel_requested = null;
    job.finished_at = null;
    job.result = null;
    job.callback = null;
    this.outbox.delete(job.id); // its next ending owes a callback of its own
    this.finishedOrder.delete(job.id);
    this.streams.log(job, 'queued', { retried: true });
    this.requeue(job, new Date());
    return clone(job);
  }

  async get(id: string): Promise<Job | null> {
    const job = this.jobs.get(id);
    return job ? clone(job) : null;
  }

  async wait(id: string, options: WaitOptions): Promise<Job> {
    const job = this.jobs.get(id);
    if (!job) throw new JobNotFoundError(id);
    if (isTerminal(job.status) || options.timeout_ms <= 0) return clone(job);
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', done);
        this.jobWaiters.get(id)?.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(options.timeout_ms, 2 ** 31 - 1));
      options.signal?.addEventListener('abort', done, { once: true });
      let set = this.jobWaiters.get(id);
      if (!set) this.jobWaiters.set(id, (set = new Set()));
      set.add(done);
    });
    const now = this.jobs.get(id);
    if (!now) throw new JobNotFoundError(id);
    return clone(now);
  }

  async list(filter: ListFilter): Promise<ListPage> {
    const limit = Math.min(Math.max(filter.limit ?? DEFAULTS.listLimit, 1), DEFAULTS.listMaxLimit);
    const after = filter.cursor ? decodeCursor(filter.cursor) : null;
    const order = listOrder(filter);
    const key = (j: Job) => listKey(j, order);
    const candidates = filter.session_id !== undefined ? [...(this.sessions.get(filter.session_id) ?? [])].map((id) => this.jobs.get(id)!) : this.jobs.values();
    const matches = [...candidates]
      .filter((j) => (!filter.status || j.status === filter.status) && (!filter.queue || j.queue === filter.queue))
      .filter((j) => !after || key(j) < after.t || (key(j) === after.t && j.id < after.id))
      .sort((a, b) => key(b) - key(a) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const page = matches.slice(0, limit);
    const last = page[page.length - 1];
    // A summary is cut from the stored record before the copy: a page of large payloads costs what the page shows.
    const copy = filter.summary ? (j: Job) => clone(summarizeJob(j)) : clone;
    return { jobs: page.map(copy), next_cursor: matches.length > limit && last ? encodeCursor(new Date(key(last)), last.id) : null };
  }

  async stats(): Promise<Stats> {
    const now = Date.now();
    const queues = queueTable();
    for (const job of this.jobs.values()) {
      const counts = (queues[job.queue] ??= { ...EMPTY_COUNTS });
      // queued = due now, delayed = not yet: the two never overlap.
      if (job.status === 'queued' && job.run_at.getTime() > now) counts.delayed += 1;
      else counts[job.status] += 1;
    }
    return buildStats(queues);
  }

  async rollups(from: Date, to: Date, step: RollupStep): Promise<Rollup[]> {
    const out: Rollup[] = [];
    for (const r of this.rollupTable.values()) if (r.step === step && r.at >= from.getTime() && r.at < to.getTime()) out.push(rollupFromFields(r.queue, r.at, step, r.fields));
    return out;
  }

  async heartbeat(worker: WorkerInfo): Promise<void> {
    this.workerRecords.set(worker.id, clone(worker));
  }

  async unregisterWorker(id: string): Promise<void> {
    this.workerRecords.delete(id);
  }

  async workers(): Promise<WorkerInfo[]> {
    const horizon = Date.now() - this.workerHorizonMs;
    for (const [id, w] of this.workerRecords) if (w.last_seen.getTime() < horizon) this.workerRecords.delete(id);
    return [...this.workerRecords.values()].map(clone);
  }

  async sweep(now = new Date()): Promise<SweepResult> {
    const result: SweepResult = { ...this.recoverExpired(now.getTime()), deleted: 0 };
    const horizon = now.getTime() - this.retentionMs;
    for (const [key, r] of this.rollupTable) if (r.at < now.getTime() - ROLLUP_KEEP_MS) this.rollupTable.delete(key);
    // finishedOrder is in the order jobs ended, so the expired ones come first.
    for (const id of this.finishedOrder) {
      const job = this.jobs.get(id);
      if (job && isTerminal(job.status) && job.finished_at && job.finished_at.getTime() >= horizon) break;
      if (!job) {
        this.finishedOrder.delete(id);
        continue;
      }
      if (this.outbox.has(id)) continue; // kept until its callback is delivered or given up
      this.remove(job);
      result.deleted += 1;
    }
    return result;
  }

  async lead(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const held = this.locks.get(name);
    if (held && held.owner !== owner && held.until > now) return false;
    if (ttlMs <= 0) {
      this.locks.delete(name);
      return false;
    }
    this.locks.set(name, { owner, until: now + ttlMs });
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.delayTimer) clearTimeout(this.delayTimer);
    for (const waiter of this.claimWaiters) waiter.wake();
    for (const set of this.jobWaiters.values()) for (const wake of set) wake();
    this.streams.wakeAll();
  }

  // -- internals ------------------------------------------------------------

  async claimCallbacks(_owner: string, leaseMs: number, max: number): Promise<Job[]> {
    const now = Date.now();
    const out: Job[] = [];
    for (const [id, due] of this.outbox) {
      if (out.length >= max) break;
      const job = this.jobs.get(id);
      if (!job) this.outbox.delete(id);
      else if (due <= now) {
        this.outbox.set(id, now + leaseMs);
        out.push(clone(job));
      }
    }
    return out;
  }

  async settleCallback(id: string, finishedAt: Date, log: CallbackLog, nextAt: Date | null): Promise<void> {
    const job = this.jobs.get(id);
    if (!job || job.finished_at?.getTime() !== finishedAt.getTime()) return; // gone, or ended again since
    job.callback = clone(log);
    if (nextAt) this.outbox.set(id, nextAt.getTime());
    else this.outbox.delete(id);
  }

  /** The run's record (src/runs.ts), from the job as the run held it: before count() gives the attempt back and the lease goes. */
  private endRun(job: Job, outcome: Outcome, written: Outcome['status']): void {
    job.runs = appendRun(job.runs, runRecord(job, outcome, written, new Date()));
  }

  /** An attempt given back, a stall counted. */
  private count(job: Job, outcome: Outcome): void {
    if (outcome.give_back) job.attempts = Math.max(0, job.attempts - 1);
    if (outcome.stall) job.stalls += 1;
  }

  /** Settle every expired lease as src/outcome.ts decides (`lease-expired`). */
  private recoverExpired(now: number): Omit<SweepResult, 'deleted'> {
    const result = { requeued: 0, expired: 0, canceled: 0 };
    let next = Infinity;
    for (const id of [...this.leased]) {
      const job = this.jobs.get(id);
      if (!job?.lease) continue;
      if (job.lease.until.getTime() > now) {
        next = Math.min(next, job.lease.until.getTime());
        continue;
      }
      const outcome = decideOutcome(job, { kind: 'lease-expired' }, undefined, now);
      if (outcome.error) job.error = outcome.error;
      this.streams.logOutcome(job, outcome.status, outcome);
      this.endRun(job, outcome, outcome.status);
      this.count(job, outcome);
      if (outcome.status === 'queued') {
        this.requeue(job, outcome.run_at ?? new Date(now));
        result.requeued += 1;
      } else {
        this.finish(job, outcome.status === 'canceled' ? 'canceled' : 'error');
        result[outcome.status === 'canceled' ? 'canceled' : 'expired'] += 1;
      }
    }
    this.nextExpiry = next;
    return result;
  }

  /** Drop the oldest finished jobs until `size` more bytes and `addsJobs` more jobs fit; else STORE_FULL. */
  private makeRoom(size: number, addsJobs = 1): void {
    const fits = () => this.jobs.size + addsJobs <= this.maxJobs && this.heldBytes + size <= this.maxBytes;
    for (const id of this.finishedOrder) {
      if (fits()) break;
      const job = this.jobs.get(id);
      if (!job) this.finishedOrder.delete(id);
      else if (!this.outbox.has(id)) this.remove(job); // a job that still owes its callback is not dropped to make room
    }
    if (fits()) return;
    throw new StoreFullError(
      `the memory store is full (${this.jobs.size} unfinished jobs, ${Math.round(this.heldBytes / 1024)} KiB held; ` +
        `limits REASONQ_MEMORY_MAX_JOBS=${this.maxJobs}, REASONQ_MEMORY_MAX_BYTES=${this.maxBytes}): nothing was created; try again when jobs have finished`,
    );
  }

  /** Drop the ready entries of canceled jobs, and the ready structures of queues left empty. */
  private compact(): void {
    const valid = (e: ReadyEntry) => this.readySeq.get(e.id) === e.seq;
    for (const [name, queue] of this.ready) if (queue.compact(valid)) this.ready.delete(name);
    this.staleEntries = 0;
  }

  /** Count what a job's result, error and progress weigh (they are not limited at write: the limit bites at the next enqueue). */
  private weighOutputs(job: Job): void {
    const size = weigh(job.result) + weigh(job.error) + weigh(job.progress) + weigh(job.runs);
    this.heldBytes += size - (this.outputSizes.get(job.id) ?? 0);
    this.outputSizes.set(job.id, size);
  }

  private remove(job: Job): void {
    this.streams.remove(job.id);
    this.jobs.delete(job.id);
    this.outbox.delete(job.id);
    this.finishedOrder.delete(job.id);
    this.heldBytes -= (this.sizes.get(job.id) ?? 0) + (this.outputSizes.get(job.id) ?? 0);
    this.sizes.delete(job.id);
    this.outputSizes.delete(job.id);
    if (job.dedupe_key && this.dedupe.get(dedupeKey(job)) === job.id) this.dedupe.delete(dedupeKey(job));
    const session = job.payload.session_id;
    const ids = typeof session === 'string' ? this.sessions.get(session) : undefined;
    if (ids) {
      ids.delete(job.id);
      if (ids.size === 0) this.sessions.delete(session!);
    }
  }

  private claimNow(request: ClaimRequest): ClaimedJob | null {
    const now = Date.now();
    // A claim reclaims what it finds expired, like every store's (the sweep is not needed for that).
    if (now >= this.nextExpiry) this.recoverExpired(now);
    let best: { queue: ReadyQueue; entry: ReadyEntry } | null = null;
    let nextDue = Infinity;
    const valid = (e: ReadyEntry) => this.readySeq.get(e.id) === e.seq;
    for (const name of request.queues) {
      const queue = this.ready.get(name);
      if (!queue) continue;
      const due = queue.promote(now);
      nextDue = Math.min(nextDue, due);
      const entry = queue.peek(valid);
      if (!entry && due === Infinity) this.ready.delete(name); // nothing left: no structure kept per queue name ever used
      if (entry && (!best || entry.priority > best.entry.priority || (entry.priority === best.entry.priority && entry.seq < best.entry.seq))) {
        best = { queue, entry };
      }
    }
    if (nextDue !== Infinity) this.scheduleDelayWake(nextDue);
    if (!best) return null;
    best.queue.shift(best.entry.priority);
    this.readySeq.delete(best.entry.id);
    const job = this.jobs.get(best.entry.id)!;
    assertTransition(job, 'claim', 'processing');
    const at = new Date(now);
    job.status = 'processing';
    job.attempts += 1;
    job.lease = { owner: request.owner, token: randomUUID(), until: new Date(now + request.lease_ms) };
    this.nextExpiry = Math.min(this.nextExpiry, now + request.lease_ms);
    job.started_at = at;
    job.updated_at = at;
    this.leased.add(job.id);
    this.streams.log(job, 'started', { worker: request.owner });
    return clone(job) as ClaimedJob;
  }

  private fenced(id: string, token: string): Job {
    const job = this.jobs.get(id);
    if (!job) throw new JobNotFoundError(id);
    if (job.status !== 'processing' || job.lease?.token !== token) throw new LeaseLostError(id);
    // An expired lease is lost even if no sweep has run yet.
    if (job.lease.until.getTime() <= Date.now()) throw new LeaseLostError(id, { details: { reason: 'expired' } });
    return job;
  }

  private finish(job: Job, status: 'done' | 'error' | 'canceled' | 'moved'): void {
    const now = new Date();
    const ran = job.status === 'processing';
    job.status = status;
    job.lease = null;
    job.finished_at = now;
    job.updated_at = now;
    if (status !== 'moved') this.rollup(job, ran);
    this.leased.delete(job.id);
    this.finishedOrder.delete(job.id); // a moved job ends twice: its order is the last
    this.finishedOrder.add(job.id);
    if (job.callback_url !== null && status !== 'moved') {
      // The outbox: the ending owes its callback (deliverDue in src/callbacks.ts).
      job.callback = { ...PENDING_CALLBACK };
      this.outbox.set(job.id, now.getTime());
    }
    const waiters = this.jobWaiters.get(job.id);
    if (waiters) {
      this.jobWaiters.delete(job.id);
      for (const wake of waiters) wake();
    }
  }

  /** Count an ending in its queue's rollups of its periods (src/analytics.ts). */
  private rollup(job: Job, ran: boolean): void {
    const fields = endingFields(job, ran);
    if (!fields) return;
    for (const step of ROLLUP_STEPS_MS) {
      const at = periodOf(job.finished_at!, step);
      if (at < Date.now() - ROLLUP_KEEP_MS) continue;
      const key = `${step}\u0000${at}\u0000${job.queue}`;
      let r = this.rollupTable.get(key);
      if (!r) {
        this.rollupTable.set(key, (r = { queue: job.queue, at, step, fields: {} }));
        // Rollups are not jobs, so maxJobs does not hold them: past this, the oldest written goes (endings spread over many queue names).
        if (this.rollupTable.size > ROLLUPS_MAX) this.rollupTable.delete(this.rollupTable.keys().next().value!);
      }
      addFields(r.fields, fields);
    }
  }

  private requeue(job: Job, runAt: Date): void {
    job.status = 'queued';
    job.lease = null;
    job.run_at = runAt;
    job.updated_at = new Date();
    this.leased.delete(job.id);
    this.pushReady(job);
  }

  private pushReady(job: Job): void {
    let queue = this.ready.get(job.queue);
    if (!queue) this.ready.set(job.queue, (queue = new ReadyQueue()));
    const now = Date.now();
    const entry: ReadyEntry = { id: job.id, priority: job.priority, seq: this.seq++, at: job.run_at.getTime() };
    this.readySeq.set(job.id, entry.seq);
    queue.push(entry, now);
    if (entry.at > now) this.scheduleDelayWake(entry.at);
    else this.wakeClaimers(job.queue);
  }

  private wakeClaimers(queue: string): void {
    for (const waiter of this.claimWaiters) {
      if (waiter.queues.has(queue)) {
        waiter.wake();
        return; // one job, one claimer: no thundering herd
      }
    }
  }

  private scheduleDelayWake(at: number): void {
    if (this.closed || at >= this.delayTimerAt) return;
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimerAt = at;
    this.delayTimer = setTimeout(() => {
      this.delayTimer = null;
      this.delayTimerAt = Infinity;
      for (const waiter of [...this.claimWaiters]) waiter.wake();
    }, Math.min(Math.max(0, at - Date.now()) + 1, 2 ** 31 - 1)); // a far run_at re-arms when this fires
    this.delayTimer.unref();
  }

  private waitForWork(queues: Set<string>, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const waiter: ClaimWaiter = {
        queues,
        wake: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', waiter.wake);
          this.claimWaiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, ms);
      signal?.addEventListener('abort', waiter.wake, { once: true });
      this.claimWaiters.add(waiter);
    });
  }
}
