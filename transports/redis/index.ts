// Placeholder until the redis transport lands; the factory reports it clearly.
import { ConfigError } from '../../src/errors.js';
import type { Transport } from '../../src/transport.js';

export function createRedisTransport(_options: Record<string, unknown>): Transport {
  throw new ConfigError('the redis transport is not built yet', 'REASONING_TRANSPORT');
}
