/**
 * `enqueueMany` on Mongo: one slice of jobs (at most ENQUEUE_MANY_MAX) in one
 * `insertMany({ordered: false})`, then their events.
 *
 * Idempotent as `enqueue` is, by the unique indexes (`_id`, and `dedupe` =
 * queue + key): every job is sent, the server refuses the duplicates, and
 * those are looked up in one query and answered with the job found
 * (`created: false`). A job that repeats the id of an earlier one of the
 * batch, or (not imported) its dedupe key, is answered with that one and not
 * sent.
 *
 * Plain jobs get their `queued` event (id 1) through the lifecycle batch
 * (event-batch.ts), as `enqueue`'s does: one insert for the slice.
 *
 * Imported jobs (a migration copies them from another store) are written as
 * given, their streams at their ids, no new `queued` event. Their events are
 * inserted before the reply, not batched: the migrator marks a job moved in
 * the store it leaves once this returns, so the copy must be whole by then.
 * An import repeated writes the events again (duplicates skipped), which
 * mends a copy whose events did not get in the first time. A dedupe key
 * another job holds does not stop an imported job (both were acknowledged):
 * it is written without `dedupe` (its `dedupe_key` kept), so the key stays
 * with the job that held it. An imported job replaces a `moved` marker of
 * its id: the job left this store and is back (a migration rolled back).
 */
import type { Collection } from 'mongodb';
import type { JobEvent } from '../../src/events.js';
import { FINISHED_STATUSES, type Job } from '../../src/job.js';
import type { EnqueueReply } from '../../src/transport.js';
import { docToJob, jobToDoc, type JobDoc } from './codec.js';
import { writeErrorsOf } from './errors.js';
import type { EventStreams } from './events.js';
import { existingJobsFilter, wholeBatch } from './queries.js';

/** Inserts of one job before giving up: a job whose duplicate was deleted before it was looked up goes in again, as with `enqueue`. */
const INSERT_TRIES = 3;

export interface SliceContext {
  jobs: Collection<JobDoc>;
  streams: EventStreams;
  /** the server's clock now: the `queued` events' time, an imported job's deadlines */
  now: Date;
  retentionMs: number;
}

export interface SliceResult {
  /** one per job, in order */
  replies: EnqueueReply[];
  /** the queues that got a job due now (the caller wakes their claimers) */
  arrived: Set<string>;
}

/** Write one slice; `imported`: the jobs are copies, `imported[i]` the stream of job i. */
export async function insertSlice(ctx: SliceContext, jobs: Job[], imported: JobEvent[][] | null): Promise<SliceResult> {
  // Built in batch order: `seq` (FIFO within a priority) follows it.
  const docs = jobs.map((job, i) => (imported ? importedDoc(ctx, job, imported[i] ?? []) : { ...jobToDoc(job), event_seq: 1 }));
  const { firstOf, unique } = repeats(docs, imported !== null);
  const answers = new Map<number, EnqueueReply>();
  const copies: { doc: JobDoc; events: JobEvent[]; repeated: boolean }[] = [];
  const arrived = new Set<string>();

  const inserted = (i: number) => {
    const doc = docs[i]!;
    answers.set(i, { job: docToJob(doc), created: true });
    if (imported) copies.push({ doc, events: imported[i] ?? [], repeated: false });
    else ctx.streams.logged(doc, 'queued', {}, ctx.now);
    if (doc.status === 'queued' && doc.run_at.getTime() <= Date.now()) arrived.add(doc.queue);
  };
  const existing = (i: number, found: JobDoc) => {
    answers.set(i, { job: docToJob(found), created: false });
    if (imported && found._id === docs[i]!._id) copies.push({ doc: found, events: imported[i] ?? [], repeated: true });
  };

  try {
    let todo = unique;
    for (let tries = 1; todo.length > 0; tries++) {
      let errors: { index: number; duplicate: boolean }[] = [];
      let failure: unknown = null;
      try {
        await ctx.jobs.insertMany(todo.map((i) => docs[i]!), { ordered: false });
      } catch (error) {
        errors = writeErrorsOf(error) ?? [];
        // Nothing says which landed (a dropped connection): thrown, the caller tries again, as with enqueue.
        if (errors.length === 0) throw error;
        failure = error;
      }
      const refused = new Set(errors.map((e) => todo[e.index]!));
      for (const i of todo) if (!refused.has(i)) inserted(i);
      if (errors.some((e) => !e.duplicate)) throw failure;
      todo = await settleDuplicates(ctx, docs, [...refused], imported !== null, existing);
      if (todo.length > 0 && tries >= INSERT_TRIES) throw failure;
    }
  } finally {
    // What got in has its stream, even when the batch failed part way.
    await ctx.streams.adopt(copies);
  }

  const replies = docs.map((_, i) => {
    const first = firstOf.get(i);
    return first === undefined ? answers.get(i)! : { job: answers.get(first)!.job, created: false };
  });
  return { replies, arrived };
}

/**
 * The jobs the server refused as duplicates, looked up in one query:
 * answered with the job of the same id, or (not imported) the one holding
 * the key. Returns those to insert again: an imported job that only clashed
 * on a key (without it now), one whose duplicate was deleted meanwhile.
 */
async function settleDuplicates(ctx: SliceContext, docs: JobDoc[], refused: number[], imported: boolean, existing: (i: number, found: JobDoc) => void): Promise<number[]> {
  if (refused.length === 0) return [];
  const { jobs } = ctx;
  const keys = refused.flatMap((i) => (docs[i]!.dedupe ? [docs[i]!.dedupe] : []));
  // Each refused job matches at most two: the one of its id, the one of its key.
  const found = await jobs.find(existingJobsFilter(refused.map((i) => docs[i]!._id), keys), { batchSize: wholeBatch(refused.length + keys.length) }).toArray();
  const byId = new Map(found.map((d) => [d._id, d]));
  const byKey = new Map(found.flatMap((d) => (d.dedupe ? [[d.dedupe, d] as const] : [])));
  const again: number[] = [];
  // A job coming back (a migration rolled back) replaces the `moved` marker it left here, stream and all.
  const markers = imported ? found.filter((d) => d.status === 'moved' && refused.some((i) => docs[i]!._id === d._id)) : [];
  if (markers.length > 0) {
    await jobs.deleteMany({ _id: { $in: markers.map((d) => d._id) }, status: 'moved' });
    await ctx.streams.drop(markers);
    for (const d of markers) byId.delete(d._id);
  }
  for (const i of refused) {
    const doc = docs[i]!;
    const same = byId.get(doc._id);
    const holder = doc.dedupe ? byKey.get(doc.dedupe) : undefined;
    if (same) existing(i, same);
    else if (holder && !imported) existing(i, holder);
    else {
      if (holder) delete doc.dedupe;
      again.push(i);
    }
  }
  return again;
}

/**
 * Jobs that repeat an earlier job of the batch: by id, or (not imported) by
 * dedupe key. They are answered with that job, not sent. An imported job
 * whose key an earlier one took is sent without it.
 */
function repeats(docs: JobDoc[], imported: boolean): { firstOf: Map<number, number>; unique: number[] } {
  const firstOf = new Map<number, number>();
  const unique: number[] = [];
  const byId = new Map<string, number>();
  const byKey = new Map<string, number>();
  for (const [i, doc] of docs.entries()) {
    const first = byId.get(doc._id) ?? (doc.dedupe && !imported ? byKey.get(doc.dedupe) : undefined);
    if (first !== undefined) {
      firstOf.set(i, first);
      continue;
    }
    byId.set(doc._id, i);
    if (doc.dedupe && byKey.has(doc.dedupe)) delete doc.dedupe;
    else if (doc.dedupe) byKey.set(doc.dedupe, i);
    unique.push(i);
  }
  return { firstOf, unique };
}

/**
 * The document of an imported job: the job as given, a fresh `seq`, the
 * stream's counters. A finished one gets what ending here then would have
 * given it: its retention deadline, or, while its callback is still owed,
 * a delivery due now (the outbox) and no deadline until it is settled.
 */
function importedDoc(ctx: SliceContext, job: Job, events: JobEvent[]): JobDoc {
  const doc: JobDoc = { ...jobToDoc(job), ...ctx.streams.adoptedCounters(events) };
  if (!FINISHED_STATUSES.includes(job.status)) return doc;
  doc.finished_at ??= ctx.now; // retention counts from it
  if (job.callback?.state === 'pending') {
    doc.callback_due = ctx.now;
    doc.expire_at = null;
  } else doc.expire_at = new Date(doc.finished_at.getTime() + ctx.retentionMs);
  return doc;
}
