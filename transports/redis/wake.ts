/**
 * How an idle claim waits without polling: the queues are grouped by Cluster
 * slot (one script call and one BLPOP can only span one slot), and the claim
 * blocks on the groups' wake lists on dedicated connections.
 */
import { ReasonqError } from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import { keySlot, type BlockingPool } from './connection.js';
import { queuePrefix, wakeKey } from './keys.js';

/** One group per Cluster slot; all queues in one group on a single server. */
export function slotGroups(queues: string[], prefix: string, cluster: boolean): string[][] {
  const unique = [...new Set(queues)];
  if (!cluster) return unique.length ? [unique] : [];
  const bySlot = new Map<number, string[]>();
  for (const q of unique) {
    const slot = keySlot(queuePrefix(prefix, q));
    bySlot.set(slot, [...(bySlot.get(slot) ?? []), q]);
  }
  return [...bySlot.values()];
}

/**
 * Block until a wake token arrives on one of the groups' wake lists, or `ms`
 * pass, or the signal aborts (which disconnects the blocked connection).
 * Several slots race one blocked call each; the first wake-up disconnects
 * the others. Errors are not thrown: the claim script that follows reports
 * an outage, and a short pause keeps the loop from spinning meanwhile.
 */
export async function blockForWake(pool: BlockingPool, prefix: string, groups: string[][], ms: number, signal: AbortSignal | undefined, log: Logger): Promise<void> {
  const seconds = Math.max(ms, 10) / 1000;
  const race = new AbortController();
  const onAbort = () => race.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race(
      groups.map((g) => pool.run((c) => c.blpop(...g.map((q) => wakeKey(prefix, q)), seconds), groups.length > 1 ? race.signal : signal)),
    );
  } catch (error) {
    log.debug({ err: error instanceof ReasonqError ? error.message : String(error) }, 'blocking claim interrupted');
    await new Promise<void>((resolve) => setTimeout(resolve, Math.min(ms, 100)));
  } finally {
    signal?.removeEventListener('abort', onAbort);
    race.abort();
  }
}
