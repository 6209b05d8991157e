/**
 * The dashboard's shared feed (src/server/dashboard-feed.ts) on the memory
 * store: one read per interval for every viewer together, pushes only of
 * what changed, nothing read without a viewer, a failed read told once.
 */
import assert from 'node:assert/strict';
import { silentLogger } from '../src/logger.js';
import { createDashboardFeed, type DashboardFeed, type FeedUpdate } from '../src/server/dashboard-feed.js';
import type { Transport } from '../src/transport.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { delay, newJob, uniqueQueue, waitFor } from './helpers.js';

describe('dashboard feed', () => {
  let store: Transport;
  let feed: DashboardFeed | null = null;
  let broken = false;
  let statsReads = 0;

  beforeEach(async () => {
    store = createMemoryTransport();
    await store.init();
    broken = false;
    statsReads = 0;
  });
  afterEach(async () => {
    feed?.close();
    feed = null;
    await store.close();
  });

  /** The store as the feed sees it: stats counted, and failing while `broken`. */
  const watched = (): Transport =>
    new Proxy(store, {
      get(target, key, receiver) {
        const v = Reflect.get(target, key, receiver) as unknown;
        if (key === 'stats')
          return async () => {
            statsReads += 1;
            if (broken) throw new Error('store down');
            return target.stats();
          };
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });

  it('reads once per interval for all its viewers, and pushes only changes', async () => {
    feed = createDashboardFeed(watched(), { intervalMs: 50, log: silentLogger });
    const a: FeedUpdate[] = [];
    const b: FeedUpdate[] = [];
    const stopA = feed.subscribe((u) => a.push(u));
    const stopB = feed.subscribe((u) => b.push(u));
    await waitFor(() => a.length > 0 && b.length > 0, 2000, 'the first push');
    assert.equal(a[0]!.stats?.seq, 1);
    assert.deepEqual(a[0]!.workers, { workers: [] });
    await delay(300);
    // Nothing changed: no more pushes, while the store is read about every 50 ms once (not once per viewer).
    assert.equal(a.length, 1);
    assert.equal(b.length, 1);
    assert.ok(statsReads >= 3 && statsReads <= 8, `${statsReads} stats reads in ~300 ms at a 50 ms interval, two viewers`);

    const queue = uniqueQueue('feed');
    await store.enqueue(newJob(queue));
    await waitFor(() => a.length === 2, 2000, 'the change pushed');
    assert.equal(a[1]!.stats?.seq, 2);
    assert.equal(a[1]!.stats?.queues[queue]?.queued, 1);
    assert.equal(a[1]!.workers, undefined, 'workers did not change');
    assert.deepEqual(b[1], a[1]);

    // A late viewer gets the newest state at once.
    const c: FeedUpdate[] = [];
    const stopC = feed.subscribe((u) => c.push(u));
    assert.equal(c[0]?.stats?.queues[queue]?.queued, 1);
    assert.equal(feed.viewers, 3);

    stopA();
    stopB();
    stopC();
    await delay(100);
    const reads = statsReads;
    await delay(300);
    assert.equal(statsReads, reads, 'no viewer, no read');
  });

  it('tells a failed read once (and to a page that joins meanwhile), then sends everything when reads work again', async () => {
    feed = createDashboardFeed(watched(), { intervalMs: 30, log: silentLogger });
    const got: FeedUpdate[] = [];
    feed.subscribe((u) => got.push(u));
    await waitFor(() => got.length === 1, 2000, 'the first push');
    broken = true;
    await waitFor(() => got.length === 2, 2000, 'the failure told');
    assert.equal(got[1]!.feed_error?.message, 'store down');
    await delay(200);
    assert.equal(got.length, 2, 'told once, not at every tick');
    // A page that opens during the outage gets the last good state with the error, never as if it were live.
    const late: FeedUpdate[] = [];
    feed.subscribe((u) => late.push(u));
    assert.equal(late.length, 1);
    assert.ok(late[0]!.stats, 'the last good state');
    assert.equal(late[0]!.feed_error?.message, 'store down', 'with the error that makes it stale');
    broken = false;
    await waitFor(() => got.length === 3, 2000, 'the recovery');
    assert.ok(got[2]!.stats && got[2]!.workers, 'the whole state again, though it did not change');
  });
});
