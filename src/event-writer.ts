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
 *   It is repeated for as long as the run lasts (`abandon()` at its end):
 *   giving up earlier would leave a hole in the stream that no reader sees.
 * - A lost lease fails the pending emits and every later one with it.
 */
import { sleep } from './backoff.js';
import { APPEND_MAX, type NewEvent } from './events.js';
import { TransportError } from './errors.js';

interface Pending {
  event: NewEvent;
  /** its data's JSON size in UTF-8 bytes (what a request body carries) */
  bytes: number;
  settle: (error?: unknown) => void;
}

/** One write carries at most this much event data (JSON): a batch stays well inside the server's 1 MiB body limit. */
export const APPEND_MAX_BYTES = 512 * 1024;

export interface EventWriterOptions {
  /** writes `events`, fenced; `written` = events of this run written before them */
  write: (events: NewEvent[], written: number) => Promise<number>;
  /** at most one write this often (ms) once events keep coming */
  intervalMs: number;
}

export class EventWriter {
  private readonly pending: Pending[] = [];
  private written = 0;
  private running: Promise<void> | null = null;
  private lastWriteAt = -Infinity;
  private failed: unknown = null;
  private readonly abandoned = new AbortController();
  /** store writes made (for the benchmark's writes-per-token figure) */
  writes = 0;

  constructor(private readonly options: EventWriterOptions) {}

  /** Queue one event; resolves once it is in the store. Never rejects unhandled: a caller may ignore the promise. */
  emit(event: NewEvent): Promise<void> {
    if (this.failed) return handled(Promise.reject(this.failed));
    const bytes = Buffer.byteLength(JSON.stringify(event.data ?? null));
    const done = new Promise<void>((resolve, reject) => this.pending.push({ event, bytes, settle: (error) => (error === undefined ? resolve() : reject(error)) }));
    this.running ??= this.drain();
    return handled(done);
  }

  /** The run is over: stop repeating, fail what is still pending and whatever is emitted later. */
  abandon(): void {
    this.abandoned.abort();
    this.failed ??= new TransportError('the run is over: its events can no longer be written', { code: 'RUN_OVER', retryable: false });
    for (const p of this.pending.splice(0)) p.settle(this.failed);
  }

  /** Resolves when everything emitted so far is written (or failed). */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const wait = this.lastWriteAt + this.options.intervalMs - Date.now();
        await (wait > 0 ? sleep(wait, this.abandoned.signal) : Promise.resolve());
        if (this.pending.length === 0) break; // abandoned meanwhile
        const batch = this.pending.splice(0, this.batchSize());
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

  /** How many of the pending events the next write takes: at most APPEND_MAX, and APPEND_MAX_BYTES of data (at least one). */
  private batchSize(): number {
    let n = 0;
    let bytes = 0;
    for (const p of this.pending) {
      if (n >= APPEND_MAX || (n > 0 && bytes + p.bytes > APPEND_MAX_BYTES)) break;
      n += 1;
      bytes += p.bytes;
    }
    return n;
  }

  private async writeBatch(events: NewEvent[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      this.writes += 1;
      try {
        await this.options.write(events, this.written);
        this.written += events.length;
        return;
      } catch (error) {
        const unknownOutcome = error instanceof TransportError && error.retryable;
        if (!unknownOutcome || this.abandoned.signal.aborted) throw error;
        await sleep(Math.min(1000, 50 * 2 ** attempt), this.abandoned.signal);
      }
    }
  }
}

function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
