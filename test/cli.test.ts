/** The CLI as a user runs it: the built `reasonq` binary in child processes. */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { clientUrl } from '../src/cli/server-commands.js';
import { formatJob, formatList } from '../src/cli/output.js';
import { buildJob, type Job } from '../src/job.js';
import { createLogger, pickLogFormat } from '../src/logger.js';
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

/** Lines written to a fake destination, and whether it claims to be a terminal. */
function sink(isTTY: boolean): { isTTY: boolean; text: string; write(s: string): void } {
  return { isTTY, text: '', write(s) { this.text += s; } };
}

/** A port nobody listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    }).on('error', reject);
  });
}

/** A command line as printed (`reasonq list --cursor X`), split into its arguments (none of ours has spaces). */
const argsOf = (line: string) => line.trim().split(/\s+/).slice(1);

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

  it('reasonq worker logs pino JSON into a pipe and pretty lines with --log-format pretty; a bad REASONQ_LOG_FORMAT is refused by name', async () => {
    dev = await startLong(['serve', '--port', '0'], { REASONING_TRANSPORT: 'memory' });
    const env = { REASONING_TRANSPORT: 'http', REASONING_API_URL: dev.url };
    for (const format of ['json (piped)', 'pretty']) {
      const args = [CLI, 'worker', '--handler', FIXTURE, ...(format === 'pretty' ? ['--log-format', 'pretty'] : [])];
      const worker = spawn(process.execPath, args, { env: { ...process.env, ...env, REASONQ_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      worker.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        const id = `logged-${format === 'pretty' ? 'pretty' : 'json'}`;
        const res = await run(['intent', '--id', id, '--goal', 'log me'], env);
        assert.equal(res.code, 0, res.stderr);
        const line = await waitFor(() => stderr.split('\n').find((l) => l.includes('job ended')), 5000, `a "job ended" line in:\n${stderr}`);
        if (format === 'pretty') {
          assert.match(line, new RegExp(`^\\[\\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\] INFO: job ended job=${id} queue=reasoning worker=\\d+:[0-9a-f]{8} attempt=1 outcome=done duration_ms=\\d+$`));
        } else {
          const record = JSON.parse(line);
          assert.deepEqual([record.job_id, record.queue, record.outcome], [id, 'reasoning', 'done']);
        }
      } finally {
        worker.kill('SIGTERM');
        assert.equal(await exited(worker), 0);
      }
    }
    const bad = await run(['worker'], { ...env, REASONQ_LOG_FORMAT: 'xml' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /REASONQ_LOG_FORMAT must be pretty \(.*\) or json \(.*\).*\(got "xml"\)/);
    const badFlag = await run(['worker', '--log-format', 'xml'], env);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /--log-format.*Allowed choices are pretty, json/);
  });

  it('on a terminal, reasonq worker logs pretty lines by default (run under script(1); skipped without it)', async function () {
    if (spawnSync('script', ['--version']).status !== 0) this.skip();
    dev = await startLong(['serve', '--port', '0'], { REASONING_TRANSPORT: 'memory' });
    const env = { REASONING_TRANSPORT: 'http', REASONING_API_URL: dev.url };
    // The worker stops itself (timeout sends SIGTERM) so that nothing is left behind the pseudo-terminal.
    const command = `timeout -s TERM 6 '${process.execPath}' '${CLI}' worker --handler '${FIXTURE}'`;
    const term = spawn('script', ['-qefc', command, '/dev/null'], { env: { ...process.env, ...env, REASONQ_LOG_LEVEL: 'info', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    term.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(() => out.includes('worker started'), 5000, `the worker's first line in:\n${out}`);
      const res = await run(['intent', '--id', 'on-a-tty', '--goal', 'log me'], env);
      assert.equal(res.code, 0, res.stderr);
      const line = await waitFor(() => out.split(/\r?\n/).find((l) => l.includes('job ended')), 5000, `a "job ended" line in:\n${out}`);
      assert.match(line, /^\[[\d:.]+\] INFO: job ended job=on-a-tty queue=reasoning worker=\S+ attempt=1 outcome=done duration_ms=\d+$/);
      assert.ok(!out.includes('"msg"'), `no JSON on the terminal:\n${out}`);
    } finally {
      await exited(term);
    }
  });

  it('reasonq list: a header, aligned rows, pages with --limit and --cursor, and a last line with the next page', async () => {
    dev = await startLong(['serve', '--port', '0'], { REASONING_TRANSPORT: 'memory' }); // no worker: the jobs wait
    const env = { REASONING_TRANSPORT: 'http', REASONING_API_URL: dev.url };
    for (const i of [1, 2, 3]) assert.equal((await run(['enqueue', '--goal', `job ${i}`, '--id', `list-${i}`], env)).code, 0);
    assert.equal((await run(['enqueue', '--goal', 'job 4', '--id', 'list-4', '--delay', '1h'], env)).code, 0);
    const first = await run(['list', '--limit', '2'], env);
    assert.equal(first.code, 0, first.stderr);
    const lines = first.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 4, first.stdout);
    assert.match(lines[0]!, /^ID +QUEUE +STATUS +ATTEMPTS +CREATED +FINISHED +TIME +GOAL$/);
    assert.match(lines[1]!, /^list-4 +reasoning +queued +0\/3 +\S+ ago +- +due in 59m\d\ds +job 4$/);
    assert.match(lines[2]!, /^list-3 +reasoning +queued +0\/3 +\S+ ago +- +waiting \S+ +job 3$/);
    assert.equal(lines[1]!.indexOf('queued'), lines[0]!.indexOf('STATUS'));
    assert.match(lines[3]!, /^more: reasonq list --limit 2 --cursor [A-Za-z0-9_-]+$/);
    const second = await run(argsOf(lines[3]!.slice('more: '.length)), env);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(second.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['list-2', 'list-1'], 'the next page, and no "more:" after the last');
    const json = JSON.parse((await run(['list', '--limit', '2', '--json'], env)).stdout);
    assert.deepEqual(json.jobs.map((j: { id: string }) => j.id), ['list-4', 'list-3']);
    assert.equal(typeof json.next_cursor, 'string');
    const bad = await run(['list', '--cursor', 'not a cursor'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--cursor must be the cursor a previous `reasonq list` printed/);
  });

  it('reasonq status shows what the handler reported: progress and usage', async () => {
    dev = await startLong(['dev', '--port', '0', '--handler', FIXTURE]);
    const env = { REASONING_API_URL: dev.url };
    const payload = { goal: 'report', progress: { stage: 'searching', done: 3 }, usage: { prompt_tokens: 120, completion_tokens: 30 } };
    const res = await run(['intent', '--id', 'with-progress', '--payload', JSON.stringify(payload)], env);
    assert.equal(res.code, 0, res.stderr);
    const status = await run(['status', 'with-progress'], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^ {2}progress: {2}\{"stage":"searching","done":3\}$/m);
    assert.match(status.stdout, /^ {2}usage: {5}120 prompt \+ 30 completion tokens$/m);
    assert.match(status.stdout, /^ {2}finished: {2}\S+ \(ran \S+\)$/m);
    assert.doesNotMatch(status.stdout, /stalls:/);
  });

  it('client commands take the server from --url and --token over the environment; a non-http --url is refused; a token is never echoed', async () => {
    const TOKEN = 'cli-test-admin-token-0123456789';
    dev = await startLong(['serve', '--port', '0'], { REASONING_TRANSPORT: 'memory', REASONQ_API_TOKEN: TOKEN });
    // The environment points elsewhere (nothing listens on port 9), with a token the server does not know.
    const WRONG = 'wrong-token-wrong-token-00000';
    const env = { REASONING_TRANSPORT: 'http', REASONING_API_URL: 'http://127.0.0.1:9', REASONQ_API_TOKEN: WRONG, REASONING_API_RETRIES: '0' };
    const server = ['--url', dev.url, '--token', TOKEN];
    const enq = await run(['enqueue', '--goal', 'by flags', '--id', 'by-flags', ...server], env);
    assert.equal(enq.code, 0, enq.stderr);
    for (const cmd of [['status', 'by-flags'], ['list'], ['stats'], ['workers'], ['events', 'by-flags', '--no-follow'], ['cancel', 'by-flags'], ['retry', 'by-flags'], ['intent', '--goal', 'x', '--no-wait']]) {
      const res = await run([...cmd, ...server], env);
      assert.equal(res.code, 0, `${cmd[0]}: ${res.stderr}`);
    }
    const envToken = await run(['status', 'by-flags', '--url', dev.url], env);
    assert.equal(envToken.code, 1);
    assert.match(envToken.stderr, /UNAUTHORIZED/);
    assert.ok(!envToken.stderr.includes(WRONG), envToken.stderr);
    const envUrl = await run(['status', 'by-flags', '--token', TOKEN], env);
    assert.equal(envUrl.code, 1);
    assert.match(envUrl.stderr, /127\.0\.0\.1:9 is unreachable/);
    assert.ok(!envUrl.stderr.includes(TOKEN));
    const badUrl = await run(['status', 'by-flags', '--url', 'ftp://127.0.0.1/'], env);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /--url must be the reasonq server's http:\/\/ or https:\/\/ address, like http:\/\/127\.0\.0\.1:8080 \(got "ftp:\/\/127\.0\.0\.1"\)/);
    const queryUrl = await run(['status', 'by-flags', '--url', `${dev.url}/?api_key=s3cr3t-in-query`], env);
    assert.equal(queryUrl.code, 2);
    assert.match(queryUrl.stderr, /--url is the server's address without \?query or #fragment/);
    assert.ok(!queryUrl.stderr.includes('s3cr3t-in-query'), queryUrl.stderr);
    const badToken = await run(['status', 'by-flags', '--url', dev.url, '--token', 'my secret'], env);
    assert.equal(badToken.code, 2);
    assert.match(badToken.stderr, /--token must be one of the server's tokens: at least 16 printable characters without spaces/);
    assert.ok(!badToken.stderr.includes('my secret'));
  });

  it('validation messages name the flag and what it accepts (exit 2); --delay takes 0 and units', async () => {
    const env = { REASONING_TRANSPORT: 'memory' };
    const refused: [string[], RegExp][] = [
      [['--delay', 'abc'], /--delay must be a duration from 0 to 365d: milliseconds \(1500\) or a number with a unit \(1500ms, 30s, 5m, 2h, 1d\) \(got "abc"\)/],
      [['--delay', '-5'], /--delay must be a duration/],
      [['--priority', 'x'], /--priority must be a whole number from -1000000 to 1000000 \(got "x"\)/],
      [['--priority', '1.5'], /--priority must be a whole number/],
      [['--max-attempts', '0'], /--max-attempts must be a whole number from 1 to 1000 \(got "0"\)/],
      [['--max-attempts', '5000'], /--max-attempts must be a whole number from 1 to 1000 \(got "5000"\)/],
      [['--attempt-timeout', '2d'], /--attempt-timeout must be a duration from 1ms to 1d/],
      [['--queue', 'bad/name'], /--queue must be a queue name: 1 to 64 letters, digits, _ \. : or -, starting with a letter or digit \(got "bad\/name"\)/],
      [['--step', '-1'], /--step must be a whole number, 0 or more \(got "-1"\)/],
      [['--id', 'a b'], /--id may contain only letters, digits and _ \. : - \(got "a b"\)/],
      [['--dedupe-key', ''], /--dedupe-key must be at least 1 character long/],
      [['--callback-url', 'ftp://example.test/'], /--callback-url must be http: or https: \(got "ftp:\/\/example\.test\/"\)/],
      [['--payload', '{"goal":"g","step":"3"}'], /--payload: "step" must be a number/],
      [['--payload', '{bad'], /--payload must be JSON \(or @file with JSON\)/],
      [['--payload', '@/no/such/file.json'], /--payload @\/no\/such\/file\.json: the file cannot be read \(ENOENT\)/],
    ];
    // Four CLI processes at a time: each is a node start, the test's whole cost.
    const answers: Awaited<ReturnType<typeof run>>[] = [];
    for (let i = 0; i < refused.length; i += 4) answers.push(...(await Promise.all(refused.slice(i, i + 4).map(([flags]) => run(['enqueue', '--goal', 'g', ...flags], env)))));
    for (const [i, [flags, message]] of refused.entries()) {
      const res = answers[i]!;
      assert.equal(res.code, 2, `${flags.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, message, flags.join(' '));
      assert.doesNotMatch(res.stderr, /Invalid input|expected \w+, received|Too (big|small)/, flags.join(' '));
    }
    // Refused as it is read, before anything connects (nothing listens on port 9).
    const queues = await run(['worker', '--queues', 'ok,bad/x'], { REASONING_TRANSPORT: 'http', REASONING_API_URL: 'http://127.0.0.1:9', REASONING_API_RETRIES: '0' });
    assert.equal(queues.code, 2, queues.stderr);
    assert.match(queues.stderr, /--queues must be comma-separated queue names, each 1 to 64 letters, digits, _ \. : or -, starting with a letter or digit \(got "bad\/x"\)/);
    const reason = await run(['cancel', 'some-job', '--reason', 'r'.repeat(1001)], env);
    assert.equal(reason.code, 2);
    assert.match(reason.stderr, /--reason must be at most 1000 characters \(got 1001\)/);
    const limit = await run(['list', '--limit', '1000'], env);
    assert.equal(limit.code, 2);
    assert.match(limit.stderr, /--limit must be a whole number from 1 to 500 \(got "1000"\)/);
    const timeout = await run(['intent', '--goal', 'g', '--timeout', '0'], env);
    assert.equal(timeout.code, 2);
    assert.match(timeout.stderr, /--timeout must be a duration from 1ms to 1h/);
    const delays = [['0', 0], ['30s', 30_000], ['1500', 1500], ['1.5m', 90_000]] as const;
    const delayed = await Promise.all(delays.map(([delay]) => run(['enqueue', '--goal', 'g', '--delay', delay, '--json'], env)));
    for (const [i, [delay, ms]] of delays.entries()) {
      const res = delayed[i]!;
      assert.equal(res.code, 0, `--delay ${delay}: ${res.stderr}`);
      const { job } = JSON.parse(res.stdout);
      assert.equal(Date.parse(job.run_at) - Date.parse(job.created_at), ms, `--delay ${delay}`);
    }
  });

  it('reasonq dev on another port prints URLs and a try command with that port, and the command works as printed', async () => {
    const port = await freePort();
    dev = await startLong(['dev', '--port', String(port), '--handler', FIXTURE]);
    const base = `http://127.0.0.1:${port}`;
    assert.equal(dev.url, base);
    assert.match(dev.out(), new RegExp(`dashboard +${base}/engine\\n +metrics +${base}/metrics`));
    const tryLine = await waitFor(() => /^try: (.*)$/m.exec(dev!.out())?.[1], 5000, 'the try line');
    assert.match(tryLine, new RegExp(`^npx reasonq intent --url ${base} --goal "`));
    // As printed, with nothing in the environment pointing at the server.
    const args = tryLine.match(/"[^"]*"|\S+/g)!.slice(2).map((a) => a.replace(/^"|"$/g, ''));
    const res = await run(args, { REASONING_API_URL: '', REASONING_TRANSPORT: '' });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /action:\s+finish/);
  });

});

describe('CLI logs', () => {
  it('picks the log format: the one asked for, else pretty on a terminal and JSON anywhere else', () => {
    assert.equal(pickLogFormat(undefined, { isTTY: true }), 'pretty');
    assert.equal(pickLogFormat(undefined, { isTTY: false }), 'json');
    assert.equal(pickLogFormat(undefined, {}), 'json');
    assert.equal(pickLogFormat('json', { isTTY: true }), 'json');
    assert.equal(pickLogFormat('pretty', { isTTY: false }), 'pretty');
  });

  it('a pretty log is one line an event: time, level, message, the job under short names, the rest as key=value, no control characters', () => {
    const out = sink(true);
    const log = createLogger({ level: 'info', destination: out, colors: false });
    log.child({ worker_id: `${hostname()}:4711:9f1c2a7e` }).child({ job_id: 'job-1', queue: 'q', attempt: 2 }).info({ outcome: 'done', duration_ms: 812 }, 'job ended');
    log.warn({ job_id: 'job-2', err: { message: 'boom\n\u001b[2Jgone \u009b31m', stack: 'Error: boom\n    at handler (x.js:1:1)' } }, 'handler failed');
    log.info({ queues: ['a', 'b'], url: 'http://127.0.0.1:8080' }, 'worker started');
    log.debug('below the level');
    const lines = out.text.split('\n');
    assert.equal(lines.pop(), '', 'every line ends with a newline');
    assert.equal(lines.length, 3, out.text);
    assert.match(lines[0]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: job ended job=job-1 queue=q worker=4711:9f1c2a7e attempt=2 outcome=done duration_ms=812$/);
    assert.match(lines[1]!, /^\[[\d:.]+\] WARN: handler failed job=job-2 err="boom\\n\\u001b\[2Jgone \\u009b31m"$/);
    assert.match(lines[2]!, /^\[[\d:.]+\] INFO: worker started queues=a,b url=http:\/\/127\.0\.0\.1:8080$/);
    // eslint-disable-next-line no-control-regex -- looking for control characters is the point
    assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(out.text), 'no raw control character reaches the terminal');
  });

  it('a logger writing anywhere but a terminal writes pino JSON, unless told pretty', () => {
    const piped = sink(false);
    createLogger({ level: 'info', destination: piped }).info({ job_id: 'job-1', queue: 'q' }, 'job ended');
    const record = JSON.parse(piped.text.trim());
    assert.equal(record.msg, 'job ended');
    assert.equal(record.job_id, 'job-1');
    const told = sink(false);
    createLogger({ level: 'info', destination: told, format: 'pretty' }).info({ job_id: 'job-1' }, 'job ended');
    assert.match(told.text, /INFO: job ended job=job-1\n$/);
    const tty = sink(true);
    createLogger({ level: 'info', destination: tty, format: 'json' }).info('x');
    assert.equal(JSON.parse(tty.text).msg, 'x');
  });
});

describe('CLI output', () => {
  const now = Date.parse('2026-12-01T12:00:00.000Z');
  const at = (msAgo: number) => new Date(now - msAgo);

  it('status: progress, usage, callback delivery, stalls only when there are some, and the attempt history as a table', () => {
    const base = buildJob({ payload: { goal: 'g' }, callback_url: 'https://hooks.example.test/in' }, at(120_000));
    const job: Job = {
      ...base,
      status: 'done',
      attempts: 2,
      stalls: 1,
      started_at: at(10_000),
      finished_at: at(8_000),
      progress: { stage: 'searching', done: 3 },
      usage: { prompt_tokens: 120, completion_tokens: 30 },
      callback: { state: 'failed', attempts: 5, last_status: 503, last_error: null },
      result: { action: 'finish', finish: true },
      runs: [
        // ISO strings, in process and over JSON (src/runs.ts)
        { attempt: 1, worker: 'host-a:1:aa', started_at: at(60_000).toISOString(), ended_at: at(58_500).toISOString(), end: 'retry', error: { code: 'MODEL_TIMEOUT', message: 'no answer in 1.5 s', retryable: true } },
        { attempt: 2, worker: 'host-b:2:bb', started_at: at(10_000).toISOString(), ended_at: at(8_000).toISOString(), end: 'done', error: null },
      ],
    };
    const text = formatJob(job, now);
    assert.match(text, /^ {2}stalls: {4}1\/10 \(runs that lost their lease/m);
    assert.match(text, /^ {2}progress: {2}\{"stage":"searching","done":3\}$/m);
    assert.match(text, /^ {2}usage: {5}120 prompt \+ 30 completion tokens$/m);
    assert.match(text, /^ {2}callback: {2}failed after 5 tries: HTTP 503 \(given up\)$/m);
    assert.match(text, /^ {2}finished: {2}\S+ \(ran 2\.0s\)$/m);
    assert.match(text, /^ {2}runs:\n {4}attempt +worker +started +took +end +error\n {4}1 +host-a:1:aa +2026-12-01T11:59:00\.000Z +1\.5s +retry +MODEL_TIMEOUT: no answer in 1\.5 s\n {4}2 +host-b:2:bb +2026-12-01T11:59:50\.000Z +2\.0s +done$/m);

    const plainJob: Job = { ...base, runs: [] };
    const quiet = formatJob(plainJob, now);
    assert.doesNotMatch(quiet, /stalls:|progress:|usage:|runs:/);
    assert.match(quiet, /^ {2}callback: {2}https:\/\/hooks\.example\.test\/in \(sent when the job ends\)$/m);
    assert.match(formatJob({ ...base, callback: { state: 'delivered', attempts: 1, delivered_at: at(5_000).toISOString() } }, now), /^ {2}callback: {2}delivered 5\.0s ago \(1 try\)$/m);
    assert.match(formatJob({ ...base, callback: { state: 'pending', attempts: 2, last_status: null, last_error: 'connect ECONNREFUSED', next_at: at(-4_000).toISOString() } }, now), /^ {2}callback: {2}pending: 2 tries so far, last connect ECONNREFUSED, next 2026-12-01T12:00:04\.000Z$/m);
  });

  it('list: a header and aligned columns; the time column is run time, running time or wait', () => {
    const job = (id: string, patch: Partial<Job>) => ({ ...buildJob({ id, payload: { goal: `goal of ${id}` } }, at(90_000)), ...patch });
    const text = formatList([
      job('done-1', { status: 'done', attempts: 1, started_at: at(79_500), finished_at: at(78_000) }),
      job('running-1', { status: 'processing', attempts: 1, started_at: at(12_000), lease: { owner: 'w', token: 't', until: at(-20_000) } }),
      job('stalled-1', { status: 'processing', attempts: 1, started_at: at(60_000), lease: { owner: 'w', token: 't', until: at(30_000) } }),
      job('waiting-1', {}),
      job('later-1', { run_at: at(-3_600_000) }),
      job('canceled-1', { status: 'canceled', finished_at: at(1_000) }),
    ], now);
    const lines = text.split('\n');
    assert.match(lines[0]!, /^ID +QUEUE +STATUS +ATTEMPTS +CREATED +FINISHED +TIME +GOAL$/);
    const cells = lines.slice(1).map((l) => l.split(/ {2,}/));
    assert.deepEqual(cells.map((c) => c[0]), ['done-1', 'running-1', 'stalled-1', 'waiting-1', 'later-1', 'canceled-1']);
    assert.deepEqual(cells.map((c) => c[6]), ['1.5s', 'running 12s', 'stalled 30s', 'waiting 1m30s', 'due in 1h00m', '-']);
    assert.deepEqual(cells[0], ['done-1', 'reasoning', 'done', '1/3', '1m30s ago', '1m18s ago', '1.5s', 'goal of done-1']);
    // aligned: every column starts where its header does
    for (const name of ['QUEUE', 'STATUS', 'ATTEMPTS', 'CREATED', 'FINISHED', 'TIME', 'GOAL']) {
      const start = lines[0]!.indexOf(name);
      for (const line of lines.slice(1)) assert.match(line.slice(start - 2, start), /^ {2}$/, `${name} in ${JSON.stringify(line)}`);
    }
    assert.equal(formatList([], now), 'no jobs');
  });

  it('the URL a client dials: the bound address, loopback for a wildcard', () => {
    assert.equal(clientUrl('127.0.0.1', 8181), 'http://127.0.0.1:8181');
    assert.equal(clientUrl('0.0.0.0', 8181), 'http://127.0.0.1:8181');
    assert.equal(clientUrl('::', 8181), 'http://[::1]:8181');
    assert.equal(clientUrl('::1', 9000), 'http://[::1]:9000');
    assert.equal(clientUrl('localhost', 9000), 'http://localhost:9000');
  });
});
