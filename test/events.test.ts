/** The event stream from the library's side: ctx.emit (checks, coalescing, order, repeat-safety), client.events, agentIntent's onEvent, the demo reasoner. */
import assert from 'node:assert/strict';
import { createClient } from '../src/client.js';
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
      const { job } = await store.enqueue((await import('../src/job.js')).buildJob({ queue: q, payload: { goal: 'x' } }));
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
