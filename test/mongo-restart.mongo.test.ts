/**
 * A FerretDB restart in the middle of a run: the server is killed (SIGKILL,
 * as for a crash) while a producer enqueues and a worker processes, then
 * started again on the same port and state dir. No acknowledged job is lost,
 * callers see retryable TransportErrors meanwhile, and the worker carries on
 * without a restart. Runs on its own FerretDB, whatever the other suites use.
 */
import assert from 'node:assert/strict';
import { TransportError } from '../src/errors.js';
import { createWorker, type Worker } from '../src/worker.js';
import { createMongoTransport, type MongoTransport } from '../transports/mongo/index.js';
import { itUnless } from './conformance/index.js';
import { delay, intent, newJob, uniqueQueue, waitFor } from './helpers.js';
import { ferretBinary, restartFerret, startFerret, type FerretServer } from './setup/mongo.js';

let noFerret: string | undefined;
try {
  ferretBinary();
} catch (error) {
  noFerret = `no FerretDB binary to restart: ${(error as Error).message}`;
}

describe('mongo transport: server restart mid-run', function () {
  this.timeout(90_000);
  let server: FerretServer | null = null;
  const transports: MongoTransport[] = [];
  let worker: Worker | null = null;

  afterEach(async () => {
    await worker?.stop(0);
  });
  after(async () => {
    await Promise.all(transports.map((t) => t.close()));
    await server?.stop();
  });

  itUnless(noFerret, 'loses no acknowledged job, and the worker carries on when the server is back', async () => {
    server = await startFerret();
    const port = server.port;
    const open = async () => {
      const t = createMongoTransport({ uri: server!.uri, db: 'restart', serverSelectionTimeoutMS: 1_000 });
      transports.push(t);
      await t.init();
      return t;
    };
    const producer = await open();
    const consumer = await open();
    const q = uniqueQueue('restart');
    let ran = 0;
    worker = createWorker({ transport: consumer, queues: [q], concurrency: 4, leaseMs: 3_000, claimWaitMs: 500, handler: async () => { ran += 1; await delay(5); return intent; } });
    const workerErrors: unknown[] = [];
    worker.on('transport-error', (e) => workerErrors.push(e));
    await worker.start();

    const acknowledged: string[] = [];
    const producerErrors: unknown[] = [];
    let producing = true;
    const pump = (async () => {
      while (producing) {
        const job = newJob(q);
        try {
          await producer.enqueue(job);
          acknowledged.push(job.id);
        } catch (error) {
          producerErrors.push(error);
          await delay(100);
        }
        await delay(15);
      }
    })();

    await delay(1_500);
    const beforeKill = acknowledged.length;
    await server.kill();
    await delay(1_000);
    server = await restartFerret(server);
    assert.equal(server.port, port);
    await delay(1_500);
    producing = false;
    await pump;
    console.log(`      ${acknowledged.length} acknowledged (${beforeKill} before the kill), ${producerErrors.length} producer errors, ${workerErrors.length} worker transport errors`);

    assert.ok(beforeKill > 5 && acknowledged.length > beforeKill, 'enqueued before and after the restart');
    assert.ok(producerErrors.length > 0, 'the outage was seen');
    for (const e of producerErrors) assert.ok(e instanceof TransportError && e.retryable, `not a retryable TransportError: ${String(e)}`);
    await waitFor(async () => (await producer.stats()).queues[q]?.done === acknowledged.length, 30_000, 'every acknowledged job done').catch(async (error: Error) => {
      // Say which jobs did not finish, and how they stand, before failing.
      const left = [];
      for (const id of acknowledged) {
        const j = await producer.get(id);
        if (j?.status !== 'done') left.push({ id, status: j?.status ?? 'missing', attempts: j?.attempts, lease_until: j?.lease?.until, error: j?.error?.code });
      }
      throw new Error(`${error.message}: ${JSON.stringify(left)}`);
    });
    for (const id of acknowledged) assert.equal((await producer.get(id))?.status, 'done', `job ${id}`);
    assert.ok(ran >= acknowledged.length);
    assert.ok(worker.isRunning, 'the same worker, never restarted');
    await worker.stop();
  });
});
