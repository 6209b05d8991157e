/** GET /metrics: Prometheus text with queue depth read from the store at scrape time. */
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createServer } from '../src/server/app.js';
import type { Transport } from '../src/transport.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { newJob, uniqueQueue } from './helpers.js';

describe('GET /metrics', () => {
  const open: { app: FastifyInstance; store: Transport }[] = [];

  afterEach(async () => {
    for (const { app, store } of open.splice(0)) {
      await app.close();
      await store.close();
    }
  });

  async function start(token?: string) {
    const store = createMemoryTransport();
    await store.init();
    const app = await createServer({ transport: store, token });
    open.push({ app, store });
    return { store, url: await app.listen({ host: '127.0.0.1', port: 0 }) };
  }

  /** The value of one sample line, e.g. `reasonq_jobs{queue="q",status="queued"} 3`. */
  function sample(text: string, name: string, labels: string): number | undefined {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  it('reports jobs by queue and status, as they are at scrape time', async () => {
    const { store, url } = await start();
    const queue = uniqueQueue('metrics');
    const other = uniqueQueue('other');
    for (let i = 0; i < 3; i++) await store.enqueue(newJob(queue));
    await store.enqueue(newJob(queue, { delay_ms: 60_000 }));
    const canceled = await store.enqueue(newJob(queue));
    await store.cancel(canceled.job.id, 'test');
    await store.enqueue(newJob(other));

    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    assert.match(text, /^# TYPE reasonq_jobs gauge$/m);
    // queued = due now, delayed = not yet: they do not overlap
    assert.equal(sample(text, 'reasonq_jobs', `queue="${queue}",status="queued"`), 3);
    assert.equal(sample(text, 'reasonq_jobs', `queue="${queue}",status="delayed"`), 1);
    assert.equal(sample(text, 'reasonq_jobs', `queue="${queue}",status="canceled"`), 1);
    assert.equal(sample(text, 'reasonq_jobs', `queue="${queue}",status="done"`), 0);
    assert.equal(sample(text, 'reasonq_jobs', `queue="${other}",status="queued"`), 1);

    // Read on every scrape, not cached.
    await store.cancel((await store.enqueue(newJob(other))).job.id, 'test');
    const again = await (await fetch(`${url}/metrics`)).text();
    assert.equal(sample(again, 'reasonq_jobs', `queue="${other}",status="queued"`), 1);
    assert.equal(sample(again, 'reasonq_jobs', `queue="${other}",status="canceled"`), 1);
  });

  it('needs the bearer token when the server has one', async () => {
    const { store, url } = await start('metrics-token');
    const queue = uniqueQueue('metrics');
    await store.enqueue(newJob(queue));
    const denied = await fetch(`${url}/metrics`);
    assert.equal(denied.status, 401);
    assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
    const res = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer metrics-token' } });
    assert.equal(res.status, 200);
    assert.equal(sample(await res.text(), 'reasonq_jobs', `queue="${queue}",status="queued"`), 1);
  });
});
