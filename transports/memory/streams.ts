/**
 * The memory store's event streams (src/events.ts): per job, the newest
 * `eventsMax` events, the id of the last one trimmed away, the readers
 * waiting for more, and what the run holding the lease has appended (so a
 * repeated try writes nothing twice). What the events weigh is reported to
 * the store (`onBytes`), which counts it against its byte limit.
 */
import { addUsage, trimmedMarker, type EventPage, type JobEvent, type NewEvent, type Usage } from '../../src/events.js';
import { isTerminal, type Job } from '../../src/job.js';
import type { Outcome } from '../../src/outcome.js';
import { weigh } from './weigh.js';

interface Stream {
  /** the newest events, ids `floor + 1` … `last` */
  events: JobEvent[];
  /** id of the last event trimmed away (0: none) */
  floor: number;
  last: number;
  /** what the kept events weigh */
  bytes: number;
  readers: Set<() => void>;
  /** how many events the run holding `token` has appended */
  run: { token: string; written: number } | null;
}

/** What an event weighs beyond its data. */
const EVENT_OVERHEAD_BYTES = 96;
const clone = <T>(value: T): T => structuredClone(value);

export class Streams {
  private readonly streams = new Map<string, Stream>();

  constructor(
    private readonly eventsMax: number,
    private readonly onBytes: (delta: number) => void,
  ) {}

  private stream(id: string): Stream {
    let stream = this.streams.get(id);
    if (!stream) this.streams.set(id, (stream = { events: [], floor: 0, last: 0, bytes: 0, readers: new Set(), run: null }));
    return stream;
  }

  /** Append one event (the store's lifecycle events and a handler's), trimming past `eventsMax`, waking readers. */
  log(job: Job, type: string, data: unknown): void {
    const stream = this.stream(job.id);
    const size = EVENT_OVERHEAD_BYTES + weigh(data);
    stream.last += 1;
    stream.events.push({ id: stream.last, type, at: new Date(), attempt: job.attempts, data });
    stream.bytes += size;
    this.onBytes(size);
    if (stream.events.length > this.eventsMax) {
      const dropped = stream.events.splice(0, stream.events.length - this.eventsMax);
      const freed = dropped.reduce((n, e) => n + EVENT_OVERHEAD_BYTES + weigh(e.data), 0);
      stream.bytes -= freed;
      this.onBytes(-freed);
      stream.floor = dropped[dropped.length - 1]!.id;
    }
    if (stream.readers.size > 0) {
      const readers = [...stream.readers];
      stream.readers.clear();
      for (const wake of readers) wake();
    }
  }

  /** A job's stream copied from another store (a migration): its events as they were, ids and times kept. */
  adopt(job: Job, events: JobEvent[]): void {
    this.remove(job.id);
    const stream = this.stream(job.id);
    const kept = events.slice(-this.eventsMax).map(clone);
    stream.events = kept;
    stream.floor = kept.length > 0 ? kept[0]!.id - 1 : 0;
    stream.last = kept.length > 0 ? kept[kept.length - 1]!.id : 0;
    stream.bytes = kept.reduce((n, e) => n + EVENT_OVERHEAD_BYTES + weigh(e.data), 0);
    this.onBytes(stream.bytes);
  }

  /** The kept events of a job, in id order (a migration copies them). */
  all(id: string): JobEvent[] {
    return (this.streams.get(id)?.events ?? []).map(clone);
  }

  /** The lifecycle event of a written outcome, with the attempt of the run that ended (before a give-back). */
  logOutcome(job: Job, status: Outcome['status'], outcome: Outcome): void {
    if (status === 'queued') {
      const reason = outcome.stall ? 'stalled' : outcome.give_back ? 'released' : 'failed';
      this.log(job, 'retry', { reason, run_at: (outcome.run_at ?? new Date()).getTime(), ...(outcome.error ? { error: outcome.error } : {}) });
    } else if (status === 'done') this.log(job, 'done', clone(job.result));
    else if (status === 'error') this.log(job, 'error', clone(job.error));
    else if (status === 'canceled') this.log(job, 'canceled', { reason: job.cancel_requested?.reason ?? null });
  }

  /** What appending these would add to the store's bytes (at most: a repeated try may skip some). */
  weighOf(events: NewEvent[]): number {
    let bytes = 0;
    for (const event of events) bytes += EVENT_OVERHEAD_BYTES + weigh(event.data ?? null);
    return bytes;
  }

  /** A handler's events (the caller checked the fence); `progress` and `usage` also change the job. Returns the newest id. */
  append(job: Job, token: string, events: NewEvent[], written: number | null): number {
    const stream = this.stream(job.id);
    let fresh = events;
    if (written !== null) {
      // What a repeated try of this run wrote already is skipped (the transport contract: a repeat never writes twice).
      const had = stream.run?.token === token ? stream.run.written : 0;
      fresh = events.slice(Math.max(0, had - written));
      stream.run = { token, written: Math.max(had, written + events.length) };
    }
    for (const event of fresh) {
      const data = clone(event.data ?? null);
      if (event.type === 'progress') job.progress = data;
      if (event.type === 'usage') job.usage = addUsage(job.usage, data as Usage);
      this.log(job, event.type, data);
    }
    return stream.last;
  }

  page(job: Job, after: number, limit: number): EventPage {
    const stream = this.streams.get(job.id) ?? { events: [], floor: 0, last: 0 };
    const events: JobEvent[] = [];
    let from = after;
    if (from < stream.floor) {
      events.push(trimmedMarker(after, stream.floor, stream.events[0]?.at ?? new Date()));
      from = stream.floor;
    }
    for (let k = Math.max(0, from - stream.floor); k < stream.events.length && events.length < limit; k++) events.push(clone(stream.events[k]!));
    const reached = events.length > 0 ? events[events.length - 1]!.id : after;
    return { events, last: stream.last, end: isTerminal(job.status) && reached >= stream.last };
  }

  /** Resolve at the job's next event, its deletion, `ms` or the signal, whichever comes first. */
  waitForMore(id: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    const stream = this.stream(id);
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        stream.readers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(ms, 2 ** 31 - 1));
      signal?.addEventListener('abort', done, { once: true });
      stream.readers.add(done);
    });
  }

  /** The job is gone: its events too; its readers wake (and find it gone). */
  remove(id: string): void {
    const stream = this.streams.get(id);
    if (!stream) return;
    this.onBytes(-stream.bytes);
    this.streams.delete(id);
    for (const wake of stream.readers) wake();
  }

  wakeAll(): void {
    for (const stream of this.streams.values()) for (const wake of stream.readers) wake();
  }
}
