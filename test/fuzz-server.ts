/**
 * The server the contract fuzz run (test/openapi-fuzz.test.ts) aims at: a real
 * `reasonq serve` on 127.0.0.1, port 0, memory store, tokens for every scope,
 * and a worker in the process answering jobs of the default queue, so waits
 * and intents end. Long-polls answer within `maxWaitMs` and streams within
 * `sseMaxMs`, both server options: the documented limits stay the contract
 * (a wait may ask for an hour), the fuzzer is not kept waiting by them.
 *
 * Run by hand (prints the URL, serves until Ctrl-C):
 *   node --import tsx test/fuzz-server.ts
 */
import type { FastifyInstance } from 'fastify';
import { createMemoryTransport } from '../transports/memory/index.js';
import { createServer } from '../src/server/app.js';
import { createWorker, type Worker } from '../src/worker.js';
import type { Transport } from '../src/transport.js';

export const FUZZ_TOKEN = 'fuzz-admin-token-0123456789';

export interface FuzzServer {
  url: string;
  app: FastifyInstance;
  store: Transport;
  worker: Worker;
  close(): Promise<void>;
}

export async function startFuzzServer(): Promise<FuzzServer> {
  const store = createMemoryTransport({ maxJobs: 20_000 });
  await store.init();
  const worker = createWorker({ transport: store, handler: async () => ({ action: 'finish', finish: true, reasoning: 'fuzz' }), claimWaitMs: 100, concurrency: 4 });
  const app = await createServer({ transport: store, tokens: { admin: [FUZZ_TOKEN] }, worker, maxWaitMs: 300, sseMaxMs: 500, sseKeepAliveMs: 100, maintenanceMs: 1000 });
  // FUZZ_LOG=1: every 4xx/5xx answer on stderr, to see what the fuzzer hit.
  if (process.env.FUZZ_LOG) {
    app.addHook('onSend', async (request, reply, payload) => {
      if (reply.statusCode >= 400) process.stderr.write(`${reply.statusCode} ${request.method} ${request.url.slice(0, 120)} ${String(payload).slice(0, 300)}\n`);
      return payload;
    });
  }
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  await worker.start();
  return {
    url,
    app,
    store,
    worker,
    async close() {
      await worker.stop(0);
      await app.close();
      await store.close();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startFuzzServer();
  console.log(server.url);
  process.once('SIGINT', () => void server.close().then(() => process.exit(0)));
}
