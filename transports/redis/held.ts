/**
 * The jobs this transport handed out by claim, as they were handed out, and
 * to whom, so that a complete needs back only what its write changed
 * (finished_at, a cancel request) instead of the whole record, knows the
 * job's queue without a lookup, and knows whom to claim the next job for
 * (prefetch.ts). While a job is processing under a token nothing else of it
 * changes — every other write is fenced on that token and goes through the
 * holder — except progress, kept here too.
 */
import type { ClaimedJob } from '../../src/transport.js';

const LIMIT = 100_000;

export interface HeldJob {
  job: ClaimedJob;
  /** the claim's owner (worker id) */
  owner: string;
}

export class HeldJobs {
  private readonly jobs = new Map<string, HeldJob>();

  add(job: ClaimedJob, owner: string): void {
    if (this.jobs.size >= LIMIT) this.jobs.delete(this.jobs.keys().next().value as string);
    this.jobs.set(job.id, { job, owner });
  }

  /** The held record, if this lease token is the one handed out. */
  get(id: string, token: string): HeldJob | undefined {
    const held = this.jobs.get(id);
    return held?.job.lease.token === token ? held : undefined;
  }

  /** The queue of a held job, whatever its token. */
  queueOf(id: string): string | undefined {
    return this.jobs.get(id)?.job.queue;
  }

  progress(id: string, token: string, data: unknown): void {
    const held = this.get(id, token);
    if (held) held.job.progress = structuredClone(data ?? null);
  }

  delete(id: string): void {
    this.jobs.delete(id);
  }
}
