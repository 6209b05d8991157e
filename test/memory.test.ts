import { describeTransport } from './conformance/index.js';
import { createMemoryTransport } from '../transports/memory/index.js';

describeTransport('memory', async (options) => {
  const t = createMemoryTransport(options);
  await t.init();
  return t;
});
