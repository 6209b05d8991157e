/**
 * The event routes from outside: who may append and read, what an append may
 * carry, odd offsets, a flood of events against the memory store's limit,
 * and streams held open past their limit.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request } from 'undici';
import type { Transport } from '../../src/transport.js';
import { claimOne, delay, newJob, uniqueQueue } from '../helpers.js';
import { startServer } from '../server-helpers.js';

const CLIENT = 'events-client-token-0123456789';
const WORKER = 'events-worker-token-0123456789';

async function call(url: string, method: string, path: string, options: { body?: unknown; token?: string; headers?: Record<string, string> } = {}) {
  const res = await request(url + path, {
    method: method as 'GET',
    headers: { ...(options.body === undefined ? {} : { 'content-type': 'application/json' }), ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...options.headers },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.body.text();
  let body: { error?: { code: string; message: string } } & Record<string, unknown> = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    /* an SSE body */
  }
  return { status: res.statusCode, body, text };
}

describe('security: event routes', function () {
  this.timeout(30_000);

  async function running() {
    const started = await startServer({ tokens: { client: [CLIENT], worker: [WORKER] } });
    const q = uniqueQueue();
    await started.store.enqueue(newJob(q));
    const job = await claimOne(started.store, q);
    return { ...started, job };
  }

  it('appending needs the worker scope and the lease token; reading needs the client scope', async () => {
    const { url, job } = await running();
    const body = { token: job.lease.token, written: 0, events: [{ type: 'token', data: { text: 'x' } }] };
    assert.equal((await call(url, 'POST', `/v1/jobs/${job.id}/events`, { body })).status, 401);
    assert.equal((await call(url, 'POST', `/v1/jobs/${job.id}/events`, { body, token: CLIENT })).status, 403, 'a client cannot write into a job\'s stream');
    const stale = await call(url, 'POST', `/v1/jobs/${job.id}/events`, { body: { ...body, token: 'not-the-lease' }, token: WORKER });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.error?.code, 'LEASE_LOST');
    assert.equal((await call(url, 'POST', `/v1/jobs/${job.id}/events`, { body, token: WORKER })).status, 200);
    assert.equal((await call(url, 'GET', `/v1/jobs/${job.id}/events?format=json`)).status, 401);
    const read = await call(url, 'GET', `/v1/jobs/${job.id}/events?format=json`, { token: CLIENT });
    assert.equal(read.status, 200);
    assert.deepEqual((read.body.events as { type: string }[]).map((e) => e.type), ['queued', 'started', 'token']);
  });

  it('an append is checked before anything is written: lifecycle types, malformed types, size, count, depth', async () => {
    const { url, job, store } = await running();
    const append = (events: unknown[]) => call(url, 'POST', `/v1/jobs/${job.id}/events`, { body: { token: job.lease.token, written: 0, events }, token: WORKER });
    const cases: [string, unknown[]][] = [
      ['a forged ending', [{ type: 'token', data: {} }, { type: 'done', data: { action: 'finish' } }]],
      ['a forged trim marker', [{ type: 'trimmed', data: {} }]],
      ['a type with markup', [{ type: '<script>', data: {} }]],
      ['a type too long', [{ type: 'a'.repeat(65), data: {} }]],
      ['data past 64 KiB', [{ type: 'token', data: { text: 'x'.repeat(70 * 1024) } }]],
      ['501 events', Array.from({ length: 501 }, () => ({ type: 'token', data: {} }))],
      ['no events', []],
      ['data nested 100 deep', [{ type: 'token', data: JSON.parse('['.repeat(100) + ']'.repeat(100)) }]],
      ['a bad usage', [{ type: 'usage', data: { prompt_tokens: 'many' } }]],
    ];
    for (const [what, events] of cases) {
      const res = await append(events);
      assert.equal(res.status, 400, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error?.code, 'VALIDATION_ERROR', what);
    }
    const page = await store.readEvents(job.id, { after: 0 });
    assert.deepEqual(page.events.map((e) => e.type), ['queued', 'started'], 'nothing of a refused append was written');
  });

  it('odd offsets are refused, not guessed: Last-Event-ID and after must be plain event ids', async () => {
    const { url, job } = await running();
    for (const id of ['abc', '-1', '1e3', '0x10', '1.5', '7 8', '9'.repeat(20)]) {
      const res = await call(url, 'GET', `/v1/jobs/${job.id}/events?format=json`, { token: CLIENT, headers: { 'last-event-id': id } });
      assert.equal(res.status, 400, `Last-Event-ID ${JSON.stringify(id)}`);
    }
    for (const after of ['abc', '-1', '1e3', '%00', '1;2']) {
      const res = await call(url, 'GET', `/v1/jobs/${job.id}/events?format=json&after=${after}`, { token: CLIENT });
      assert.equal(res.status, 400, `after=${after}`);
    }
    assert.equal((await call(url, 'GET', `/v1/jobs/${job.id}/events?format=json&after=99999`, { token: CLIENT })).status, 200, 'an id past the newest is just nothing yet');
    assert.equal((await call(url, 'GET', `/v1/jobs/${encodeURIComponent('../v1/stats')}/events?format=json`, { token: CLIENT })).status, 404);
    assert.equal((await call(url, 'GET', `/v1/jobs/${job.id}/events?format=xml`, { token: CLIENT })).status, 400);
  });

  it('events count against the memory store\'s bytes: past the limit an append answers 507 and writes nothing, and the process holds no more than the limit', async () => {
    const started = await startServer({ tokens: { client: [CLIENT], worker: [WORKER] }, maxBytes: 2 * 1024 * 1024 });
    const q = uniqueQueue();
    await started.store.enqueue(newJob(q));
    const job = await claimOne(started.store, q);
    const chunk = Array.from({ length: 40 }, () => ({ type: 'token', data: { text: 'y'.repeat(1000) } }));
    let accepted = 0;
    let refused: { status: number; body: { error?: { code: string } } } | null = null;
    for (let i = 0; i < 100 && !refused; i++) {
      const res = await call(started.url, 'POST', `/v1/jobs/${job.id}/events`, { body: { token: job.lease.token, written: accepted * chunk.length, events: chunk }, token: WORKER });
      if (res.status === 200) accepted += 1;
      else refused = res;
    }
    assert.ok(refused, 'an append past the limit is refused');
    assert.equal(refused.status, 507);
    assert.equal(refused.body.error?.code, 'STORE_FULL');
    assert.ok(accepted * chunk.length * 1000 < 2 * 1024 * 1024, `${accepted} appends of 40 KB were taken under a 2 MiB limit`);
    const page = await call(started.url, 'GET', `/v1/jobs/${job.id}/events?format=json&limit=1`, { token: CLIENT });
    assert.equal(page.body.last, 2 + accepted * chunk.length, 'nothing of the refused append was written (queued, started, then the accepted ones)');
  });

  /** A raw request to the stream, its socket returned (left unread, or closed at once). */
  async function rawStream(url: string, path: string) {
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    return socket;
  }

  it('a stream slot is given back when its client leaves before the slot was even taken (the store was slow to answer)', async () => {
    const started = await startServer({ maxStreams: 1, sseMaxMs: 60_000 });
    const q = uniqueQueue();
    await started.store.enqueue(newJob(q));
    const job = await claimOne(started.store, q);
    // A store that takes a round trip to read (Mongo: a find; its gap rule: seconds).
    const slow = started.store as Transport;
    const read = slow.readEvents.bind(slow);
    slow.readEvents = async (...args) => {
      await delay(200);
      return read(...args);
    };
    const socket = await rawStream(started.url, `/v1/jobs/${job.id}/events`);
    await delay(50);
    socket.destroy(); // gone while the route reads its first page
    await delay(800);
    const next = await request(`${started.url}/v1/jobs/${job.id}/events`);
    assert.equal(next.statusCode, 200, 'the slot of the client that left is free again');
    next.body.destroy();
  });

  it('a client that stops reading does not hold its stream past the stream\'s lifetime', async () => {
    const started = await startServer({ maxStreams: 1, sseMaxMs: 1000 });
    const q = uniqueQueue();
    await started.store.enqueue(newJob(q));
    const job = await claimOne(started.store, q);
    const big = 'z'.repeat(60_000);
    for (let i = 0; i < 4; i++) await started.store.appendEvents(job.id, job.lease.token, Array.from({ length: 100 }, () => ({ type: 'token', data: { text: big } })), i * 100);
    const socket = await rawStream(started.url, `/v1/jobs/${job.id}/events`);
    socket.pause(); // 24 MB waiting, never read
    try {
      await delay(2500);
      const next = await request(`${started.url}/v1/jobs/${job.id}/events?after=400`);
      assert.equal(next.statusCode, 200, 'the stuck stream was cut at its lifetime and its slot given back');
      next.body.destroy();
    } finally {
      socket.destroy();
    }
  });

  it('SSE streams are limited like every long-poll: past REASONQ_MAX_STREAMS the next one is a 429 and nothing else changes', async () => {
    const { url, job } = await (async () => {
      const started = await startServer({ tokens: { client: [CLIENT], worker: [WORKER] }, maxStreams: 2 });
      const q = uniqueQueue();
      await started.store.enqueue(newJob(q));
      return { ...started, job: await claimOne(started.store, q) };
    })();
    const open = await Promise.all([0, 1].map(() => request(`${url}/v1/jobs/${job.id}/events`, { headers: { authorization: `Bearer ${CLIENT}` } })));
    try {
      for (const res of open) assert.equal(res.statusCode, 200);
      const third = await call(url, 'GET', `/v1/jobs/${job.id}/events`, { token: CLIENT });
      assert.equal(third.status, 429);
      assert.equal((await call(url, 'GET', `/v1/jobs/${job.id}/events?format=json`, { token: CLIENT })).status, 200, 'a page read is not a stream');
    } finally {
      for (const res of open) res.body.destroy();
    }
  });
});
