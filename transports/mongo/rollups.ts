/**
 * Analytics rollups on mongo (src/analytics.ts decides what an ending
 * counts): one document per queue and period of `finished_at` (a minute,
 * a quarter of an hour) in `rollups`,
 * `{_id: '<step ms>:<start ms>:<queue>', queue, step, at, …RollupFields}`,
 * counted with an upserted `$inc`, read by step and a range on `at`
 * (queries.ts), deleted by the sweep once older than ROLLUP_KEEP_MS
 * (FerretDB has no TTL index).
 *
 * Trades: FerretDB has no transactions, so an ending and its rollup are two
 * writes. The endings of this process are added up in memory and written
 * every ROLLUP_FLUSH_MS, one upsert per queue and period touched (under
 * load, one write for many jobs); a process that dies loses at most that
 * much of the numbers, never a job. A read in this process writes what it
 * holds first, so a process reads its own endings. A write whose outcome is
 * unknown (the connection dropped) is not repeated: `$inc` twice would count
 * twice, and a count short by a few is the lesser error.
 */
import type { AnyBulkWriteOperation, Collection, Document } from 'mongodb';
import { addFields, endingFields, periodOf, ROLLUP_KEEP_MS, ROLLUP_STEPS_MS, rollupFromFields, type EndedJob, type Rollup, type RollupFields, type RollupStep } from '../../src/analytics.js';
import type { Logger } from '../../src/logger.js';
import { writeErrorsOf } from './errors.js';
import { oldRollupsFilter, rollupsFilter } from './queries.js';

/** How long an ending waits for others to share its write (ms). */
const ROLLUP_FLUSH_MS = 200;
/** Tries of an upsert that collided with another process's first upsert of the same minute. */
const DUPLICATE_TRIES = 3;

/** `{_id: '<step ms>:<start ms>:<queue>', queue, step, at, …RollupFields}` (typed loosely: the counters are fields named by src/analytics.ts). */
export interface RollupDoc extends Document {
  _id: string;
}

export class MongoRollups {
  private pending = new Map<string, { queue: string; at: number; step: RollupStep; fields: RollupFields }>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly rollups: Collection<RollupDoc>,
    private readonly logger: Logger,
  ) {}

  /** Count one ending (`ran`: it ended from a run; see src/analytics.ts). */
  add(queue: string, job: EndedJob, ran: boolean): void {
    const fields = endingFields(job, ran);
    if (!fields) return;
    for (const step of ROLLUP_STEPS_MS) {
      const at = periodOf(job.finished_at!, step);
      if (at < Date.now() - ROLLUP_KEEP_MS) continue;
      const key = `${step}:${at}:${queue}`;
      let entry = this.pending.get(key);
      if (!entry) this.pending.set(key, (entry = { queue, at, step, fields: {} }));
      addFields(entry.fields, fields);
    }
    if (!this.timer && !this.running) this.timer = setTimeout(() => void this.flush(), ROLLUP_FLUSH_MS);
  }

  /**
   * Write what is held when called: the write in flight, then one write of
   * what was pending then. Endings that arrive meanwhile wait for the next
   * round (waiting for them too would never end while the process keeps
   * ending jobs).
   */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.running) await this.running;
    if (this.pending.size === 0) return;
    this.running ??= this.write().finally(() => (this.running = null));
    await this.running;
    if (this.pending.size > 0 && !this.timer && !this.running) this.timer = setTimeout(() => void this.flush(), ROLLUP_FLUSH_MS);
  }

  /** At close: write what is held, a few rounds at most, and leave no timer behind. */
  async close(): Promise<void> {
    for (let round = 0; round < 3 && (this.pending.size > 0 || this.running); round++) await this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The rollups of one step starting in [from, to), after this process's own endings so far are written. */
  async read(from: Date, to: Date, step: RollupStep): Promise<Rollup[]> {
    await this.flush();
    const docs = await this.rollups.find(rollupsFilter(step, from, to)).toArray();
    return docs.map((d) => rollupFromFields(String(d.queue), (d.at as Date).getTime(), step, d));
  }

  /** Delete the rollups older than ROLLUP_KEEP_MS (the sweep). */
  async prune(now: Date): Promise<void> {
    await this.rollups.deleteMany(oldRollupsFilter(new Date(now.getTime() - ROLLUP_KEEP_MS)));
  }

  private async write(): Promise<void> {
    let batch = [...this.pending.entries()];
    this.pending = new Map();
    for (let attempt = 1; batch.length > 0; attempt++) {
      const ops: AnyBulkWriteOperation<RollupDoc>[] = batch.map(([key, e]) => ({
        updateOne: { filter: { _id: key }, update: { $setOnInsert: { queue: e.queue, step: e.step, at: new Date(e.at) }, $inc: e.fields }, upsert: true },
      }));
      try {
        await this.rollups.bulkWrite(ops, { ordered: false });
        return;
      } catch (error) {
        const refused = writeErrorsOf(error);
        // Two first upserts of one period collide on _id: the one refused is written again (it is the only one that did not count).
        if (refused && refused.every((e) => e.duplicate) && attempt < DUPLICATE_TRIES) {
          batch = refused.map((e) => batch[e.index]!);
          continue;
        }
        this.logger.warn({ err: error instanceof Error ? error.message : String(error), rollups: batch.length }, 'mongo: analytics rollups could not be written; their endings are missing from the numbers');
        return;
      }
    }
  }
}
