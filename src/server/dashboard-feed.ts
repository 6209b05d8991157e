/**
 * What the dashboard is pushed (GET /v1/dashboard/events): queue counts and
 * workers, read by ONE loop per server process however many pages watch.
 *
 * The loop runs only while someone watches. Every `intervalMs` it reads
 * `stats()` and `workers()` once, and hands each viewer what changed since
 * the last read (nothing when nothing changed). So N open dashboards cost
 * the store one stats read and one workers read per interval, not N, and no
 * dashboard costs anything. A read that fails is reported once to every
 * viewer as `feed_error` and tried again at the next tick.
 */
import type { Logger } from '../logger.js';
import type { Stats, Transport, WorkerInfo } from '../transport.js';

/** One push: `stats` and `workers` only when they changed; `seq` counts the stats changes (a page refetches its lists when it moves). */
export interface FeedUpdate {
  stats?: Stats & { seq: number };
  workers?: { workers: WireWorker[] };
  feed_error?: { message: string };
}

/** A worker as the page gets it: times as ISO text, and whether it was seen within its ttl. */
export type WireWorker = Omit<WorkerInfo, 'started_at' | 'last_seen'> & { started_at: string; last_seen: string; alive: boolean };

export interface DashboardFeed {
  /** Start watching: `push` gets the newest full state now (if read yet), then each change. Returns the way to stop. */
  subscribe(push: (update: FeedUpdate) => void): () => void;
  /** viewers right now */
  readonly viewers: number;
  /** store reads made so far (for tests and the cost figure in docs/architecture.md) */
  readonly reads: number;
  close(): void;
}

export function createDashboardFeed(transport: Transport, { intervalMs, log }: { intervalMs: number; log: Logger }): DashboardFeed {
  const viewers = new Set<(update: FeedUpdate) => void>();
  let timer: NodeJS.Timeout | null = null;
  let running = false;
  let closed = false;
  let reads = 0;
  let seq = 0;
  let lastStats = '';
  let lastWorkers = '';
  let current: FeedUpdate = {};
  let failing = false;
  let failingMessage = '';

  const tick = async () => {
    timer = null;
    if (closed || viewers.size === 0) return;
    running = true;
    const update: FeedUpdate = {};
    try {
      reads += 1;
      const [stats, workers] = await Promise.all([transport.stats(), transport.workers()]);
      const now = Date.now();
      const statsText = JSON.stringify(stats);
      if (statsText !== lastStats) {
        lastStats = statsText;
        seq += 1;
        update.stats = { ...stats, seq };
      }
      const wire = workers.map((w) => ({ ...w, started_at: w.started_at.toISOString(), last_seen: w.last_seen.toISOString(), alive: now - w.last_seen.getTime() <= w.ttl_ms }));
      const workersText = JSON.stringify(wire);
      if (workersText !== lastWorkers) {
        lastWorkers = workersText;
        update.workers = { workers: wire };
      }
      current = { stats: { ...JSON.parse(lastStats), seq }, workers: { workers: JSON.parse(lastWorkers) as WireWorker[] } };
      // Back after a failed read: everything again, so every page knows the feed works.
      if (failing) Object.assign(update, current);
      failing = false;
    } catch (error) {
      if (!failing) {
        failing = true;
        failingMessage = (error as Error).message;
        update.feed_error = { message: failingMessage };
        log.warn({ err: (error as Error).message }, 'dashboard feed: store read failed');
      }
    } finally {
      running = false;
    }
    if (update.stats || update.workers || update.feed_error) for (const push of viewers) push(update);
    schedule();
  };
  const schedule = () => {
    if (!timer && !running && !closed && viewers.size > 0) timer = setTimeout(() => void tick(), intervalMs);
  };

  return {
    subscribe(push) {
      viewers.add(push);
      // During an outage the last good state goes with the error, so a page that joins then does not show it as live.
      if (current.stats) push(failing ? { ...current, feed_error: { message: failingMessage } } : current);
      // The first viewer starts the loop at once; later ones get `current` and ride along.
      if (viewers.size === 1 && !running) {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => void tick(), 0);
      }
      return () => {
        viewers.delete(push);
        if (viewers.size === 0 && timer) {
          clearTimeout(timer);
          timer = null;
        }
      };
    },
    get viewers() {
      return viewers.size;
    },
    get reads() {
      return reads;
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      viewers.clear();
    },
  };
}
