/**
 * The transport conformance suite: every guarantee of docs/architecture.md stated as a
 * test, run against every transport on a real server
 * (`describeTransport(name, factory)`, like undici's `cacheStoreTests`).
 */
import type { Transport, TransportOptions } from '../../src/transport.js';
import { lifecycleTests } from './lifecycle.js';
import { workerTests } from './worker.js';
import { leadTests, queryTests } from './query.js';
import { fieldTests } from './fields.js';
import { eventTests } from './events.js';
import { moveTests } from './moves.js';
import { operatorTests } from './operator.js';
import { analyticsTests } from './analytics.js';

export interface TransportFactory {
  /** A fresh, initialised transport on a real server. */
  (options?: TransportOptions): Promise<Transport>;
}

export interface ConformanceOptions {
  /**
   * Tests this store cannot pass, each with the reason printed as the
   * skipped test's title (pg-boss style: visible, never silent).
   */
  skip?: Partial<Record<'atomicClaimRace' | 'lead' | 'imports' | 'moves', string>>;
  /** lease used by lease-expiry tests; slow stores may want longer */
  shortLeaseMs?: number;
}

export interface SuiteContext {
  /** the transport of the current test (fresh per describe block) */
  transport(): Transport;
  factory: TransportFactory;
  options: ConformanceOptions;
}

export function describeTransport(name: string, factory: TransportFactory, options: ConformanceOptions = {}): void {
  describe(`transport conformance: ${name}`, function () {
    this.timeout(30_000);
    let transport: Transport | null = null;
    before(async () => {
      transport = await factory();
    });
    after(async () => {
      await transport?.close();
    });
    const ctx: SuiteContext = {
      transport: () => {
        if (!transport) throw new Error('transport not ready');
        return transport;
      },
      factory,
      options,
    };
    lifecycleTests(ctx);
    fieldTests(ctx);
    queryTests(ctx);
    leadTests(ctx);
    workerTests(ctx);
    eventTests(ctx);
    moveTests(ctx);
    operatorTests(ctx);
    analyticsTests(ctx);
  });
}

/** Skip visibly with a reason in the test title, or run. */
export function itUnless(reason: string | undefined, title: string, fn: (this: Mocha.Context) => Promise<void>): void {
  if (reason) it(`${title} [SKIPPED: ${reason}]`, function () { this.skip(); });
  else it(title, fn);
}
