/** Conformance: enqueue, claim, fencing, leases, cancel, retry — the state machine at the transport level. */
import assert from 'node:assert/strict';
import { JobNotFoundError, LeaseLostError, InvalidStateError } from '../../src/errors.js';
import type { SuiteContext } from './index.js';
import { asCanceled, asDone, asFailed, asReleased, claimOne, delay, intent, newJob, uniqueQueue, waitFor } from '../helpers.js';

export function lifecycleTests({ transport: t, options }: SuiteContext): void {
  const shortLease = options.shortLeaseMs ?? 300;

  describe('enqueue', () => {
    it('stores a queued job with every contract field', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { priority: 3, max_attempts: 5, timeout_ms: 1234, callback_url: 'http://127.0.0.1:1/cb' });
      const { job: stored, created } = await t().enqueue(job);
      assert.equal(created, true);
      const got = await t().get(job.id);
      assert.ok(got);
      for (const j of [stored, got]) {
        assert.equal(j.id, job.id);
        assert.equal(j.queue, q);
        assert.equal(j.status, 'queued');
        assert.deepEqual(j.payload, job.payload);
        assert.equal(j.priority, 3);
        assert.equal(j.attempts, 0);
        assert.equal(j.max_attempts, 5);
        assert.equal(j.timeout_ms, 1234);
        assert.equal(j.callback_url, 'http://127.0.0.1:1/cb');
        assert.equal(j.lease, null);
        assert.equal(j.result, null);
        assert.ok(j.created_at instanceof Date && j.run_at instanceof Date);
        assert.ok(Math.abs(j.created_at.getTime() - job.created_at.getTime()) < 5000, 'created_at is the enqueue time');
      }
    });

    it('keeps unknown payload keys', async () => {
      const job = newJob(uniqueQueue(), { payload: { goal: 'g', context: { files: ['a'] }, custom_field: { nested: [1, 2] } } });
      await t().enqueue(job);
      const got = await t().get(job.id);
      assert.deepEqual(got?.payload, { goal: 'g', context: { files: ['a'] }, custom_field: { nested: [1, 2] } });
    });

    it('is idempotent by id', async () => {
      const q = uniqueQueue();
      const first = newJob(q, { id: `fixed-${q}`, payload: { goal: 'first' } });
      const second = newJob(q, { id: `fixed-${q}`, payload: { goal: 'second' } });
      assert.equal((await t().enqueue(first)).created, true);
      const again = await t().enqueue(second);
      assert.equal(again.created, false);
      assert.equal(again.job.payload.goal, 'first');
      assert.equal((await t().stats()).queues[q]?.queued, 1);
    });

    it('is idempotent by dedupe_key', async () => {
      const q = uniqueQueue();
      const key = `dk-${q}`;
      const a = newJob(q, { dedupe_key: key, payload: { goal: 'a' } });
      const b = newJob(q, { dedupe_key: key, payload: { goal: 'b' } });
      await t().enqueue(a);
      const res = await t().enqueue(b);
      assert.equal(res.created, false);
      assert.equal(res.job.id, a.id);
      assert.equal(await t().get(b.id), null);
    });

    it('dedupe_key is per queue: the same key in another queue makes another job', async () => {
      const q1 = uniqueQueue();
      const q2 = uniqueQueue();
      const key = `shared-${q1}`;
      const a = await t().enqueue(newJob(q1, { dedupe_key: key }));
      const b = await t().enqueue(newJob(q2, { dedupe_key: key }));
      assert.equal(a.created, true);
      assert.equal(b.created, true);
      assert.notEqual(a.job.id, b.job.id);
      assert.equal((await t().enqueue(newJob(q2, { dedupe_key: key }))).job.id, b.job.id);
    });

    it('get of an unknown id is null', async () => {
      assert.equal(await t().get('no-such-job-' + uniqueQueue()), null);
    });
  });

  describe('claim', () => {
    it('moves queued → processing with a fresh lease token and counts the attempt', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const before = Date.now();
      const claimed = await claimOne(t(), q, 10_000, 'w-1');
      assert.equal(claimed.id, job.id);
      assert.equal(claimed.status, 'processing');
      assert.equal(claimed.attempts, 1);
      assert.equal(claimed.lease.owner, 'w-1');
      assert.ok(claimed.lease.token.length >= 16, 'token should be random and long');
      assert.ok(claimed.lease.until.getTime() >= before + 9_000);
      assert.ok(claimed.started_at);
      assert.equal(await t().claim({ queues: [q], owner: 'w-2', lease_ms: 1000, wait_ms: 0 }), null, 'a job is claimed once');
    });

    it('returns null when nothing is due, after waiting at most wait_ms', async () => {
      const started = Date.now();
      assert.equal(await t().claim({ queues: [uniqueQueue()], owner: 'w', lease_ms: 1000, wait_ms: 200 }), null);
      assert.ok(Date.now() - started < 3000);
    });

    it('a blocking claim picks up a job enqueued while it waits', async () => {
      const q = uniqueQueue();
      const pending = t().claim({ queues: [q], owner: 'w', lease_ms: 5000, wait_ms: 4000 });
      await delay(100);
      const job = newJob(q);
      await t().enqueue(job);
      const claimed = await pending;
      assert.equal(claimed?.id, job.id);
    });

    it('honours priority, then FIFO within a priority', async () => {
      const q = uniqueQueue();
      const order = [
        newJob(q, { priority: 0, payload: { goal: 'low-1' } }),
        newJob(q, { priority: 5, payload: { goal: 'high-1' } }),
        newJob(q, { priority: 0, payload: { goal: 'low-2' } }),
        newJob(q, { priority: 5, payload: { goal: 'high-2' } }),
        newJob(q, { priority: -1, payload: { goal: 'neg' } }),
        newJob(q, { priority: 0, payload: { goal: 'low-3' } }),
      ];
      for (const j of order) {
        await t().enqueue(j);
        await delay(3); // distinct created_at on every store
      }
      const got: string[] = [];
      for (let i = 0; i < order.length; i++) got.push(String((await claimOne(t(), q)).payload.goal));
      assert.deepEqual(got, ['high-1', 'high-2', 'low-1', 'low-2', 'low-3', 'neg']);
    });

    it('does not hand out a job before its run_at', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { delay_ms: 600 });
      await t().enqueue(job);
      assert.equal(await t().claim({ queues: [q], owner: 'w', lease_ms: 1000, wait_ms: 0 }), null);
      const claimed = await waitFor(() => t().claim({ queues: [q], owner: 'w', lease_ms: 1000, wait_ms: 200 }), 5000, 'delayed job');
      assert.equal(claimed.id, job.id);
      assert.ok(Date.now() >= job.run_at.getTime() - 5, 'claimed no earlier than run_at');
    });

    it('claims across several queues', async () => {
      const a = uniqueQueue();
      const b = uniqueQueue();
      await t().enqueue(newJob(b));
      const claimed = await claimOne(t(), a === b ? a : b);
      assert.equal(claimed.queue, b);
      await t().enqueue(newJob(a));
      const other = await t().claim({ queues: [a, b], owner: 'w', lease_ms: 1000, wait_ms: 1000 });
      assert.equal(other?.queue, a);
    });
  });

  describe('fencing', () => {
    it('complete stores the intent and ends the job done', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q));
      const c = await claimOne(t(), q);
      const done = await t().settle(c.id, c.lease.token, asDone(intent));
      assert.equal(done.status, 'done');
      assert.deepEqual(done.result, intent);
      assert.equal(done.lease, null);
      assert.ok(done.finished_at);
      assert.equal((await t().get(c.id))?.status, 'done');
    });

    it('a wrong token can neither complete, fail, extend, release nor report progress', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q));
      const c = await claimOne(t(), q);
      const bad = 'not-the-token';
      await assert.rejects(t().settle(c.id, bad, asDone(intent)), LeaseLostError);
      await assert.rejects(t().settle(c.id, bad, asFailed({ code: 'X', message: 'x', retryable: false }, null)), LeaseLostError);
      await assert.rejects(t().extend(c.id, bad, 1000), LeaseLostError);
      await assert.rejects(t().settle(c.id, bad, asReleased(c)), LeaseLostError);
      await assert.rejects(t().settle(c.id, bad, asCanceled), LeaseLostError);
      await assert.rejects(t().appendEvents(c.id, bad, [{ type: 'progress', data: { pct: 1 } }], 0), LeaseLostError);
      const still = await t().get(c.id);
      assert.equal(still?.status, 'processing');
      assert.equal(still?.attempts, 1);
    });

    it('a stale token from before a lease expiry cannot complete, fail or extend', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q, { max_attempts: 5 }));
      const first = await claimOne(t(), q, shortLease, 'w-old');
      await delay(shortLease + 50);
      await assert.rejects(t().extend(first.id, first.lease.token, 10_000), LeaseLostError, 'expired lease cannot be extended');
      const second = await waitFor(() => t().claim({ queues: [q], owner: 'w-new', lease_ms: 10_000, wait_ms: 300 }), 5000, 'reclaim');
      assert.equal(second.id, first.id);
      assert.equal(second.attempts, 1, 'the lost run gave its attempt back');
      assert.equal(second.stalls, 1);
      assert.notEqual(second.lease.token, first.lease.token);
      await assert.rejects(t().settle(first.id, first.lease.token, asDone(intent)), LeaseLostError);
      await assert.rejects(t().settle(first.id, first.lease.token, asFailed({ code: 'X', message: 'x', retryable: true }, new Date())), LeaseLostError);
      await assert.rejects(t().extend(first.id, first.lease.token, 1000), LeaseLostError);
      const done = await t().settle(second.id, second.lease.token, asDone(intent));
      assert.equal(done.status, 'done');
      await assert.rejects(t().settle(second.id, second.lease.token, asDone(intent)), LeaseLostError, 'a finished job takes no second result');
    });

    it('extend moves the deadline and keeps the job', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q));
      const c = await claimOne(t(), q, shortLease);
      for (let i = 0; i < 4; i++) {
        await delay(shortLease / 2);
        const r = await t().extend(c.id, c.lease.token, shortLease);
        assert.ok(r.until.getTime() > Date.now());
        assert.equal(r.cancel_requested, null);
      }
      await t().sweep();
      assert.equal((await t().get(c.id))?.status, 'processing');
      assert.equal((await t().settle(c.id, c.lease.token, asDone(intent))).status, 'done');
    });

    it('progress (the newest progress event) is stored on the job', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q));
      const c = await claimOne(t(), q);
      await t().appendEvents(c.id, c.lease.token, [{ type: 'progress', data: { step: 'thinking', pct: 40 } }], 0);
      assert.deepEqual((await t().get(c.id))?.progress, { step: 'thinking', pct: 40 });
    });
  });

  describe('leases', () => {
    it('an expired lease is reclaimed: a stall counted, the handler attempt given back', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 3 });
      await t().enqueue(job);
      const lost = await claimOne(t(), q, shortLease);
      assert.equal(lost.attempts, 1);
      await delay(shortLease + 50);
      await t().sweep();
      const stalled = await t().get(job.id);
      assert.equal(stalled?.attempts, 0, 'a process that died before or during the handler costs no attempt');
      assert.equal(stalled?.stalls, 1);
      const again = await waitFor(() => t().claim({ queues: [q], owner: 'w2', lease_ms: 10_000, wait_ms: 300 }), 5000, 'reclaim');
      assert.equal(again.id, job.id);
      assert.equal(again.attempts, 1);
      assert.equal(again.stalls, 1);
    });

    it('after max_stalls expired leases the job ends error / WORKER_CRASHED (poison pill), its attempts untouched', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 2, max_stalls: 3 });
      await t().enqueue(job);
      for (let i = 1; i <= 3; i++) {
        const c = await waitFor(() => t().claim({ queues: [q], owner: `w${i}`, lease_ms: shortLease, wait_ms: 300 }), 5000, `claim ${i}`);
        assert.equal(c.attempts, 1);
        assert.equal(c.stalls, i - 1);
        await delay(shortLease + 50);
        await t().sweep();
      }
      const final = await waitFor(async () => {
        await t().sweep();
        const j = await t().get(job.id);
        return j?.status === 'error' ? j : null;
      }, 5000, 'WORKER_CRASHED');
      assert.equal(final.error?.code, 'WORKER_CRASHED');
      assert.match(final.error?.message ?? '', /3 times/);
      assert.equal(final.attempts, 0);
      assert.equal(final.stalls, 3);
      assert.equal(final.lease, null);
      assert.equal(await t().claim({ queues: [q], owner: 'w', lease_ms: 1000, wait_ms: 0 }), null, 'a poison pill never loops');
    });

    it('release hands the lease back without charging the attempt', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q));
      const c = await claimOne(t(), q);
      const released = await t().settle(c.id, c.lease.token, asReleased(c));
      assert.equal(released.status, 'queued');
      assert.equal(released.attempts, 0);
      assert.equal(released.lease, null);
      const again = await claimOne(t(), q);
      assert.equal(again.attempts, 1);
    });
  });

  describe('fail and retry', () => {
    it('fail with retry_at requeues, keeps the error, and is not claimable before retry_at', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q, { max_attempts: 3 }));
      const c = await claimOne(t(), q);
      const retryAt = new Date(Date.now() + 700);
      const failed = await t().settle(c.id, c.lease.token, asFailed({ code: 'HANDLER_ERROR', message: 'boom', retryable: true }, retryAt));
      assert.equal(failed.status, 'queued');
      assert.equal(failed.error?.message, 'boom');
      assert.equal(failed.run_at.getTime(), retryAt.getTime());
      assert.equal(await t().claim({ queues: [q], owner: 'w', lease_ms: 1000, wait_ms: 100 }), null, 'backoff respected');
      const again = await waitFor(() => t().claim({ queues: [q], owner: 'w', lease_ms: 1000, wait_ms: 300 }), 5000, 'retry');
      assert.ok(Date.now() >= retryAt.getTime() - 5);
      assert.equal(again.attempts, 2);
    });

    it('fail without retry_at ends error; a user retry requeues with attempts reset', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q));
      const c = await claimOne(t(), q);
      const failed = await t().settle(c.id, c.lease.token, asFailed({ code: 'NON_RETRYABLE', message: 'bad', retryable: false }, null));
      assert.equal(failed.status, 'error');
      assert.deepEqual(failed.error, { code: 'NON_RETRYABLE', message: 'bad', retryable: false });
      assert.ok(failed.finished_at);
      const retried = await t().retry(c.id);
      assert.equal(retried.status, 'queued');
      assert.equal(retried.attempts, 0);
      assert.equal(retried.finished_at, null);
      assert.equal((await claimOne(t(), q)).attempts, 1);
    });

    it('retry of a queued, running or done job is refused', async () => {
      const q = uniqueQueue();
      const a = newJob(q);
      await t().enqueue(a);
      await assert.rejects(t().retry(a.id), InvalidStateError);
      const c = await claimOne(t(), q);
      await assert.rejects(t().retry(c.id), InvalidStateError);
      await t().settle(c.id, c.lease.token, asDone(intent));
      await assert.rejects(t().retry(c.id), InvalidStateError);
      await assert.rejects(t().retry('missing-' + q), JobNotFoundError);
    });
  });

  describe('cancel', () => {
    it('cancel of a queued job is immediate and it is never claimed', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const canceled = await t().cancel(job.id, 'user changed their mind');
      assert.equal(canceled.status, 'canceled');
      assert.equal(canceled.cancel_requested?.reason, 'user changed their mind');
      assert.ok(canceled.finished_at);
      assert.equal(await t().claim({ queues: [q], owner: 'w', lease_ms: 1000, wait_ms: 0 }), null);
    });

    it('cancel of a running job is reported by the next extend and ends canceled via acknowledgeCancel', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q));
      const c = await claimOne(t(), q);
      const asked = await t().cancel(c.id, 'stop it');
      assert.equal(asked.status, 'processing');
      assert.equal(asked.cancel_requested?.reason, 'stop it');
      const ext = await t().extend(c.id, c.lease.token, 5000);
      assert.equal(ext.cancel_requested?.reason, 'stop it');
      const done = await t().settle(c.id, c.lease.token, asCanceled);
      assert.equal(done.status, 'canceled');
      assert.equal(done.lease, null);
    });

    it('a failing attempt of a job whose cancel was asked ends canceled, not retried', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q, { max_attempts: 5 }));
      const c = await claimOne(t(), q);
      await t().cancel(c.id, 'no more');
      const r = await t().settle(c.id, c.lease.token, asFailed({ code: 'HANDLER_ERROR', message: 'x', retryable: true }, new Date()));
      assert.equal(r.status, 'canceled');
    });

    it('a cancel asked while the last attempt fails ends the job canceled, not error (the error kept)', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q, { max_attempts: 1 }));
      const c = await claimOne(t(), q);
      await t().cancel(c.id, 'stop it');
      // The worker decided from its copy, which had not seen the cancel yet.
      const r = await t().settle(c.id, c.lease.token, asFailed({ code: 'NON_RETRYABLE', message: 'gave up', retryable: false }, null));
      assert.equal(r.status, 'canceled');
      assert.equal(r.error?.code, 'NON_RETRYABLE');
      assert.equal((await t().get(c.id))?.status, 'canceled');
    });

    it('an expired lease of a job whose cancel was asked ends canceled, not requeued', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 5 });
      await t().enqueue(job);
      await claimOne(t(), q, shortLease);
      await t().cancel(job.id, 'bye');
      await delay(shortLease + 50);
      const final = await waitFor(async () => {
        await t().sweep();
        const j = await t().get(job.id);
        return j?.status === 'canceled' ? j : null;
      }, 5000, 'canceled after expiry');
      assert.equal(final.attempts, 0);
      assert.equal(final.stalls, 1);
    });

    it('cancel of a finished job changes nothing', async () => {
      const q = uniqueQueue();
      await t().enqueue(newJob(q));
      const c = await claimOne(t(), q);
      const done = await t().settle(c.id, c.lease.token, asDone(intent));
      const after = await t().cancel(c.id, 'too late');
      assert.equal(after.status, 'done');
      assert.equal(after.cancel_requested, null);
      assert.deepEqual(after.result, done.result);
    });

    it('cancel of an unknown job is JOB_NOT_FOUND', async () => {
      await assert.rejects(t().cancel('missing-' + uniqueQueue(), 'x'), (e: unknown) => e instanceof JobNotFoundError && e.code === 'JOB_NOT_FOUND');
    });
  });
}
