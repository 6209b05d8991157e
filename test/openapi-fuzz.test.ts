/**
 * The contract, fuzzed: schemathesis (property-based, from PyPI; installed by
 * scripts/schemathesis/ensure.sh) reads /openapi.json from a live server and
 * sends every operation generated requests, valid and invalid, then chains
 * them (enqueue → read → cancel …) along the links it infers. It passes when
 * - no answer is a 5xx (`not_a_server_error`; /v1/intents may answer its
 *   documented 502 and 504, scripts/schemathesis/schemathesis.toml),
 * - every status is one the document names for that operation
 *   (`status_code_conformance`), with its content type
 *   (`content_type_conformance`),
 * - every body matches its documented schema (`response_schema_conformance`):
 *   every 4xx is `{error: {code, message}}`, every job is a Job,
 * - what the contract calls invalid is refused (`negative_data_rejection`),
 *   an operation that names a security scheme refuses a request without
 *   credentials (`ignored_auth`), a method a path does not take is a 405
 *   (`unsupported_method`).
 * (Not `positive_data_acceptance`: a cursor the server never handed out and
 * a run_at more than a year ahead are refused by rules JSON Schema cannot say.)
 *
 * Bounded: a fixed number of examples per operation and a fixed seed (the
 * same cases each run; REASONQ_FUZZ_SEED and REASONQ_FUZZ_EXAMPLES change
 * them), a per-request timeout, and a hard stop of the whole run. The server
 * answers long-polls within 300 ms (fuzz-server.ts), so a generated
 * `wait_ms=3600000` costs the run nothing while the document still says what
 * a client may ask.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FUZZ_TOKEN, startFuzzServer, type FuzzServer } from './fuzz-server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_schema_conformance',
  // What the contract says is invalid is refused (a 4xx), never taken.
  'negative_data_rejection',
  // An operation that names a security scheme refuses a request without credentials.
  'ignored_auth',
  // A method a path does not take is a 405.
  'unsupported_method',
];
/** The whole run is stopped after this long, and fails. */
const RUN_LIMIT_MS = 240_000;

/** The `st` command, or why there is none (scripts/test.sh installs it; a standalone mocha run installs it here). */
function schemathesis(): { st: string } | { reason: string } {
  // npm test tried already and failed: say so rather than try again.
  if (process.env.REASONQ_SCHEMATHESIS_UNAVAILABLE) return { reason: process.env.REASONQ_SCHEMATHESIS_UNAVAILABLE };
  const ensured = spawnSync('bash', ['scripts/schemathesis/ensure.sh'], { cwd: root, encoding: 'utf8', timeout: 300_000 });
  if (ensured.status === 0) return { st: ensured.stdout.trim().split('\n').pop()! };
  return { reason: `scripts/schemathesis/ensure.sh failed (${ensured.status ?? ensured.signal}): ${ensured.stderr.trim().split('\n').slice(-3).join(' / ')}` };
}

function run(st: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    // Own process group, so a stop takes schemathesis's children too.
    const child = spawn(st, args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', PYTHONUNBUFFERED: '1' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      output += `\n[reasonq: schemathesis stopped after ${RUN_LIMIT_MS} ms]\n`;
      process.kill(-child.pid!, 'SIGKILL');
    }, RUN_LIMIT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('OpenAPI contract, fuzzed by schemathesis against a live server', function () {
  this.timeout(RUN_LIMIT_MS + 60_000);
  let server: FuzzServer | undefined;

  after(async () => {
    await server?.close();
  });

  it('no operation answers a 5xx; every status, content type and body is the documented one', async function () {
    const found = schemathesis();
    if ('reason' in found) {
      console.warn(`    SKIPPED: schemathesis is not installed: ${found.reason}`);
      this.skip();
    }
    server = await startFuzzServer();
    // schemathesis keeps its example database and state beside the venv, not in the work tree.
    const state = `${root}/.cache/schemathesis/state`;
    mkdirSync(state, { recursive: true });
    const args = [
      '--config-file', `${root}/scripts/schemathesis/schemathesis.toml`,
      'run', `${server.url}/openapi.json`,
      '--header', `Authorization: Bearer ${FUZZ_TOKEN}`,
      '--checks', CHECKS.join(','),
      '--phases', 'examples,coverage,fuzzing,stateful',
      '--max-examples', process.env.REASONQ_FUZZ_EXAMPLES ?? '10',
      '--seed', process.env.REASONQ_FUZZ_SEED ?? '1',
      '--request-timeout', '5',
      // One worker: hypothesis describes strategies by parsing lambda sources, which is not thread-safe on Python 3.11.
      '--workers', '1',
      '--max-failures', '20',
      '--no-color',
    ];
    const started = Date.now();
    const { code, output } = await run(('st' in found ? found.st : ''), args, state);
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    assert.equal(code, 0, `schemathesis found the server off its contract (exit ${code}, ${seconds} s):\n${output}`);
    const cases = /Test cases:\s*\n\s*(\d+ generated, \d+ passed[^\n]*)/.exec(output);
    assert.ok(cases, `schemathesis ran no test case:\n${output}`);
    console.log(`    schemathesis: ${cases[1]} in ${seconds} s`);
  });
});
