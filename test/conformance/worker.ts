/** Conformance: the worker loop on this transport — races, cancel, timeout, retries, shutdown. */
import assert from 'node:assert/strict';
import { NonRetryableError } from '../../src/errors.js';
import { createWorker, JobAbortError, type Handler, type Worker } from '../../src/worker.js';
import { itUnless, type SuiteContext } from './index.js';
import { asDone, delay, intent, newJob, uniqueQueue, waitFor } from '../helpers.js';

export function workerTests({ transport: t, options }: SuiteContext): void {
  const workers: Worker[] = [];
  const start = async (queue: string, handler: Handler, extra: Partial<Parameters<typeof createWorker>[0]> = {}) => {
    const w = createWorker({ transport: t(), handler, queues: [queue], concurrency: 1, leaseMs: 600, claimWaitMs: 200, heartbeatMs: 1000, backoff: { baseMs: 50, maxMs: 200 }, ...extra });
    workers.push(w);
    await w.start();
    return w;
  };
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop(0)));
  });

  describe('worker', () => {
    const N = 2000;
    const title = `8 concurrent workers × ${N} jobs: every job done exactly once, none lost`;
    itUnless(options.skip?.atomicClaimRace, title, async function () {
      this.timeout(120_000);
      const q = uniqueQueue('race');
      const runs = new Map<string, number>();
      const jobs = Array.from({ length: N }, (_, i) => newJob(q, { payload: { goal: `job ${i}` } }));
      await Promise.all(jobs.map((j) => t().enqueue(j)));
      const handler: Handler = async (_p, ctx) => {
        runs.set(ctx.job_id, (runs.get(ctx.job_id) ?? 0) + 1);
        return intent;
      };
      for (let i = 0; i < 8; i++) await start(q, handler, { concurrency: 4, leaseMs: 10_000 });
      await waitFor(async () => (await t().stats()).queues[q]?.done === N, 100_000, `${N} jobs done`);
      const stats = (await t().stats()).queues[q]!;
      assert.deepEqual(stats, { queued: 0, delayed: 0, processing: 0, done: N, error: 0, canceled: 0, moving: 0, moved: 0 });
      assert.equal(runs.size, N, 'every job ran');
      const twice = [...runs.entries()].filter(([, n]) => n !== 1);
      assert.deepEqual(twice, [], 'no job ran twice');
    });

    it('runs the handler and stores the intent', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { payload: { goal: 'Find X', session_id: 'abc' } });
      await t().enqueue(job);
      const seen: unknown[] = [];
      await start(q, async (payload, ctx) => {
        seen.push({ payload, job_id: ctx.job_id, attempt: ctx.attempt });
        await ctx.progress({ pct: 50 });
        return { action: 'finish', finish: true, reasoning: 'ok' };
      });
      const done = await t().wait(job.id, { timeout_ms: 5000 });
      assert.equal(done.status, 'done');
      assert.deepEqual(done.result, { action: 'finish', finish: true, reasoning: 'ok' });
      assert.deepEqual(seen, [{ payload: job.payload, job_id: job.id, attempt: 1 }]);
      assert.deepEqual(done.progress, { pct: 50 });
    });

    it('renews the lease while a long handler runs, so the job is not reclaimed', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      let runs = 0;
      await start(q, async () => {
        runs += 1;
        await delay(1500); // 2.5 × the 600 ms lease
        return intent;
      });
      const done = await t().wait(job.id, { timeout_ms: 8000 });
      assert.equal(done.status, 'done');
      assert.equal(done.attempts, 1);
      assert.equal(runs, 1);
    });

    it('cancel of a running job fires the handler signal with the reason within one renewal; the job ends canceled, not retried', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 5 });
      await t().enqueue(job);
      let reason: unknown = null;
      let abortedAt = 0;
      let runs = 0;
      await start(q, (_p, ctx) => {
        runs += 1;
        return new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => {
            reason = ctx.signal.reason;
            abortedAt = Date.now();
            reject(ctx.signal.reason);
          });
        });
      });
      await waitFor(async () => (await t().get(job.id))?.status === 'processing', 5000, 'running');
      const askedAt = Date.now();
      await t().cancel(job.id, 'user pressed stop');
      const final = await t().wait(job.id, { timeout_ms: 5000 });
      assert.equal(final.status, 'canceled');
      assert.ok(reason instanceof JobAbortError && reason.kind === 'canceled');
      assert.match((reason as JobAbortError).message, /user pressed stop/);
      assert.ok(abortedAt - askedAt <= 600 / 3 + 400, `signal fired ${abortedAt - askedAt} ms after cancel (renewal every 200 ms)`);
      await delay(300);
      assert.equal(runs, 1, 'not retried');
      assert.equal((await t().get(job.id))?.status, 'canceled');
    });

    it('a handler that ignores the signal still ends canceled, and its late result is dropped', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      await start(q, async () => {
        await delay(1200);
        return intent;
      });
      await waitFor(async () => (await t().get(job.id))?.status === 'processing', 5000, 'running');
      await t().cancel(job.id, 'stop');
      const final = await t().wait(job.id, { timeout_ms: 5000 });
      assert.equal(final.status, 'canceled');
      await delay(1300);
      assert.equal((await t().get(job.id))?.status, 'canceled', 'terminal state never changes');
    });

    it('per-job timeout aborts the attempt with TIMEOUT and retries until max_attempts', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { timeout_ms: 150, max_attempts: 2 });
      await t().enqueue(job);
      const reasons: string[] = [];
      await start(q, (_p, ctx) => new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => {
        reasons.push((ctx.signal.reason as JobAbortError).kind);
        reject(ctx.signal.reason);
      })));
      const final = await t().wait(job.id, { timeout_ms: 8000 });
      assert.equal(final.status, 'error');
      assert.equal(final.error?.code, 'TIMEOUT');
      assert.equal(final.attempts, 2);
      assert.deepEqual(reasons, ['timeout', 'timeout']);
    });

    it('retries a failing handler with backoff that respects run_at, then succeeds', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 3 });
      await t().enqueue(job);
      const times: number[] = [];
      await start(q, async (_p, ctx) => {
        times.push(Date.now());
        if (ctx.attempt < 3) throw new Error(`flaky ${ctx.attempt}`);
        return intent;
      }, { backoff: { baseMs: 300, maxMs: 1000 } });
      const final = await t().wait(job.id, { timeout_ms: 10_000 });
      assert.equal(final.status, 'done');
      assert.equal(final.attempts, 3);
      assert.equal(times.length, 3);
      // jittered to 50–100 % of 300 ms, then of 600 ms
      assert.ok(times[1]! - times[0]! >= 150, `first backoff ${times[1]! - times[0]!} ms`);
      assert.ok(times[2]! - times[1]! >= 300, `second backoff ${times[2]! - times[1]!} ms`);
      assert.equal(final.error?.message, 'flaky 2', 'the last failure is kept');
    });

    it('ends error with the last failure after max_attempts', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 2 });
      await t().enqueue(job);
      await start(q, async (_p, ctx) => {
        throw new Error(`always ${ctx.attempt}`);
      });
      const final = await t().wait(job.id, { timeout_ms: 8000 });
      assert.equal(final.status, 'error');
      assert.deepEqual(final.error, { code: 'HANDLER_ERROR', message: 'always 2', retryable: true });
      assert.equal(final.attempts, 2);
    });

    it('NonRetryableError ends the job at once', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 5 });
      await t().enqueue(job);
      let runs = 0;
      await start(q, async () => {
        runs += 1;
        throw new NonRetryableError('bad goal', { code: 'BAD_GOAL' });
      });
      const final = await t().wait(job.id, { timeout_ms: 5000 });
      assert.equal(final.status, 'error');
      assert.deepEqual(final.error, { code: 'BAD_GOAL', message: 'bad goal', retryable: false });
      assert.equal(runs, 1);
    });

    it('an invalid intent ends error / INVALID_INTENT, not retried', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 5 });
      await t().enqueue(job);
      await start(q, async () => ({ action: 'tool' }) as never);
      const final = await t().wait(job.id, { timeout_ms: 5000 });
      assert.equal(final.status, 'error');
      assert.equal(final.error?.code, 'INVALID_INTENT');
      assert.match(final.error!.message, /tool_name/);
      assert.equal(final.attempts, 1);
    });

    it('a frozen worker loses its job to another after the lease expires, and cannot write afterwards', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 3 });
      await t().enqueue(job);
      const lease = options.shortLeaseMs ?? 300;
      const frozen = await waitFor(() => t().claim({ queues: [q], owner: 'frozen', lease_ms: lease, wait_ms: 300 }), 5000, 'claim');
      await delay(lease + 50);
      await start(q, async () => intent);
      const final = await t().wait(job.id, { timeout_ms: 8000 });
      assert.equal(final.status, 'done');
      assert.equal(final.attempts, 1, 'the frozen run gave its attempt back');
      assert.equal(final.stalls, 1);
      await assert.rejects(t().settle(frozen.id, frozen.lease.token, asDone({ action: 'finish', finish: true })));
      assert.deepEqual((await t().get(job.id))?.result, intent);
    });

    it('graceful shutdown lets a short job finish', async () => {
      const q = uniqueQueue();
      const job = newJob(q);
      await t().enqueue(job);
      let running = false;
      const w = await start(q, async () => {
        running = true;
        await delay(300);
        return intent;
      });
      // The handler has started (a job still on its way from the claim to the handler when stop comes goes back, uncharged).
      await waitFor(async () => running, 5000, 'running');
      await w.stop(5000);
      const final = await t().get(job.id);
      assert.equal(final?.status, 'done');
    });

    it('graceful shutdown past the grace period hands the lease back without charging an attempt', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 3 });
      await t().enqueue(job);
      let sawShutdown = false;
      let running = false;
      const w = await start(q, (_p, ctx) => new Promise((_r, reject) => {
        running = true;
        ctx.signal.addEventListener('abort', () => {
          sawShutdown = (ctx.signal.reason as JobAbortError).kind === 'shutdown';
          reject(ctx.signal.reason);
        });
      }));
      await waitFor(async () => running, 5000, 'running');
      const started = Date.now();
      await w.stop(200);
      assert.ok(Date.now() - started < 3000, 'stop is prompt');
      assert.ok(sawShutdown, 'handler signal fired with the shutdown reason');
      const after = await t().get(job.id);
      assert.equal(after?.status, 'queued');
      assert.equal(after?.attempts, 0, 'no attempt charged');
      assert.equal(after?.lease, null);
    });

    it('registers in the worker registry while running and leaves on stop', async () => {
      const q = uniqueQueue();
      const w = await start(q, async () => intent, { concurrency: 2 });
      const rec = await waitFor(async () => (await t().workers()).find((x) => x.id === w.id), 3000, 'registration');
      assert.deepEqual(rec.queues, [q]);
      assert.equal(rec.concurrency, 2);
      await w.stop();
      assert.equal((await t().workers()).find((x) => x.id === w.id), undefined);
    });
  });
}
