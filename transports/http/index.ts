// Placeholder until the http transport lands; the factory reports it clearly.
import { ConfigError } from '../../src/errors.js';
import type { Transport } from '../../src/transport.js';

export function createHttpTransport(_options: Record<string, unknown>): Transport {
  throw new ConfigError('the http transport is not built yet', 'REASONING_TRANSPORT');
}
