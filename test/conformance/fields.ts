/**
 * Conformance: every field of a job round-trips on every store. The checks
 * are keyed by the fields of `Job`, so a field added to the model without a
 * check here does not compile, and a codec that forgets it fails here.
 */
import assert from 'node:assert/strict';
import { buildJob, type Job } from '../../src/job.js';
import type { SuiteContext } from './index.js';
import { asDone, asFailed, claimOne, uniqueQueue } from '../helpers.js';

export function fieldTests({ transport: t }: SuiteContext): void {
  describe('fields', () => {
    it('every field round-trips on every store (enqueue, claim, events, cancel, retry, settle, get)', async () => {
      const q = uniqueQueue('rt');
      // A producer's trace context: what every run's `process` span continues (src/tracing.ts).
      const trace = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'rq=t61rcWkgMzE,vendor=a:b' };
      const payload = { session_id: 'sess-ü', step: 7, goal: 'round trip ✓', context: { list: [1, 'two', { three: 3 }], empty: [], obj: {}, big: 2 ** 52, neg: -1.5, nul: null }, extra: 'kept' };
      const enqueued = buildJob({
        id: `rt-${q}`,
        queue: q,
        payload,
        priority: 7,
        run_at: new Date(Date.now() - 5),
        max_attempts: 4,
        max_stalls: 6,
        timeout_ms: 4321,
        dedupe_key: `dk-${q}`,
        callback_url: 'https://hooks.example.com/round-trip?x=1',
        trace,
      });
      const { job: stored } = await t().enqueue(enqueued);
      assert.equal(stored.status, 'queued');

      // A run that loses its lease (its worker died): a stall, its attempt given back.
      const lost = await claimOne(t(), q, 50, 'rt-worker-lost');
      await new Promise((resolve) => setTimeout(resolve, 120));
      await t().sweep();
      const first = await claimOne(t(), q, 30_000, 'rt-worker');
      assert.deepEqual(first.trace, trace, 'a claim hands the worker the producer\'s trace context');
      const error = { code: 'FLAKY', message: 'first attempt failed ✗', retryable: true };
      const retryAt = new Date(Date.now() + 20);
      await t().settle(first.id, first.lease.token, asFailed(error, retryAt));
      const second = await claimOne(t(), q, 30_000, 'rt-worker-2');
      const progress = { stage: 'thinking', tokens: [1, 2, 3], nested: { ok: true } };
      await t().appendEvents(second.id, second.lease.token, [{ type: 'progress', data: progress }, { type: 'usage', data: { prompt_tokens: 12, completion_tokens: 3 } }], 0);
      await t().cancel(second.id, 'rt cancel reason');
      const result = { action: 'tool', tool_name: 'fs.read', args: { path: 'a/b.ts', lines: [1, 2] }, finish: false, reasoning: 'because ✓' };
      await t().settle(second.id, second.lease.token, asDone(result));

      const job = await t().get(enqueued.id);
      assert.ok(job);
      const ms = (d: Date | null) => (d ? d.getTime() : null);
      const checks = {
        id: (j) => assert.equal(j.id, enqueued.id),
        queue: (j) => assert.equal(j.queue, q),
        status: (j) => assert.equal(j.status, 'done'),
        payload: (j) => assert.deepEqual(j.payload, payload),
        result: (j) => assert.deepEqual(j.result, result),
        error: (j) => assert.deepEqual(j.error, error, 'kept from the failed attempt'),
        priority: (j) => assert.equal(j.priority, 7),
        run_at: (j) => assert.equal(ms(j.run_at), retryAt.getTime()),
        attempts: (j) => assert.equal(j.attempts, 2),
        max_attempts: (j) => assert.equal(j.max_attempts, 4),
        stalls: (j) => assert.equal(j.stalls, 1, `the lost run of ${lost.lease.owner}`),
        max_stalls: (j) => assert.equal(j.max_stalls, 6),
        timeout_ms: (j) => assert.equal(j.timeout_ms, 4321),
        lease: (j) => assert.equal(j.lease, null),
        cancel_requested: (j) => {
          assert.equal(j.cancel_requested?.reason, 'rt cancel reason');
          assert.ok(j.cancel_requested.at instanceof Date && !Number.isNaN(j.cancel_requested.at.getTime()));
        },
        dedupe_key: (j) => assert.equal(j.dedupe_key, `dk-${q}`),
        callback_url: (j) => assert.equal(j.callback_url, 'https://hooks.example.com/round-trip?x=1'),
        trace: (j) => assert.deepEqual(j.trace, trace),
        progress: (j) => assert.deepEqual(j.progress, progress),
        usage: (j) => assert.deepEqual(j.usage, { prompt_tokens: 12, completion_tokens: 3 }),
        // Owed from the terminal write on (the outbox); a deliverer may have tried it since (hooks.example.com is never reached from a test).
        callback: (j) => {
          assert.ok(j.callback, 'the ending of a job with a callback_url records the callback it owes');
          assert.ok(['pending', 'failed'].includes(j.callback.state), JSON.stringify(j.callback));
          assert.equal(typeof j.callback.attempts, 'number');
        },
        moved_to: (j) => assert.equal(j.moved_to, null, 'set only on the marker a migration leaves'),
        runs: (j) => {
          // One record per run that ended, newest last: the lost one, the failed one, the one that worked.
          const shape = j.runs.map((r) => ({ attempt: r.attempt, worker: r.worker, end: r.end, error: r.error }));
          assert.deepEqual(shape, [
            { attempt: 1, worker: 'rt-worker-lost', end: 'stalled', error: null },
            { attempt: 1, worker: 'rt-worker', end: 'retry', error },
            { attempt: 2, worker: 'rt-worker-2', end: 'done', error: null },
          ]);
          assert.equal(j.runs[1]!.started_at, first.started_at!.toISOString(), 'started_at: the run\'s claim, as an ISO string');
          assert.equal(j.runs[2]!.started_at, second.started_at!.toISOString());
          for (const r of j.runs) assert.ok(Date.parse(r.ended_at) >= Date.parse(r.started_at), JSON.stringify(r));
          assert.ok(Date.parse(j.runs[2]!.ended_at) <= j.finished_at!.getTime() + 1);
        },
        created_at: (j) => assert.equal(ms(j.created_at), stored.created_at.getTime(), 'as the store stamped it at enqueue'),
        updated_at: (j) => assert.ok(j.updated_at instanceof Date && j.updated_at.getTime() >= j.started_at!.getTime()),
        started_at: (j) => assert.ok(j.started_at instanceof Date && j.started_at.getTime() >= first.started_at!.getTime()),
        finished_at: (j) => assert.ok(j.finished_at instanceof Date && j.finished_at.getTime() >= j.started_at!.getTime()),
      } satisfies { [K in keyof Job]-?: (j: Job) => void };
      for (const [field, check] of Object.entries(checks)) {
        try {
          check(job);
        } catch (e) {
          assert.fail(`field ${field} did not round-trip: ${(e as Error).message}`);
        }
      }
      assert.deepEqual(Object.keys(job).sort(), Object.keys(checks).sort(), 'get returns exactly the fields of the model');
    });
  });
}
