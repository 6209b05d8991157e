// Placeholder until the mongo transport lands; the factory reports it clearly.
import { ConfigError } from '../../src/errors.js';
import type { Transport } from '../../src/transport.js';

export function createMongoTransport(_options: Record<string, unknown>): Transport {
  throw new ConfigError('the mongo transport is not built yet', 'REASONING_TRANSPORT');
}
