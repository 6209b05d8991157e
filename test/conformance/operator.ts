/**
 * Conformance: what an operator reads and does (issue #14): a job's run
 * history across retries, lists by session and by finish, non-overlapping
 * counts, bulk retry.
 */
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import type { Job } from '../../src/job.js';
import { retryMany } from '../../src/retry-many.js';
import { RUNS_MAX } from '../../src/runs.js';
import type { SuiteContext } from './index.js';
import { asCanceled, asDone, asFailed, asReleased, claimOne, delay, intent, newJob, uniqueQueue } from '../helpers.js';

const flaky = { code: 'FLAKY', message: 'try again', retryable: true };
const fatal = { code: 'FATAL', message: 'no way', retryable: false };

export function operatorTests({ transport: t, factory }: SuiteContext): void {
  describe('run history (runs)', () => {
    it('keeps one record per run through the retry policy, a hand-back, a cancel and a manual retry', async () => {
      const q = uniqueQueue('runs');
      const job = newJob(q, { max_attempts: 5 });
      await t().enqueue(job);
      assert.deepEqual((await t().get(job.id))!.runs, [], 'nothing before a run ends (nothing at claim either)');

      const a = await claimOne(t(), q, 30_000, 'w-a');
      assert.deepEqual((await t().get(job.id))!.runs, [], 'a claim writes no record');
      await t().settle(a.id, a.lease.token, asFailed(flaky, new Date()));
      const b = await claimOne(t(), q, 30_000, 'w-b');
      await t().settle(b.id, b.lease.token, asReleased(b));
      const c = await claimOne(t(), q, 30_000, 'w-c');
      await t().settle(c.id, c.lease.token, asFailed(fatal, null));
      const failed = (await t().get(job.id))!;
      assert.equal(failed.status, 'error');

      const retried = await t().retry(job.id);
      assert.equal(retried.runs.length, 3, 'a manual retry keeps the history');
      const d = await claimOne(t(), q, 30_000, 'w-d');
      await t().cancel(job.id, 'enough');
      // A failure after a cancel was asked ends the job canceled: the record says so, with the run's error.
      await t().settle(d.id, d.lease.token, asFailed(flaky, new Date()));
      await t().retry(job.id);
      const e = await claimOne(t(), q, 30_000, 'w-e');
      await t().settle(e.id, e.lease.token, asDone(intent));

      const done = (await t().get(job.id))!;
      assert.equal(done.status, 'done');
      assert.deepEqual(
        done.runs.map((r) => [r.attempt, r.worker, r.end, r.error?.code ?? null]),
        [
          [1, 'w-a', 'retry', 'FLAKY'],
          [2, 'w-b', 'released', null],
          [2, 'w-c', 'error', 'FATAL'],
          [1, 'w-d', 'canceled', 'FLAKY'],
          [1, 'w-e', 'done', null],
        ],
      );
      const claims = [a, b, c, d, e];
      done.runs.forEach((r, i) => {
        assert.equal(r.started_at, claims[i]!.started_at!.toISOString(), `run ${i}: started_at is the claim's, as ISO text`);
        assert.ok(Date.parse(r.ended_at) >= Date.parse(r.started_at));
      });
      for (let i = 1; i < done.runs.length; i++) assert.ok(done.runs[i]!.ended_at >= done.runs[i - 1]!.ended_at, 'newest last');
    });

    it(`keeps the newest ${RUNS_MAX} records`, async function () {
      this.timeout(60_000);
      const q = uniqueQueue('runcap');
      const job = newJob(q, { max_attempts: RUNS_MAX + 5 });
      await t().enqueue(job);
      const total = RUNS_MAX + 2;
      for (let i = 1; i <= total; i++) {
        const run = await claimOne(t(), q, 30_000, `w-${i}`);
        await t().settle(run.id, run.lease.token, i === total ? asDone(intent) : asFailed({ ...flaky, message: `attempt ${i}` }, new Date()));
      }
      const got = (await t().get(job.id))!;
      assert.equal(got.runs.length, RUNS_MAX);
      assert.deepEqual(got.runs[0], { ...got.runs[0]!, attempt: 3, worker: 'w-3', end: 'retry' });
      assert.equal(got.runs[0]!.error?.message, 'attempt 3');
      assert.deepEqual([got.runs.at(-1)!.attempt, got.runs.at(-1)!.end], [total, 'done']);
    });

    it('a run that stopped on a cancel ends canceled; its record says so', async () => {
      const q = uniqueQueue('runcancel');
      const job = newJob(q);
      await t().enqueue(job);
      const run = await claimOne(t(), q, 30_000, 'w-cancel');
      await t().cancel(job.id, 'stop');
      await t().settle(run.id, run.lease.token, asCanceled);
      const got = (await t().get(job.id))!;
      assert.deepEqual(got.runs.map((r) => [r.worker, r.end, r.error]), [['w-cancel', 'canceled', null]]);
    });
  });

  describe('list by session', () => {
    it('lists exactly the jobs of a session, newest first, across queues, paged without gaps or repeats', async () => {
      const q1 = uniqueQueue('sa');
      const q2 = uniqueQueue('sb');
      const session = `sess-${q1}`;
      const mine: string[] = [];
      for (let i = 0; i < 5; i++) {
        const j = newJob(i % 2 ? q2 : q1, { payload: { session_id: session, step: i } });
        mine.push(j.id);
        await t().enqueue(j);
        await t().enqueue(newJob(q1, { payload: { session_id: `${session}-other`, step: i } }));
        await delay(2);
      }
      await t().enqueue(newJob(q1, { payload: { goal: 'no session' } }));
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 10; page++) {
        const res = await t().list({ session_id: session, limit: 2, cursor });
        assert.ok(res.jobs.length <= 2);
        assert.ok(res.jobs.every((j) => j.payload.session_id === session));
        seen.push(...res.jobs.map((j) => j.id));
        if (!res.next_cursor) break;
        cursor = res.next_cursor;
      }
      assert.deepEqual(seen, [...mine].reverse(), 'every job of the session once, newest first');
      const inQ2 = await t().list({ session_id: session, queue: q2 });
      assert.deepEqual(inQ2.jobs.map((j) => j.id), [mine[3], mine[1]]);
      const c = await claimOne(t(), q1);
      await t().settle(c.id, c.lease.token, asDone(intent));
      assert.deepEqual((await t().list({ session_id: session, status: 'done' })).jobs.map((j) => j.id), [mine[0]]);
      assert.deepEqual((await t().list({ session_id: `${session}-nobody` })).jobs, []);
    });

    it('a job deleted by retention leaves its session', async () => {
      const short = await factory({ retentionMs: 200 });
      try {
        const q = uniqueQueue('sret');
        const session = `sess-${q}`;
        const drop = newJob(q, { payload: { session_id: session } });
        const keep = newJob(q, { payload: { session_id: session } });
        await short.enqueue(drop);
        await short.enqueue(keep);
        await short.enqueue(newJob(q, { payload: { session_id: `${session}-other` } }));
        const c = await claimOne(short, q);
        await short.settle(c.id, c.lease.token, asDone(intent));
        await delay(400);
        await short.sweep();
        assert.deepEqual((await short.list({ session_id: session })).jobs.map((j) => j.id), [keep.id]);
      } finally {
        await short.close();
      }
    });
  });

  describe('list order of finished jobs', () => {
    it('lists a finished status newest ending first (not newest created), paged without gaps or repeats', async () => {
      const q = uniqueQueue('fin');
      const jobs: Job[] = [];
      for (let i = 0; i < 4; i++) {
        jobs.push(newJob(q, { payload: { goal: `f${i}` } }));
        await t().enqueue(jobs[i]!);
        await delay(2);
      }
      const runs = [];
      for (let i = 0; i < 4; i++) runs.push(await claimOne(t(), q));
      // end them in another order than they were created: 2, 0, 3, 1
      for (const i of [2, 0, 3, 1]) {
        await t().settle(runs[i]!.id, runs[i]!.lease.token, asFailed(fatal, null));
        await delay(5);
      }
      const expected = [1, 3, 0, 2].map((i) => jobs[i]!.id);
      assert.deepEqual((await t().list({ queue: q, status: 'error' })).jobs.map((j) => j.id), expected);
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 10; page++) {
        const res = await t().list({ queue: q, status: 'error', limit: 1, cursor });
        seen.push(...res.jobs.map((j) => j.id));
        if (!res.next_cursor) break;
        cursor = res.next_cursor;
      }
      assert.deepEqual(seen, expected, 'paged: the same order, every job once');
      // across queues too (no queue filter): ours are the newest failures of the store
      const all = await t().list({ status: 'error', limit: 4 });
      assert.deepEqual(all.jobs.map((j) => j.id), expected);
      // other statuses keep creation order
      assert.deepEqual((await t().list({ queue: q })).jobs.map((j) => j.id), [...jobs].reverse().map((j) => j.id));
    });
  });

  describe('counts', () => {
    it('queued counts the jobs due now, delayed the ones not yet due: no job is counted twice', async () => {
      const q = uniqueQueue('counts');
      await t().enqueue(newJob(q));
      await t().enqueue(newJob(q));
      await t().enqueue(newJob(q, { delay_ms: 60_000 }));
      await t().enqueue(newJob(q, { delay_ms: 1500 }));
      let counts = (await t().stats()).queues[q]!;
      assert.deepEqual([counts.queued, counts.delayed], [2, 2]);
      await delay(1700);
      counts = (await t().stats()).queues[q]!;
      assert.deepEqual([counts.queued, counts.delayed], [3, 1], 'a delayed job that came due counts as queued, before any claim promotes it');
    });
  });

  describe('bulk retry (retryMany)', () => {
    it('retries the failed jobs among the ids, and says why it skipped the others', async () => {
      const q = uniqueQueue('bulk');
      const jobs = [newJob(q), newJob(q), newJob(q), newJob(q)];
      for (const j of jobs) await t().enqueue(j);
      for (const outcome of [asFailed(fatal, null), asDone(intent), asFailed(fatal, null)]) {
        const run = await claimOne(t(), q);
        await t().settle(run.id, run.lease.token, outcome);
      }
      await t().cancel(jobs[3]!.id, 'x');
      const missing = `missing-${q}`;
      const out = await retryMany(t(), { ids: [jobs[0]!.id, jobs[1]!.id, missing, jobs[2]!.id, jobs[3]!.id, jobs[0]!.id] });
      assert.deepEqual(out.retried, [jobs[0]!.id, jobs[2]!.id, jobs[3]!.id]);
      assert.deepEqual(
        out.skipped.map((s) => [s.id, s.code]),
        [
          [jobs[1]!.id, 'INVALID_STATE'],
          [missing, 'JOB_NOT_FOUND'],
        ],
      );
      for (const id of out.retried) {
        const job = (await t().get(id))!;
        assert.equal(job.status, 'queued');
        assert.equal(job.attempts, 0);
      }
      assert.equal((await t().get(jobs[0]!.id))!.runs.length, 1, 'the history is kept');
    });

    it('retries the newest failures of a queue by status, at most `limit`; limits are checked before anything is done', async () => {
      const q = uniqueQueue('bulkq');
      const jobs = [newJob(q), newJob(q), newJob(q)];
      for (const j of jobs) await t().enqueue(j);
      for (let i = 0; i < 3; i++) {
        const run = await claimOne(t(), q);
        await t().settle(run.id, run.lease.token, asFailed(fatal, null));
        await delay(5);
      }
      await assert.rejects(retryMany(t(), { ids: Array.from({ length: 501 }, (_, i) => `${jobs[0]!.id}-${i}`).concat(jobs[0]!.id) }), ValidationError);
      await assert.rejects(retryMany(t(), { queue: q, status: 'error', limit: 501 }), ValidationError);
      assert.equal((await t().get(jobs[0]!.id))!.status, 'error', 'nothing was retried');
      const out = await retryMany(t(), { queue: q, status: 'error', limit: 2 });
      assert.deepEqual(out.retried, [jobs[2]!.id, jobs[1]!.id], 'the two newest failures');
      assert.deepEqual(out.skipped, []);
      assert.equal((await t().get(jobs[0]!.id))!.status, 'error');
      assert.deepEqual((await retryMany(t(), { queue: q, status: 'error' })).retried, [jobs[0]!.id]);
    });
  });
}
