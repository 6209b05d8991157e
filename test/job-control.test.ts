/** JobControl: the worker's per-job abort switch and its race against the handler. */
import assert from 'node:assert/strict';
import { JobControl } from '../src/job-control.js';

describe('JobControl', () => {
  it('makes its AbortSignal on first use, already aborted with the reason when abort came first', () => {
    const early = new JobControl();
    early.abort('why');
    assert.equal(early.aborted, true);
    assert.equal(early.signal.aborted, true);
    assert.equal(early.signal.reason, 'why');
    const late = new JobControl();
    const signal = late.signal;
    let fired: unknown = null;
    signal.addEventListener('abort', () => (fired = signal.reason));
    late.abort('later');
    late.abort('ignored');
    assert.equal(fired, 'later');
    assert.equal(late.reason, 'later', 'the first reason stays');
  });

  it('race settles with the handler, turns a synchronous throw into a rejection, and rejects at once on abort', async () => {
    assert.equal(await new JobControl().race((a: number, b: number) => a + b, 1, 2), 3);
    assert.equal(await new JobControl().race(async (a: string, b: string) => a + b, 'x', 'y'), 'xy');
    await assert.rejects(
      new JobControl().race(() => {
        throw new Error('sync');
      }, 0, 0),
      /sync/,
    );
    const control = new JobControl();
    const never = control.race(() => new Promise<string>(() => {}), 0, 0);
    setTimeout(() => control.abort(new Error('canceled')), 10);
    await assert.rejects(never, /canceled/);
    const aborted = new JobControl();
    aborted.abort(new Error('before'));
    let ran = false;
    await assert.rejects(aborted.race(() => (ran = true), 0, 0), /before/);
    assert.equal(ran, false, 'an aborted job never starts its handler');
  });

  it('a handler that aborts its own job synchronously loses the race, and its later rejection is not unhandled', async () => {
    const control = new JobControl();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const raced = control.race(() => {
        control.abort(new Error('self'));
        return Promise.reject(new Error('late'));
      }, 0, 0);
      await assert.rejects(raced, /self/);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
