/** Conformance: wait, list, stats, worker registry, retention. */
import assert from 'node:assert/strict';
import { JobNotFoundError } from '../../src/errors.js';
import type { Transport } from '../../src/transport.js';
import { itUnless, type SuiteContext } from './index.js';
import { asDone, asFailed, claimOne, delay, intent, newJob, uniqueQueue } from '../helpers.js';

export function queryTests({ transport: t, factory }: SuiteContext): void {
  describe('wait', () => {
    it('resolves as soon as the job finishes', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      const waiting = t().wait(job.id, { timeout_ms: 10_000 });
      const c = await claimOne(t(), q);
      await delay(50);
      const finishedAt = Date.now();
      await t().settle(c.id, c.lease.token, asDone(intent));
      const got = await waiting;
      assert.equal(got.status, 'done');
      assert.deepEqual(got.result, intent);
      assert.ok(Date.now() - finishedAt < 1500, `wait returned ${Date.now() - finishedAt} ms after completion`);
    });

    it('returns the job as it is when the timeout runs out', async () => {
      const job = newJob(uniqueQueue());
      await t().enqueue(job);
      const started = Date.now();
      const got = await t().wait(job.id, { timeout_ms: 300 });
      assert.equal(got.status, 'queued');
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 3000, `took ${took} ms`);
    });

    it('returns at once for a finished job and throws for an unknown one', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      await t().cancel(job.id, 'x');
      assert.equal((await t().wait(job.id, { timeout_ms: 10_000 })).status, 'canceled');
      await assert.rejects(t().wait('missing-' + q, { timeout_ms: 100 }), JobNotFoundError);
    });

    it('stops early when its signal aborts', async () => {
      const job = newJob(uniqueQueue());
      await t().enqueue(job);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100);
      const started = Date.now();
      const got = await t().wait(job.id, { timeout_ms: 10_000, signal: ac.signal });
      assert.equal(got.status, 'queued');
      assert.ok(Date.now() - started < 3000);
    });
  });

  describe('list and stats', () => {
    it('lists newest first, filters by status and queue, and pages with a cursor', async () => {
      const q = uniqueQueue();
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        const j = newJob(q, { payload: { goal: `g${i}` } });
        ids.push(j.id);
        await t().enqueue(j);
        await delay(2);
      }
      const c = await claimOne(t(), q);
      await t().settle(c.id, c.lease.token, asDone(intent));
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 10; page++) {
        const res = await t().list({ queue: q, limit: 3, cursor });
        assert.ok(res.jobs.length <= 3);
        seen.push(...res.jobs.map((j) => j.id));
        if (!res.next_cursor) break;
        cursor = res.next_cursor;
      }
      assert.deepEqual(seen, [...ids].reverse(), 'every job once, newest first');
      const done = await t().list({ queue: q, status: 'done' });
      assert.deepEqual(done.jobs.map((j) => j.id), [c.id]);
      const queued = await t().list({ queue: q, status: 'queued', limit: 100 });
      assert.equal(queued.jobs.length, 6);
      assert.ok(queued.jobs.every((j) => j.queue === q && j.status === 'queued'));
    });

    it('stats counts jobs per queue and status', async () => {
      const q = uniqueQueue();
      for (let i = 0; i < 4; i++) await t().enqueue(newJob(q));
      await t().enqueue(newJob(q, { delay_ms: 60_000 }));
      const a = await claimOne(t(), q);
      await t().settle(a.id, a.lease.token, asDone(intent));
      const b = await claimOne(t(), q);
      await t().settle(b.id, b.lease.token, asFailed({ code: 'X', message: 'x', retryable: false }, null));
      await claimOne(t(), q);
      const queuedJob = (await t().list({ queue: q, status: 'queued' })).jobs.find((j) => j.run_at.getTime() <= Date.now());
      await t().cancel(queuedJob!.id, 'x');
      const stats = await t().stats();
      // queued = due now, delayed = not yet: the delayed job is counted once, as delayed.
      assert.deepEqual(stats.queues[q], { queued: 0, delayed: 1, processing: 1, done: 1, error: 1, canceled: 1, moving: 0, moved: 0 });
      assert.ok(stats.totals.done >= 1);
    });

    it('queues named like Object.prototype members (constructor, toString, …) are counted like any other', async () => {
      const names = ['constructor', 'toString', 'hasOwnProperty', 'valueOf'];
      const count = (s: Awaited<ReturnType<Transport['stats']>>, name: string) => (Object.hasOwn(s.queues, name) ? s.queues[name]!.delayed : 0);
      const before = await t().stats();
      for (const name of names) await t().enqueue(newJob(name, { delay_ms: 3_600_000 }));
      await t().enqueue(newJob('constructor', { delay_ms: 3_600_000 }));
      const after = await t().stats();
      assert.equal(count(after, 'constructor') - count(before, 'constructor'), 2);
      for (const name of names.slice(1)) assert.equal(count(after, name) - count(before, name), 1, name);
      assert.ok(after.totals.delayed >= names.reduce((n, name) => n + count(after, name), 0), 'the totals include them');
      assert.deepEqual(Object.keys(after.queues[names[0]!]!).sort(), ['canceled', 'delayed', 'done', 'error', 'moved', 'moving', 'processing', 'queued']);
      assert.equal(({} as Record<string, unknown>).constructor, Object, 'Object.prototype is untouched');
      assert.equal(JSON.parse(JSON.stringify(after)).queues.toString.delayed >= 1, true);
    });
  });

  describe('worker registry', () => {
    it('records heartbeats and forgets a worker that unregisters', async () => {
      const id = `w-${uniqueQueue()}`;
      const now = new Date();
      await t().heartbeat({ id, queues: ['a', 'b'], concurrency: 3, running: 1, host: 'h', pid: 42, started_at: now, last_seen: now, ttl_ms: 15_000, processed: 5, failed: 1 });
      const found = (await t().workers()).find((w) => w.id === id);
      assert.ok(found, 'worker listed');
      assert.deepEqual(found.queues, ['a', 'b']);
      assert.equal(found.concurrency, 3);
      assert.equal(found.processed, 5);
      assert.ok(found.last_seen instanceof Date);
      await t().unregisterWorker(id);
      assert.equal((await t().workers()).find((w) => w.id === id), undefined);
    });
  });

  describe('retention', () => {
    it('sweep deletes finished jobs older than the retention and keeps the rest', async function () {
      const short = await factory({ retentionMs: 200 });
      try {
        const q = uniqueQueue();
        const keep = newJob(q);
        const drop = newJob(q);
        await short.enqueue(drop);
        await short.enqueue(keep);
        const c = await claimOne(short, q);
        assert.equal(c.id, drop.id);
        await short.settle(c.id, c.lease.token, asDone(intent));
        await delay(400);
        await short.sweep();
        assert.equal(await short.get(drop.id), null, 'finished job past retention deleted');
        assert.equal((await short.get(keep.id))?.status, 'queued', 'unfinished job kept');
      } finally {
        await short.close();
      }
    });
  });
}

export function leadTests({ transport: t, options }: SuiteContext): void {
  describe('maintainer lock (lead)', () => {
    itUnless(options.skip?.lead, 'one holder at a time; the holder renews; another takes over once it lapses', async () => {
      const transport = t();
      assert.ok(transport.lead, 'a store that is maintained from its clients has the lock');
      const name = uniqueQueue('lock');
      assert.equal(await transport.lead!(name, 'a', 300), true);
      assert.equal(await transport.lead!(name, 'b', 300), false, 'held by a');
      assert.equal(await transport.lead!(name, 'a', 300), true, 'a renews');
      await delay(400);
      assert.equal(await transport.lead!(name, 'b', 300), true, 'a lapsed: b takes over');
      assert.equal(await transport.lead!(name, 'a', 300), false, 'and a is out');
      assert.equal(await transport.lead!(name, 'a', 0), false, 'a cannot hand back what b holds');
      assert.equal(await transport.lead!(name, 'c', 300), false, 'still b');
      await transport.lead!(name, 'b', 0);
      assert.equal(await transport.lead!(name, 'c', 300), true, 'b handed it back: c takes it at once');
    });
  });
}
