/**
 * The one place `src/` reaches into `transports/`: pick a store by name.
 * Imports are dynamic so that a memory-only user never loads a driver.
 */
import { bounded } from './bounded.js';
import type { Config } from './config.js';
import { ConfigError } from './errors.js';
import { withFallback } from './fallback.js';
import type { Logger } from './logger.js';
import type { Transport } from './transport.js';

/**
 * The transport the config names, bounded (src/bounded.ts) and initialised.
 * With `migrateFrom`, it also finds the jobs of the store a queue moves
 * away from (src/fallback.ts).
 */
export async function createTransport(config: Config, logger?: Logger): Promise<Transport> {
  if (!config.migrateFrom) return createStore(config, logger);
  const target = await createStore(config, logger);
  try {
    return withFallback(target, await createStore({ ...config, transport: config.migrateFrom }, logger));
  } catch (error) {
    await target.close().catch(() => undefined);
    throw error;
  }
}

async function createStore(config: Config, logger?: Logger): Promise<Transport> {
  let transport: Transport;
  switch (config.transport) {
    case 'memory': {
      const { createMemoryTransport } = await import('../transports/memory/index.js');
      transport = createMemoryTransport({ retentionMs: config.retentionMs, workerHorizonMs: config.workerHorizonMs, eventsMax: config.events.max, maxJobs: config.memory.maxJobs, maxBytes: config.memory.maxBytes });
      break;
    }
    case 'http': {
      const { createHttpTransport } = await import('../transports/http/index.js');
      const { url, token, clientToken, workerToken, timeoutMs } = config.http;
      transport = createHttpTransport({ url, token, clientToken, workerToken, timeoutMs });
      break;
    }
    case 'mongo': {
      const { createMongoTransport } = await import('../transports/mongo/index.js');
      transport = createMongoTransport({ ...config.mongo, retentionMs: config.retentionMs, workerHorizonMs: config.workerHorizonMs, eventsMax: config.events.max, logger });
      break;
    }
    case 'redis': {
      const { createRedisTransport } = await import('../transports/redis/index.js');
      transport = createRedisTransport({ url: config.redis.url, retentionMs: config.retentionMs, workerHorizonMs: config.workerHorizonMs, eventsMax: config.events.max, logger });
      break;
    }
    default:
      throw new ConfigError(`REASONING_TRANSPORT must be one of mongo, redis, http, memory (got ${String(config.transport)})`, 'REASONING_TRANSPORT');
  }
  const store = bounded(transport, { timeoutMs: config.storeTimeoutMs });
  try {
    await store.init();
  } catch (error) {
    await store.close().catch(() => undefined); // reconnecting in the background would keep the process alive
    throw error;
  }
  return store;
}
