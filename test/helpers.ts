/** Shared test helpers: fresh queue names, polling for a condition, job builders. */
import { randomUUID } from 'node:crypto';
import { buildJob, type EnqueueRequest, type Job } from '../src/job.js';
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
