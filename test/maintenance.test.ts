/** One maintainer at a time: the lock holder sweeps, the others wait for it to lapse. */
import assert from 'node:assert/strict';
import { Maintainer } from '../src/maintenance.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { delay } from './helpers.js';

describe('maintenance', () => {
  it('of several maintainers on one store only the lock holder sweeps, and another takes over when it stops', async () => {
    const store = createMemoryTransport();
    await store.init();
    const sweeps: string[] = [];
    let current = '';
    const sweep = store.sweep.bind(store);
    store.sweep = (now) => {
      sweeps.push(current);
      return sweep(now);
    };
    const errors: unknown[] = [];
    const make = (id: string) => new Maintainer(store, id, 50, (e) => errors.push(e));
    const [a, b, c] = [make('a'), make('b'), make('c')];
    const round = async () => {
      for (const m of [a, b, c]) {
        current = (m as unknown as { owner: string }).owner;
        await m.tick();
      }
    };
    for (let i = 0; i < 5; i++) await round();
    assert.deepEqual(sweeps, ['a', 'a', 'a', 'a', 'a'], 'one sweep a round, by the holder');
    assert.equal(a.leading, true);
    assert.equal(b.leading, false);
    sweeps.length = 0;
    // a stops renewing: after its lock lapses (3 rounds' worth), one of the others leads.
    await delay(200);
    for (let i = 0; i < 3; i++) {
      for (const m of [b, c]) {
        current = (m as unknown as { owner: string }).owner;
        await m.tick();
      }
    }
    assert.deepEqual(sweeps, ['b', 'b', 'b']);
    assert.deepEqual(errors, []);
    await store.close();
  });
});
