/**
 * The migrator (src/migrate.ts), the cut-over view (src/fallback.ts) and
 * bulk enqueue over HTTP, on memory stores: what moves, in what order, with
 * what; recovery of an interrupted run; conflicts; dry runs; verification.
 * The same against real MongoDB/Redis servers under live traffic and
 * SIGKILL: test/migrate-live.test.ts.
 */
import assert from 'node:assert/strict';
import { createMemoryTransport } from '../transports/memory/index.js';
import { createHttpTransport } from '../transports/http/index.js';
import { withFallback } from '../src/fallback.js';
import { migrate, verifyMigration } from '../src/migrate.js';
import { readAnalytics } from '../src/analytics-read.js';
import { createWorker } from '../src/worker.js';
import { createClient } from '../src/client.js';
import { bounded } from '../src/bounded.js';
import { ConfigError, JobNotFoundError, ValidationError } from '../src/errors.js';
import { loadConfig } from '../src/config.js';
import type { Transport } from '../src/transport.js';
import { asDone, claimOne, intent, newJob, uniqueQueue, waitFor } from './helpers.js';
import { startServer } from './server-helpers.js';

async function stores(): Promise<{ from: Transport; to: Transport }> {
  const from = bounded(createMemoryTransport(), { timeoutMs: 5000 });
  const to = bounded(createMemoryTransport(), { timeoutMs: 5000 });
  await from.init();
  await to.init();
  return { from, to };
}

describe('migrate (memory → memory)', () => {
  it('moves queued and delayed jobs with their streams, in their place in line; a running job finishes where it runs; markers say where they went', async () => {
    const { from, to } = await stores();
    const q = uniqueQueue('mig');
    const jobs = Array.from({ length: 40 }, (_, i) => newJob(q, { priority: i % 3, payload: { goal: `g${i}` } }));
    for (const j of jobs) await from.enqueue(j);
    const delayed = newJob(q, { delay_ms: 60_000, dedupe_key: 'd-1' });
    await from.enqueue(delayed);
    const running = await claimOne(from, q, 30_000);
    await from.appendEvents(running.id, running.lease.token, [{ type: 'token', data: { text: 'a' } }], 0);
    // the running job ends while the migration waits for it
    setTimeout(() => void from.settle(running.id, running.lease.token, asDone(intent)), 300);
    const summary = await migrate({ from, to, toName: 'memory-b', pollMs: 50, batch: 7 });
    assert.equal(summary.totals.moved, 40);
    assert.equal(summary.totals.conflicts, 0);
    assert.equal(summary.verify?.ok, true, summary.verify?.problems.join('\n'));
    const src = (await from.stats()).queues[q]!;
    assert.deepEqual([src.queued, src.moving, src.moved, src.done], [0, 0, 40, 1]);
    const marker = (await from.get(jobs[0]!.id))!;
    assert.equal(marker.status, 'moved');
    assert.equal(marker.moved_to, 'memory-b');
    assert.equal((await to.get(running.id)), null, 'a finished job stays without --include-finished');
    // claim order in the target = claim order the source would have had
    const expected = jobs.filter((j) => j.id !== running.id).sort((a, b) => b.priority - a.priority || (a.created_at.getTime() - b.created_at.getTime()) || (jobs.indexOf(a) - jobs.indexOf(b)));
    const order: string[] = [];
    for (;;) {
      const c = await to.claim({ queues: [q], owner: 't', lease_ms: 30_000, wait_ms: 0 });
      if (!c) break;
      order.push(c.id);
    }
    assert.deepEqual(order, expected.map((j) => j.id));
    const moved = (await to.get(delayed.id))!;
    assert.equal(moved.status, 'queued');
    assert.equal(moved.run_at.getTime(), delayed.run_at.getTime());
    assert.equal((await to.enqueue(newJob(q, { dedupe_key: 'd-1' }))).job.id, delayed.id, 'the dedupe key works in the target');
    assert.equal((await to.enqueue(newJob(q, { id: jobs[5]!.id }))).created, false, 'so does the id');
    const events = await to.readEvents(jobs[3]!.id, {});
    assert.deepEqual(events.events.slice(0, 2).map((e) => [e.id, e.type]), [[1, 'queued'], [2, 'started']]);
  });

  it('finished jobs move with --include-finished, their results and events too', async () => {
    const { from, to } = await stores();
    const q = uniqueQueue('fin');
    await from.enqueue(newJob(q));
    const c = await claimOne(from, q);
    await from.settle(c.id, c.lease.token, asDone(intent));
    const summary = await migrate({ from, to, includeFinished: true });
    assert.equal(summary.totals.moved, 1);
    const there = (await to.get(c.id))!;
    assert.equal(there.status, 'done');
    assert.deepEqual(there.result, intent);
    assert.deepEqual((await to.readEvents(c.id, {})).events.map((e) => e.type), ['queued', 'started', 'done']);
    assert.equal((await from.get(c.id))!.status, 'moved');
  });

  it('an interrupted run (jobs left moving, some already in the target) is finished by the next one, nothing twice', async () => {
    const { from, to } = await stores();
    const q = uniqueQueue('rec');
    for (let i = 0; i < 10; i++) await from.enqueue(newJob(q));
    // A run killed after step 2 for 4 jobs, and after step 1 for 3 more.
    const first = await from.moves!.take(q, 'queued', 4);
    await to.enqueueMany(first.map((m) => m.job), { imported: { events: first.map((m) => m.events) } });
    await from.moves!.take(q, 'queued', 3);
    assert.equal((await from.stats()).queues[q]!.moving, 7);
    assert.equal((await verifyMigration({ from, to })).ok, false, 'verify sees the held jobs');
    const summary = await migrate({ from, to });
    assert.equal(summary.totals.moved, 10);
    assert.equal(summary.totals.recovered, 7);
    assert.equal(summary.totals.already, 4);
    assert.equal(summary.verify?.ok, true, summary.verify?.problems.join('\n'));
    assert.equal((await to.stats()).queues[q]!.queued, 10);
  });

  it('a job the target holds under the same id for another job stays in the source, reported', async () => {
    const { from, to } = await stores();
    const q = uniqueQueue('cf');
    const mine = newJob(q, { id: `same-${q}` });
    await from.enqueue(mine);
    await new Promise((r) => setTimeout(r, 5));
    await to.enqueue(newJob(q, { id: `same-${q}`, payload: { goal: 'other' } }));
    await from.enqueue(newJob(q));
    const summary = await migrate({ from, to });
    assert.equal(summary.totals.moved, 1);
    assert.equal(summary.totals.conflicts, 1);
    assert.deepEqual(summary.conflict_ids, [mine.id]);
    assert.equal((await from.get(mine.id))!.status, 'queued', 'runnable where it was');
    assert.equal(summary.verify?.ok, false);
  });

  it('--dry-run changes nothing on either side', async () => {
    const { from, to } = await stores();
    const q = uniqueQueue('dry');
    for (let i = 0; i < 5; i++) await from.enqueue(newJob(q));
    await claimOne(from, q);
    const before = [await from.stats(), await to.stats(), (await from.list({ queue: q })).jobs];
    const summary = await migrate({ from, to, dryRun: true });
    assert.deepEqual(summary.would_move?.[q], { queued: 4, moving: 0, finished: 0, running: 1 });
    assert.equal(summary.totals.moved, 0);
    assert.deepEqual([await from.stats(), await to.stats(), (await from.list({ queue: q })).jobs], before);
  });

  it('verify fails on a planted difference: a marker whose job the target lacks', async () => {
    const { from, to } = await stores();
    const q = uniqueQueue('plant');
    for (let i = 0; i < 3; i++) await from.enqueue(newJob(q));
    assert.equal((await migrate({ from, to })).verify?.ok, true);
    const planted = newJob(q);
    await from.enqueue(planted);
    await from.moves!.take(q, 'queued', 10);
    await from.moves!.finish([planted.id], 'memory');
    const report = await verifyMigration({ from, to });
    assert.equal(report.ok, false);
    assert.match(report.problems.join('\n'), new RegExp(`${planted.id} \\(${q}\\): marked moved in the source, missing in the target`));
  });

  it('migrating back (a rollback) brings the job home over the marker it left; a store never migrates onto itself', async () => {
    const { from, to } = await stores();
    const q = uniqueQueue('back');
    const job = newJob(q);
    await from.enqueue(job);
    await migrate({ from, to });
    assert.equal((await from.get(job.id))!.status, 'moved');
    const back = await migrate({ from: to, to: from });
    assert.equal(back.totals.moved, 1);
    assert.equal(back.verify?.ok, true, back.verify?.problems.join('\n'));
    const home = (await from.get(job.id))!;
    assert.deepEqual([home.status, home.moved_to], ['queued', null], 'runnable again where it started');
    assert.equal((await to.get(job.id))!.status, 'moved');
    assert.equal((await claimOne(from, q)).id, job.id);
    // the same store on both sides: refused, nothing stranded
    const again = newJob(q);
    await from.enqueue(again);
    await assert.rejects(migrate({ from, to: from }), (e: unknown) => (e as { code?: string }).code === 'MIGRATION_LOOP');
    assert.equal((await from.get(again.id))!.status, 'queued');
  });

  it('needs a store to leave: the http transport cannot be migrated from', async () => {
    const { to } = await stores();
    const http = createHttpTransport({ url: 'http://127.0.0.1:1' });
    await assert.rejects(migrate({ from: http, to }), /cannot be migrated from/);
  });
});

/** Two memory stores, the target's view with the fallback, and one job queued in the source. */
async function cutover(prefix: string) {
  const { from, to } = await stores();
  const q = uniqueQueue(prefix);
  const job = newJob(q);
  await from.enqueue(job);
  return { from, to, view: withFallback(to, from), q, job };
}

describe('cut-over reads (REASONING_MIGRATE_FROM)', () => {
  it('a client on the target waiting on a job still in the source gets its result after it moved and ran in the target', async () => {
    const { from, to, view, q, job } = await cutover('fb');
    const client = await createClient({ transport: view });
    const got = await client.get(job.id);
    assert.equal(got?.status, 'queued', 'found in the source');
    const waiting = client.wait(job.id, { timeoutMs: 10_000 });
    const following = (async () => {
      const seen: string[] = [];
      for await (const e of client.events(job.id)) seen.push(e.type);
      return seen;
    })();
    await new Promise((r) => setTimeout(r, 100));
    const worker = createWorker({ transport: to, queues: [q], handler: async (_p, ctx) => {
      ctx.emit('token', { text: 'hi' });
      return intent;
    }, claimWaitMs: 100 });
    await worker.start();
    try {
      await migrate({ from, to });
      const final = await waiting;
      assert.equal(final.status, 'done');
      assert.deepEqual(final.result, intent);
      assert.deepEqual(await following, ['queued', 'started', 'token', 'done'], 'one stream across both stores, no gap, no repeat');
      assert.equal((await client.get(job.id))!.status, 'done', 'get follows the marker');
      // enqueue of the moved id returns the moved job; cancel reaches it
      assert.equal((await view.enqueue(newJob(q, { id: job.id }))).created, false);
    } finally {
      await worker.stop();
      await client.close();
    }
  });

  it('a wait through the fallback ends when the job ends in the target, though a dead migrator left it moving in the source', async () => {
    const { from, to, view, q, job } = await cutover('fb3');
    // killed between writing the job to the target and marking it moved
    const held = await from.moves!.take(q, 'queued', 10);
    await to.enqueueMany(held.map((m) => m.job), { imported: { events: held.map((m) => m.events) } });
    const waiting = view.wait(job.id, { timeout_ms: 20_000 });
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 50));
    const c = await claimOne(to, q);
    await to.settle(c.id, c.lease.token, asDone(intent));
    const final = await waiting;
    assert.equal(final.status, 'done');
    assert.ok(Date.now() - started < 5000, `answered once done (${Date.now() - started} ms), not at the timeout`);
  });

  it('cancel and enqueue by id reach a job that is only in the source', async () => {
    const { from, to } = await stores();
    const view = withFallback(to, from);
    const q = uniqueQueue('fb2');
    const a = newJob(q);
    const b = newJob(q);
    await from.enqueue(a);
    await from.enqueue(b);
    assert.equal((await view.cancel(a.id, 'no longer needed')).status, 'canceled');
    assert.equal((await from.get(a.id))!.status, 'canceled');
    const again = await view.enqueue(newJob(q, { id: b.id, payload: { goal: 'dup' } }));
    assert.equal(again.created, false, 'the same id never becomes two jobs');
    assert.equal(await to.get(b.id), null);
    await migrate({ from, to });
    assert.equal((await view.cancel(b.id, 'late')).status, 'canceled');
    assert.equal((await to.get(b.id))!.status, 'canceled', 'the cancel went to the store the job moved to');
    await assert.rejects(view.wait("nope", { timeout_ms: 10 }), JobNotFoundError);
  });

  it("analytics through the cut-over are the target's, like its counts", async () => {
    const { from, to, view, q } = await cutover('fb-an');
    await migrate({ from, to });
    const claimed = await claimOne(view, q);
    await view.settle(claimed.id, claimed.lease.token, asDone(intent));
    const answer = await readAnalytics(view, '1h');
    assert.equal(answer.totals.done, 1, 'the ending in the target is counted');
    assert.equal(answer.queues[q]!.done, 1);
  });
});

describe('REASONING_MIGRATE_FROM', () => {
  it('names the other store, on a client or server of mongo or redis', () => {
    assert.equal(loadConfig({ REASONING_TRANSPORT: 'redis', REASONING_MIGRATE_FROM: 'mongo' }).migrateFrom, 'mongo');
    for (const env of [
      { REASONING_TRANSPORT: 'redis', REASONING_MIGRATE_FROM: 'redis' },
      { REASONING_TRANSPORT: 'http', REASONING_MIGRATE_FROM: 'mongo' },
      { REASONING_TRANSPORT: 'mongo', REASONING_MIGRATE_FROM: 'memory' },
    ]) {
      assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && e.variable === 'REASONING_MIGRATE_FROM', JSON.stringify(env));
    }
  });
});

describe('POST /v1/jobs:batch and client.enqueueMany', () => {
  const CLIENT = 'batch-client-token';
  const WORKER = 'batch-worker-token';

  it('a batch that would overfill the store is refused whole: nothing is created', async () => {
    const store = createMemoryTransport({ maxJobs: 5 });
    const q = uniqueQueue('full');
    await store.enqueue(newJob(q));
    await assert.rejects(store.enqueueMany(Array.from({ length: 5 }, () => newJob(q))), (e: unknown) => (e as { code?: string }).code === 'STORE_FULL');
    assert.equal((await store.stats()).queues[q]!.queued, 1);
    assert.equal((await store.enqueueMany(Array.from({ length: 4 }, () => newJob(q)))).length, 4);
  });

  it('enqueues a batch in one request, idempotent job by job; the client scope is needed', async () => {
    const { url, store } = await startServer({ tokens: { client: [CLIENT], worker: [WORKER] } });
    const q = uniqueQueue('batch');
    const client = await createClient({ transport: createHttpTransport({ url, clientToken: CLIENT }) });
    try {
      const requests = Array.from({ length: 30 }, (_, i) => ({ queue: q, payload: { goal: `b${i}` }, ...(i === 0 ? { id: `fixed-${q}` } : {}) }));
      const out = await client.enqueueMany(requests);
      assert.equal(out.length, 30);
      assert.ok(out.every((r) => r.created));
      assert.equal((await store.stats()).queues[q]?.queued, 30);
      const again = await client.enqueueMany([{ queue: q, id: `fixed-${q}`, payload: { goal: 'other' } }]);
      assert.deepEqual([again[0]!.created, again[0]!.job.payload.goal], [false, 'b0']);
      await assert.rejects(client.enqueueMany([{ queue: q, payload: { goal: 'ok' } }, { queue: q, payload: { goal: 'x' }, priority: 1.5 }]), (e: unknown) => e instanceof ValidationError && /jobs\.1\.priority/.test(e.message));
    } finally {
      await client.close();
    }
    const post = (body: unknown, token: string) => fetch(`${url}/v1/jobs:batch`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post({ jobs: [{ queue: q, payload: { goal: 'w' } }] }, WORKER)).status, 403);
    const before = (await store.stats()).queues[q]!.queued;
    // one bad job refuses the whole batch: nothing is created
    const bad = await post({ jobs: [{ queue: q, payload: { goal: 'fine' } }, { queue: q, payload: { goal: 'x' }, callback_url: 'http://10.0.0.1/hook' }] }, CLIENT);
    assert.equal(bad.status, 400);
    const tooMany = await post({ jobs: Array.from({ length: 1001 }, () => ({ queue: q, payload: { goal: 'x' } })) }, CLIENT);
    assert.equal(tooMany.status, 400);
    assert.match(JSON.stringify(await tooMany.json()), /at most 1000/);
    assert.equal((await post({ jobs: [] }, CLIENT)).status, 400);
    assert.equal((await store.stats()).queues[q]!.queued, before);
    // encoded spellings of the route are not another way in
    assert.equal((await fetch(`${url}/v1/jobs%3Abatch`, { method: 'POST', headers: { authorization: `Bearer ${WORKER}`, 'content-type': 'application/json' }, body: '{"jobs":[]}' })).status >= 400, true);
    await waitFor(() => true);
  });
});
