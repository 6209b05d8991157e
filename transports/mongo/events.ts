/**
 * Job event streams on Mongo (src/events.ts): appends, pages, trimming.
 *
 * Layout: one `events` document per event, `{job_id, job_seq, seq, type,
 * at, attempt, data}` (codec.ts), unique on (job_id, seq) (queries.ts). The
 * job document holds the stream's counters:
 * - `event_seq`: the id of its newest event. Ids are taken by `$inc` in the
 *   write that makes the event (enqueue sets 1 for `queued`); the event
 *   document is inserted right after, with that id. Not atomic: see the gap
 *   rule below.
 * - `events_floor`: the id of the last event trimmed away.
 * - `emitted: {t, n}` and `emitted_lag`: the run (lease token) that appended
 *   last, how many events it appended, and how many ids the store took
 *   since. They make an append repeat-safe: the write matches only if the
 *   run's count is still the `written` the caller gives, and a repeated try
 *   whose first try landed finds its events' ids at
 *   `event_seq - emitted_lag` and inserts them again (duplicates skipped).
 *
 * The gap rule. A reader sees an id taken (≤ `event_seq`) whose event is not
 * in yet when its writer is between its two writes. It never skips it: a
 * page stops before it, and a page that would start with it is empty (a
 * reader that may wait is woken by the insert, or polls again when the
 * verdict is due). An id still missing GAP_LOST_MS after a reader first saw
 * it missing belongs to a writer that died between the two writes: the
 * reader gets a `trimmed` marker with `reason: 'lost'` in its place and
 * goes on. `end` needs the page to reach `event_seq`, so a terminal event
 * not in yet is waited for the same way.
 *
 * Copies (a migration, moves.ts and enqueue-many.ts): a job taken out of this
 * store hands over its kept events as they are; a job copied in writes its
 * events at their ids, its counters set from them (`event_seq` its newest,
 * `events_floor` below its first when the copy does not start at 1).
 */
import type { Collection, UpdateFilter } from 'mongodb';
import { sleep } from '../../src/backoff.js';
import { JobNotFoundError, TransportError } from '../../src/errors.js';
import { trimmedMarker, TRIMMED, type EventPage, type JobEvent, type LifecycleEvent, type NewEvent, type Usage } from '../../src/events.js';
import { isTerminal } from '../../src/job.js';
import type { Outcome } from '../../src/outcome.js';
import { docToEvent, type EventDoc, type JobDoc } from './codec.js';
import { insertEvents, type EventBatch } from './event-batch.js';
import type { Notifier } from './notifier.js';
import { appendFilter, eventsAfterFilter, eventsOfJobFilter, eventsOfJobIdsFilter,
  eventsOfJobsFilter, eventsTrimFilter, fencedFilter, fenceError, leaseHeld, STREAM_SORT, STREAMS_SORT, wholeBatch } from './queries.js';
import type { ServerClock } from './server.js';

/** An id taken but not in after this long is lost (its writer died between its two writes). */
const GAP_LOST_MS = 2_000;
/** Missing ids remembered at once (a reader that comes back after more were seen waits again for its own). */
const GAPS_KEPT = 10_000;
/**
 * Events outlive their job's `expire_at` by this much (servers with TTL
 * indexes): the TTL monitor (a pass a minute) takes the job first, so a
 * reader never finds a live job with its events gone.
 */
const EVENTS_TTL_MARGIN_MS = 60_000;
/** How often a stuck append looks again before giving up (the job's counters kept changing under it). */
const APPEND_TRIES = 4;
/** A copy that found an id taken but not in reads again this often (until the gap rule's verdict). */
const COPY_GAP_POLL_MS = 100;

export interface EventStreamsOptions {
  jobs: Collection<JobDoc>;
  events: Collection<EventDoc>;
  batch: EventBatch;
  notifier: Notifier;
  clock: ServerClock;
  eventsMax: number;
  /** the server deletes by `expire_at` (TTL indexes): events get one too */
  ttl: boolean;
}

export class EventStreams {
  /** missing ids (job, its seq, the event id) → when first seen missing: the gap rule's clock, across reads */
  private readonly gaps = new Map<string, number>();
  /** a trim runs once this many events past `eventsMax` have come (at most 100; the conformance bound) */
  private readonly trimStep: number;

  constructor(private readonly o: EventStreamsOptions) {
    this.trimStep = Math.max(1, Math.min(100, Math.ceil(o.eventsMax / 10)));
  }

  /**
   * The store's own event of a job write that just landed; its id is the
   * `event_seq` that write reached (`doc` is the document after it).
   */
  logged(doc: JobDoc, type: LifecycleEvent, data: unknown, at: Date, attempt = doc.attempts): void {
    const event: EventDoc = { job_id: doc._id, job_seq: doc.seq, seq: doc.event_seq ?? 1, type, at, attempt, data: data ?? null };
    const expireAt = this.expireAt(doc);
    if (expireAt) {
      event.expire_at = expireAt;
      this.o.batch.update(doc._id, { updateMany: { filter: eventsOfJobFilter(doc._id), update: { $set: { expire_at: expireAt } } } });
    }
    this.o.batch.add(event);
  }

  /** The events' deadline of a job that has its own (servers with TTL indexes), else none. */
  private expireAt(doc: Pick<JobDoc, 'status' | 'expire_at'>): Date | null {
    return this.o.ttl && isTerminal(doc.status) && doc.expire_at ? new Date(doc.expire_at.getTime() + EVENTS_TTL_MARGIN_MS) : null;
  }

  /** The counters of a job copied in with `events` (its stream elsewhere): the newest `eventsMax` of them are kept. */
  adoptedCounters(events: JobEvent[]): { event_seq: number; events_floor?: number } {
    const kept = events.slice(-this.o.eventsMax);
    const first = kept[0]?.id ?? 1;
    return { event_seq: kept.at(-1)?.id ?? 0, ...(first > 1 ? { events_floor: first - 1 } : {}) };
  }

  /**
   * Write the streams of jobs copied in (`doc` as stored, its counters from
   * `adoptedCounters`): each event at its id, those outside the counters left
   * out, in one insert. For a copy written again (`repeated`: the job was in
   * already) only the events it lacks are sent, found in one read: a repeated
   * import mends one whose events did not get in, without sending every
   * event again as a duplicate (each costs the server a lookup, a scan on
   * FerretDB).
   */
  async adopt(copies: { doc: JobDoc; events: JobEvent[]; repeated: boolean }[]): Promise<void> {
    const again = copies.filter((c) => c.repeated).map((c) => c.doc);
    const have = new Set<string>();
    if (again.length > 0) {
      const found = await this.o.events.find(eventsOfJobIdsFilter(again.map((d) => d._id)), { projection: { _id: 0, job_id: 1, job_seq: 1, seq: 1 }, batchSize: wholeBatch(streamLength(again)) }).toArray();
      for (const d of found) have.add(eventKey(d.job_id, d.job_seq, d.seq));
    }
    const docs = copies.flatMap(({ doc, events }) => {
      const floor = doc.events_floor ?? 0;
      const last = doc.event_seq ?? 0;
      const expireAt = this.expireAt(doc);
      return events
        .filter((e) => e.id > floor && e.id <= last && !have.has(eventKey(doc._id, doc.seq, e.id)))
        .map((e): EventDoc => ({ job_id: doc._id, job_seq: doc.seq, seq: e.id, type: e.type, at: e.at, attempt: e.attempt, data: e.data ?? null, ...(expireAt ? { expire_at: expireAt } : {}) }));
    });
    await insertEvents(this.o.events, docs);
  }

  /** Delete the streams of these jobs (a `moved` marker replaced by its job coming back). */
  async drop(jobs: Pick<JobDoc, '_id' | 'seq'>[]): Promise<void> {
    if (jobs.length > 0) await this.o.events.deleteMany(eventsOfJobsFilter(jobs));
  }

  /**
   * The kept events of jobs taken out of this store (a migration copies
   * them), in id order, in one find. A stream with an id taken but not in
   * (its event still on its way from another process) is read again shortly,
   * until the id comes or the gap rule gives it up as lost: the copy then
   * has the gap, and its readers are told there.
   */
  async streamsOf(jobs: JobDoc[]): Promise<Map<string, JobEvent[]>> {
    const out = new Map<string, JobEvent[]>();
    let pending = jobs;
    while (pending.length > 0) {
      const found = await this.o.events.find(eventsOfJobIdsFilter(pending.map((j) => j._id)), { batchSize: wholeBatch(streamLength(pending)) }).sort(STREAMS_SORT).toArray();
      const byJob = new Map<string, EventDoc[]>();
      for (const d of found) {
        const list = byJob.get(d.job_id);
        if (list) list.push(d);
        else byJob.set(d.job_id, [d]);
      }
      const gaps: JobDoc[] = [];
      let waitMs = Infinity;
      for (const job of pending) {
        const floor = job.events_floor ?? 0;
        const last = job.event_seq ?? 0;
        // This job's own, in id order, each id once (see page()).
        const mine = (byJob.get(job._id) ?? []).filter((d) => d.job_seq === job.seq && d.seq > floor && d.seq <= last).sort((a, b) => a.seq - b.seq);
        const events = mine.filter((d, i) => i === 0 || mine[i - 1]!.seq !== d.seq).map(docToEvent);
        out.set(job._id, events);
        // Every id up to `upTo` is in; the next one, when the counter is past it, is missing.
        const hole = events.findIndex((e, i) => e.id !== floor + 1 + i);
        const upTo = floor + (hole >= 0 ? hole : events.length);
        if (upTo >= last) continue;
        const key = eventKey(job._id, job.seq, upTo + 1);
        const left = GAP_LOST_MS - (Date.now() - (this.gaps.get(key) ?? this.noteGap(key)));
        if (left <= 0) continue;
        gaps.push(job);
        waitMs = Math.min(waitMs, left);
      }
      if (gaps.length > 0) await sleep(Math.min(waitMs, COPY_GAP_POLL_MS));
      pending = gaps;
    }
    return out;
  }

  /** The event of a written outcome (settle, lease recovery); `doc` is the job after the write. */
  loggedOutcome(doc: JobDoc, outcome: Outcome, at: Date): void {
    // The attempt of the run that ended, before a give-back took it off.
    const attempt = doc.attempts + (outcome.give_back ? 1 : 0);
    if (doc.status === 'queued') {
      const reason = outcome.stall ? 'stalled' : outcome.give_back ? 'released' : 'failed';
      this.logged(doc, 'retry', { reason, run_at: (outcome.run_at ?? at).getTime(), ...(outcome.error ? { error: outcome.error } : {}) }, at, attempt);
    } else if (doc.status === 'done') this.logged(doc, 'done', doc.result, at, attempt);
    else if (doc.status === 'error') this.logged(doc, 'error', doc.error, at, attempt);
    else this.logged(doc, 'canceled', { reason: doc.cancel_requested?.reason ?? null }, at, attempt);
  }

  /** A job's retention deadline was set (a delivered callback) or cleared (a retry): its events follow (servers with TTL indexes). */
  expireWith(id: string, expireAt: Date | null): void {
    if (!this.o.ttl) return;
    const update: UpdateFilter<EventDoc> = expireAt ? { $set: { expire_at: new Date(expireAt.getTime() + EVENTS_TTL_MARGIN_MS) } } : { $unset: { expire_at: '' } };
    this.o.batch.update(id, { updateMany: { filter: eventsOfJobFilter(id), update } });
  }

  /** Transport.appendEvents: fenced, repeat-safe (see the header). */
  async append(id: string, token: string, events: NewEvent[], written: number | null): Promise<number> {
    const { jobs } = this.o;
    if (written === null) return this.appendOnce(id, token, events);
    const total = written + events.length;
    let had = written; // the run's count the write expects the job to hold
    for (let tries = 1; ; tries++) {
      const fresh = events.slice(Math.max(0, had - written));
      const now = this.o.clock.now();
      if (fresh.length > 0) {
        const doc = await jobs.findOneAndUpdate(appendFilter(id, token, now, had), appendUpdate(token, total, fresh, now), { returnDocument: 'after' }); // whole: FerretDB has no projection on findAndModify
        if (doc) {
          const last = doc.event_seq ?? fresh.length;
          await insertEvents(this.o.events, eventDocs(doc, fresh, last - fresh.length + 1, now));
          this.o.notifier.eventsWritten(id);
          await this.trim(doc, last);
          return last;
        }
      }
      // Missed: the lease is gone, or this run's count is not `had`.
      const current = await jobs.findOne({ _id: id }, { projection: { ...STREAM_PROJECTION, status: 1, lease: 1, emitted: 1, emitted_lag: 1 } });
      if (!current || !leaseHeld(current, token, now)) throw fenceError(id, current, now);
      const stored = current.emitted?.t === token ? current.emitted.n : 0;
      if (stored > written && stored <= total) {
        // A try with this `written` landed (its answer was lost, or this is a repeat): its events go in again at the ids it took, duplicates skipped.
        const n = stored - written;
        const end = (current.event_seq ?? 0) - (current.emitted_lag ?? 0);
        await insertEvents(this.o.events, eventDocs(current, events.slice(0, n), end - n + 1, now));
        this.o.notifier.eventsWritten(id);
      }
      if (stored >= total) return current.event_seq ?? 0;
      if (tries >= APPEND_TRIES) throw new TransportError(`job ${id}: its event counters kept changing under this append`, { retryable: true });
      had = stored; // write what is not in yet
    }
  }

  /**
   * An append that is never repeated (the first release's progress route):
   * its ids count as the store's own, like a lifecycle write's (`emitted_lag`),
   * so the run's repeat-safe count stays right.
   */
  private async appendOnce(id: string, token: string, events: NewEvent[]): Promise<number> {
    const now = this.o.clock.now();
    const update = appendUpdate(token, 0, events, now) as { $inc: Record<string, number>; $set: Record<string, unknown> };
    delete update.$set.emitted;
    delete update.$set.emitted_lag;
    update.$inc.emitted_lag = events.length;
    const doc = await this.o.jobs.findOneAndUpdate(fencedFilter(id, token, now), update as UpdateFilter<JobDoc>, { returnDocument: 'after' });
    if (!doc) {
      const current = await this.o.jobs.findOne({ _id: id }, { projection: { status: 1, lease: 1 } });
      throw fenceError(id, current, now);
    }
    const last = doc.event_seq ?? events.length;
    await insertEvents(this.o.events, eventDocs(doc, events, last - events.length + 1, now));
    this.o.notifier.eventsWritten(id);
    await this.trim(doc, last);
    return last;
  }

  /**
   * One page of a job's stream after `after` (see the gap rule in the
   * header), and how long until a gap it stopped at counts as lost (0: none).
   * It never waits: a page that would start with a missing id is empty; the
   * time a missing id was first seen is kept here across reads (`gaps`), so
   * the verdict comes however the reads are spaced.
   */
  async page(id: string, after: number, limit: number): Promise<{ page: EventPage; gapWaitMs: number }> {
    const { jobs, events } = this.o;
    const out: JobEvent[] = [];
    let from = after;
    for (;;) {
      const job = await jobs.findOne({ _id: id }, { projection: { ...STREAM_PROJECTION, status: 1 } });
      if (!job) throw new JobNotFoundError(id);
      const last = job.event_seq ?? 0;
      const done = (gapWaitMs = 0) => ({ page: { events: timeMarkers(out, this.o.clock.now()), last, end: isTerminal(job.status) && from >= last }, gapWaitMs });
      if (from < (job.events_floor ?? 0)) {
        out.push(trimmedMarker(from, job.events_floor!, new Date(0)));
        from = job.events_floor!;
      }
      if (out.length >= limit || from >= last) return done();
      const found = (await events.find(eventsAfterFilter(id, from, last)).sort(STREAM_SORT).limit(limit - out.length).toArray()).filter((d) => d.job_seq === job.seq);
      // In id order, each id once, whatever the server gave back (a retried insert that FerretDB's unique index let through twice).
      const docs = found.sort((a, b) => a.seq - b.seq).filter((d, i, all) => i === 0 || all[i - 1]!.seq !== d.seq);
      for (const d of docs) {
        if (d.seq !== from + 1) break;
        out.push(docToEvent(d));
        from += 1;
      }
      if (out.length >= limit || from >= last) return done();
      // `from + 1` is taken but not in: hand over what came before it; a page that would start with it is empty until the verdict.
      if (out.length > 0) return done();
      const upTo = (docs.find((d) => d.seq > from)?.seq ?? last + 1) - 1;
      if (upTo <= from) return done(); // nothing missing after all: the next read takes it
      const key = eventKey(id, job.seq, from + 1);
      const since = this.gaps.get(key) ?? this.noteGap(key);
      const waited = Date.now() - since;
      if (waited < GAP_LOST_MS) return done(GAP_LOST_MS - waited);
      // Kept: the next reader of this process gets the verdict at once.
      const marker = trimmedMarker(from, upTo, new Date(0));
      out.push({ ...marker, data: { ...(marker.data as object), reason: 'lost' } });
      from = upTo;
    }
  }

  /** Remember when a missing id was first seen (the oldest forgotten past GAPS_KEPT). */
  private noteGap(key: string): number {
    const now = Date.now();
    this.gaps.set(key, now);
    if (this.gaps.size > GAPS_KEPT) this.gaps.delete(this.gaps.keys().next().value!);
    return now;
  }

  /** Past `eventsMax` + a step: raise the floor, then delete below it (in that order: a reader that misses them finds the floor that says why). */
  private async trim(doc: JobDoc, last: number): Promise<void> {
    if (last - (doc.events_floor ?? 0) < this.o.eventsMax + this.trimStep) return;
    const floor = last - this.o.eventsMax;
    await this.o.jobs.updateOne({ _id: doc._id, seq: doc.seq }, { $max: { events_floor: floor } });
    await this.o.events.deleteMany(eventsTrimFilter(doc._id, floor));
  }
}

/** How many events these jobs' streams hold at most (their counters): what a read of them expects. */
function streamLength(jobs: Pick<JobDoc, 'event_seq' | 'events_floor'>[]): number {
  return Math.max(1, jobs.reduce((n, j) => n + (j.event_seq ?? 0) - (j.events_floor ?? 0), 0));
}

/** One event of one job (its id and `seq`), as a key: a copy's events found in, and the gap rule's missing ids. */
const eventKey = (jobId: string, jobSeq: number, seq: number) => `${jobId}\u0000${jobSeq}\u0000${seq}`;

/** What the stream's writes and reads need of the job. */
const STREAM_PROJECTION = { _id: 1, seq: 1, attempts: 1, event_seq: 1, events_floor: 1 } as const;

/** An append's update: the ids, the run's count, and what progress and usage events say about the job. */
function appendUpdate(token: string, total: number, fresh: NewEvent[], now: Date): UpdateFilter<JobDoc> {
  const inc: Record<string, number> = { event_seq: fresh.length };
  const set: Record<string, unknown> = { emitted: { t: token, n: total }, emitted_lag: 0, updated_at: now };
  for (const event of fresh) {
    if (event.type === 'progress') set.progress = event.data ?? null;
    if (event.type === 'usage') {
      const usage = event.data as Usage;
      inc['usage.prompt_tokens'] = (inc['usage.prompt_tokens'] ?? 0) + usage.prompt_tokens;
      inc['usage.completion_tokens'] = (inc['usage.completion_tokens'] ?? 0) + usage.completion_tokens;
    }
  }
  return { $inc: inc, $set: set } as UpdateFilter<JobDoc>;
}

function eventDocs(job: Pick<JobDoc, '_id' | 'seq' | 'attempts'>, events: NewEvent[], first: number, at: Date): EventDoc[] {
  return events.map((e, i) => ({ job_id: job._id, job_seq: job.seq, seq: first + i, type: e.type, at, attempt: job.attempts, data: e.data ?? null }));
}

/** A marker takes the time of the event after it (times never go back along a page), or now at the page's end. */
function timeMarkers(events: JobEvent[], now: Date): JobEvent[] {
  for (let i = events.length - 1; i >= 0; i--) if (events[i]!.type === TRIMMED) events[i]!.at = events[i + 1]?.at ?? now;
  return events;
}
