/**
 * Prefetch: a worker that completes a job will ask for the next one right
 * away, so the complete script claims it in the same call (one round trip
 * per job instead of two). The claimed job is in Redis under a lease like
 * any other; it waits here only until the owner's next `claimMany`, which
 * returns it without a round trip.
 *
 * Only for owners that ask for it (`ClaimRequest.prefetch`: the in-process
 * worker loop, never the HTTP API, whose callers may go away unseen) and
 * claim from one queue with an AbortSignal: multi-queue claims keep their
 * choice across queues, and the signal tells us when the owner stops
 * claiming — its buffered jobs are then released at once, uncharged, as a
 * worker does with jobs claimed during shutdown. Nothing is prefetched while
 * the owner has a claim in flight (that claim takes the next job itself), and
 * a buffered job whose lease has run down by more than a third is released
 * rather than handed out, since nobody renews it while it waits here.
 */
import type { ClaimRequest, ClaimedJob } from '../../src/transport.js';

interface Claimer {
  queue: string;
  leaseMs: number;
  /** the owner's latest claim signal; its abort releases the buffer */
  signal: AbortSignal;
  onAbort: () => void;
  buffer: ClaimedJob[];
  /** a claim of this owner is running: do not claim ahead for it */
  claiming: boolean;
}

/** Jobs waiting for their owner at most, per owner (a safety bound; about its concurrency in practice). */
const BUFFER_LIMIT = 1_000;

export class Prefetcher {
  private readonly claimers = new Map<string, Claimer>();

  /** @param release hands a buffered job back (fenced, attempt not charged) */
  constructor(private readonly release: (job: ClaimedJob) => Promise<unknown>) {}

  /** At the start of a claim: note the owner's claim, and hand out jobs already claimed for it. */
  take(request: ClaimRequest, max: number): ClaimedJob[] {
    const { owner, signal } = request;
    const queue = request.queues.length === 1 ? request.queues[0] : undefined;
    let claimer = this.claimers.get(owner);
    if (!queue || !signal || !request.prefetch) {
      if (claimer) void this.drop(owner); // no longer a claim we prefetch for
      return [];
    }
    if (signal.aborted) return []; // the abort listener releases the buffer
    if (!claimer) {
      const onAbort = () => void this.drop(owner);
      claimer = { queue, leaseMs: Math.floor(request.lease_ms), signal, onAbort, buffer: [], claiming: false };
      signal.addEventListener('abort', onAbort, { once: true });
      this.claimers.set(owner, claimer);
    } else if (claimer.signal !== signal) {
      // A new signal per claim (an HTTP long-poll per request): follow it, keep the buffer.
      claimer.signal.removeEventListener('abort', claimer.onAbort);
      claimer.signal = signal;
      signal.addEventListener('abort', claimer.onAbort, { once: true });
    }
    if (claimer.queue !== queue) {
      // Jobs of a queue the owner no longer asks for go back.
      for (const job of claimer.buffer.splice(0)) void this.release(job).catch(() => {});
      claimer.queue = queue;
    }
    claimer.leaseMs = Math.floor(request.lease_ms);
    const fresh = Date.now() + (claimer.leaseMs * 2) / 3;
    const jobs: ClaimedJob[] = [];
    for (const job of claimer.buffer.splice(0)) {
      if (jobs.length < max && job.lease.until.getTime() >= fresh) jobs.push(job);
      else if (jobs.length < max) void this.release(job).catch(() => {}); // waited too long unrenewed
      else claimer.buffer.push(job);
    }
    if (jobs.length === 0) claimer.claiming = true; // the caller goes on to claim from Redis
    return jobs;
  }

  /** The claim that `take` let through has returned. */
  claimDone(owner: string): void {
    const claimer = this.claimers.get(owner);
    if (claimer) claimer.claiming = false;
  }

  /** On complete of a job of `queue` that `owner` claimed: whether to claim the next job for it. */
  want(owner: string | undefined, queue: string | undefined): { owner: string; queue: string; leaseMs: number } | null {
    const claimer = owner === undefined ? undefined : this.claimers.get(owner);
    if (!owner || !claimer || claimer.claiming || claimer.signal.aborted || claimer.queue !== queue || claimer.buffer.length >= BUFFER_LIMIT) return null;
    return { owner, queue: claimer.queue, leaseMs: claimer.leaseMs };
  }

  /** A job the complete script claimed for `owner`: keep it for its next claim, or give it back. */
  deliver(owner: string, job: ClaimedJob): void {
    const claimer = this.claimers.get(owner);
    if (!claimer || claimer.signal.aborted) {
      void this.release(job).catch(() => {}); // the lease expires otherwise
      return;
    }
    claimer.buffer.push(job);
  }

  /** Release every buffered job (close). */
  async releaseAll(): Promise<void> {
    const owners = [...this.claimers.keys()];
    await Promise.all(owners.map((owner) => this.drop(owner)));
  }

  private async drop(owner: string): Promise<void> {
    const claimer = this.claimers.get(owner);
    if (!claimer) return;
    this.claimers.delete(owner);
    claimer.signal.removeEventListener('abort', claimer.onAbort);
    const jobs = claimer.buffer.splice(0);
    await Promise.all(jobs.map((job) => this.release(job).catch(() => {})));
  }
}
