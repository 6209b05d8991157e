/**
 * Init-time check of `maxmemory-policy`: a Redis that may evict keys can
 * silently lose queued jobs. `noeviction` passes; `volatile-*` only evicts
 * keys with a TTL (here: wait notifications, worker records and analytics
 * rollups, which only cost numbers), so it is a
 * warning; `allkeys-*` can evict job records and is refused unless allowed.
 */
import { ConfigError } from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import type { RedisClient } from './connection.js';

export async function checkEvictionPolicy(client: RedisClient, options: { url: string; allowEviction: boolean; log: Logger }): Promise<void> {
  const nodes = 'nodes' in client && typeof client.nodes === 'function' ? client.nodes('master') : [client];
  for (const node of nodes) {
    let policy: string;
    try {
      const reply = (await node.config('GET', 'maxmemory-policy')) as string[];
      policy = String(reply[1] ?? '');
    } catch (error) {
      // Managed services often disable CONFIG; say so once and carry on.
      options.log.warn({ url: options.url, err: error instanceof Error ? error.message : String(error) }, 'could not read maxmemory-policy; make sure it is noeviction so queue keys are never evicted');
      return;
    }
    if (policy === 'noeviction' || policy === '') continue;
    const advice = `Redis at ${options.url} has maxmemory-policy ${policy}, which can evict queue keys and lose jobs; set it to noeviction (CONFIG SET maxmemory-policy noeviction)`;
    if (policy.startsWith('allkeys') && !options.allowEviction) {
      throw new ConfigError(`${advice}, or pass allowEviction to accept the risk`, 'REDIS_URL');
    }
    options.log.warn({ url: options.url, policy }, advice);
  }
}
