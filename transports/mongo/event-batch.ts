/**
 * The lifecycle events of this process (queued, started, retry, cancel …),
 * inserted in batches. Each job write that reports a change takes its
 * event's id in the same write (`$inc` of the job's `event_seq`); the event
 * itself follows in the next batch: one `insertMany` for every job written
 * within LIFECYCLE_BATCH_MS, or while the previous batch was on its way.
 * Under load that is one insert for many jobs instead of one each
 * (scripts/bench/mongo.ts, "commands per job").
 *
 * Trades: the two writes are not atomic. A reader may see an id taken
 * before its event is in, and waits for it (events.ts, the gap rule); if
 * this process dies in between, the event is lost and readers are told so.
 * A reader in this process first waits for the batch holding its job's
 * events (`settled`), so a process reads its own writes. `flush()` (close)
 * writes what is pending.
 */
import type { AnyBulkWriteOperation, Collection } from 'mongodb';
import { sleep } from '../../src/backoff.js';
import type { Logger } from '../../src/logger.js';
import type { EventDoc } from './codec.js';
import { writeErrorsOf } from './errors.js';

/** How long the first lifecycle event waits for others to share its insert (ms). */
const LIFECYCLE_BATCH_MS = 5;
/** Tries of a batch that fails (a dropped connection, an election) before its events are given up. */
const BATCH_TRIES = 4;

export class EventBatch {
  private docs: EventDoc[] = [];
  private updates: { jobId: string; op: AnyBulkWriteOperation<EventDoc> }[] = [];
  /** the jobs of the batch on its way */
  private writing = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly events: Collection<EventDoc>,
    private readonly logger: Logger,
    /** called with the jobs whose events a batch wrote */
    private readonly written: (jobIds: Set<string>) => void,
  ) {}

  /** Queue an event for the next batch. */
  add(doc: EventDoc): void {
    this.docs.push(doc);
    this.schedule();
  }

  /** Queue a write to job `jobId`'s events already in (their `expire_at`), after the inserts of the same batch, in order. */
  update(jobId: string, op: AnyBulkWriteOperation<EventDoc>): void {
    this.updates.push({ jobId, op });
    this.schedule();
  }

  /** Resolves once the events of job `id` queued so far are written (or given up); starts their batch at once. */
  async settled(id: string): Promise<void> {
    while (this.writing.has(id) || this.docs.some((d) => d.job_id === id) || this.updates.some((u) => u.jobId === id)) {
      this.start();
      await this.running;
    }
  }

  /** Write everything queued; resolves when done. */
  async flush(): Promise<void> {
    while (this.docs.length > 0 || this.updates.length > 0 || this.running) {
      this.start();
      await this.running;
    }
  }

  private schedule(): void {
    // A batch on its way takes what came meanwhile when it is done.
    if (this.running || this.timer) return;
    this.timer = setTimeout(() => this.start(), LIFECYCLE_BATCH_MS);
  }

  private start(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.running ??= this.drain().finally(() => {
      this.running = null;
      if (this.docs.length > 0 || this.updates.length > 0) this.schedule();
    });
  }

  private async drain(): Promise<void> {
    while (this.docs.length > 0 || this.updates.length > 0) {
      const docs = this.docs.splice(0);
      const updates = this.updates.splice(0);
      this.writing = new Set([...docs.map((d) => d.job_id), ...updates.map((u) => u.jobId)]);
      try {
        await this.tried(() => insertEvents(this.events, docs));
        if (updates.length > 0) await this.tried(() => this.events.bulkWrite(updates.map((u) => u.op), { ordered: true }));
      } catch (error) {
        this.logger.warn({ err: error instanceof Error ? error.message : String(error), events: docs.length }, 'mongo: lifecycle events could not be written; readers of their jobs are told they were lost');
      }
      const ids = this.writing;
      this.writing = new Set();
      this.written(ids);
    }
  }

  /** Inserts and expiry updates can be repeated safely (duplicates are skipped): try again after a failure. */
  private async tried<T>(write: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        if (attempt >= BATCH_TRIES) throw error;
        await sleep(50 * 2 ** attempt);
      }
    }
  }
}

/**
 * Insert events; an id written already is skipped. A duplicate (job_id, seq)
 * is either this job's own event (a repeated try: nothing to do) or one left
 * by an earlier job of the same id whose deletion did not reach all of its
 * events (another `job_seq`): that one is replaced.
 */
export async function insertEvents(events: Collection<EventDoc>, docs: EventDoc[]): Promise<void> {
  if (docs.length === 0) return;
  try {
    await events.insertMany(docs, { ordered: false });
  } catch (error) {
    const refused = writeErrorsOf(error);
    if (!refused || refused.some((e) => !e.duplicate)) throw error;
    await events.bulkWrite(
      refused.map(({ index: i }) => {
        const { _id: _drop, ...doc } = docs[i]! as EventDoc & { _id?: unknown };
        return { replaceOne: { filter: { job_id: doc.job_id, seq: doc.seq, job_seq: { $ne: doc.job_seq } }, replacement: doc } };
      }),
      { ordered: false },
    );
  }
}
