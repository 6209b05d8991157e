/**
 * The jobs this transport handed out by claim, as they were handed out, so
 * that a complete needs back only what its write changed (finished_at, a
 * cancel request) instead of the whole record. While a job is processing
 * under a token nothing else of it changes — every other write is fenced on
 * that token and goes through the holder — except progress, kept here too.
 */
import type { ClaimedJob } from '../../src/transport.js';

const LIMIT = 100_000;

export class HeldJobs {
  private readonly jobs = new Map<string, ClaimedJob>();

  add(job: ClaimedJob): void {
    if (this.jobs.size >= LIMIT) this.jobs.delete(this.jobs.keys().next().value as string);
    this.jobs.set(job.id, job);
  }

  /** The held record, if this lease token is the one handed out. */
  get(id: string, token: string): ClaimedJob | undefined {
    const job = this.jobs.get(id);
    return job?.lease.token === token ? job : undefined;
  }

  progress(id: string, token: string, data: unknown): void {
    const job = this.get(id, token);
    if (job) job.progress = structuredClone(data ?? null);
  }

  delete(id: string): void {
    this.jobs.delete(id);
  }
}
