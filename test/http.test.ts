/** The conformance suite over HTTP: a real `reasonq serve` on port 0 in front of the memory store. */
import { describeTransport } from './conformance/index.js';
import { createHttpTransport } from '../transports/http/index.js';
import { startServer } from './server-helpers.js';

describeTransport('http', async (options) => {
  const { url } = await startServer({ ...options, token: 'conformance-token' });
  const t = createHttpTransport({ url, token: 'conformance-token' });
  await t.init();
  return t;
});
