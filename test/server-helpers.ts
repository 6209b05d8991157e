/** A real `reasonq serve` on port 0 in front of a memory store, closed after the run. */
import type { FastifyInstance } from 'fastify';
import { createMemoryTransport, type MemoryTransportOptions } from '../transports/memory/index.js';
import { createServer, type ServerOptions } from '../src/server/app.js';
import { createCallbackSender, type CallbackConfig } from '../src/callbacks.js';
import type { Transport } from '../src/transport.js';

const servers: { app: FastifyInstance; store: Transport }[] = [];

after(async () => {
  for (const { app, store } of servers.splice(0)) {
    await app.close();
    await store.close();
  }
});

export type StartOptions = MemoryTransportOptions &
  Omit<ServerOptions, 'transport' | 'callbacks'> & {
    /** callback addresses let through (loopback receivers in tests) */
    callbackAllow?: string[];
    callbackSecrets?: string[];
    callbackConfig?: Partial<CallbackConfig>;
  };

export async function startServer(options: StartOptions = {}) {
  const { retentionMs, eventsMax, maxJobs, maxBytes, callbackAllow, callbackSecrets, callbackConfig, ...serverOptions } = options;
  const store = createMemoryTransport({ retentionMs, eventsMax, maxJobs, maxBytes });
  await store.init();
  const callbacks = createCallbackSender({ allow: callbackAllow ?? [], secrets: callbackSecrets ?? [], ...callbackConfig });
  const app = await createServer({ ...serverOptions, transport: store, callbacks });
  app.addHook('onClose', () => callbacks.close());
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  servers.push({ app, store });
  return { app, store, url, callbacks };
}
