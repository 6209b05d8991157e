/**
 * The chaos suite, short form (the README's test command runs it): real
 * worker processes on memory-behind-http, redis and mongo (FerretDB), faults
 * at random instants, every acknowledged job checked by id. `npm run chaos`
 * runs the long form and prints the table (scripts/chaos.ts).
 */
import assert from 'node:assert/strict';
import { itUnless } from '../conformance/index.js';
import { runScenario, storeUnavailable, type Scenario, type StoreKind } from './driver.js';
import type { RunResult } from './driver.js';

const STORES: StoreKind[] = ['http', 'redis', 'mongo'];
/** FerretDB claims are atomic only within one connection: one worker process there, and fewer jobs (≈15 jobs/s). */
const workersOn = (store: StoreKind, n: number) => (store === 'mongo' ? 1 : n);
const jobsOn = (store: StoreKind, n: number) => (store === 'mongo' ? Math.min(n, 120) : n);

function assertClean(r: RunResult, what: string): void {
  const detail = `${what}: ${JSON.stringify(r)}`;
  assert.equal(r.lost, 0, `lost jobs — ${detail}`);
  assert.equal(r.notTerminal, 0, `jobs not terminal — ${detail}`);
  assert.equal(r.lateWritesAccepted, 0, `late writes accepted — ${detail}`);
  assert.equal(r.callsNeverSettled, 0, `calls never settled — ${detail}`);
  assert.equal(r.streamFaults, 0, `event streams that do not tell the job's story — ${detail}`);
  // Only Mongo writes a lifecycle event apart from the change it reports (README Limits): elsewhere none may be lost.
  if (r.store !== 'mongo') assert.equal(r.eventsLost, 0, `events lost — ${detail}`);
  assert.equal(r.unexpectedStatus, 0, `unexpected statuses — ${detail}`);
  assert.equal(r.attemptsCharged, 0, `a crash charged a handler attempt — ${detail}`);
}

describe('chaos (short form)', function () {
  this.timeout(300_000);
  describe('on the http server in front of redis', () => {
    itUnless(storeUnavailable('http+redis') ?? undefined, 'the server itself killed and restarted mid-run: workers and clients carry on, nothing lost', async () => {
      const r = await runScenario({ name: 'server restart', store: 'http+redis', jobs: 600, workers: 3, concurrency: 8, faults: { restart: 2 } });
      assertClean(r, 'server restart');
      assert.equal(r.faults.restart, 2);
    });
  });
  for (const store of STORES) {
    describe(`on ${store === 'http' ? 'memory behind http' : store === 'mongo' ? 'mongo (FerretDB)' : 'redis'}`, () => {
      const skip = storeUnavailable(store) ?? undefined;

      itUnless(skip, 'poison pills: each ends error / WORKER_CRASHED after its stall budget, and no other job ends in error', async () => {
        // A budget of 3 stalls where there are several processes. With FerretDB's one process, a job that waits to run alone
        // waits beside the jobs already running, and a fresh poison pill among them takes it down too: the default budget (10) there.
        const scenario: Scenario = { name: 'poison', store, jobs: jobsOn(store, 2000), poison: store === 'mongo' ? 4 : 20, ...(store === 'mongo' ? {} : { maxStalls: 3 }), workers: workersOn(store, 3), concurrency: 8, faults: {}, deadlineMs: 240_000 };
        const r = await runScenario(scenario);
        assertClean(r, 'poison');
        assert.equal(r.poisonCrashed, scenario.poison, `every poison pill WORKER_CRASHED — ${JSON.stringify(r)}`);
        assert.equal(r.innocentErrors, 0, `no innocent job ends in error — ${JSON.stringify(r)}`);
      });

      itUnless(skip, 'kill -9, SIGSTOP past the lease, SIGTERM then SIGKILL, cancels from another process, a frozen store, a store restart: nothing lost, no late write, every call settled', async () => {
        const faults: Scenario['faults'] = { kill: 3, stop: 1, term: 1, cancel: 2, freeze: 1, ...(store === 'http' ? {} : { restart: 2 }) };
        const r = await runScenario({ name: 'faults', store, jobs: jobsOn(store, 600), hold: 6, workers: workersOn(store, 3), concurrency: 8, faults });
        assertClean(r, 'faults');
        assert.equal(r.innocentErrors, 0, JSON.stringify(r));
        assert.ok(r.cancelP99 === null || r.cancelP99 < 5_000, `cancel reaches the handler promptly: ${JSON.stringify(r)}`);
      });

      itUnless(skip, 'the store unreachable when the workers start: they carry on once it is up', async () => {
        const r = await runScenario({ name: 'unreachable at start', store, jobs: jobsOn(store, 200), workers: workersOn(store, 2), concurrency: 4, faults: {}, unreachableAtStart: true });
        assertClean(r, 'unreachable at start');
      });
    });
  }
});
