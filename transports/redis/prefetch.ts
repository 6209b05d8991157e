/**
 * Prefetch: a worker that completes a job will ask for the next one right
 * away, so the complete script claims it in the same call (one round trip
 * per job instead of two). The claimed job is in Redis under a lease like
 * any other; it waits here only until the owner's next `claimMany`, which
 * returns it without a round trip.
 *
 * Opt-in, per owner: an in-process worker loop registers itself
 * (`Transport.prefetchFor`, from the worker's `prefetch` option) with the
 * signal that aborts when it stops claiming; the HTTP API never does, since
 * its callers may go away unseen. Only single-queue claims are served
 * (multi-queue claims keep their choice across queues). When the owner stops,
 * its buffered jobs are released at once, uncharged, as a worker does with
 * jobs claimed during shutdown. Nothing is prefetched while
 * the owner has a claim in flight (that claim takes the next job itself), and
 * a buffered job whose lease has run down by more than a third is released
 * rather than handed out, since nobody renews it while it waits here.
 */
import type { ClaimRequest, ClaimedJob } from '../../src/transport.js';

interface Claimer {
  /** the queue of the owner's last claim; null before its first */
  queue: string | null;
  leaseMs: number;
  /** aborts when the owner stops claiming; releases the buffer */
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

  /** An in-process worker loop that claims again as soon as a slot frees, until `signal` aborts. */
  register(owner: string, signal: AbortSignal): void {
    if (signal.aborted) return;
    void this.drop(owner);
    const onAbort = () => void this.drop(owner);
    signal.addEventListener('abort', onAbort, { once: true });
    this.claimers.set(owner, { queue: null, leaseMs: 0, signal, onAbort, buffer: [], claiming: false });
  }

  /** At the start of a claim: note the owner's claim, and hand out jobs already claimed for it. */
  take(request: ClaimRequest, max: number): ClaimedJob[] {
    const claimer = this.claimers.get(request.owner);
    if (!claimer || claimer.signal.aborted) return [];
    const queue = request.queues.length === 1 ? request.queues[0]! : null;
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
    if (!owner || !claimer || claimer.claiming || claimer.signal.aborted || claimer.queue === null || claimer.queue !== queue || claimer.buffer.length >= BUFFER_LIMIT) return null;
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
