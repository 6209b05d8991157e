/**
 * Root hooks: a test that leaves a worker running fails (graphile-worker
 * style), and the leftover worker is stopped so it cannot leak into the next;
 * a test that tried to connect beyond loopback fails (see loopback-only.ts).
 */
import { activeWorkers } from '../src/worker.js';
import { refusedConnects } from './loopback-only.js';

// The demo reasoner pauses between tokens for people watching; tests (and the processes they start) run it without.
process.env.REASONQ_DEMO_TOKEN_MS ??= '0';

export const mochaHooks = {
  async afterEach(this: Mocha.Context) {
    if (refusedConnects.length > 0) {
      const hosts = refusedConnects.splice(0);
      throw new Error(`"${this.currentTest?.title}" tried to connect beyond loopback: ${hosts.join(', ')}`);
    }
    if (activeWorkers.size === 0) return;
    const left = [...activeWorkers];
    await Promise.all(left.map((w) => w.stop(0)));
    throw new Error(`"${this.currentTest?.title}" left ${left.length} worker(s) running: ${left.map((w) => w.id).join(', ')}`);
  },
};
