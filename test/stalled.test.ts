/**
 * What a user sees of a crash before the sweep has recovered it: a job whose
 * lease ran out shows as stalled (API, CLI), a dead worker's counts as
 * stale, and the registry drops dead workers after a configurable horizon.
 */
import assert from 'node:assert/strict';
import { formatJob, formatWorkers } from '../src/cli/output.js';
import { loadConfig } from '../src/config.js';
import { reviveJob } from '../src/job.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { claimOne, delay, newJob, uniqueQueue } from './helpers.js';
import { startServer } from './server-helpers.js';

describe('stalled jobs and dead workers', () => {
  it('a job whose lease ran out shows as stalled in the API (job and list) and the CLI until it is recovered', async () => {
    const { store, url } = await startServer({ maintenanceMs: 3_600_000 }); // no sweep during the test
    const q = uniqueQueue();
    const { job } = await store.enqueue(newJob(q));
    await claimOne(store, q, 100, 'crashed-worker');
    const fresh = (await (await fetch(`${url}/v1/jobs/${job.id}`)).json()) as { job: { stalled: boolean } };
    assert.equal(fresh.job.stalled, false, 'a live lease is not stalled');
    await delay(150);
    const one = (await (await fetch(`${url}/v1/jobs/${job.id}`)).json()) as { job: Record<string, unknown> };
    assert.equal(one.job.status, 'processing');
    assert.equal(one.job.stalled, true);
    const list = (await (await fetch(`${url}/v1/jobs?queue=${q}&status=processing`)).json()) as { jobs: { stalled: boolean }[] };
    assert.equal(list.jobs[0]?.stalled, true);
    const revived = reviveJob(one.job);
    assert.equal('stalled' in revived, false, 'derived, not part of the record');
    assert.match(formatJob(revived), /processing — stalled: its lease ran out [\d.]+m?s ago \(crashed-worker stopped renewing it\)/);
    await store.sweep();
    const after = (await (await fetch(`${url}/v1/jobs/${job.id}`)).json()) as { job: Record<string, unknown> };
    assert.equal(after.job.status, 'queued');
    assert.equal(after.job.stalled, false);
    assert.equal(after.job.stalls, 1);
    assert.match(formatJob(reviveJob(after.job)), /stalls:\s+1\/10 \(runs that lost their lease/);
  });

  it("a dead worker's running count shows as stale; the registry drops it after the configured horizon", async () => {
    const seen = new Date(Date.now() - 60_000);
    const dead = { id: 'w-dead', queues: ['q'], concurrency: 4, running: 4, host: 'h', pid: 1, started_at: seen, last_seen: seen, ttl_ms: 15_000, processed: 9, failed: 0 };
    assert.match(formatWorkers([dead]), /^dead +w-dead .* last running=4\/4 \(stale\)/);
    assert.match(formatWorkers([{ ...dead, last_seen: new Date() }]), /^alive +w-dead .* {2}running=4\/4 {2}/);
    const t = createMemoryTransport({ workerHorizonMs: 30_000 });
    await t.init();
    await t.heartbeat(dead);
    await t.heartbeat({ ...dead, id: 'w-recent', last_seen: new Date(Date.now() - 10_000) });
    assert.deepEqual((await t.workers()).map((w) => w.id), ['w-recent'], 'seen a minute ago: past a 30 s horizon');
    assert.equal(loadConfig({}).workerHorizonMs, 10 * 60_000, 'ten minutes unless set');
    assert.equal(loadConfig({ REASONQ_WORKER_HORIZON_MS: '120000' }).workerHorizonMs, 120_000);
  });
});
