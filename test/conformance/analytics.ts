/**
 * Conformance: analytics from the store (src/analytics.ts). Every ending is
 * counted once, in its queue's rollup of its minute, by the write that ends
 * the job: done, error after retries, canceled while queued (no wait, no
 * run), a stall ended by the sweep; retries are not endings; an imported
 * finished job counts at its own minute. Read as every caller reads it
 * (readAnalytics: the rollups of a store, the server's answer over http).
 */
import assert from 'node:assert/strict';
import { DURATION_BUCKETS, minuteOf, periodOf, type Rollup } from '../../src/analytics.js';
import { readAnalytics } from '../../src/analytics-read.js';
import type { JobEvent } from '../../src/events.js';
import type { Job } from '../../src/job.js';
import { itUnless, type SuiteContext } from './index.js';
import { asDone, asFailed, claimOne, delay, intent, newJob, uniqueQueue, waitFor } from '../helpers.js';

const sum = (a: readonly number[]) => a.reduce((x, y) => x + y, 0);

export function analyticsTests({ transport: t, options }: SuiteContext): void {
  const shortLease = options.shortLeaseMs ?? 300;
  describe('analytics', () => {
    it('counts each ending once with its wait, run and tokens: done, error after a retry, canceled while queued; the retry is no ending', async () => {
      const q = uniqueQueue('an');
      const started = Date.now();
      const a = newJob(q);
      await t().enqueue(a);
      await delay(80); // a waits at least this long
      const ca = await claimOne(t(), q);
      assert.equal(ca.id, a.id);
      await t().appendEvents(a.id, ca.lease.token, [{ type: 'usage', data: { prompt_tokens: 100, completion_tokens: 20 } }], 0);
      await t().appendEvents(a.id, ca.lease.token, [{ type: 'usage', data: { prompt_tokens: 5, completion_tokens: 1 } }], 1);
      await delay(60); // and runs at least this long
      await t().settle(a.id, ca.lease.token, asDone(intent));

      const b = newJob(q, { max_attempts: 2 });
      await t().enqueue(b);
      const b1 = await claimOne(t(), q);
      await t().settle(b.id, b1.lease.token, asFailed({ code: 'FLAKY', message: 'once', retryable: true }, new Date()));
      const mid = await readAnalytics(t(), '1h', q);
      assert.equal(mid.totals.finished, 1, 'a retry is not an ending');
      const b2 = await claimOne(t(), q);
      await t().settle(b.id, b2.lease.token, asFailed({ code: 'FLAKY', message: 'twice', retryable: true }, null));

      const c = newJob(q);
      await t().enqueue(c);
      await t().cancel(c.id, 'not needed');
      const elapsed = Date.now() - started;

      const answer = await readAnalytics(t(), '1h', q);
      const s = answer.queues[q];
      assert.ok(s, 'the queue has a summary');
      assert.deepEqual([s.finished, s.done, s.error, s.canceled], [3, 1, 1, 1]);
      assert.equal(s.failure_rate, 0.5);
      assert.equal(s.wait_ms.count, 2, 'the job canceled while queued never waited for a run');
      assert.equal(s.run_ms.count, 2);
      assert.ok(s.wait_ms.mean! * 2 >= 75 && s.wait_ms.mean! * 2 <= elapsed + 2, `wait sum ≈ a's 80 ms wait (mean ${s.wait_ms.mean})`);
      assert.ok(s.run_ms.mean! * 2 >= 55 && s.run_ms.mean! * 2 <= elapsed + 2, `run sum ≈ a's 60 ms run (mean ${s.run_ms.mean})`);
      assert.ok(s.wait_ms.p99! >= 50, `the longest wait is a's 80 ms at least (p99 ${s.wait_ms.p99})`);
      assert.deepEqual(s.usage, { prompt_tokens: 105, completion_tokens: 21 });
      assert.deepEqual(answer.totals.usage, s.usage, 'queue filter: the totals are this queue');
      assert.equal(answer.series.length, 60);
      const point = answer.series.find((p) => p.done + p.error + p.canceled > 0);
      assert.ok(point, 'the endings are in a point of the series');
      assert.equal(answer.series.reduce((n, p) => n + p.done + p.error + p.canceled, 0), 3);
      assert.equal(answer.series.reduce((n, p) => n + p.prompt_tokens, 0), 105);
      assert.equal(answer.series.at(-1)!.at, new Date(minuteOf(Date.now())).toISOString(), 'the last point is the current minute');
    });

    it('a stalled job ended by the sweep counts as an error, with its run', async () => {
      const q = uniqueQueue('an-stall');
      const job = newJob(q, { max_stalls: 1 });
      await t().enqueue(job);
      await claimOne(t(), q, shortLease);
      await delay(shortLease + 50);
      await waitFor(async () => {
        await t().sweep();
        return (await t().get(job.id))?.status === 'error';
      }, 5000, 'the sweep ends the stalled job');
      const s = (await readAnalytics(t(), '1h', q)).queues[q];
      assert.ok(s);
      assert.deepEqual([s.done, s.error, s.canceled], [0, 1, 0]);
      assert.equal(s.run_ms.count, 1);
      assert.ok(s.run_ms.mean! >= shortLease, `the run lasted the lease at least (${s.run_ms.mean})`);
    });

    itUnless(options.skip?.imports, 'an imported finished job counts at its own minute; one past 25 h is not kept', async () => {
      const q = uniqueQueue('an-imp');
      const now = Date.now();
      const done: Job = {
        ...newJob(q),
        status: 'done',
        result: intent,
        attempts: 1,
        created_at: new Date(now - 31 * 60_000),
        run_at: new Date(now - 31 * 60_000),
        started_at: new Date(now - 31 * 60_000 + 400),
        finished_at: new Date(now - 30 * 60_000),
        updated_at: new Date(now - 30 * 60_000),
        usage: { prompt_tokens: 7, completion_tokens: 3 },
      };
      const canceled: Job = { ...newJob(q), status: 'canceled', created_at: new Date(now - 3 * 3_600_000), finished_at: new Date(now - 3 * 3_600_000 + 1000), updated_at: new Date(now - 3 * 3_600_000 + 1000) };
      const old: Job = { ...newJob(q), status: 'error', created_at: new Date(now - 27 * 3_600_000), finished_at: new Date(now - 26 * 3_600_000), updated_at: new Date(now - 26 * 3_600_000) };
      const events: JobEvent[][] = [[], [], []];
      await t().enqueueMany([done, canceled, old], { imported: { events } });

      const rollups: Rollup[] = (await t().rollups!(new Date(now - 27 * 3_600_000), new Date(now + 60_000), 60_000)).filter((r) => r.queue === q);
      assert.deepEqual(
        rollups.map((r) => r.at.getTime()).sort(),
        [minuteOf(canceled.finished_at!), minuteOf(done.finished_at!)],
        'one rollup at each ending minute, none for the ending past 25 h',
      );
      const quarters = (await t().rollups!(new Date(now - 27 * 3_600_000), new Date(now + 900_000), 900_000)).filter((r) => r.queue === q);
      assert.deepEqual(quarters.map((x) => x.at.getTime()).sort(), [periodOf(canceled.finished_at!, 900_000), periodOf(done.finished_at!, 900_000)], 'and one at each quarter of an hour');
      assert.ok(quarters.every((x) => x.step_ms === 900_000));
      const r = rollups.find((x) => x.at.getTime() === minuteOf(done.finished_at!))!;
      assert.equal(r.step_ms, 60_000);
      assert.equal(r.done, 1);
      assert.equal(r.wait.length, DURATION_BUCKETS);
      assert.equal(sum(r.wait), 1);
      assert.equal(r.wait_sum_ms, 400);
      assert.equal(r.run_sum_ms, 60_000 - 400);
      assert.equal(r.run[11], 1, 'a run of 59.6 s is in the ≤ 60 s bucket');
      assert.deepEqual([r.prompt_tokens, r.completion_tokens], [7, 3]);
      const day = (await readAnalytics(t(), '24h', q)).queues[q]!;
      assert.deepEqual([day.done, day.canceled, day.error, day.wait_ms.count], [1, 1, 0, 1]);
      const hour = (await readAnalytics(t(), '1h', q)).queues[q]!;
      assert.deepEqual([hour.done, hour.canceled], [1, 0]);
    });
  });
}
