/** The event stream from the library's side: ctx.emit (checks, coalescing, order, repeat-safety), client.events, agentIntent's onEvent, the demo reasoner. */
import assert from 'node:assert/strict';
import { bounded } from '../src/bounded.js';
import { createEventPrinter, plain } from '../src/cli/output.js';
import { createClient } from '../src/client.js';
import { buildJob } from '../src/job.js';
import { createHttpTransport } from '../transports/http/index.js';
import { startServer } from './server-helpers.js';
import { TransportError, ValidationError } from '../src/errors.js';
import type { JobEvent } from '../src/events.js';
import { createDemoHandler } from '../src/reasoner.js';
import type { Transport } from '../src/transport.js';
import { createWorker, type HandlerContext } from '../src/worker.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { delay, intent, uniqueQueue, waitFor } from './helpers.js';

/** A memory store whose appendEvents calls are counted (and may be made to fail after writing). */
function countingStore(options: { failAfterWrite?: number } = {}): { store: Transport; appends: () => number } {
  const store = createMemoryTransport();
  let appends = 0;
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'appendEvents') {
        return async (...args: Parameters<Transport['appendEvents']>) => {
          appends += 1;
          const last = await target.appendEvents(...args);
          // The write landed, but the caller hears a timeout: its outcome is unknown to it.
          if (appends === options.failAfterWrite) throw new TransportError('store timed out', { code: 'STORE_TIMEOUT', retryable: true });
          return last;
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: wrapped, appends: () => appends };
}

async function allEvents(store: Transport, id: string): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for (let after = 0; ; ) {
    const page = await store.readEvents(id, { after });
    out.push(...page.events);
    if (page.events.length === 0) return out;
    after = page.events.at(-1)!.id;
  }
}

describe('events from a handler', function () {
  this.timeout(20_000);

  it('500 tokens emitted as fast as a handler can go cost a handful of store writes, in order, all before the ending', async () => {
    const { store, appends } = countingStore();
    const q = uniqueQueue();
    const client = await createClient({ transport: store });
    const worker = createWorker({
      transport: store,
      queues: [q],
      claimWaitMs: 100,
      handler: async (_p, ctx) => {
        for (let i = 0; i < 500; i++) {
          void ctx.emit('token', { text: `t${i} ` }); // not awaited, as a model loop would do
          if (i % 100 === 99) await delay(5);
        }
        return intent;
      },
    });
    await worker.start();
    try {
      const job = await client.enqueue({ goal: 'x' }, { queue: q });
      await client.wait(job.id, { timeoutMs: 10_000 });
      const events = await allEvents(store, job.id);
      const tokens = events.filter((e) => e.type === 'token').map((e) => (e.data as { text: string }).text);
      assert.equal(tokens.length, 500);
      tokens.forEach((t, i) => assert.equal(t, `t${i} `));
      assert.equal(events.at(-1)!.type, 'done', 'the ending comes after every event of the run');
      assert.ok(appends() <= 10, `500 tokens took ${appends()} store writes`);
    } finally {
      await worker.stop();
      await client.close();
      await store.close();
    }
  });

  it('a write whose outcome is unknown is repeated and writes nothing twice', async () => {
    const { store, appends } = countingStore({ failAfterWrite: 1 });
    const q = uniqueQueue();
    const client = await createClient({ transport: store });
    const worker = createWorker({
      transport: store,
      queues: [q],
      claimWaitMs: 100,
      handler: async (_p, ctx) => {
        await ctx.emit('token', { text: 'a' });
        await ctx.emit('token', { text: 'b' });
        return intent;
      },
    });
    await worker.start();
    try {
      const job = await client.enqueue({ goal: 'x' }, { queue: q });
      const done = await client.wait(job.id, { timeoutMs: 10_000 });
      assert.equal(done.status, 'done');
      const events = await allEvents(store, job.id);
      assert.deepEqual(events.map((e) => `${e.type}:${(e.data as { text?: string })?.text ?? ''}`), ['queued:', 'started:', 'token:a', 'token:b', 'done:']);
      assert.ok(appends() >= 3, 'the first write was repeated');
    } finally {
      await worker.stop();
      await client.close();
      await store.close();
    }
  });

  /** One job through a remote worker (http transport → server → memory store) whose handler emits what `emits` returns; the emits' refusals and the job's events. */
  async function remoteRun(emits: (ctx: HandlerContext) => Promise<unknown>[]): Promise<{ errors: unknown[]; events: JobEvent[] }> {
    const { store, url } = await startServer();
    const http = createHttpTransport({ url });
    const q = uniqueQueue();
    const errors: unknown[] = [];
    const worker = createWorker({
      transport: http,
      queues: [q],
      claimWaitMs: 100,
      handler: async (_p, ctx) => {
        await Promise.all(emits(ctx).map((p) => p.catch((e: unknown) => errors.push(e))));
        return intent;
      },
    });
    await worker.start();
    try {
      const { job } = await store.enqueue(buildJob({ queue: q, payload: { goal: 'x' } }));
      assert.equal((await store.wait(job.id, { timeout_ms: 15_000 })).status, 'done');
      return { errors, events: await allEvents(store, job.id) };
    } finally {
      await worker.stop();
      await http.close();
    }
  }

  it('a remote worker\'s large events go in several writes, each inside the server\'s body limit: none refused', async () => {
    const big = 'd'.repeat(60 * 1024);
    const { errors, events } = await remoteRun((ctx) => Array.from({ length: 20 }, (_, i) => ctx.emit('tool_call', { index: i, arguments: big })));
    assert.deepEqual(errors, []);
    assert.deepEqual(events.filter((e) => e.type === 'tool_call').map((e) => (e.data as { index: number }).index), Array.from({ length: 20 }, (_, i) => i));
  });

  it('batches are cut by UTF-8 bytes: text of three-byte characters fits the body limit too', async () => {
    const text = '漢'.repeat(21_000); // 63 KB of UTF-8 in 21,000 characters
    const { errors, events } = await remoteRun((ctx) => Array.from({ length: 30 }, (_, i) => ctx.emit('token', { text, i })));
    assert.deepEqual(errors, []);
    assert.equal(events.filter((e) => e.type === 'token').length, 30);
  });

  it('a handler abandoned at its timeout that emits later is refused, and nothing more is written', async () => {
    const { store, appends } = countingStore();
    const q = uniqueQueue();
    let late: Promise<unknown> | null = null;
    const worker = createWorker({
      transport: store,
      queues: [q],
      claimWaitMs: 100,
      timeoutMs: 150,
      backoff: { baseMs: 10_000, maxMs: 10_000 },
      handler: async (_p, ctx) => {
        await delay(400); // ignores its signal
        late = ctx.emit('token', { text: 'too late' }).then(
          () => 'written',
          (e: { code?: string }) => e.code,
        );
        return intent;
      },
    });
    await worker.start();
    try {
      const { job } = await store.enqueue(buildJob({ queue: q, payload: { goal: 'x' }, max_attempts: 1 }));
      await waitFor(() => late);
      assert.equal(await late, 'RUN_OVER');
      assert.equal(appends(), 0, 'no write was made for the late emit');
      assert.deepEqual((await allEvents(store, job.id)).map((e) => e.type), ['queued', 'started', 'error']);
    } finally {
      await worker.stop();
      await store.close();
    }
  });

  it('ctx.emit refuses at once a lifecycle type, a malformed type and data past the limit', async () => {
    const store = createMemoryTransport();
    const q = uniqueQueue();
    const seen: unknown[] = [];
    const worker = createWorker({
      transport: store,
      queues: [q],
      claimWaitMs: 100,
      eventMaxBytes: 1024,
      handler: async (_p, ctx: HandlerContext) => {
        for (const [type, data] of [['done', {}], ['Token', {}], ['', {}], ['token', { text: 'x'.repeat(2000) }], ['usage', { prompt_tokens: -1, completion_tokens: 0 }]] as const) {
          try {
            void ctx.emit(type, data);
            seen.push('accepted');
          } catch (error) {
            seen.push(error instanceof ValidationError ? error.message : error);
          }
        }
        return intent;
      },
    });
    await worker.start();
    try {
      const { job } = await store.enqueue(buildJob({ queue: q, payload: { goal: 'x' } }));
      await waitFor(async () => (await store.get(job.id))?.status === 'done');
      assert.equal(seen.length, 5);
      assert.match(String(seen[0]), /lifecycle event type/);
      assert.match(String(seen[1]), /event type/);
      assert.match(String(seen[2]), /event type/);
      assert.match(String(seen[3]), /more than the 1024 allowed \(REASONQ_EVENT_MAX_BYTES\)/);
      assert.match(String(seen[4]), /usage event/);
      assert.deepEqual((await allEvents(store, job.id)).map((e) => e.type), ['queued', 'started', 'done'], 'nothing refused was written');
    } finally {
      await worker.stop();
      await store.close();
    }
  });
});

describe('reading events from the client', function () {
  this.timeout(20_000);

  it('client.events follows a job live from the start and ends after its final event; after= resumes; follow:false stops when caught up', async () => {
    const store = createMemoryTransport();
    const client = await createClient({ transport: store });
    const q = uniqueQueue();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const worker = createWorker({
      transport: store,
      queues: [q],
      claimWaitMs: 100,
      handler: async (_p, ctx) => {
        await ctx.emit('token', { text: 'first ' });
        await gate;
        await ctx.emit('token', { text: 'second' });
        return intent;
      },
    });
    await worker.start();
    try {
      const job = await client.enqueue({ goal: 'x' }, { queue: q });
      const got: JobEvent[] = [];
      const following = (async () => {
        for await (const e of client.events(job.id)) {
          got.push(e);
          if (e.type === 'token' && got.length === 3) release();
        }
      })();
      await following;
      assert.deepEqual(got.map((e) => e.type), ['queued', 'started', 'token', 'token', 'done']);
      assert.deepEqual(got.map((e) => e.id), [1, 2, 3, 4, 5]);
      const resumed: number[] = [];
      for await (const e of client.events(job.id, { after: 3 })) resumed.push(e.id);
      assert.deepEqual(resumed, [4, 5]);
      const snapshot: number[] = [];
      for await (const e of client.events(job.id, { after: 4, follow: false })) snapshot.push(e.id);
      assert.deepEqual(snapshot, [5]);
    } finally {
      release();
      await worker.stop();
      await client.close();
      await store.close();
    }
  });

  it('agentIntent streams every event to onEvent, in order, before it resolves; the demo reasoner streams its reasoning token by token', async () => {
    const store = createMemoryTransport();
    const client = await createClient({ transport: store });
    const q = uniqueQueue();
    const worker = createWorker({ transport: store, queues: [q], claimWaitMs: 100, handler: createDemoHandler({ tokenMs: 1 }) });
    await worker.start();
    try {
      const seen: JobEvent[] = [];
      const result = await client.agentIntent({ goal: 'Find where parseConfig is defined' }, { queue: q, onEvent: (e) => seen.push(e) });
      assert.equal(result.tool_name, 'savant-context.fts_search');
      assert.deepEqual(seen.map((e) => e.id), seen.map((_, i) => i + 1), 'in order, none missing');
      assert.deepEqual(seen.slice(0, 4).map((e) => e.type), ['queued', 'started', 'thinking', 'thinking']);
      assert.equal(seen.at(-1)!.type, 'done', 'onEvent saw the final event before agentIntent resolved');
      const text = seen.filter((e) => e.type === 'token').map((e) => (e.data as { text: string }).text).join('');
      assert.equal(text, result.reasoning);
      assert.ok(seen.filter((e) => e.type === 'token').length > 5);
    } finally {
      await worker.stop();
      await client.close();
      await store.close();
    }
  });
});

describe('event reads and appends: odd arguments', () => {
  it('offsets and counts that are not whole numbers from 0 are refused before any store sees them; an aborted read answers at once', async () => {
    const store = bounded(createMemoryTransport(), { timeoutMs: 1000 });
    const q = uniqueQueue();
    const { job } = await store.enqueue(buildJob({ queue: q, payload: { goal: 'x' } }));
    try {
      for (const after of [-3, 2.5, Number.NaN, 2 ** 60]) await assert.rejects(store.readEvents(job.id, { after }), ValidationError, `after ${after}`);
      await assert.rejects(store.readEvents(job.id, { after: 0, limit: -1 }), ValidationError);
      await assert.rejects(store.appendEvents(job.id, 't', [{ type: 'token', data: {} }], -1), ValidationError);
      await assert.rejects(store.appendEvents(job.id, 't', [], 0), ValidationError);
      const aborted = AbortSignal.abort();
      const t0 = Date.now();
      const page = await store.readEvents(job.id, { after: 1, wait_ms: 5000, signal: aborted });
      assert.deepEqual(page.events, []);
      assert.ok(Date.now() - t0 < 500, 'an aborted read does not wait');
    } finally {
      await store.close();
    }
  });

  it('the CLI prints a job\'s text without the control characters a terminal would obey', async () => {
    let out = '';
    const sink = { write: (text: string) => ((out += text), true) } as unknown as NodeJS.WritableStream;
    const printer = createEventPrinter(false, sink);
    printer.print({ id: 1, type: 'token', at: new Date(), attempt: 1, data: { text: 'ok \u001b]52;c;ZXZpbA==\u0007\u001b[2Jdone\tand\nmore' } });
    printer.print({ id: 2, type: 'canceled', at: new Date(), attempt: 1, data: { reason: 'bye\u001b[31m' } });
    printer.end();
    assert.equal(plain(out), out, `no control characters left: ${JSON.stringify(out)}`);
    assert.ok(!out.includes('\u001b') && !out.includes('\u0007'));
    assert.match(out, /ok \]52;c;ZXZpbA==\[2Jdone\tand\nmore/);
  });
});
