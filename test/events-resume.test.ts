/**
 * A reader of a 2,000-token stream loses its connection midway and comes
 * back with `Last-Event-ID`: it gets every token exactly once, in order.
 * Twice: the SSE connection cut under a live server, and the `reasonq serve`
 * process itself killed and started again in front of a Redis store.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createWorker } from '../src/worker.js';
import { createTransport } from '../src/transports.js';
import { loadConfig } from '../src/config.js';
import type { Transport } from '../src/transport.js';
import { buildJob } from '../src/job.js';
import { startServer } from './server-helpers.js';
import { sseReader } from './sse.js';
import { delay, intent, uniqueQueue } from './helpers.js';
import { freePort, redisAvailable, removeRedis, startRedis, type RedisServer } from './setup/redis.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TOKENS = 2000;

interface SseEvent {
  id: number;
  type: string;
  data: { text?: string };
}

/**
 * Read an SSE response until it ends or `cutAfter` events came (then destroy
 * the socket, as a dropped connection). Resolves with the events and why it stopped.
 */
function readSse(url: string, lastEventId: number | null, cutAfter: number, onEvent: (e: SseEvent) => void): Promise<'end' | 'cut' | 'dropped' | 'refused'> {
  return new Promise((resolvePromise) => {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (lastEventId !== null) headers['last-event-id'] = String(lastEventId);
    const req = httpRequest(url, { headers });
    let settled = false;
    const done = (why: 'end' | 'cut' | 'dropped' | 'refused') => {
      if (!settled) resolvePromise(why);
      settled = true;
    };
    req.on('error', () => done('refused'));
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode === 204) {
        res.resume();
        return done('end');
      }
      assert.equal(res.statusCode, 200);
      let count = 0;
      let sawEnd = false;
      res.setEncoding('utf8');
      res.on(
        'data',
        sseReader((fields) => {
          if (settled) return;
          if (fields.event === 'end') sawEnd = true;
          else if (fields.id !== undefined && fields.data !== undefined) {
            const event = JSON.parse(fields.data) as SseEvent;
            assert.equal(event.id, Number(fields.id), 'the SSE id is the event id');
            onEvent(event);
            if (++count >= cutAfter) {
              res.destroy();
              req.destroy();
              done('cut');
            }
          }
        }),
      );
      res.on('close', () => done(sawEnd ? 'end' : 'dropped'));
      res.on('error', () => done('dropped'));
    });
    req.end();
  });
}

/** Follow a job's stream to its end through cuts, reconnecting with the last id seen (as EventSource does). */
async function followThroughCuts(url: string, cuts: number[], onEvent?: (count: number) => void): Promise<SseEvent[]> {
  const got: SseEvent[] = [];
  let last: number | null = null;
  let reconnects = 0;
  for (let round = 0; ; round++) {
    const cutAfter = cuts[round] ?? Infinity;
    const why = await readSse(url, last, cutAfter, (e) => {
      got.push(e);
      last = e.id;
      onEvent?.(got.length);
    });
    if (why === 'end') return got;
    if (++reconnects > 400) throw new Error(`gave up after ${reconnects} reconnects (last ${why})`);
    if (why === 'refused' || why === 'dropped') await delay(100);
  }
}

function assertEveryTokenOnce(events: SseEvent[]): void {
  events.forEach((e, i) => assert.equal(e.id, i + 1, `event ${i} has id ${e.id}: no gap, no duplicate`));
  const texts = events.filter((e) => e.type === 'token').map((e) => e.data.text);
  assert.equal(texts.length, TOKENS, `${texts.length} tokens of ${TOKENS}`);
  texts.forEach((t, i) => assert.equal(t, `t${i} `));
  assert.equal(events[0]!.type, 'queued');
  assert.equal(events.at(-1)!.type, 'done');
}

/** A handler that streams TOKENS tokens, a few at a time, for about two seconds. */
const streamingHandler = async (_payload: unknown, ctx: { emit(type: string, data: unknown): Promise<void> }) => {
  for (let i = 0; i < TOKENS; i++) {
    void ctx.emit('token', { text: `t${i} ` });
    if (i % 10 === 9) await delay(10);
  }
  return intent;
};

describe('event stream: resume after a lost connection', function () {
  this.timeout(60_000);

  it('an SSE reader cut three times in a 2,000-token stream gets every token exactly once, in order', async () => {
    const { url, store } = await startServer();
    const q = uniqueQueue();
    const { job } = await store.enqueue(buildJob({ queue: q, payload: { goal: 'stream' } }));
    const worker = createWorker({ transport: store, queues: [q], handler: streamingHandler, claimWaitMs: 100 });
    await worker.start();
    try {
      const events = await followThroughCuts(`${url}/v1/jobs/${job.id}/events`, [300, 700, 500]);
      assertEveryTokenOnce(events);
    } finally {
      await worker.stop();
    }
  });

  const withRedis = redisAvailable() ? it : it.skip;
  withRedis('restarting the `reasonq serve` process (Redis store) midway loses and repeats nothing for a reader that reconnects', async () => {
    let redis: RedisServer | null = null;
    let server: ChildProcess | null = null;
    let transport: Transport | null = null;
    const worker = { stop: async () => undefined } as { stop(): Promise<unknown> };
    try {
      redis = await startRedis();
      const port = await freePort();
      const env = { PATH: process.env.PATH, REASONING_TRANSPORT: 'redis', REDIS_URL: redis.url, REASONQ_LOG_LEVEL: 'warn' };
      const startServerProcess = async () => {
        const child = spawn(process.execPath, [join(repoRoot, 'dist/src/cli/index.js'), 'serve', '--port', String(port)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
        await new Promise<void>((ok, fail) => {
          const timer = setTimeout(() => fail(new Error('reasonq serve did not start within 20 s')), 20_000);
          createInterface({ input: child.stdout! }).on('line', (line) => {
            if (line.includes('API')) {
              clearTimeout(timer);
              ok();
            }
          });
          child.once('exit', (code) => fail(new Error(`reasonq serve exited with ${code}`)));
        });
        return child;
      };
      server = await startServerProcess();
      transport = await createTransport(loadConfig({ REASONING_TRANSPORT: 'redis', REDIS_URL: redis.url }));
      const q = uniqueQueue();
      const { job } = await transport.enqueue(buildJob({ queue: q, payload: { goal: 'stream' } }));
      const w = createWorker({ transport, queues: [q], handler: streamingHandler, claimWaitMs: 100 });
      worker.stop = () => w.stop();
      await w.start();
      let restarts = 0;
      let restarting: Promise<void> | null = null;
      const restart = async () => {
        // kill -9 under the reader (its connection dies with the process), then start again on the same port.
        const dying = server!;
        const exited = new Promise((r) => dying.once('exit', r));
        dying.kill('SIGKILL');
        await exited;
        await delay(300);
        server = await startServerProcess();
        restarts += 1;
      };
      const events = await followThroughCuts(`http://127.0.0.1:${port}/v1/jobs/${job.id}/events`, [], (count) => {
        if ((count === 400 || count === 1200) && !restarting) restarting = restart().finally(() => (restarting = null));
      });
      await restarting;
      assert.equal(restarts, 2, 'the server was killed twice while the reader read');
      assertEveryTokenOnce(events);
    } finally {
      await worker.stop();
      await transport?.close();
      server?.kill('SIGKILL');
      if (redis) await removeRedis(redis);
    }
  });
});
