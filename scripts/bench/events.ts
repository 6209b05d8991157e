/**
 * `npm run bench:events`: token streaming, per store. A worker's handler
 * emits tokens at a steady rate (a model streaming); a reader follows the job
 * over SSE through `reasonq serve` (in this process, in front of the store).
 * Reported per store:
 * - emit→client latency p50/p99: from `ctx.emit` to the token parsed by the
 *   SSE reader (both in this process: one clock);
 * - store writes per 1,000 tokens: `appendEvents` calls the worker made
 *   (each one store write: a Lua script on Redis; an update and an insert
 *   on Mongo), with the default coalescing (REASONQ_EMIT_INTERVAL_MS 50) and
 *   with none (interval 0: a write as soon as the previous one is back).
 *
 *   npm run bench:events [-- --tokens 2000 --rate 200 --stores memory,redis,mongo]
 */
import { cpus } from 'node:os';
import { request as httpRequest } from 'node:http';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '../../dist/src/config.js';
import { createServer } from '../../dist/src/server/app.js';
import { createWorker } from '../../dist/src/worker.js';
import { buildJob } from '../../dist/src/job.js';
import type { Transport } from '../../dist/src/transport.js';
import { createMemoryTransport } from '../../dist/transports/memory/index.js';
import { createRedisTransport } from '../../dist/transports/redis/index.js';
import { createMongoTransport } from '../../dist/transports/mongo/index.js';
import { removeRedis, startRedis } from '../../test/setup/redis.js';
import { freshDb, startMongoServer } from '../../test/setup/mongo.js';
import { percentile } from './common.js';
import { sseReader } from '../../test/sse.js';

const { values } = parseArgs({ options: { tokens: { type: 'string', default: '2000' }, rate: { type: 'string', default: '200' }, stores: { type: 'string', default: 'memory,redis,mongo' } } });
const TOKENS = Number(values.tokens);
/** tokens a second the handler emits: 200/s is a fast model's pace */
const RATE = Number(values.rate);

const now = () => performance.timeOrigin + performance.now();

interface Figures {
  p50: number;
  p99: number;
  writesPer1000: number;
  writesPer1000Uncoalesced: number;
  /** Mongo: commands per 1,000 tokens (coalesced) */
  commandsPer1000?: number;
}

/** Count the worker's store writes of events. */
function countingAppends(transport: Transport): { transport: Transport; count: () => number } {
  let appends = 0;
  const wrapped = new Proxy(transport, {
    get(target, prop, receiver) {
      if (prop === 'appendEvents') {
        return (...args: Parameters<Transport['appendEvents']>) => {
          appends += 1;
          return target.appendEvents(...args);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { transport: wrapped, count: () => appends };
}

/** Follow a job's SSE stream to its end; `onToken(sentAt)` for every token. */
function followSse(url: string, onToken: (sentAt: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8');
      res.on(
        'data',
        sseReader((message) => {
          if (message.data === undefined || message.event === 'end') return;
          const event = JSON.parse(message.data) as { type: string; data: { sent?: number } };
          if (event.type === 'token' && event.data.sent) onToken(event.data.sent);
        }),
      );
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** One streamed job: the handler emits `tokens` at RATE/s; returns latencies and the writes the worker made. */
async function streamOnce(store: Transport, emitIntervalMs: number, tokens: number): Promise<{ latencies: number[]; writes: number }> {
  const app = await createServer({ transport: store });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const { transport, count } = countingAppends(store);
  const queue = `bench-events-${Math.random().toString(36).slice(2, 8)}`;
  const worker = createWorker({
    transport,
    queues: [queue],
    emitIntervalMs,
    claimWaitMs: 200,
    handler: async (_payload, ctx) => {
      const gap = 1000 / RATE;
      const start = now();
      for (let i = 0; i < tokens; i++) {
        const due = start + i * gap;
        if (due > now()) await new Promise((r) => setTimeout(r, due - now()));
        void ctx.emit('token', { text: `t${i} `, sent: now() });
      }
      return { action: 'finish', finish: true };
    },
  });
  const latencies: number[] = [];
  try {
    const { job } = await store.enqueue(buildJob({ queue, payload: { goal: 'stream' } }));
    const reading = followSse(`${url}/v1/jobs/${job.id}/events`, (sent) => latencies.push(now() - sent));
    await worker.start();
    await reading;
    return { latencies, writes: count() };
  } finally {
    await worker.stop();
    await app.close();
  }
}

async function measure(name: string, make: () => Promise<Transport>, tokens: number, commands?: () => number): Promise<Figures> {
  const store = await make();
  try {
    await streamOnce(store, DEFAULTS.emitIntervalMs, Math.min(200, tokens)); // warm-up
    const before = commands?.() ?? 0;
    const coalesced = await streamOnce(store, DEFAULTS.emitIntervalMs, tokens);
    const used = (commands?.() ?? 0) - before;
    const eager = await streamOnce(store, 0, tokens);
    const sorted = coalesced.latencies.sort((a, b) => a - b);
    if (sorted.length !== tokens) throw new Error(`${name}: the reader got ${sorted.length} of ${tokens} tokens`);
    return {
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      writesPer1000: (coalesced.writes / tokens) * 1000,
      writesPer1000Uncoalesced: (eager.writes / tokens) * 1000,
      ...(commands ? { commandsPer1000: (used / tokens) * 1000 } : {}),
    };
  } finally {
    await store.close();
  }
}

const results: [string, Figures][] = [];
const wanted = new Set(values.stores.split(','));
if (wanted.has('memory')) {
  results.push(['memory', await measure('memory', async () => createMemoryTransport(), TOKENS)]);
}
if (wanted.has('redis')) {
  const server = await startRedis({ aof: false });
  try {
    results.push([
      'redis',
      await measure('redis', async () => {
        const t = createRedisTransport({ url: server.url });
        await t.init();
        return t;
      }, TOKENS),
    ]);
  } finally {
    await removeRedis(server);
  }
}
if (wanted.has('mongo')) {
  const server = await startMongoServer();
  let commands = 0;
  try {
    // FerretDB here (≈15 jobs/s): fewer tokens, same rate; the figures to read are writes and commands per 1,000 tokens.
    const tokens = server.kind === 'ferretdb' ? Math.min(TOKENS, 600) : TOKENS;
    const figures = await measure(
      `mongo (${server.kind})`,
      async () => {
        const t = createMongoTransport({ uri: server.uri, db: freshDb(), commandListener: () => void (commands += 1) });
        await t.init();
        return t;
      },
      tokens,
      () => commands,
    );
    results.push([`mongo (${server.kind}, ${tokens} tokens)`, figures]);
  } finally {
    await server.stop();
  }
}

const f = (n: number) => n.toFixed(1);
console.log(`Node ${process.version}, ${cpus().length} cores; ${TOKENS} tokens at ${RATE}/s streamed by one handler, read live over SSE through reasonq serve (same process)\n`);
console.log('| store | emit→client p50 | p99 | store writes / 1,000 tokens | without coalescing | Mongo commands / 1,000 tokens |');
console.log('|---|---|---|---|---|---|');
for (const [name, r] of results) console.log(`| ${name} | ${f(r.p50)} ms | ${f(r.p99)} ms | ${f(r.writesPer1000)} | ${f(r.writesPer1000Uncoalesced)} | ${r.commandsPer1000 === undefined ? '—' : f(r.commandsPer1000)} |`);
