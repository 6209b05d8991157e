/**
 * Wake-ups for blocked claims, `wait` calls and event readers. Two sources:
 * - change streams (replica sets and mongos only), each opened on first need
 *   and kept: on `jobs`, an insert or a move to `queued` wakes one claimer of
 *   that queue, a move to a terminal status wakes that job's waiters; on
 *   `events`, an insert wakes the readers of that job;
 * - polling, always: claimers sleep with a capped, jittered backoff (the
 *   caller's loop); the `wait` calls of this process share one poller that
 *   asks for all of their ids in one query, and the event readers another
 *   (their jobs' counters), each fast at first, slower as it idles.
 * This transport's own writes also wake local sleepers at once.
 */
import type { ChangeStream, Collection, Document } from 'mongodb';
import { isTerminal, type JobStatus } from '../../src/job.js';
import type { Logger } from '../../src/logger.js';
import type { EventDoc, JobDoc } from './codec.js';
import { eventCountersFilter, finishedAmongFilter } from './queries.js';

export interface NotifierOptions {
  changeStreams: boolean;
  /** first poll of a new wait, ms */
  waitPollMinMs: number;
  /** slowest wait poll without change streams; with them, the safety-net period */
  waitPollMaxMs: number;
  logger: Logger;
}

interface Sleeper {
  queues: Set<string>;
  wake: () => void;
  /** end the sleep without work (close) */
  stop: () => void;
}

/** A reader waiting for an event of its job after `after`. */
interface EventWaiter {
  after: number;
  wake: () => void;
}

const JOBS_PIPELINE: Document[] = [
  { $match: { $or: [{ operationType: 'insert' }, { operationType: 'replace' }, { 'updateDescription.updatedFields.status': { $exists: true } }] } },
  { $project: { operationType: 1, documentKey: 1, 'fullDocument.queue': 1, 'fullDocument.status': 1, 'updateDescription.updatedFields.status': 1 } },
];
const EVENTS_PIPELINE: Document[] = [{ $match: { operationType: { $in: ['insert', 'replace'] } } }, { $project: { 'fullDocument.job_id': 1 } }];

export class Notifier {
  private readonly sleepers = new Set<Sleeper>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly readers = new Map<string, Set<EventWaiter>>();
  private readonly jobStream: Watch;
  private readonly eventStream: Watch;
  private readonly waitPoller: SharedPoller;
  private readonly eventPoller: SharedPoller;
  private closed = false;

  constructor(
    private readonly jobs: Collection<JobDoc>,
    events: Collection<EventDoc>,
    private readonly options: NotifierOptions,
  ) {
    this.jobStream = new Watch('jobs', () => jobs.watch(JOBS_PIPELINE), (change) => this.onJobChange(change), options.logger);
    this.eventStream = new Watch('events', () => events.watch(EVENTS_PIPELINE), (change) => this.onEventChange(change), options.logger);
    const pace = { min: options.waitPollMinMs, max: options.waitPollMaxMs };
    this.waitPoller = new SharedPoller(() => this.pollFinished(), () => this.waiters.size > 0, () => this.jobStream.open, pace, options.logger);
    this.eventPoller = new SharedPoller(() => this.pollCounters(), () => this.readers.size > 0, () => this.eventStream.open, pace, options.logger);
  }

  /** Whether the change stream on `jobs` is open right now. */
  get streaming(): boolean {
    return this.jobStream.open;
  }

  /**
   * Sleep up to `ms`; woken early by a job becoming claimable on one of
   * `queues` (resolves true), or by the signal or close() (false).
   */
  sleep(queues: string[], ms: number, signal?: AbortSignal): Promise<boolean> {
    if (this.closed || signal?.aborted) return Promise.resolve(false);
    this.jobStream.ensure(this.options.changeStreams);
    return new Promise((resolve) => {
      const finish = (woken: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.sleepers.delete(sleeper);
        resolve(woken);
      };
      const onAbort = () => finish(false);
      const sleeper: Sleeper = { queues: new Set(queues), wake: () => finish(true), stop: () => finish(false) };
      const timer = setTimeout(onAbort, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.add(sleeper);
    });
  }

  /**
   * A job became claimable on `queue`: wake one sleeper of that queue (one
   * job, one claimer). An update event of the change stream carries no queue:
   * then every sleeper looks.
   */
  jobQueued(queue: string | undefined): void {
    if (queue === undefined) {
      for (const sleeper of [...this.sleepers]) sleeper.wake();
      return;
    }
    for (const sleeper of this.sleepers) {
      if (sleeper.queues.has(queue)) {
        sleeper.wake();
        return;
      }
    }
  }

  /** Resolve once job `id` probably finished, or after `ms`, or when the signal fires. */
  waitFinished(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.closed || signal?.aborted) return Promise.resolve();
    this.jobStream.ensure(this.options.changeStreams);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const set = this.waiters.get(id);
        set?.delete(done);
        if (set?.size === 0) this.waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      set.add(done);
      this.waitPoller.restart();
    });
  }

  /** Job `id` reached a terminal status: wake its waiters. */
  jobFinished(id: string): void {
    const set = this.waiters.get(id);
    if (!set) return;
    for (const wake of [...set]) wake();
  }

  /**
   * Resolve once job `id` probably has an event after `after` (or is gone),
   * or after `ms`, or when the signal fires or close() is called.
   */
  waitEvents(id: string, after: number, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.closed || signal?.aborted) return Promise.resolve();
    this.eventStream.ensure(this.options.changeStreams);
    return new Promise((resolve) => {
      const waiter: EventWaiter = {
        after,
        wake: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', waiter.wake);
          const set = this.readers.get(id);
          set?.delete(waiter);
          if (set?.size === 0) this.readers.delete(id);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, ms);
      signal?.addEventListener('abort', waiter.wake, { once: true });
      let set = this.readers.get(id);
      if (!set) this.readers.set(id, (set = new Set()));
      set.add(waiter);
      this.eventPoller.restart();
    });
  }

  /** Events of job `id` were written: wake its readers. */
  eventsWritten(id: string): void {
    const set = this.readers.get(id);
    if (!set) return;
    for (const waiter of [...set]) waiter.wake();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.waitPoller.close();
    this.eventPoller.close();
    for (const sleeper of [...this.sleepers]) sleeper.stop();
    this.sleepers.clear();
    for (const set of [...this.waiters.values()]) for (const wake of [...set]) wake();
    for (const set of [...this.readers.values()]) for (const waiter of [...set]) waiter.wake();
    await Promise.all([this.jobStream.close(), this.eventStream.close()]);
  }

  // -- change streams -------------------------------------------------------------

  private onJobChange(change: Document): void {
    const id = (change.documentKey as { _id?: unknown } | undefined)?._id;
    const full = change.fullDocument as { queue?: string; status?: JobStatus } | undefined;
    const updated = (change.updateDescription as { updatedFields?: { status?: JobStatus } } | undefined)?.updatedFields;
    const status = updated?.status ?? full?.status;
    if (status === 'queued') this.jobQueued(full?.queue);
    else if (status && isTerminal(status) && typeof id === 'string') this.jobFinished(id);
  }

  private onEventChange(change: Document): void {
    const id = (change.fullDocument as { job_id?: unknown } | undefined)?.job_id;
    if (typeof id === 'string') this.eventsWritten(id);
  }

  // -- the shared pollers ------------------------------------------------------

  private async pollFinished(): Promise<void> {
    const ids = [...this.waiters.keys()];
    for (let i = 0; i < ids.length; i += 500) {
      const found = await this.jobs.find(finishedAmongFilter(ids.slice(i, i + 500)), { projection: { _id: 1 } }).toArray();
      for (const doc of found) this.jobFinished(doc._id);
    }
  }

  /** The readers' jobs' counters: a reader whose job has an event past its `after`, or is gone, wakes. */
  private async pollCounters(): Promise<void> {
    const ids = [...this.readers.keys()];
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500);
      const found = await this.jobs.find(eventCountersFilter(batch), { projection: { _id: 1, event_seq: 1 } }).toArray();
      const counters = new Map(found.map((doc) => [doc._id, doc.event_seq ?? 0]));
      for (const id of batch) {
        const counter = counters.get(id);
        for (const waiter of [...(this.readers.get(id) ?? [])]) if (counter === undefined || counter > waiter.after) waiter.wake();
      }
    }
  }
}

/** A change stream on one collection, opened on first need and again after a failure (5 s later). */
class Watch {
  private stream: ChangeStream | null = null;
  private retryAt = 0;
  private closed = false;

  constructor(
    private readonly name: string,
    private readonly openStream: () => ChangeStream,
    private readonly onChange: (change: Document) => void,
    private readonly logger: Logger,
  ) {}

  get open(): boolean {
    return this.stream !== null;
  }

  ensure(enabled: boolean): void {
    if (!enabled || this.stream || this.closed || Date.now() < this.retryAt) return;
    const stream = this.openStream();
    this.stream = stream;
    stream.on('change', (change: Document) => this.onChange(change));
    // An invalidated stream (collection dropped or renamed) ends without an error.
    stream.once('close', () => {
      if (this.stream === stream) this.stream = null;
    });
    stream.on('error', (error: unknown) => {
      this.logger.warn({ err: error instanceof Error ? error.message : String(error), collection: this.name }, 'mongo: change stream failed; polling until it reopens');
      if (this.stream === stream) this.stream = null;
      this.retryAt = Date.now() + 5_000;
      void stream.close().catch(() => undefined);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const stream = this.stream;
    this.stream = null;
    await stream?.close().catch(() => undefined);
  }
}

/**
 * One poll for every waiter of a kind: fast when a waiter arrives (`min`),
 * doubling to `max` while nothing changes; at `max` throughout while a change
 * stream is open (a safety net). A new waiter only ever brings the next poll
 * forward: a stream of new waiters must not postpone it.
 */
class SharedPoller {
  private timer: NodeJS.Timeout | null = null;
  private dueAt = 0;
  private delay: number;
  private polling = false;
  private closed = false;

  constructor(
    private readonly poll: () => Promise<void>,
    private readonly wanted: () => boolean,
    private readonly streaming: () => boolean,
    private readonly pace: { min: number; max: number },
    private readonly logger: Logger,
  ) {
    this.delay = pace.min;
  }

  /** A new waiter: restart at the fastest pace. */
  restart(): void {
    this.delay = this.pace.min;
    this.schedule(this.streaming() ? this.pace.max : this.delay, true);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(delay: number, restart = false): void {
    if (this.closed || !this.wanted()) return;
    if (this.timer && !restart) return;
    if (this.polling) return; // the running poll schedules the next one
    if (this.timer && Date.now() + delay >= this.dueAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = Date.now() + delay;
    this.timer = setTimeout(() => void this.run(), delay);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    this.timer = null;
    this.polling = true;
    try {
      await this.poll();
    } catch (error) {
      this.logger.debug({ err: error instanceof Error ? error.message : String(error) }, 'mongo: wait poll failed');
    } finally {
      this.polling = false;
    }
    this.delay = Math.min(this.delay * 2, this.pace.max);
    this.schedule(this.streaming() ? this.pace.max : this.delay);
  }
}
