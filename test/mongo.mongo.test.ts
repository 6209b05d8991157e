/**
 * Mongo-specific tests, on the server test/setup/mongo.ts picks: detected
 * capabilities, index use (explain), fencing after lease expiry, retention,
 * dedupe, adaptive polling, in-process claim atomicity, an unreachable server,
 * event streams (a waiting reader across processes, the gap rule, leftovers).
 * The restart test is in mongo-restart.mongo.test.ts.
 */
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { InvalidStateError, LeaseLostError, TransportError } from '../src/errors.js';
import { createMongoTransport, hotQueries, INDEXES, type MongoTransport, type MongoTransportOptions } from '../transports/mongo/index.js';
import { itUnless } from './conformance/index.js';
import { createWorker } from '../src/worker.js';
import { asDone, claimOne, delay, intent, newJob, uniqueQueue } from './helpers.js';
import { ServerClock } from '../transports/mongo/server.js';
import { acquireMongo, freshDb, planMongo, releaseMongo, type MongoTestServer } from './setup/mongo.js';

const plan = await planMongo();
const onFerret = plan === 'ferretdb' || plan === 'external-ferretdb';
const FERRET_EXPLAIN = 'FerretDB answers explain with a SQLite plan (queryPlanner.Plan), not a MongoDB winningPlan';

/** Every `stage` and `indexName` anywhere in an explain answer. */
function planStages(node: unknown, out: { stages: string[]; indexes: string[] } = { stages: [], indexes: [] }) {
  if (Array.isArray(node)) for (const n of node) planStages(n, out);
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      if (k === 'rejectedPlans') continue;
      if (k === 'stage' && typeof v === 'string') out.stages.push(v);
      else if (k === 'indexName' && typeof v === 'string') out.indexes.push(v);
      else planStages(v, out);
    }
  }
  return out;
}

describe('mongo transport (server-specific)', function () {
  this.timeout(30_000);
  let server: MongoTestServer;
  let raw: MongoClient;
  const db = freshDb('reasonq_mongo');
  const opened: MongoTransport[] = [];
  const open = async (options: MongoTransportOptions = {}) => {
    const t = createMongoTransport({ uri: server.uri, db, ...options });
    opened.push(t);
    await t.init();
    return t;
  };
  let t: MongoTransport;

  before(async function () {
    this.timeout(300_000); // a cold FerretDB build or a MongoDB download
    server = await acquireMongo();
    t = await open();
    raw = new MongoClient(server.uri, { maxPoolSize: 1 });
  });
  after(async () => {
    await Promise.all(opened.map((x) => x.close()));
    await raw?.close();
    await releaseMongo();
  });

  describe('capabilities, detected at init', () => {
    it('match the server', function () {
      const info = t.server!;
      console.log(`      detected: ${JSON.stringify(info)}`);
      if (onFerret) {
        assert.equal(info.kind, 'ferretdb');
        assert.equal(info.changeStreams, false, 'FerretDB has no change streams');
        assert.equal(info.ttlIndexes, false, 'FerretDB refuses TTL indexes');
        assert.deepEqual(t.capabilities, { blockingClaim: false, pushWait: false, nativeRetention: false, atomicClaim: false });
      } else {
        assert.equal(info.kind, 'mongodb');
        assert.equal(info.ttlIndexes, true);
        assert.equal(t.capabilities.atomicClaim, true);
        assert.equal(t.capabilities.pushWait, info.changeStreams);
      }
    });

    it('init is idempotent and every declared index exists', async () => {
      await t.init();
      const again = await open();
      assert.deepEqual(again.server, t.server);
      for (const coll of ['jobs', 'workers', 'events']) {
        const names = (await raw.db(db).collection(coll).listIndexes().toArray()).map((ix) => ix.name as string);
        const wanted = INDEXES.filter((s) => s.collection === coll && (!s.ttl || t.server!.ttlIndexes)).map((s) => s.name);
        for (const name of wanted) assert.ok(names.includes(name), `${coll}.${name} missing (have ${names.join(', ')})`);
      }
    });
  });

  describe('indexes', () => {
    itUnless(onFerret ? FERRET_EXPLAIN : undefined, 'every hot query is served by an index (explain)', async () => {
      for (const q of hotQueries()) {
        const answer = await raw.db(db).command({ explain: q.command, verbosity: 'queryPlanner' });
        const { stages, indexes } = planStages(answer.queryPlanner ?? answer);
        assert.ok(!stages.includes('COLLSCAN'), `${q.name}: collection scan (${stages.join(' > ')})`);
        assert.ok(stages.some((s) => /IXSCAN|IDHACK|EXPRESS|DISTINCT_SCAN/.test(s)), `${q.name}: no index stage (${stages.join(' > ')})`);
        if (indexes.length) assert.ok(indexes.includes(q.expect), `${q.name}: used ${indexes.join(', ')}, meant ${q.expect}`);
      }
    });

    if (onFerret) {
      it('on FerretDB, explain of every hot query still answers (a SQLite plan)', async () => {
        for (const q of hotQueries()) {
          const answer: Document = await raw.db(db).command({ explain: q.command });
          assert.ok(answer.queryPlanner, `${q.name}: no queryPlanner`);
        }
      });
    }
  });

  describe("the server's clock", () => {
    it('hello reports localTime, and the measured offset from this machine is small', async () => {
      const hello = await raw.db('admin').command({ hello: 1 }).catch(() => raw.db('admin').command({ isMaster: 1 }));
      assert.ok(hello.localTime instanceof Date, `hello answered ${JSON.stringify(Object.keys(hello))}`);
      const clock = new ServerClock();
      await clock.sync(raw);
      assert.ok(Math.abs(clock.offset) < 1000, `offset ${clock.offset} ms on one machine`);
    });

    it('a process whose clock runs an hour fast reads the server clock', async () => {
      const sent = Date.now();
      const clock = new ServerClock();
      clock.measured({ localTime: new Date(sent - 3_600_000 + 5) }, sent, sent + 10); // the server is an hour behind us
      assert.ok(Math.abs(clock.now().getTime() - (Date.now() - 3_600_000)) < 50, `now() ${clock.now().toISOString()}`);
      clock.measured({}, sent, sent + 10); // no localTime: the offset stays as it was
      assert.ok(Math.abs(clock.now().getTime() - (Date.now() - 3_600_000)) < 50);
    });
  });

  describe('fencing after lease expiry', () => {
    it('an expired lease cannot write even before anybody reclaimed it; the stored job is untouched', async () => {
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 3 });
      await t.enqueue(job);
      const c = await claimOne(t, q, 300);
      await delay(400);
      const err = await t.settle(c.id, c.lease.token, asDone(intent)).catch((e: unknown) => e);
      assert.ok(err instanceof LeaseLostError, `got ${String(err)}`);
      assert.equal(err.details?.reason, 'expired');
      await assert.rejects(t.appendEvents(c.id, c.lease.token, [{ type: 'progress', data: 1 }], 0), LeaseLostError);
      const doc = await raw.db(db).collection('jobs').findOne({ _id: job.id as never });
      assert.equal(doc?.status, 'processing');
      assert.equal(doc?.result, null);
      assert.equal(doc?.lease?.token, c.lease.token);
      const swept = await t.sweep();
      assert.ok(swept.requeued >= 1);
      const again = await claimOne(t, q, 10_000);
      assert.notEqual(again.lease.token, c.lease.token);
      await assert.rejects(t.extend(c.id, c.lease.token, 10_000), LeaseLostError);
      assert.equal((await t.settle(again.id, again.lease.token, asDone(intent))).status, 'done');
    });

    it('a renewal between the sweeper\'s read and its write keeps the job', async () => {
      const q = uniqueQueue();
      await t.enqueue(newJob(q));
      const c = await claimOne(t, q, 300);
      await delay(350);
      // the lease ran out, but sweep is fenced on the deadline it read: renew
      // first through the raw collection, as a racing worker would have
      await raw.db(db).collection('jobs').updateOne({ _id: c.id as never }, { $set: { 'lease.until': new Date(Date.now() + 10_000) } });
      await t.sweep();
      assert.equal((await t.get(c.id))?.status, 'processing');
      assert.equal((await t.settle(c.id, c.lease.token, asDone(intent))).status, 'done');
    });
  });

  describe('retention', () => {
    it('finished jobs carry expire_at; sweep deletes past retention (TTL index too where the server has one)', async () => {
      const short = await open({ retentionMs: 300 });
      const q = uniqueQueue();
      const old = newJob(q);
      const open1 = newJob(q);
      await short.enqueue(old);
      await short.enqueue(open1);
      const c = await claimOne(short, q);
      const done = await short.settle(c.id, c.lease.token, asDone(intent));
      const doc = await raw.db(db).collection('jobs').findOne({ _id: old.id as never });
      assert.equal((doc?.expire_at as Date).getTime(), done.finished_at!.getTime() + 300);
      const ttl = (await raw.db(db).collection('jobs').listIndexes().toArray()).find((ix) => ix.name === 'retention_ttl');
      assert.equal(ttl?.expireAfterSeconds, short.server!.ttlIndexes ? 0 : undefined);
      const events = raw.db(db).collection('events');
      await short.readEvents(old.id, { after: 0 }); // a read waits for this process's batched lifecycle events of the job
      if (short.server!.ttlIndexes) {
        const kept = await events.find({ job_id: old.id }).toArray();
        assert.ok(kept.length >= 3 && kept.every((e) => (e.expire_at as Date).getTime() > done.finished_at!.getTime() + 300), 'the events of a finished job expire after it');
      }
      await delay(400);
      const res = await short.sweep();
      assert.ok(res.deleted >= 1);
      assert.equal(await short.get(old.id), null);
      assert.equal(await events.countDocuments({ job_id: old.id }), 0, 'its events went with it');
      assert.ok((await events.countDocuments({ job_id: open1.id })) >= 1, 'an unfinished job keeps its events');
      assert.equal((await short.get(open1.id))?.status, 'queued');
      await assert.rejects(short.retry(open1.id), InvalidStateError);
    });

    it('worker records not seen for an hour are dropped', async () => {
      const id = `w-${uniqueQueue()}`;
      const then = new Date(Date.now() - 2 * 3600_000);
      await t.heartbeat({ id, queues: ['a'], concurrency: 1, running: 0, host: 'h', pid: 1, started_at: then, last_seen: then, ttl_ms: 15_000, processed: 0, failed: 0 });
      assert.equal((await t.workers()).find((w) => w.id === id), undefined, 'not listed');
      const fresh = await open();
      await fresh.sweep();
      assert.equal(await raw.db(db).collection('workers').countDocuments({ _id: id as never }), 0, 'deleted by sweep');
    });
  });

  describe('enqueue', () => {
    it('leaves dedupe_key out when unset, so any number of jobs without one coexist', async () => {
      const q = uniqueQueue();
      const a = newJob(q);
      const b = newJob(q);
      assert.equal((await t.enqueue(a)).created, true);
      assert.equal((await t.enqueue(b)).created, true);
      const doc = await raw.db(db).collection('jobs').findOne({ _id: a.id as never });
      assert.equal(doc && 'dedupe_key' in doc, false);
      assert.equal((await t.get(a.id))?.dedupe_key, null);
    });

    it('concurrent enqueues with one dedupe_key from two transports create one job', async () => {
      const other = await open();
      const q = uniqueQueue();
      const key = `k-${q}`;
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? t : other).enqueue(newJob(q, { dedupe_key: key }))));
      assert.equal(results.filter((r) => r.created).length, 1);
      assert.equal(new Set(results.map((r) => r.job.id)).size, 1);
    });
  });

  describe('claims', () => {
    it('concurrent claims on one transport hand each job out once', async () => {
      const q = uniqueQueue();
      const jobs = Array.from({ length: 20 }, () => newJob(q));
      for (const j of jobs) await t.enqueue(j);
      const got: string[] = [];
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          for (;;) {
            const c = await t.claim({ queues: [q], owner: 'w', lease_ms: 10_000, wait_ms: 0 });
            if (!c) return;
            got.push(c.id);
          }
        }),
      );
      assert.equal(got.length, 20);
      assert.equal(new Set(got).size, 20);
    });

    it('an idle claimer backs off to the polling ceiling, and picks up work fast once it arrives', async () => {
      const names: string[] = [];
      const counted = await open({ pollMinMs: 20, pollMaxMs: 800, commandListener: (name) => names.push(name) });
      const q = uniqueQueue();
      const started = Date.now();
      await counted.claim({ queues: [q], owner: 'w', lease_ms: 1000, wait_ms: 4000 });
      const claims = names.filter((n) => n === 'findAndModify').length;
      // 20, 40, 80, ... 800 ms (jittered to 50-100 %): about 10 polls in 4 s, not 200
      assert.ok(claims >= 4 && claims <= 20, `${claims} claim queries in ${Date.now() - started} ms`);
      const job = newJob(q);
      const pending = counted.claim({ queues: [q], owner: 'w', lease_ms: 1000, wait_ms: 4000 });
      await delay(50);
      const enqueuedAt = Date.now();
      await t.enqueue(job); // another transport: no local wake-up, polling or change stream only
      const c = await pending;
      assert.equal(c?.id, job.id);
      assert.ok(Date.now() - enqueuedAt < 1200, `picked up ${Date.now() - enqueuedAt} ms after enqueue`);
    });
  });

  describe('an unreachable server', () => {
    it('fails init fast with a retryable TransportError that hides the credentials', async () => {
      const bad = createMongoTransport({ uri: 'mongodb://reasonq:s3cret@127.0.0.1:1/?directConnection=true', db: 'x', serverSelectionTimeoutMS: 1_000 });
      const started = Date.now();
      const err = await bad.init().catch((e: unknown) => e);
      await bad.close();
      assert.ok(err instanceof TransportError, `got ${String(err)}`);
      assert.equal(err.retryable, true);
      assert.equal(err.code, 'TRANSPORT_UNAVAILABLE');
      assert.match(err.message, /mongodb:\/\/reasonq:\*\*\*@127\.0\.0\.1:1/);
      assert.doesNotMatch(err.message, /s3cret/);
      assert.ok(Date.now() - started < 4_000, `took ${Date.now() - started} ms`);
    });
  });

  describe('an outcome the server cannot store', () => {
    it('an intent larger than a BSON document ends the job error / RESULT_REJECTED at once instead of leaving it processing', async function () {
      this.timeout(60_000);
      const q = uniqueQueue();
      const job = newJob(q, { max_attempts: 3 });
      await t.enqueue(job);
      let runs = 0;
      const worker = createWorker({ transport: t, queues: [q], leaseMs: 2000, claimWaitMs: 200, handler: async () => {
        runs += 1;
        return { action: 'tool', tool_name: 'big', args: { blob: 'z'.repeat(17 * 1024 * 1024) } };
      } });
      await worker.start();
      try {
        const final = await t.wait(job.id, { timeout_ms: 30_000 });
        assert.equal(final.status, 'error');
        assert.equal(final.error?.code, 'RESULT_REJECTED');
        assert.equal(runs, 1);
      } finally {
        await worker.stop();
      }
    });
  });

  describe('event streams', () => {
    const tokens = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ type: 'token', data: { text: `t${from + i}` } }));

    it('a reader blocked in readEvents gets an append from another process within the polling bound, and polls on a backoff meanwhile', async function () {
      const names: string[] = [];
      const reader = await open({ commandListener: (name) => names.push(name) });
      const writer = await open(); // another transport: no local wake-up, change stream or polling only
      const q = uniqueQueue();
      const job = newJob(q);
      await writer.enqueue(job);
      const c = await claimOne(writer, q);
      await writer.readEvents(job.id, { after: 0 }); // its lifecycle events are in
      const started = Date.now();
      const pending = reader.readEvents(job.id, { after: 2, wait_ms: 10_000 });
      await delay(2500); // long enough for the poller to back off to its ceiling (waitPollMaxMs, 1 s)
      const polls = names.filter((n) => n === 'find').length;
      const appendedAt = Date.now();
      await writer.appendEvents(c.id, c.lease.token, tokens(2), 0);
      const page = await pending;
      const took = Date.now() - appendedAt;
      assert.deepEqual(page.events.map((e) => `${e.id}:${e.type}`), ['3:token', '4:token']);
      assert.ok(took < 1600, `the waiting reader got the append ${took} ms after it (poll ceiling 1 s)`);
      if (!reader.capabilities.pushWait) assert.ok(polls >= 3 && polls <= 14, `${polls} queries in the first 2.5 s of a wait (50 ms doubling to 1 s), not one per 50 ms`);
      assert.ok(Date.now() - started < 5000);
      await writer.settle(c.id, c.lease.token, asDone(intent));
    });

    it('the gap rule: an id taken whose event never comes is waited for, then read as a `lost` marker, with nothing skipped or doubled', async function () {
      const q = uniqueQueue();
      const job = newJob(q);
      await t.enqueue(job);
      const c = await claimOne(t, q);
      const jobs = raw.db(db).collection('jobs');
      const events = raw.db(db).collection('events');
      const { seq } = (await jobs.findOne({ _id: job.id as never }))!;
      // A writer that took id 3 and died before its insert.
      await jobs.updateOne({ _id: job.id as never }, { $inc: { event_seq: 1 } });
      assert.equal(await t.appendEvents(c.id, c.lease.token, tokens(1), 0), 4);

      const first = await t.readEvents(job.id, { after: 0 });
      assert.deepEqual(first.events.map((e) => e.id), [1, 2], 'a page stops before a missing id');
      const now = await t.readEvents(job.id, { after: 2 });
      assert.deepEqual(now.events, [], 'a read that may not wait answers at once at a missing id: nothing yet');
      assert.equal(now.end, false);
      const waited = Date.now();
      const next = await t.readEvents(job.id, { after: 2, wait_ms: 5000 });
      const took = Date.now() - waited;
      assert.ok(took >= 1500 && took < 6000, `the reader waited ${took} ms for the missing id before calling it lost`);
      assert.deepEqual(next.events.map((e) => `${e.id}:${e.type}`), ['3:trimmed', '4:token']);
      assert.deepEqual(next.events[0]!.data, { after: 2, dropped: 1, reason: 'lost' });
      assert.equal(next.last, 4);

      // A writer slow between its two writes: id 5 taken, its event in 300 ms later. The reader waits and gets it, no marker.
      await jobs.updateOne({ _id: job.id as never }, { $inc: { event_seq: 1 } });
      setTimeout(() => void events.insertOne({ job_id: job.id, job_seq: seq, seq: 5, type: 'thinking', at: new Date(), attempt: 1, data: { stage: 'late' } } as never), 300);
      const late = Date.now();
      const slow = await t.readEvents(job.id, { after: 4, wait_ms: 5000 });
      assert.deepEqual(slow.events.map((e) => `${e.id}:${e.type}`), ['5:thinking']);
      assert.ok(Date.now() - late >= 250 && Date.now() - late < 1500, `got the late event after ${Date.now() - late} ms`);

      await t.settle(c.id, c.lease.token, asDone(intent));
      const all: number[] = [];
      for (let after = 0, page = await t.readEvents(job.id, { after }); ; page = await t.readEvents(job.id, { after })) {
        all.push(...page.events.map((e) => e.id));
        if (page.events.length === 0 || page.end) break;
        after = page.events[page.events.length - 1]!.id;
      }
      assert.deepEqual(all, [1, 2, 3, 4, 5, 6], 'every id once, in order');
      assert.equal((await t.readEvents(job.id, { after: 6 })).end, true);
    });

    it('events left behind by an earlier job of the same id are not read as the new job\'s', async () => {
      const q = uniqueQueue();
      const id = `leftover-${q}`;
      const events = raw.db(db).collection('events');
      // A deletion that reached the job but not its events (a sweeper that died in between, a TTL pass between the two collections).
      await events.insertMany([1, 2, 3].map((n) => ({ job_id: id, job_seq: 1, seq: n, type: 'token', at: new Date(), attempt: 1, data: { old: n } })) as never[]);
      await t.enqueue(newJob(q, { id }));
      assert.deepEqual((await t.readEvents(id, { after: 0 })).events.map((e) => `${e.id}:${e.type}`), ['1:queued']);
      const c = await claimOne(t, q);
      await t.appendEvents(c.id, c.lease.token, tokens(1), 0);
      const page = await t.readEvents(id, { after: 0 });
      assert.deepEqual(page.events.map((e) => `${e.id}:${e.type}`), ['1:queued', '2:started', '3:token']);
      assert.deepEqual(page.events[2]!.data, { text: 't0' });
      await t.settle(c.id, c.lease.token, asDone(intent));
    });
  });

  describe('wait() polling', () => {
    it('a stream of new waits does not postpone the shared poller', async function () {
      if (t.capabilities.pushWait) this.skip(); // change streams wake waits directly
      const other = await open();
      const q = uniqueQueue();
      const job = newJob(q);
      await t.enqueue(job);
      const c = await claimOne(other, q);
      const idle = newJob(uniqueQueue()); // never finishes: its waits only keep arriving
      await t.enqueue(idle);
      const stop = new AbortController();
      const churn = (async () => {
        while (!stop.signal.aborted) {
          void t.wait(idle.id, { timeout_ms: 30 }).catch(() => undefined);
          await delay(20);
        }
      })();
      try {
        setTimeout(() => void other.settle(c.id, c.lease.token, asDone(intent)), 300);
        const started = Date.now();
        const final = await t.wait(job.id, { timeout_ms: 8000 });
        assert.equal(final.status, 'done');
        assert.ok(Date.now() - started < 3000, `wait returned after ${Date.now() - started} ms`);
      } finally {
        stop.abort();
        await churn;
      }
    });
  });
});
