/**
 * The worker's side of a job's event stream: coalesces a run's `ctx.emit`
 * calls into few store writes without reordering them.
 *
 * - One write in flight per run; what is emitted meanwhile waits for it.
 * - The first event after a quiet spell goes at once (next tick, so that the
 *   emits of one synchronous burst share it); later ones at most one write
 *   every `intervalMs`, with everything emitted meanwhile (up to APPEND_MAX
 *   a write). Token streaming at hundreds of events a second costs about
 *   1000 / intervalMs writes a second, not one per token (figures:
 *   scripts/bench, "events").
 * - A write whose outcome is unknown (STORE_TIMEOUT, a dropped connection)
 *   is repeated with the same `written` count, so the store skips what the
 *   first try wrote (Transport.appendEvents): no event twice, none lost.
 * - A lost lease fails the pending emits and every later one with it.
 */
import { sleep } from './backoff.js';
import { APPEND_MAX, type NewEvent } from './events.js';
import { TransportError } from './errors.js';

interface Pending {
  event: NewEvent;
  settle: (error?: unknown) => void;
}

export interface EventWriterOptions {
  /** writes `events`, fenced; `written` = events of this run written before them */
  write: (events: NewEvent[], written: number) => Promise<number>;
  /** at most one write this often (ms) once events keep coming */
  intervalMs: number;
  /** how often an unknown outcome is tried again before the events are given up (the lease decides soon anyway) */
  repeats?: number;
}

export class EventWriter {
  private readonly pending: Pending[] = [];
  private written = 0;
  private running: Promise<void> | null = null;
  private lastWriteAt = -Infinity;
  private failed: unknown = null;
  /** store writes made (for the benchmark's writes-per-token figure) */
  writes = 0;

  constructor(private readonly options: EventWriterOptions) {}

  /** Queue one event; resolves once it is in the store. Never rejects unhandled: a caller may ignore the promise. */
  emit(event: NewEvent): Promise<void> {
    if (this.failed) return handled(Promise.reject(this.failed));
    const done = new Promise<void>((resolve, reject) => this.pending.push({ event, settle: (error) => (error === undefined ? resolve() : reject(error)) }));
    this.running ??= this.drain();
    return handled(done);
  }

  /** Resolves when everything emitted so far is written (or failed). */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const wait = this.lastWriteAt + this.options.intervalMs - Date.now();
        await (wait > 0 ? sleep(wait) : Promise.resolve());
        const batch = this.pending.splice(0, APPEND_MAX);
        this.lastWriteAt = Date.now();
        try {
          await this.writeBatch(batch.map((p) => p.event));
          for (const p of batch) p.settle();
        } catch (error) {
          this.failed = error;
          for (const p of [...batch, ...this.pending.splice(0)]) p.settle(error);
        }
      }
    } finally {
      this.running = null;
    }
  }

  private async writeBatch(events: NewEvent[]): Promise<void> {
    const repeats = this.options.repeats ?? 3;
    for (let attempt = 0; ; attempt++) {
      this.writes += 1;
      try {
        await this.options.write(events, this.written);
        this.written += events.length;
        return;
      } catch (error) {
        const unknownOutcome = error instanceof TransportError && error.retryable;
        if (!unknownOutcome || attempt >= repeats) throw error;
        await sleep(Math.min(1000, 50 * 2 ** attempt));
      }
    }
  }
}

function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
