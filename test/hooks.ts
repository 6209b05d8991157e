/**
 * Root hooks: a test that leaves a worker running fails (graphile-worker
 * style), and the leftover worker is stopped so it cannot leak into the next.
 */
import { activeWorkers } from '../src/worker.js';

export const mochaHooks = {
  async afterEach(this: Mocha.Context) {
    if (activeWorkers.size === 0) return;
    const left = [...activeWorkers];
    await Promise.all(left.map((w) => w.stop(0)));
    throw new Error(`"${this.currentTest?.title}" left ${left.length} worker(s) running: ${left.map((w) => w.id).join(', ')}`);
  },
};
