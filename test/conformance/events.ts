/** Conformance: a job's event stream (src/events.ts) — order, ids, resume, trimming, fencing, lifecycle, deletion. */
import assert from 'node:assert/strict';
import { JobNotFoundError, LeaseLostError } from '../../src/errors.js';
import type { JobEvent } from '../../src/events.js';
import type { Transport } from '../../src/transport.js';
import type { SuiteContext } from './index.js';
import { asDone, asFailed, asReleased, claimOne, delay, intent, newJob, uniqueQueue } from '../helpers.js';

/** Every event of a job, page by page, from `after`. */
async function readAll(t: Transport, id: string, after = 0, limit?: number): Promise<{ events: JobEvent[]; end: boolean; last: number }> {
  const events: JobEvent[] = [];
  let cursor = after;
  for (;;) {
    const page = await t.readEvents(id, { after: cursor, limit });
    events.push(...page.events);
    if (page.events.length === 0 || page.end) return { events, end: page.end, last: page.last };
    cursor = page.events[page.events.length - 1]!.id;
  }
}

/** Append as a worker does: `written` counts what this run appended before (kept per token here). */
const runs = new Map<string, number>();
async function append(t: Transport, id: string, token: string, events: { type: string; data: unknown }[]): Promise<number> {
  const written = runs.get(token) ?? 0;
  const last = await t.appendEvents(id, token, events, written);
  runs.set(token, written + events.length);
  return last;
}

const tokens = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ type: 'token', data: { text: `t${from + i} ` } }));

function assertConsecutive(events: JobEvent[], first: number): void {
  events.forEach((e, i) => assert.equal(e.id, first + i, `event ${i} has id ${e.id}, expected ${first + i} (no gap, no duplicate)`));
}

export function eventTests({ transport: t, factory, options }: SuiteContext): void {
  const shortLease = options.shortLeaseMs ?? 300;

  describe('events', () => {
    it('tells the whole story in order: queued, started, the handler\'s events, done with the intent', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const c = await claimOne(t(), q, 30_000, 'worker-a');
      assert.equal(await append(t(), c.id, c.lease.token, [{ type: 'thinking', data: { stage: 'planning' } }]), 3);
      assert.equal(await append(t(), c.id, c.lease.token, tokens(5)), 8);
      await t().settle(c.id, c.lease.token, asDone(intent));
      const { events, end, last } = await readAll(t(), job.id);
      assert.deepEqual(
        events.map((e) => e.type),
        ['queued', 'started', 'thinking', 'token', 'token', 'token', 'token', 'token', 'done'],
      );
      assertConsecutive(events, 1);
      assert.equal(last, 9);
      assert.equal(end, true, 'a finished job read to its newest event is at its end');
      assert.equal(events[0]!.attempt, 0);
      assert.deepEqual(events[1]!.data, { worker: 'worker-a' });
      assert.equal(events[1]!.attempt, 1);
      assert.deepEqual(events[2]!.data, { stage: 'planning' });
      assert.deepEqual(events.slice(3, 8).map((e) => (e.data as { text: string }).text).join(''), 't0 t1 t2 t3 t4 ');
      assert.deepEqual(events[8]!.data, intent);
      for (const e of events) assert.ok(e.at instanceof Date && Math.abs(e.at.getTime() - Date.now()) < 60_000, 'every event has the store time');
      for (let i = 1; i < events.length; i++) assert.ok(events[i]!.at.getTime() >= events[i - 1]!.at.getTime(), 'times never go back');
    });

    it('resumes after any id with no gap and no duplicate, and pages', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const c = await claimOne(t(), q);
      for (let i = 0; i < 6; i++) await append(t(), c.id, c.lease.token, tokens(10, i * 10));
      await t().settle(c.id, c.lease.token, asDone(intent));
      const all = (await readAll(t(), job.id)).events;
      assert.equal(all.length, 63);
      for (const after of [0, 1, 2, 17, 31, 61, 62]) {
        const { events } = await readAll(t(), job.id, after, 7);
        assertConsecutive(events, after + 1);
        assert.equal(events.length, 63 - after, `after ${after}`);
        assert.deepEqual(events, all.slice(after));
      }
      const end = await t().readEvents(job.id, { after: 63 });
      assert.deepEqual(end.events, []);
      assert.equal(end.end, true);
      const page = await t().readEvents(job.id, { after: 0, limit: 5 });
      assert.equal(page.events.length, 5);
      assert.equal(page.end, false, 'a page short of the newest event is not the end');
      assert.equal(page.last, 63);
    });

    it('a stale token cannot append: the lease lost, the job ended, the job retried under a new lease', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const c = await claimOne(t(), q);
      await assert.rejects(append(t(), c.id, 'not-the-token', tokens(1)), LeaseLostError);
      await t().settle(c.id, c.lease.token, asFailed({ code: 'X', message: 'x', retryable: true }, new Date()));
      await assert.rejects(append(t(), c.id, c.lease.token, tokens(1)), LeaseLostError);
      const again = await claimOne(t(), q);
      await assert.rejects(append(t(), c.id, c.lease.token, tokens(1)), LeaseLostError, 'the first run\'s token is stale under the second lease');
      await append(t(), again.id, again.lease.token, tokens(1));
      await t().settle(again.id, again.lease.token, asDone(intent));
      await assert.rejects(append(t(), again.id, again.lease.token, tokens(1)), LeaseLostError);
      await assert.rejects(append(t(), 'no-such-job', 'x', tokens(1)), (e: unknown) => e instanceof JobNotFoundError || e instanceof LeaseLostError);
      const { events } = await readAll(t(), job.id);
      assert.deepEqual(events.map((e) => e.type), ['queued', 'started', 'retry', 'started', 'token', 'done']);
      assertConsecutive(events, 1);
    });

    it('marks each event with its attempt; a retry says why and when', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const first = await claimOne(t(), q);
      await append(t(), first.id, first.lease.token, [{ type: 'token', data: { text: 'a' } }]);
      const error = { code: 'HANDLER_ERROR', message: 'boom', retryable: true };
      const runAt = new Date(Date.now() + 50);
      await t().settle(first.id, first.lease.token, asFailed(error, runAt));
      await delay(80);
      const second = await claimOne(t(), q);
      await append(t(), second.id, second.lease.token, [{ type: 'token', data: { text: 'b' } }]);
      await t().settle(second.id, second.lease.token, asReleased(second));
      const third = await claimOne(t(), q);
      await t().settle(third.id, third.lease.token, asFailed({ code: 'HANDLER_ERROR', message: 'again', retryable: false }, null));
      const { events, end } = await readAll(t(), job.id);
      assert.deepEqual(
        events.map((e) => `${e.type}@${e.attempt}`),
        ['queued@0', 'started@1', 'token@1', 'retry@1', 'started@2', 'token@2', 'retry@2', 'started@2', 'error@2'],
        'a released run gives its attempt back: the next run is attempt 2 again',
      );
      const retry = events[3]!.data as { reason: string; run_at: number; error: unknown };
      assert.equal(retry.reason, 'failed');
      assert.equal(retry.run_at, runAt.getTime());
      assert.deepEqual(retry.error, error);
      assert.equal((events[6]!.data as { reason: string }).reason, 'released');
      assert.equal((events[8]!.data as { message: string }).message, 'again');
      assert.equal(end, true);
    });

    it('cancel: a running job gets cancel_requested then canceled; a queued one canceled at once', async () => {
      const q = uniqueQueue();
      const running = newJob(q);
      await t().enqueue(running);
      const c = await claimOne(t(), q);
      await t().cancel(c.id, 'user stop');
      await t().cancel(c.id, 'asked twice');
      await t().settle(c.id, c.lease.token, { status: 'canceled' });
      const r = await readAll(t(), running.id);
      assert.deepEqual(r.events.map((e) => e.type), ['queued', 'started', 'cancel_requested', 'canceled'], 'a second cancel writes nothing');
      assert.deepEqual(r.events[2]!.data, { reason: 'user stop' });
      assert.deepEqual(r.events[3]!.data, { reason: 'user stop' });
      assert.equal(r.end, true);

      const queued = newJob(q);
      await t().enqueue(queued);
      await t().cancel(queued.id, 'never mind');
      const s = await readAll(t(), queued.id);
      assert.deepEqual(s.events.map((e) => e.type), ['queued', 'canceled']);
      assert.deepEqual(s.events[1]!.data, { reason: 'never mind' });
      assert.equal(s.end, true);

      await t().retry(queued.id);
      const again = await readAll(t(), queued.id);
      assert.deepEqual(again.events.map((e) => e.type), ['queued', 'canceled', 'queued'], 'a manual retry appends: the story goes on');
      assert.deepEqual(again.events[2]!.data, { retried: true });
      assert.equal(again.end, false, 'a retried job is not at its end');
    });

    it('a progress event sets the job\'s progress; usage events total on the job', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const c = await claimOne(t(), q);
      await append(t(), c.id, c.lease.token, [
        { type: 'progress', data: { pct: 10 } },
        { type: 'usage', data: { prompt_tokens: 100, completion_tokens: 5 } },
        { type: 'progress', data: { pct: 50 } },
      ]);
      await append(t(), c.id, c.lease.token, [{ type: 'usage', data: { prompt_tokens: 20, completion_tokens: 7 } }]);
      const got = await t().get(job.id);
      assert.deepEqual(got?.progress, { pct: 50 });
      assert.deepEqual(got?.usage, { prompt_tokens: 120, completion_tokens: 12 });
      await t().settle(c.id, c.lease.token, asFailed({ code: 'X', message: 'x', retryable: true }, new Date()));
      const d = await claimOne(t(), q);
      await append(t(), d.id, d.lease.token, [{ type: 'usage', data: { prompt_tokens: 1, completion_tokens: 1 } }]);
      await t().settle(d.id, d.lease.token, asDone(intent));
      assert.deepEqual((await t().get(job.id))?.usage, { prompt_tokens: 121, completion_tokens: 13 }, 'usage adds up across attempts');
    });

    it('a repeated try (same `written`) writes nothing twice, and writes what the first try did not', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const c = await claimOne(t(), q);
      await t().appendEvents(c.id, c.lease.token, tokens(3), 0);
      assert.equal(await t().appendEvents(c.id, c.lease.token, tokens(3), 0), 5, 'the same batch again: nothing written');
      assert.equal(await t().appendEvents(c.id, c.lease.token, tokens(5), 0), 7, 'a longer repeat writes only its new tail');
      assert.equal(await t().appendEvents(c.id, c.lease.token, tokens(2, 5), 5), 9);
      // An append that is never repeated (null) goes in whole and leaves the run's count alone.
      assert.equal(await t().appendEvents(c.id, c.lease.token, [{ type: 'progress', data: { pct: 1 } }], null), 10);
      assert.equal(await t().appendEvents(c.id, c.lease.token, tokens(1, 7), 7), 11);
      assert.equal(await t().appendEvents(c.id, c.lease.token, tokens(1, 7), 7), 11, 'a repeat after it is still skipped');
      const { events } = await readAll(t(), job.id);
      assertConsecutive(events, 1);
      assert.deepEqual(events.slice(2).filter((e) => e.type === 'token').map((e) => (e.data as { text: string }).text).join(''), 't0 t1 t2 t3 t4 t5 t6 t7 ');
      assert.equal(events[9]!.type, 'progress');
    });

    it('waits for the next event when asked, and answers at once when there is one', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const c = await claimOne(t(), q);
      const started = Date.now();
      const pending = t().readEvents(job.id, { after: 2, wait_ms: 5000 });
      await delay(150);
      await append(t(), c.id, c.lease.token, tokens(2));
      const page = await pending;
      const took = Date.now() - started;
      assert.ok(page.events.length >= 1 && page.events[0]!.id === 3, 'the waiting read got the new event');
      assert.ok(took < 4000, `a waiting read answers when an event comes (took ${took} ms)`);
      const quiet = Date.now();
      const none = await t().readEvents(job.id, { after: 4, wait_ms: 300 });
      assert.deepEqual(none.events, []);
      assert.ok(Date.now() - quiet >= 250, 'an empty wait lasts its wait_ms');
      const ending = t().readEvents(job.id, { after: 4, wait_ms: 5000 });
      await delay(100);
      await t().settle(c.id, c.lease.token, asDone(intent));
      const last = await ending;
      assert.equal(last.events[0]?.type, 'done', 'the ending wakes a waiting reader');
      await assert.rejects(t().readEvents('no-such-job', { after: 0 }), JobNotFoundError);
    });

    it('the sweep\'s endings are in the stream: a stall is a retry, no stall left is an error', async function () {
      const q = uniqueQueue();
      const job = newJob(q, { max_stalls: 1 });
      await t().enqueue(job);
      await claimOne(t(), q, shortLease);
      await delay(shortLease + 150);
      await t().sweep();
      const { events } = await readAll(t(), job.id);
      assert.deepEqual(events.map((e) => e.type), ['queued', 'started', 'error']);
      assert.equal((events[2]!.data as { code: string }).code, 'WORKER_CRASHED');

      const two = newJob(q, { max_stalls: 5 });
      await t().enqueue(two);
      await claimOne(t(), q, shortLease);
      await delay(shortLease + 150);
      await t().sweep();
      const r = await readAll(t(), two.id);
      assert.deepEqual(r.events.map((e) => e.type), ['queued', 'started', 'retry']);
      assert.equal((r.events[2]!.data as { reason: string }).reason, 'stalled');
    });

    it('keeps the newest eventsMax; a reader of the trimmed part gets a marker, then the rest with no gap', async function () {
      const small = await factory({ eventsMax: 10 });
      try {
        const q = uniqueQueue();
        const job = newJob(q);
        await small.enqueue(job);
        const c = await claimOne(small, q);
        for (let i = 0; i < 30; i++) await append(small, c.id, c.lease.token, tokens(10, i * 10));
        await small.settle(c.id, c.lease.token, asDone(intent));
        const { events, end, last } = await readAll(small, job.id);
        assert.equal(last, 303);
        assert.equal(end, true);
        const [marker, ...rest] = events;
        assert.equal(marker!.type, 'trimmed');
        assert.deepEqual(marker!.data, { after: 0, dropped: marker!.id });
        assertConsecutive(rest, marker!.id + 1);
        assert.equal(rest[rest.length - 1]!.type, 'done');
        // Redis trims whole stream nodes (MAXLEN ~): a few more than eventsMax may stay.
        assert.ok(rest.length >= 10 && rest.length <= 10 + 100, `kept ${rest.length} of 303 with eventsMax 10`);
        const fromKept = await readAll(small, job.id, marker!.id + 2);
        assert.deepEqual(fromKept.events, rest.slice(2), 'a reader inside the kept part gets no marker');
        const within = await readAll(small, job.id, 5);
        assert.equal(within.events[0]!.type, 'trimmed');
        assert.deepEqual(within.events[0]!.data, { after: 5, dropped: marker!.id - 5 });
      } finally {
        await small.close();
      }
    });

    it('events go with their job', async function () {
      const short = await factory({ retentionMs: 200 });
      try {
        const q = uniqueQueue();
        const job = newJob(q, { id: `ev-gone-${q}` });
        await short.enqueue(job);
        const c = await claimOne(short, q);
        await append(short, c.id, c.lease.token, tokens(20));
        await short.settle(c.id, c.lease.token, asDone(intent));
        await delay(400);
        await short.sweep();
        assert.equal(await short.get(job.id), null);
        await assert.rejects(short.readEvents(job.id, { after: 0 }), JobNotFoundError);
        await short.enqueue(newJob(q, { id: job.id }));
        const { events } = await readAll(short, job.id);
        assert.deepEqual(events.map((e) => `${e.id}:${e.type}`), ['1:queued'], 'a new job of the same id starts a stream of its own');
      } finally {
        await short.close();
      }
    });
  });
}
