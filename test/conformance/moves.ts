/**
 * Conformance: `enqueueMany` (plain and imported) and the side a migration
 * leaves (`moves`: take, finish, release) — what src/migrate.ts relies on.
 */
import assert from 'node:assert/strict';
import { InvalidStateError } from '../../src/errors.js';
import type { JobEvent } from '../../src/events.js';
import type { Job } from '../../src/job.js';
import { itUnless, type SuiteContext } from './index.js';
import { asDone, claimOne, intent, newJob, uniqueQueue } from '../helpers.js';

const ev = (id: number, type: string, attempt: number, data: unknown, at = new Date(Date.now() - 60_000 + id)): JobEvent => ({ id, type, at, attempt, data });

/** A job as another store would hand it over: run once (failed), queued again. */
function importedJob(queue: string, over: Partial<Job> = {}): { job: Job; events: JobEvent[] } {
  const base = newJob(queue, { priority: 2, max_attempts: 5, timeout_ms: 777, dedupe_key: `imp-${queue}`, trace: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });
  const created = new Date(Date.now() - 120_000);
  const job: Job = {
    ...base,
    attempts: 1,
    stalls: 1,
    error: { code: 'FLAKY', message: 'first try failed', retryable: true },
    usage: { prompt_tokens: 10, completion_tokens: 4 },
    progress: { stage: 'half' },
    created_at: created,
    updated_at: created,
    started_at: new Date(created.getTime() + 10),
    run_at: new Date(Date.now() - 1000),
    ...over,
  };
  const events = [ev(1, 'queued', 0, {}), ev(2, 'started', 1, { worker: 'w-old' }), ev(3, 'token', 1, { text: 'hé' }), ev(4, 'retry', 1, { reason: 'failed', run_at: job.run_at.getTime() })];
  return { job, events };
}

export function moveTests({ transport: t, options }: SuiteContext): void {
  const itImports = (title: string, fn: () => Promise<void>) => itUnless(options.skip?.imports, title, fn);
  describe('enqueueMany', () => {
    it('writes a batch in order, each idempotent by id and dedupe_key', async () => {
      const q = uniqueQueue('many');
      const jobs = Array.from({ length: 25 }, (_, i) => newJob(q, { payload: { goal: `g${i}` } }));
      const dup = newJob(q, { dedupe_key: `k-${q}` });
      const dupAgain = newJob(q, { dedupe_key: `k-${q}` });
      const replies = await t().enqueueMany([...jobs, dup, dupAgain]);
      assert.equal(replies.length, 27);
      assert.ok(replies.slice(0, 26).every((r) => r.created));
      assert.equal(replies[26]!.created, false);
      assert.equal(replies[26]!.job.id, dup.id, 'a dedupe_key seen earlier in the batch returns that job');
      const again = await t().enqueueMany(jobs.slice(0, 3));
      assert.deepEqual(
        again.map((r) => [r.created, r.job.id, r.job.payload.goal]),
        jobs.slice(0, 3).map((j) => [false, j.id, j.payload.goal]),
      );
      assert.equal((await t().stats()).queues[q]?.queued, 26);
      // FIFO within a priority, as if enqueued one by one
      const first = await claimOne(t(), q);
      assert.equal(first.id, jobs[0]!.id);
      assert.equal((await t().readEvents(jobs[1]!.id, {})).events[0]?.type, 'queued');
    });

    it('an empty batch is a no-op', async () => {
      assert.deepEqual(await t().enqueueMany([]), []);
    });

    itImports('imported: the job as given (attempts, stalls, created_at, usage …) and its stream with its ids; it runs on from there', async () => {
      const q = uniqueQueue('imp');
      const { job, events } = importedJob(q);
      const [reply] = await t().enqueueMany([job], { imported: { events: [events] } });
      assert.equal(reply!.created, true);
      const got = (await t().get(job.id))!;
      assert.equal(got.status, 'queued');
      assert.equal(got.attempts, 1);
      assert.equal(got.stalls, 1);
      assert.equal(got.priority, 2);
      assert.equal(got.max_attempts, 5);
      assert.equal(got.timeout_ms, 777);
      assert.equal(got.dedupe_key, job.dedupe_key);
      assert.equal(got.created_at.getTime(), job.created_at.getTime());
      assert.deepEqual(got.error, job.error);
      assert.deepEqual(got.usage, job.usage);
      assert.deepEqual(got.trace, job.trace, "the producer's trace context moves with the job");
      const page = await t().readEvents(job.id, {});
      assert.deepEqual(
        page.events.map((e) => [e.id, e.type, e.attempt, e.at.getTime(), e.data]),
        events.map((e) => [e.id, e.type, e.attempt, e.at.getTime(), e.data]),
      );
      assert.equal(page.last, 4);
      // the dedupe key moved with it
      const same = await t().enqueue(newJob(q, { dedupe_key: job.dedupe_key! }));
      assert.equal(same.created, false);
      assert.equal(same.job.id, job.id);
      // an import repeated is a no-op
      const [twice] = await t().enqueueMany([job], { imported: { events: [events] } });
      assert.equal(twice!.created, false);
      const claimed = await claimOne(t(), q);
      assert.equal(claimed.id, job.id);
      assert.equal(claimed.attempts, 2);
      assert.deepEqual(claimed.trace, job.trace);
      const after = await t().readEvents(job.id, { after: 4 });
      assert.deepEqual(
        after.events.map((e) => [e.id, e.type]),
        [[5, 'started']],
        'the stream goes on from the imported ids',
      );
      await t().settle(claimed.id, claimed.lease.token, asDone(intent));
      assert.equal((await t().get(job.id))!.status, 'done');
    });

    itImports('imported: a delayed job waits for its run_at, a finished one stays finished, a dedupe_key held elsewhere does not stop it', async () => {
      const q = uniqueQueue('imp2');
      const holder = newJob(q, { dedupe_key: `held-${q}` });
      await t().enqueue(holder);
      const delayed = importedJob(q, { run_at: new Date(Date.now() + 60_000), dedupe_key: null });
      const done = importedJob(q, { status: 'done', result: intent, finished_at: new Date(Date.now() - 5000), dedupe_key: null });
      done.events.push(ev(5, 'started', 2, { worker: 'w' }), ev(6, 'done', 2, intent));
      const clash = importedJob(q, { dedupe_key: `held-${q}` });
      const replies = await t().enqueueMany([delayed.job, done.job, clash.job], { imported: { events: [delayed.events, done.events, clash.events] } });
      assert.deepEqual(
        replies.map((r) => [r.created, r.job.id]),
        [
          [true, delayed.job.id],
          [true, done.job.id],
          [true, clash.job.id],
        ],
      );
      const stats = (await t().stats()).queues[q]!;
      assert.equal(stats.delayed, 1);
      assert.equal(stats.done, 1);
      assert.equal(stats.queued, 2, 'due now (the delayed one is counted apart)');
      const finished = await t().wait(done.job.id, { timeout_ms: 0 });
      assert.equal(finished.status, 'done');
      assert.deepEqual(finished.result, intent);
      const page = await t().readEvents(done.job.id, {});
      assert.equal(page.end, true);
      assert.deepEqual(page.events.at(-1)?.data, intent);
      // the claimable ones: the holder and the clash (priority 2 first), never the delayed one
      const a = await claimOne(t(), q);
      const b = await claimOne(t(), q);
      assert.deepEqual([a.id, b.id], [clash.job.id, holder.id]);
      assert.equal(await t().claim({ queues: [q], owner: 'w', lease_ms: 30_000, wait_ms: 0 }), null);
      // the key stays with the job that held it
      assert.equal((await t().enqueue(newJob(q, { dedupe_key: `held-${q}` }))).job.id, holder.id);
    });
  });

  describe('moves (the side a migration leaves)', () => {
    itUnless(options.skip?.moves, 'take("queued") holds jobs in claim order: nobody claims, retries or cancels them; release hands them back', async function () {
      const m = t().moves!;
      const q = uniqueQueue('mv');
      const low = newJob(q, { priority: 0 });
      const high = newJob(q, { priority: 5 });
      const later = newJob(q, { delay_ms: 60_000 });
      await t().enqueue(low);
      await t().enqueue(high);
      await t().enqueue(later);
      const running = newJob(q, { priority: -5 });
      await t().enqueue(running);
      const taken = await m.take(q, 'queued', 2);
      assert.deepEqual(
        taken.map((x) => x.job.id),
        [high.id, low.id],
        'best first, as a claim takes them',
      );
      assert.ok(taken.every((x) => x.job.status === 'queued'), 'reported as they were');
      assert.equal(taken[0]!.events[0]?.type, 'queued');
      assert.equal((await t().get(high.id))!.status, 'moving');
      const counts = (await t().stats()).queues[q]!;
      assert.equal(counts.moving, 2);
      assert.equal(counts.queued + counts.delayed, 2);
      // a claim takes only the one left due
      const claimed = await claimOne(t(), q);
      assert.equal(claimed.id, running.id);
      assert.equal(await t().claim({ queues: [q], owner: 'w', lease_ms: 30_000, wait_ms: 0 }), null);
      await assert.rejects(t().retry(high.id), InvalidStateError);
      assert.equal((await t().cancel(high.id, 'no')).status, 'moving', 'a cancel leaves a moving job alone (the caller asks where it went)');
      // recovery sees them, unchanged
      const held = await m.take(q, 'moving', 10);
      assert.deepEqual(held.map((x) => x.job.id).sort(), [high.id, low.id].sort());
      assert.equal(await m.release([high.id, low.id]), 2);
      assert.equal(await m.release([high.id]), 0, 'only a moving job is released');
      const back = await claimOne(t(), q);
      assert.equal(back.id, high.id, 'runnable again, in its place');
      // the delayed one and the rest
      const rest = await m.take(q, 'queued', 10);
      assert.deepEqual(rest.map((x) => x.job.id).sort(), [low.id, later.id].sort());
      assert.ok(rest.find((x) => x.job.id === later.id)!.job.run_at.getTime() > Date.now() + 50_000);
      assert.deepEqual(await m.take(q, 'queued', 10), [], 'processing jobs are never taken');
    });

    itUnless(options.skip?.moves, 'finish leaves a `moved` marker (terminal here: wait returns it); finished jobs are taken and handed back as they were', async function () {
      const m = t().moves!;
      const q = uniqueQueue('mv2');
      const job = newJob(q);
      await t().enqueue(job);
      const [taken] = await m.take(q, 'queued', 10);
      const waiting = t().wait(job.id, { timeout_ms: 10_000 });
      assert.equal(await m.finish([job.id], 'redis'), 1);
      assert.equal(await m.finish([job.id], 'redis'), 0, 'repeated: nothing changes');
      const moved = await waiting;
      assert.equal(moved.status, 'moved');
      assert.equal(moved.moved_to, 'redis');
      assert.ok(moved.finished_at instanceof Date);
      assert.equal(moved.callback, null);
      assert.equal(taken!.job.id, job.id);
      assert.equal((await t().stats()).queues[q]!.moved, 1);
      assert.equal(await m.release([job.id]), 0);
      if (!options.skip?.imports) {
        // the job comes back (a rollback): its import replaces the marker, stream and all
        const [home] = await t().enqueueMany([{ ...taken!.job, attempts: 1 }], { imported: { events: [[ev(1, 'queued', 0, {}), ev(2, 'token', 1, { text: 'back' })]] } });
        assert.equal(home!.created, true);
        const back = (await t().get(job.id))!;
        assert.deepEqual([back.status, back.moved_to, back.attempts], ['queued', null, 1]);
        assert.deepEqual((await t().readEvents(job.id, {})).events.map((e) => [e.id, e.type]), [[1, 'queued'], [2, 'token']]);
        assert.equal((await t().stats()).queues[q]!.moved, 0);
        assert.equal((await claimOne(t(), q)).id, job.id);
      }

      const done = newJob(q);
      await t().enqueue(done);
      const c = await claimOne(t(), q);
      await t().settle(c.id, c.lease.token, asDone(intent));
      const [fin] = await m.take(q, 'finished', 10);
      assert.equal(fin!.job.id, done.id);
      assert.equal(fin!.job.status, 'done');
      assert.deepEqual(fin!.job.result, intent);
      assert.deepEqual(
        fin!.events.map((e) => e.type),
        ['queued', 'started', 'done'],
      );
      assert.equal((await t().get(done.id))!.status, 'moving');
      assert.equal(await m.release([done.id]), 1);
      const back = (await t().get(done.id))!;
      assert.equal(back.status, 'done');
      assert.deepEqual(back.result, intent);
    });
  });
}
