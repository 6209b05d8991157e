/**
 * Wake-ups for blocked claims and `wait` calls. Two sources:
 * - a change stream on `jobs` (replica sets and mongos only), opened on first
 *   need and kept: an insert or a move to `queued` wakes one claimer of that
 *   queue, a move to a terminal status wakes that job's waiters;
 * - polling, always: claimers sleep with a capped, jittered backoff (the
 *   caller's loop); `wait` calls of this process share one poller that asks
 *   for all of their ids in one query, fast at first, slower as it idles.
 * This transport's own writes also wake local sleepers at once.
 */
import type { ChangeStream, Collection, Document } from 'mongodb';
import { isTerminal, type JobStatus } from '../../src/job.js';
import type { Logger } from '../../src/logger.js';
import type { JobDoc } from './codec.js';
import { finishedAmongFilter } from './queries.js';

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

const STREAM_PIPELINE: Document[] = [
  { $match: { $or: [{ operationType: 'insert' }, { operationType: 'replace' }, { 'updateDescription.updatedFields.status': { $exists: true } }] } },
  { $project: { operationType: 1, documentKey: 1, 'fullDocument.queue': 1, 'fullDocument.status': 1, 'updateDescription.updatedFields.status': 1 } },
];

export class Notifier {
  private readonly sleepers = new Set<Sleeper>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private stream: ChangeStream | null = null;
  private streamRetryAt = 0;
  private pollTimer: NodeJS.Timeout | null = null;
  private pollDueAt = 0;
  private pollDelay: number;
  private polling = false;
  private closed = false;

  constructor(
    private readonly jobs: Collection<JobDoc>,
    private readonly options: NotifierOptions,
  ) {
    this.pollDelay = options.waitPollMinMs;
  }

  /** Whether a change stream is open right now. */
  get streaming(): boolean {
    return this.stream !== null;
  }

  /**
   * Sleep up to `ms`; woken early by a job becoming claimable on one of
   * `queues` (resolves true), or by the signal or close() (false).
   */
  sleep(queues: string[], ms: number, signal?: AbortSignal): Promise<boolean> {
    if (this.closed || signal?.aborted) return Promise.resolve(false);
    this.ensureStream();
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
    this.ensureStream();
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
      // A new waiter restarts the shared poller at its fastest pace.
      this.pollDelay = this.options.waitPollMinMs;
      this.schedulePoll(this.stream ? this.options.waitPollMaxMs : this.pollDelay, true);
    });
  }

  /** Job `id` reached a terminal status: wake its waiters. */
  jobFinished(id: string): void {
    const set = this.waiters.get(id);
    if (!set) return;
    for (const wake of [...set]) wake();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    for (const sleeper of [...this.sleepers]) sleeper.stop();
    this.sleepers.clear();
    for (const set of [...this.waiters.values()]) for (const wake of [...set]) wake();
    const stream = this.stream;
    this.stream = null;
    await stream?.close().catch(() => undefined);
  }

  // -- change stream ------------------------------------------------------------

  private ensureStream(): void {
    if (!this.options.changeStreams || this.stream || this.closed || Date.now() < this.streamRetryAt) return;
    const stream = this.jobs.watch(STREAM_PIPELINE);
    this.stream = stream;
    stream.on('change', (change: Document) => this.onChange(change));
    // An invalidated stream (collection dropped or renamed) ends without an error.
    stream.once('close', () => {
      if (this.stream === stream) this.stream = null;
    });
    stream.on('error', (error: unknown) => {
      this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'mongo: change stream failed; polling until it reopens');
      if (this.stream === stream) this.stream = null;
      this.streamRetryAt = Date.now() + 5_000;
      void stream.close().catch(() => undefined);
    });
  }

  private onChange(change: Document): void {
    const id = (change.documentKey as { _id?: unknown } | undefined)?._id;
    const full = change.fullDocument as { queue?: string; status?: JobStatus } | undefined;
    const updated = (change.updateDescription as { updatedFields?: { status?: JobStatus } } | undefined)?.updatedFields;
    const status = updated?.status ?? full?.status;
    if (status === 'queued') this.jobQueued(full?.queue);
    else if (status && isTerminal(status) && typeof id === 'string') this.jobFinished(id);
  }

  // -- the shared wait poller ------------------------------------------------

  private schedulePoll(delay: number, restart = false): void {
    if (this.closed || this.waiters.size === 0) return;
    if (this.pollTimer && !restart) return;
    if (this.polling) return; // the running poll schedules the next one
    // A restart only ever brings the poll forward: a stream of new waiters must not postpone it.
    if (this.pollTimer && Date.now() + delay >= this.pollDueAt) return;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollDueAt = Date.now() + delay;
    this.pollTimer = setTimeout(() => void this.poll(), delay);
    this.pollTimer.unref();
  }

  private async poll(): Promise<void> {
    this.pollTimer = null;
    this.polling = true;
    try {
      const ids = [...this.waiters.keys()];
      for (let i = 0; i < ids.length; i += 500) {
        const found = await this.jobs.find(finishedAmongFilter(ids.slice(i, i + 500)), { projection: { _id: 1 } }).toArray();
        for (const doc of found) this.jobFinished(doc._id);
      }
    } catch (error) {
      this.options.logger.debug({ err: error instanceof Error ? error.message : String(error) }, 'mongo: wait poll failed');
    } finally {
      this.polling = false;
    }
    this.pollDelay = Math.min(this.pollDelay * 2, this.options.waitPollMaxMs);
    this.schedulePoll(this.stream ? this.options.waitPollMaxMs : this.pollDelay);
  }
}
