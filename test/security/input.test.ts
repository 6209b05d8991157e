/**
 * Input that used to slip through: ghost workers, payloads nested past any
 * sane depth, query keys nobody reads, errors outside our shape, and a
 * server opened to the network without a token.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config.js';
import { ConfigError, ValidationError } from '../../src/errors.js';
import { buildJob } from '../../src/job.js';
import { generateSecret } from '../../src/webhooks.js';
import { delay, newJob, uniqueQueue } from '../helpers.js';
import { startServer } from '../server-helpers.js';
import { portOf, rawRequest } from './raw.js';

const CLI = fileURLToPath(new URL('../../dist/src/cli/index.js', import.meta.url));
const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

async function json(url: string, method: string, path: string, body?: string) {
  const res = await fetch(url + path, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body }) });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } & Record<string, unknown> };
}

describe('security: input', function () {
  this.timeout(30_000);

  it('a heartbeat cannot make a ghost worker: the server stamps last_seen with its own clock and bounds ttl_ms', async () => {
    const { url } = await startServer();
    const beat = (over: Record<string, unknown>) =>
      json(url, 'POST', '/v1/workers/heartbeat', JSON.stringify({ id: 'ghost', queues: ['q'], concurrency: 1, running: 0, host: 'h', pid: 1, started_at: '9999-01-01T00:00:00Z', last_seen: '9999-12-31T00:00:00Z', ttl_ms: 1000, processed: 0, failed: 0, ...over }));
    assert.equal((await beat({ ttl_ms: 365 * 24 * 3600 * 1000 })).status, 400, 'a year-long ttl is refused');
    assert.equal((await beat({})).status, 200);
    const seen = (await json(url, 'GET', '/v1/workers')).body.workers as { id: string; alive: boolean; last_seen: string; started_at: string }[];
    const ghost = seen.find((w) => w.id === 'ghost')!;
    assert.ok(Math.abs(new Date(ghost.last_seen).getTime() - Date.now()) < 5000, `last_seen ${ghost.last_seen}`);
    assert.ok(new Date(ghost.started_at).getTime() <= Date.now());
    assert.equal(ghost.alive, true);
    await delay(1200);
    const later = (await json(url, 'GET', '/v1/workers')).body.workers as { id: string; alive: boolean }[];
    assert.equal(later.find((w) => w.id === 'ghost')?.alive, false, 'dead once its ttl has passed');
  });

  it('a payload, an intent or a progress report nested 10,000 deep is a 400 naming the field, never a 500', async () => {
    const { url, store } = await startServer();
    const enqueued = await json(url, 'POST', '/v1/jobs', `{"payload":{"goal":"x","context":${deep(10_000)}}}`);
    assert.equal(enqueued.status, 400);
    assert.match(enqueued.body.error!.message, /^payload.*deeper than 64/);
    const intent = await json(url, 'POST', '/v1/intents', `{"payload":${deep(100)},"timeout_ms":10}`);
    assert.equal(intent.status, 400);
    assert.equal((await json(url, 'POST', '/v1/jobs', `{"payload":{"context":${deep(60)}}}`)).status, 201, 'ordinary nesting passes');
    assert.throws(() => buildJob({ payload: JSON.parse(`{"c":${deep(200)}}`) as Record<string, unknown> }), ValidationError);

    const q = uniqueQueue('deep');
    await store.enqueue(newJob(q));
    const claimed = await json(url, 'POST', '/v1/claim', JSON.stringify({ queues: [q], owner: 'w', lease_ms: 5000 }));
    const { id, lease } = (claimed.body.jobs as { id: string; lease: { token: string } }[])[0]!;
    const progress = await json(url, 'POST', `/v1/jobs/${id}/progress`, `{"token":"${lease.token}","data":${deep(10_000)}}`);
    assert.equal(progress.status, 400);
    assert.match(progress.body.error!.message, /^data/);
    const complete = await json(url, 'POST', `/v1/jobs/${id}/settle`, `{"token":"${lease.token}","outcome":{"status":"done","result":{"action":"finish","args":${deep(10_000)}}}}`);
    assert.equal(complete.status, 400);
  });

  it('unknown query keys are refused, not ignored (no ?status[$ne]=done, no ?token=)', async () => {
    const { url, store } = await startServer();
    const { job } = await store.enqueue(newJob(uniqueQueue('q')));
    for (const path of ['/v1/jobs?status[$ne]=done', '/v1/jobs?status=done&sort=-1', '/v1/stats?x=1', `/v1/jobs/${job.id}?full=1`, `/v1/jobs/${job.id}/events?token=abc`, `/v1/jobs/${job.id}/wait?timeout=5`, '/v1/jobs?limit=1e2', '/v1/jobs?limit=5&limit=6']) {
      const r = await json(url, 'GET', path);
      assert.equal(r.status, 400, path);
      assert.equal(r.body.error!.code, 'VALIDATION_ERROR', path);
    }
    assert.equal((await json(url, 'GET', '/v1/jobs?status=queued&limit=5')).status, 200);
  });

  it('framework and parser errors come in our error shape, with no framework codes or stack traces', async () => {
    const { url } = await startServer();
    const port = portOf(url);
    const cases = [
      await rawRequest(port, 'GET', '/v1/jobs/%E0%A4%A'),
      await rawRequest(port, 'POST', '/v1/jobs', { body: '{"payload": ' }),
      await rawRequest(port, 'POST', '/v1/jobs', { body: 'x', headers: { 'content-type': 'text/plain' } }),
      await rawRequest(port, 'POST', '/v1/jobs', { body: '', headers: { 'content-type': 'application/json' } }),
      await rawRequest(port, 'GET', '/v1/stats', { headers: { 'x-big': 'b'.repeat(20_000) } }),
      await rawRequest(port, 'GET', '/no/such/route'),
    ];
    for (const r of cases) {
      assert.ok(r.status >= 400 && r.status < 500, `${r.status} ${r.body}`);
      const body = JSON.parse(r.body) as { error: { code: string; message: string } };
      assert.equal(typeof body.error.code, 'string', r.body);
      assert.equal(typeof body.error.message, 'string', r.body);
      assert.doesNotMatch(body.error.code, /^FST_|^ERR_/);
      assert.doesNotMatch(r.body, /at .*\.(ts|js):\d+/);
    }
  });

  it('configuration: short tokens, malformed secrets and allow-list entries are refused naming the variable, without echoing secrets', () => {
    const bad: [Record<string, string>, string][] = [
      [{ REASONQ_API_TOKEN: 'short' }, 'REASONQ_API_TOKEN'],
      [{ REASONQ_CLIENT_TOKEN: 'has a space in it, long enough' }, 'REASONQ_CLIENT_TOKEN'],
      [{ REASONQ_CALLBACK_SECRET: 'plain-secret-not-whsec' }, 'REASONQ_CALLBACK_SECRET'],
      [{ REASONQ_CALLBACK_ALLOW: '10.0.0.0/99' }, 'REASONQ_CALLBACK_ALLOW'],
      [{ REASONQ_ALLOWED_HOSTS: 'evil host' }, 'REASONQ_ALLOWED_HOSTS'],
      [{ REASONQ_ALLOWED_HOSTS: 'queue.example.com:8080' }, 'REASONQ_ALLOWED_HOSTS'],
    ];
    for (const [env, variable] of bad) {
      const secret = /TOKEN|SECRET/.test(variable);
      assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && e.message.includes(variable) && !(secret && e.message.includes(Object.values(env)[0]!)), variable);
    }
    const secret = generateSecret();
    const ok = loadConfig({ REASONQ_API_TOKEN: 'a'.repeat(32), REASONQ_CALLBACK_SECRET: `${secret}, ${generateSecret()}`, REASONQ_CALLBACK_ALLOW: '10.0.0.0/8,hooks.internal', REASONQ_ALLOWED_HOSTS: 'queue.internal,*' });
    assert.equal(ok.callbacks.secrets[0], secret);
    assert.deepEqual(ok.callbacks.allow, ['10.0.0.0/8', 'hooks.internal']);
  });

  it('a timed-out intent cancels only a job it created, never one it attached to by id', async () => {
    const { url, store } = await startServer();
    const { job } = await store.enqueue(newJob(uniqueQueue('attach'), { id: `theirs-${Date.now()}` }));
    const r = await json(url, 'POST', '/v1/intents', JSON.stringify({ id: job.id, payload: { goal: 'x' }, timeout_ms: 50 }));
    assert.equal(r.status, 504);
    assert.equal((await store.get(job.id))?.status, 'queued', "somebody else's job is left alone");
  });

  it('HEAD answers like GET (the query check maps it)', async () => {
    const { url } = await startServer();
    assert.equal((await fetch(`${url}/v1/jobs?limit=1`, { method: 'HEAD' })).status, 200);
  });

  for (const [what, args, env, variable] of [
    ['beyond loopback without a token', ['--host', '0.0.0.0'], {}, 'REASONQ_API_TOKEN'],
    ['with REASONQ_ALLOWED_HOSTS=* and no token', [], { REASONQ_ALLOWED_HOSTS: '*' }, 'REASONQ_ALLOWED_HOSTS'],
  ] as const) {
  it(`reasonq serve refuses to start ${what} (exit 2, naming ${variable})`, async () => {
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'serve', ...args, '--port', '0'], {
        env: { ...process.env, REASONING_TRANSPORT: 'memory', REASONQ_API_TOKEN: '', REASONQ_CLIENT_TOKEN: '', REASONQ_WORKER_TOKEN: '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, new RegExp(variable));
  });
  }
});

describe('security: what a worker may write', () => {
  it('a worker cannot set a job\'s attempts over HTTP: it can only give the current one back', async () => {
    const { url, store } = await startServer();
    const q = uniqueQueue('att');
    const { job } = await store.enqueue(newJob(q, { max_attempts: 2 }));
    const claim = async () => ((await json(url, 'POST', '/v1/claim', JSON.stringify({ queues: [q], owner: 'w', lease_ms: 5000 }))).body.jobs as { id: string; attempts: number; lease: { token: string } }[])[0]!;
    const first = await claim();
    const settle = (token: string, outcome: Record<string, unknown>) => json(url, 'POST', `/v1/jobs/${job.id}/settle`, JSON.stringify({ token, outcome }));
    // An old-style absolute value is not taken: the job keeps its attempt.
    assert.equal((await settle(first.lease.token, { status: 'queued', run_at: new Date().toISOString(), attempts: 0 })).status, 200);
    assert.equal((await store.get(job.id))?.attempts, 1);
    const second = await claim();
    assert.equal(second.attempts, 2);
    assert.equal((await settle(second.lease.token, { status: 'queued', run_at: new Date().toISOString(), give_back: true })).status, 200);
    assert.equal((await store.get(job.id))?.attempts, 1, 'one given back, no more');
  });
});

/** What the contract fuzz run (test/openapi-fuzz.test.ts) found, each kept as a plain test. */
describe('security: input the contract fuzzer found', function () {
  this.timeout(30_000);

  it('a time that is not one (null, true, before 1970, past 9999) is a 400, never read as 1970 nor sent back as an extended year', async () => {
    const { url, store } = await startServer();
    const q = uniqueQueue('when');
    for (const run_at of [null, true, false, 1e20, -7e15, -1e-323, 253_402_300_800_000, '+275760-09-13T00:00:00Z', {}, []]) {
      const res = await json(url, 'POST', '/v1/jobs', JSON.stringify({ queue: q, payload: { goal: 'x' }, run_at }));
      assert.equal(res.status, 400, `run_at ${JSON.stringify(run_at)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error?.code, 'VALIDATION_ERROR');
    }
    assert.deepEqual((await store.list({ queue: q })).jobs, [], 'nothing was created');
    const now = new Date().toISOString();
    for (const wrong of [{ started_at: false }, { last_seen: null }, { last_seen: -1e-323 }]) {
      const beat = await json(url, 'POST', '/v1/workers/heartbeat', JSON.stringify({ id: 'w', queues: [q], concurrency: 1, running: 0, host: 'h', pid: 1, started_at: now, last_seen: now, ttl_ms: 1000, processed: 0, failed: 0, ...wrong }));
      assert.equal(beat.status, 400, `${JSON.stringify(wrong)}: ${JSON.stringify(beat.body)}`);
    }
    assert.deepEqual(await store.workers(), [], 'no worker was registered');
    // What a time is stays taken: ISO 8601 text and epoch milliseconds.
    for (const run_at of [new Date(Date.now() + 60_000).toISOString(), Date.now() + 60_000]) {
      assert.equal((await json(url, 'POST', '/v1/jobs', JSON.stringify({ queue: q, payload: { goal: 'x' }, run_at }))).status, 201);
    }
  });

  it('a job enqueued with the longest id it may have can be read, canceled and waited for by that id; a worker by its longest id removed', async () => {
    const { url } = await startServer();
    const id = `j${'x'.repeat(127)}`;
    assert.equal((await json(url, 'POST', '/v1/jobs', JSON.stringify({ id, queue: uniqueQueue('long'), payload: {} }))).status, 201);
    const read = await json(url, 'GET', `/v1/jobs/${id}`);
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.equal((read.body.job as { id: string }).id, id);
    assert.equal((await json(url, 'GET', `/v1/jobs/${id}/wait?timeout_ms=1`)).status, 200);
    assert.equal((await json(url, 'POST', `/v1/jobs/${id}/cancel`, '{}')).status, 200);
    const worker = `w${'é'.repeat(255)}`;
    const beat = { id: worker, queues: ['q'], concurrency: 1, running: 0, host: 'h', pid: 1, started_at: new Date().toISOString(), last_seen: new Date().toISOString(), ttl_ms: 1000, processed: 0, failed: 0 };
    assert.equal((await json(url, 'POST', '/v1/workers/heartbeat', JSON.stringify(beat))).status, 200);
    assert.equal((await json(url, 'DELETE', `/v1/workers/${encodeURIComponent(worker)}`)).status, 200);
    assert.deepEqual(((await json(url, 'GET', '/v1/workers')).body.workers as { id: string }[]).map((w) => w.id), []);
  });

  it('a cancel whose body is JSON null is a 400 (the body is an object or absent)', async () => {
    const { url, store } = await startServer();
    const { job } = await store.enqueue(newJob(uniqueQueue('cancel')));
    const res = await json(url, 'POST', `/v1/jobs/${job.id}/cancel`, 'null');
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal((await store.get(job.id))?.status, 'queued', 'not canceled');
    const bare = await fetch(`${url}/v1/jobs/${job.id}/cancel`, { method: 'POST' });
    assert.equal(bare.status, 200, 'no body at all is no reason');
  });

  it('a method a path does not take is a 405 naming what it takes, before the body is read', async () => {
    const { url } = await startServer();
    for (const [method, path, allow] of [
      ['PUT', '/v1/jobs', 'GET, HEAD, POST'],
      ['QUERY', '/v1/jobs/abc', 'GET, HEAD'],
      ['PATCH', '/v1/jobs:batch', 'POST'],
      ['TRACE', '/healthz', 'GET, HEAD'],
      ['DELETE', '/v1/stats', 'GET, HEAD'],
    ] as const) {
      const res = await rawRequest(portOf(url), method, path, { headers: { 'content-type': 'text/plain' }, body: 'x' });
      assert.equal(res.status, 405, `${method} ${path}: ${res.status} ${res.body}`);
      assert.equal(res.headers.allow, allow, `${method} ${path}`);
      assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'METHOD_NOT_ALLOWED');
    }
    assert.equal((await rawRequest(portOf(url), 'PUT', '/v1/nothing-here')).status, 404, 'a path no route has stays a 404');
  });
});
