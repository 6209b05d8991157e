/**
 * The side a migration leaves (MoveSource, src/transport.ts). A job it takes
 * is `moving`, with `move_from` (the status it had) and `move_token` (the
 * take that holds it); `finish` leaves a `moved` marker, `release` gives the
 * status back.
 *
 * A take: a find of candidates (queued ones in claim order, finished ones
 * oldest ending first), one `updateMany` per status among them, each fenced
 * on that status, then a read of the jobs that carry this take's token
 * (still `moving`): a claim or a cancel that won a job between the find and
 * the update leaves it out. Then one find of their events.
 *
 * FerretDB makes no write atomic across connections: a write reads the
 * document, then rewrites it by `_id`. A claim of another process that read
 * a job as queued before our update may rewrite it after, as processing
 * (without our token). So there the read-back waits MOVE_SETTLE_MS after the
 * update, for such a claim to land and the job to be left out. Trade: every
 * take costs that pause, and a claim slower than it still wins after the
 * read-back: the job runs here and is copied too (it runs twice; `finish`
 * does not count it, it is not moving any more). The other way round, our
 * update (its read before the claim's write, its rewrite after) undoing a
 * claim, the job is moved and the worker's outcome is refused (its lease is
 * gone): it runs again where it went. The longer the update (FerretDB writes
 * document by document), the wider that window: take fewer at a time there.
 * On MongoDB the update is atomic per job and there is no pause.
 */
import { randomUUID } from 'node:crypto';
import type { Collection } from 'mongodb';
import { sleep } from '../../src/backoff.js';
import type { JobStatus } from '../../src/job.js';
import type { MoveSource, MovingJob } from '../../src/transport.js';
import { docToJob, type JobDoc } from './codec.js';
import type { EventBatch } from './event-batch.js';
import type { EventStreams } from './events.js';
import type { Notifier } from './notifier.js';
import { CLAIM_SORT, heldFilter, MOVE_FINISHED_SORT, moveFinishedFilter, movedAtFilter, moveQueuedFilter, movingFilter, takeFilter, takenFilter, wholeBatch } from './queries.js';

/**
 * FerretDB: how long a take waits after its update before reading back
 * which jobs it holds (see the header). A claim's read and its rewrite are
 * one request's work, apart by at most that request's time: 10 ms to 100 ms
 * on FerretDB as docs/mongo.md measures it (small to ~1,000 jobs). Three
 * times the slower figure, and little beside copying a batch. In the race
 * run of docs/mongo.md no taken job ended up processing with it, 5 of 55
 * did without.
 */
const MOVE_SETTLE_MS = 300;

/** What of the connection the moves use (the transport's `Ready`). */
export interface MovesConnection {
  jobs: Collection<JobDoc>;
  batch: EventBatch;
  streams: EventStreams;
  notifier: Notifier;
}

export interface MovesContext {
  /** run with the connection, driver errors translated (the transport's `op`) */
  run<T>(fn: (c: MovesConnection) => Promise<T>): Promise<T>;
  /** the server's clock */
  now(): Date;
  /** the fields every move to a terminal status sets (the transport's `ended`) */
  ended(now: Date): { lease: null; finished_at: Date; updated_at: Date; expire_at: Date };
  /** writes are atomic per document across connections (not FerretDB) */
  atomicWrites(): boolean;
  /** the server deletes by `expire_at` (TTL indexes) */
  ttl(): boolean;
  /** queued jobs of `queue` became claimable */
  workArrived(queue: string): void;
}

export class MongoMoves implements MoveSource {
  constructor(private readonly c: MovesContext) {}

  async take(queue: string, what: 'queued' | 'finished' | 'moving', max: number): Promise<MovingJob[]> {
    if (max <= 0) return []; // a limit of 0 is no limit to the server
    return this.c.run(async ({ jobs, batch, streams }) => {
      const held = what === 'moving' ? await jobs.find(movingFilter(queue), { batchSize: wholeBatch(max) }).sort(CLAIM_SORT).limit(max).toArray() : await this.hold(jobs, queue, what, max);
      // This process's lifecycle events of these jobs are in before their streams are read.
      for (const doc of held) await batch.settled(doc._id);
      const events = await streams.streamsOf(held);
      return held.map((doc) => ({ job: { ...docToJob(doc), status: doc.move_from ?? 'queued' }, events: events.get(doc._id) ?? [] }));
    });
  }

  async finish(ids: string[], to: string): Promise<number> {
    const wanted = [...new Set(ids)];
    if (wanted.length === 0) return 0;
    return this.c.run(async ({ jobs, notifier, streams }) => {
      const now = this.c.now();
      const end = this.c.ended(now);
      // The job goes on where it moved, and so does the callback it may owe: none is delivered from here.
      const { modifiedCount } = await jobs.updateMany(heldFilter(wanted), {
        $set: { ...end, status: 'moved', moved_to: to },
        $unset: { move_from: '', move_token: '', callback_due: '' },
      });
      for (const id of wanted) notifier.jobFinished(id);
      if (this.c.ttl() && modifiedCount > 0) {
        // The marker's events go with it (as a job's when it ends): those of the jobs this call moved, found again only when some were not.
        const moved = modifiedCount === wanted.length ? wanted : (await jobs.find(movedAtFilter(wanted, now), { projection: { _id: 1 }, batchSize: wholeBatch(wanted.length) }).toArray()).map((d) => d._id);
        for (const id of moved) streams.expireWith(id, end.expire_at);
      }
      return modifiedCount;
    });
  }

  async release(ids: string[]): Promise<number> {
    const wanted = [...new Set(ids)];
    if (wanted.length === 0) return 0;
    return this.c.run(async ({ jobs, notifier }) => {
      const held = await jobs.find(heldFilter(wanted), { projection: { _id: 1, queue: 1, move_from: 1 }, batchSize: wholeBatch(wanted.length) }).toArray();
      const now = this.c.now();
      let released = 0;
      for (const [from, docs] of byStatus(held, (d) => d.move_from ?? 'queued')) {
        const res = await jobs.updateMany(heldFilter(docs.map((d) => d._id)), { $set: { status: from, updated_at: now }, $unset: { move_from: '', move_token: '' } });
        released += res.modifiedCount;
        if (from === 'queued') for (const queue of new Set(docs.map((d) => d.queue))) this.c.workArrived(queue);
        else for (const d of docs) notifier.jobFinished(d._id);
      }
      return released;
    });
  }

  /** Set up to `max` queued or finished jobs of `queue` moving; the ones this call holds, in the order taken. */
  private async hold(jobs: Collection<JobDoc>, queue: string, what: 'queued' | 'finished', max: number): Promise<JobDoc[]> {
    const found =
      what === 'queued'
        ? await jobs.find(moveQueuedFilter(queue), { projection: { _id: 1, status: 1 }, batchSize: wholeBatch(max) }).sort(CLAIM_SORT).limit(max).toArray()
        : await jobs.find(moveFinishedFilter(queue), { projection: { _id: 1, status: 1 }, batchSize: wholeBatch(max) }).sort(MOVE_FINISHED_SORT).limit(max).toArray();
    if (found.length === 0) return [];
    const token = randomUUID();
    const now = this.c.now();
    let taken = 0;
    for (const [from, docs] of byStatus(found, (d) => d.status)) {
      const res = await jobs.updateMany(takeFilter(docs.map((d) => d._id), from), { $set: { status: 'moving', move_from: from, move_token: token, updated_at: now } });
      taken += res.modifiedCount;
    }
    if (taken === 0) return [];
    if (!this.c.atomicWrites()) await sleep(MOVE_SETTLE_MS);
    const order = new Map(found.map((d, i) => [d._id, i]));
    const held = await jobs.find(takenFilter([...order.keys()], token), { batchSize: wholeBatch(found.length) }).toArray();
    return held.sort((a, b) => order.get(a._id)! - order.get(b._id)!);
  }
}

/** Documents grouped by a status, in the order first seen. */
function byStatus<T>(docs: T[], status: (doc: T) => JobStatus): Map<JobStatus, T[]> {
  const groups = new Map<JobStatus, T[]>();
  for (const doc of docs) {
    const s = status(doc);
    const group = groups.get(s);
    if (group) group.push(doc);
    else groups.set(s, [doc]);
  }
  return groups;
}
