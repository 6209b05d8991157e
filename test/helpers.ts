/** Shared test helpers: fresh queue names, polling for a condition, job builders. */
import { randomUUID } from 'node:crypto';
import { buildJob, type EnqueueRequest, type Intent, type Job, type JobError } from '../src/job.js';
import { decideOutcome, type Outcome } from '../src/outcome.js';
import type { ClaimedJob, Transport } from '../src/transport.js';

export function uniqueQueue(prefix = 'q'): string {
  return `${prefix}-${randomUUID().slice(0, 12)}`;
}

export function newJob(queue: string, overrides: Partial<EnqueueRequest> = {}): Job {
  return buildJob({ queue, payload: { goal: 'test', session_id: 's1', step: 1 }, ...overrides });
}

export async function waitFor<T>(probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Claim one job from `queue` or fail the test. */
export async function claimOne(transport: Transport, queue: string, leaseMs = 30_000, owner = 'test-worker'): Promise<ClaimedJob> {
  const job = await transport.claim({ queues: [queue], owner, lease_ms: leaseMs, wait_ms: 2000 });
  if (!job) throw new Error(`expected a job on ${queue}`);
  return job;
}

export const intent = { action: 'tool', tool_name: 'savant-context.fts_search', args: { query: 'x' }, reasoning: 'test' };

/** Outcomes as src/outcome.ts decides them, for tests that settle by hand. */
export const asDone = (result: Intent): Outcome => ({ status: 'done', result });
/** A failed attempt: requeued at `retry_at`, or ended `error` when null. */
export const asFailed = (error: JobError, retry_at: Date | null): Outcome => (retry_at ? { status: 'queued', error, run_at: retry_at } : { status: 'error', error });
export const asCanceled: Outcome = { status: 'canceled' };
/** A hand-back on shutdown: the attempt given back. */
export const asReleased = (job: Pick<Job, 'attempts' | 'max_attempts' | 'stalls' | 'max_stalls' | 'cancel_requested'>): Outcome => decideOutcome(job, { kind: 'released' });
