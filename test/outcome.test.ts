/** The outcome policy: every way a run can end, and what the job becomes. */
import assert from 'node:assert/strict';
import { decideOutcome, exponentialBackoff, type RetryPolicy } from '../src/outcome.js';
import { createWorker } from '../src/worker.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { intent, newJob, uniqueQueue, waitFor } from './helpers.js';

const job = (attempts: number, max_attempts = 3, cancel = false, stalls = 0, max_stalls = 10) => ({ attempts, max_attempts, stalls, max_stalls, cancel_requested: cancel ? { at: new Date(0), reason: 'x' } : null });
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
    assert.deepEqual(decideOutcome(job(2, 3, true), { kind: 'lease-expired' }, undefined, NOW), { status: 'canceled', give_back: true, stall: true });
  });

  it('a lost lease costs a stall, never a handler attempt; the job that keeps losing them ends WORKER_CRASHED', () => {
    // Its last attempt, lost to a crash: requeued, the attempt given back, a stall counted.
    const lost = decideOutcome(job(3, 3, false, 0, 10), { kind: 'lease-expired' }, undefined, NOW);
    assert.equal(lost.status, 'queued');
    assert.equal(lost.give_back, true);
    assert.equal(lost.stall, true);
    assert.ok(lost.run_at!.getTime() >= NOW && lost.run_at!.getTime() < NOW + 500, 'spread over up to 500 ms per stall');
    const spread = new Set(Array.from({ length: 50 }, () => decideOutcome(job(1, 3, false, 3, 10), { kind: 'lease-expired' }, undefined, NOW).run_at!.getTime()));
    assert.ok(spread.size > 10, 'the jobs of one dead process come back at different instants');
    // The stall budget: the stall that reaches max_stalls ends it.
    assert.equal(decideOutcome(job(1, 3, false, 8, 10), { kind: 'lease-expired' }, undefined, NOW).status, 'queued');
    const crashed = decideOutcome(job(1, 3, false, 9, 10), { kind: 'lease-expired' }, undefined, NOW);
    assert.equal(crashed.status, 'error');
    assert.equal(crashed.error?.code, 'WORKER_CRASHED');
    assert.equal(crashed.error?.retryable, false);
    assert.match(crashed.error!.message, /10 times/);
    assert.equal(crashed.give_back, true);
    assert.equal(crashed.stall, true);
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
