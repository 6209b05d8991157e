/** The CLI as a user runs it: the built `reasonq` binary in child processes. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './helpers.js';

const CLI = fileURLToPath(new URL('../dist/src/cli/index.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/slow-handler.mjs', import.meta.url));

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, REASONQ_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`reasonq ${args.join(' ')} timed out\n${stdout}\n${stderr}`)); }, timeoutMs);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** Start a long-running command and wait until it prints its URL. */
async function startLong(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; url: string; out: () => string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, REASONQ_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = await waitFor(() => /API\s+(http:\/\/\S+)\/v1/.exec(out)?.[1], 15_000, `server URL in:\n${out}`);
  return { child, url, out: () => out };
}

const exited = (child: ChildProcess) => new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.on('exit', (code) => r(code))));

describe('CLI', function () {
  this.timeout(60_000);
  let dev: Awaited<ReturnType<typeof startLong>> | null = null;
  afterEach(() => {
    if (dev && dev.child.exitCode === null) dev.child.kill('SIGKILL');
    dev = null;
  });

  it('reasonq dev serves the quick start: intent prints the demo intent, --json prints JSON', async () => {
    dev = await startLong(['dev', '--port', '0']);
    assert.match(dev.out(), /dashboard\s+http:\/\/127\.0\.0\.1:\d+\/engine/);
    const env = { REASONING_API_URL: dev.url };
    const human = await run(['intent', '--goal', 'Find where Framework is defined'], env);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /action:\s+tool/);
    assert.match(human.stdout, /tool_name:\s+savant-context\.fts_search/);
    assert.match(human.stdout, /"query":"Framework","limit":10/);
    const json = await run(['intent', '--goal', 'Find where Framework is defined', '--session', 's-1', '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout).args, { query: 'Framework', limit: 10 });
    const enq = await run(['enqueue', '--goal', 'later', '--delay', '60000', '--json'], env);
    const id = JSON.parse(enq.stdout).job.id as string;
    const status = await run(['status', id, '--json'], env);
    assert.equal(JSON.parse(status.stdout).job.status, 'queued');
    const cancel = await run(['cancel', id], env);
    assert.match(cancel.stdout, /canceled/);
    const retry = await run(['retry', id, '--json'], env);
    assert.equal(JSON.parse(retry.stdout).job.status, 'queued');
    // the retried job is due at once, so the demo worker finishes it too
    await waitFor(async () => JSON.parse((await run(['status', id, '--json'], env)).stdout).job.status === 'done', 10_000, 'retried job done');
    const stats = await run(['stats'], env);
    assert.match(stats.stdout, /^reasoning\s+0\s+0\s+0\s+3\s+0\s+0$/m);
    const workers = await run(['workers', '--json'], env);
    assert.equal(JSON.parse(workers.stdout).workers[0].alive, true);
  });

  it('exits non-zero with a clear message on failure', async () => {
    const missing = await run(['status', 'no-such-job'], { REASONING_TRANSPORT: 'http', REASONING_API_URL: 'http://127.0.0.1:9' , REASONING_API_RETRIES: '0'});
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /TRANSPORT_UNAVAILABLE: reasonq server at http:\/\/127\.0\.0\.1:9 is unreachable/);
    const badEnv = await run(['stats'], { REASONING_TRANSPORT: 'kafka' });
    assert.equal(badEnv.code, 2);
    assert.match(badEnv.stderr, /REASONING_TRANSPORT must be one of mongo, redis, http, memory \(got "kafka"\)/);
    const noGoal = await run(['intent'], {});
    assert.equal(noGoal.code, 2);
    assert.match(noGoal.stderr, /--goal/);
    const badHandler = await run(['worker', '--handler', './nope.mjs'], { REASONING_TRANSPORT: 'http', REASONING_API_URL: 'http://127.0.0.1:9' });
    assert.notEqual(badHandler.code, 0);
  });

  it('with the store unreachable, a command exits 1 promptly on every transport', async () => {
    // Port 1 on loopback: nothing listens there.
    const stores: Record<string, string>[] = [
      { REASONING_TRANSPORT: 'redis', REDIS_URL: 'redis://127.0.0.1:1' },
      { REASONING_TRANSPORT: 'mongo', MONGO_URI: 'mongodb://127.0.0.1:1' },
      { REASONING_TRANSPORT: 'http', REASONING_API_URL: 'http://127.0.0.1:1', REASONING_API_RETRIES: '0' },
    ];
    for (const env of stores) {
      const started = Date.now();
      const res = await run(['stats'], env, 20_000);
      const took = Date.now() - started;
      assert.equal(res.code, 1, `${env.REASONING_TRANSPORT}: ${res.stderr}`);
      assert.match(res.stderr, /TRANSPORT_UNAVAILABLE/);
      assert.ok(took < 12_000, `${env.REASONING_TRANSPORT}: exited after ${took} ms`);
    }
  });

  it('Ctrl-C on reasonq intent cancels the job it was waiting for, and says so', async () => {
    dev = await startLong(['serve', '--port', '0'], { REASONING_TRANSPORT: 'memory' }); // no worker: the job waits
    const env = { ...process.env, REASONQ_LOG_LEVEL: 'warn', REASONING_TRANSPORT: 'http', REASONING_API_URL: dev.url };
    const child = spawn(process.execPath, [CLI, 'intent', '--goal', 'interrupted', '--id', 'ctrl-c-job'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await waitFor(async () => (await run(['status', 'ctrl-c-job', '--json'], env)).code === 0, 10_000, 'the job enqueued');
    child.kill('SIGINT');
    assert.equal(await exited(child), 130);
    assert.match(stderr, /interrupted: job ctrl-c-job canceled/);
    const status = await run(['status', 'ctrl-c-job', '--json'], env);
    assert.equal(JSON.parse(status.stdout).job.status, 'canceled');
  });

  it('a remote worker over HTTP runs a handler module', async () => {
    dev = await startLong(['serve', '--port', '0'], { REASONING_TRANSPORT: 'memory' });
    const env = { REASONING_TRANSPORT: 'http', REASONING_API_URL: dev.url };
    const worker = spawn(process.execPath, [CLI, 'worker', '--handler', FIXTURE, '--concurrency', '2'], { env: { ...process.env, ...env, REASONQ_LOG_LEVEL: 'warn' }, stdio: 'ignore' });
    try {
      const res = await run(['intent', '--payload', JSON.stringify({ goal: 'nap', sleep_ms: 50 }), '--json'], env);
      assert.equal(res.code, 0, res.stderr);
      assert.match(JSON.parse(res.stdout).reasoning, /slept 50 ms for nap/);
    } finally {
      worker.kill('SIGTERM');
      assert.equal(await exited(worker), 0);
    }
  });

  it('reasonq dev stopped with SIGTERM while jobs run exits cleanly and promptly, handing leases back', async () => {
    dev = await startLong(['dev', '--port', '0', '--handler', FIXTURE, '--grace', '500']);
    const env = { REASONING_API_URL: dev.url };
    for (let i = 0; i < 3; i++) {
      const r = await run(['intent', '--no-wait', '--payload', JSON.stringify({ goal: `long ${i}`, sleep_ms: 30_000 })], env);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor(async () => {
      const s = await run(['stats', '--json'], env);
      return JSON.parse(s.stdout).totals.processing === 3;
    }, 10_000, '3 running jobs');
    const started = Date.now();
    dev.child.kill('SIGTERM');
    const code = await exited(dev.child);
    const took = Date.now() - started;
    assert.equal(code, 0, dev.out());
    assert.ok(took < 5000, `exit took ${took} ms with a 500 ms grace`);
    assert.match(dev.out(), /SIGTERM received, shutting down/);
  });
});
