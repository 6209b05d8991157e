/** The outcome policy: every way a run can end, and what the job becomes. */
import assert from 'node:assert/strict';
import { decideOutcome, exponentialBackoff, type RetryPolicy } from '../src/outcome.js';
import { createWorker } from '../src/worker.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { intent, newJob, uniqueQueue, waitFor } from './helpers.js';

const job = (attempts: number, max_attempts = 3, cancel = false) => ({ attempts, max_attempts, cancel_requested: cancel ? { at: new Date(0), reason: 'x' } : null });
const err = (retryable: boolean) => ({ code: 'HANDLER_ERROR', message: 'boom', retryable });
const NOW = 1_000_000;

describe('outcome policy', () => {
  it('decides every way a run can end', () => {
    assert.deepEqual(decideOutcome(job(1), { kind: 'returned', intent }, undefined, NOW), { status: 'done', result: intent });
    assert.deepEqual(decideOutcome(job(1), { kind: 'canceled' }, undefined, NOW), { status: 'canceled' });
    assert.deepEqual(decideOutcome(job(3), { kind: 'failed', error: err(true) }, undefined, NOW), { status: 'error', error: err(true) });
    assert.deepEqual(decideOutcome(job(1), { kind: 'failed', error: err(false) }, undefined, NOW), { status: 'error', error: err(false) });
    assert.deepEqual(decideOutcome(job(1, 3, true), { kind: 'failed', error: err(true) }, undefined, NOW), { status: 'canceled', error: err(true) });
    assert.deepEqual(decideOutcome(job(2), { kind: 'released' }, undefined, NOW), { status: 'queued', run_at: new Date(NOW), give_back: true });
    assert.deepEqual(decideOutcome(job(2, 3, true), { kind: 'released' }, undefined, NOW), { status: 'canceled' });
    assert.deepEqual(decideOutcome(job(2), { kind: 'lease-expired' }, undefined, NOW), { status: 'queued', run_at: new Date(NOW) });
    assert.deepEqual(decideOutcome(job(2, 3, true), { kind: 'lease-expired' }, undefined, NOW), { status: 'canceled' });
    const expired = decideOutcome(job(3), { kind: 'lease-expired' }, undefined, NOW);
    assert.equal(expired.status, 'error');
    assert.equal(expired.error?.code, 'LEASE_EXPIRED');
    assert.equal(expired.error?.retryable, false);
  });

  it('a retryable failure is requeued after the policy\'s backoff: base·2^(attempts−1), capped, jittered to 50–100 %', () => {
    const policy = exponentialBackoff({ baseMs: 1000, maxMs: 5000 });
    for (const [attempts, lo, hi] of [[1, 500, 1000], [2, 1000, 2000], [3, 2000, 4000], [4, 2500, 5000]] as const) {
      const out = decideOutcome(job(attempts, 10), { kind: 'failed', error: err(true) }, policy, NOW);
      assert.equal(out.status, 'queued');
      const delay = out.run_at!.getTime() - NOW;
      assert.ok(delay >= lo && delay <= hi, `attempt ${attempts}: ${delay} ms`);
    }
  });

  it('a worker takes its own retry policy, which sees the job', async () => {
    const store = createMemoryTransport();
    await store.init();
    const q = uniqueQueue();
    const asked: number[] = [];
    // Retry at once, but only jobs whose payload says so, and at most 5 times whatever max_attempts says.
    const policy: RetryPolicy = {
      nextRetry(j, _e, now) {
        asked.push(j.attempts);
        return j.attempts < 5 ? new Date(now) : null;
      },
    };
    let runs = 0;
    const worker = createWorker({ transport: store, queues: [q], claimWaitMs: 100, retryPolicy: policy, handler: async () => {
      runs += 1;
      if (runs < 3) throw new Error('flaky');
      return intent;
    } });
    await worker.start();
    try {
      const { job: j } = await store.enqueue(newJob(q, { max_attempts: 10 }));
      const done = await waitFor(async () => ((await store.get(j.id))?.status === 'done' ? store.get(j.id) : null), 5000, 'the job to finish');
      assert.equal(done?.attempts, 3);
      assert.deepEqual(asked, [1, 2]);
    } finally {
      await worker.stop();
      await store.close();
    }
  });
});
