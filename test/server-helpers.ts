/** A real `reasonq serve` on port 0 in front of a memory store, closed after the run. */
import type { FastifyInstance } from 'fastify';
import { createMemoryTransport } from '../transports/memory/index.js';
import { createServer } from '../src/server/app.js';
import type { Transport, TransportOptions } from '../src/transport.js';

const servers: { app: FastifyInstance; store: Transport }[] = [];

after(async () => {
  for (const { app, store } of servers.splice(0)) {
    await app.close();
    await store.close();
  }
});

export async function startServer(options: TransportOptions & { token?: string; bodyLimitBytes?: number } = {}) {
  const store = createMemoryTransport({ retentionMs: options.retentionMs });
  await store.init();
  const app = await createServer({ transport: store, token: options.token, bodyLimitBytes: options.bodyLimitBytes });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  servers.push({ app, store });
  return { app, store, url };
}

