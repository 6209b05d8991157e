/**
 * Maintenance — recovering expired leases and applying retention (the
 * transport's `sweep`), then delivering the callbacks the store owes (the
 * outbox, callbacks.ts) — has one owner at a time. Every worker and server
 * runs a Maintainer; the one holding the store's `maintenance` lock sweeps
 * every `maintenanceMs` (config.ts), the others only try for the lock, which
 * they take over when its holder stops renewing it (river's elected leader).
 * A store without a lock (`Transport.lead` absent: the http transport, whose
 * server maintains the store behind it) is never swept from here.
 *
 * Claims still recover an expired lease they come across, on every store:
 * that is part of a claim (see transport.ts), not maintenance.
 */
import type { Logger } from './logger.js';
import type { Transport } from './transport.js';

const MAINTENANCE_LOCK = 'maintenance';

export class Maintainer {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  /** this process held the lock at its last try */
  leading = false;

  constructor(
    private readonly transport: Transport,
    private readonly owner: string,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
    private readonly log?: Logger,
    /** more work of the maintainer's after the sweep: the callbacks the store owes (callbacks.ts deliverDue) */
    private readonly deliver?: () => Promise<void>,
  ) {}

  start(): void {
    if (this.timer || !this.transport.lead) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stop, and hand the lock back when held, so that another process takes over at its next round instead of after the lock lapses. */
  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.leading || !this.transport.lead) return Promise.resolve();
    this.leading = false;
    return this.transport.lead(MAINTENANCE_LOCK, this.owner, 0).then(() => undefined, this.onError);
  }

  /** Take or renew the lock; a store that does not answer within the lock's own lifetime counts as "not leading". */
  private lead(): Promise<boolean> {
    const ttl = this.intervalMs * 3;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ttl)));
    return Promise.race([this.transport.lead!(MAINTENANCE_LOCK, this.owner, ttl), late]).finally(() => clearTimeout(timer));
  }

  /** One round: renew or take the lock; sweep when held. While a long sweep runs, the lock is only renewed, so that nobody else starts one. */
  async tick(): Promise<void> {
    if (!this.transport.lead) return;
    if (this.busy) {
      if (this.leading) await this.lead().catch(this.onError);
      return;
    }
    this.busy = true;
    try {
      // The lock outlives three missed rounds, so a busy holder keeps it and a dead one loses it soon.
      const leading = await this.lead();
      if (leading !== this.leading) this.log?.info({ owner: this.owner }, leading ? 'maintaining the store' : 'no longer maintaining the store');
      this.leading = leading;
      if (leading) {
        await this.transport.sweep();
        await this.deliver?.();
      }
    } catch (error) {
      this.onError(error);
    } finally {
      this.busy = false;
    }
  }
}
