/** The job model: schemas, defaults, the state machine in one place, the demo reasoner's rules. */
import assert from 'node:assert/strict';
import { ValidationError } from '../src/errors.js';
import { buildJob, canTransition, intentSchema, JOB_STATUSES, reviveJob, type JobStatus, type Transition } from '../src/job.js';
import { reason, searchTerm } from '../src/reasoner.js';
import { backoffDelay } from '../src/backoff.js';

describe('job model', () => {
  it('buildJob applies the documented defaults and a UUIDv7 id', () => {
    const job = buildJob({ payload: { goal: 'g', session_id: 's', step: 2, extra: { a: 1 } } });
    assert.match(job.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(job.queue, 'reasoning');
    assert.equal(job.status, 'queued');
    assert.equal(job.max_attempts, 3);
    assert.equal(job.priority, 0);
    assert.deepEqual(job.payload, { goal: 'g', session_id: 's', step: 2, extra: { a: 1 } });
    assert.ok(job.run_at.getTime() <= Date.now());
    const delayed = buildJob({ payload: {}, delay_ms: 5000 });
    assert.ok(delayed.run_at.getTime() >= Date.now() + 4900);
  });

  it('rejects bad input with a ValidationError naming the field', () => {
    const cases: [unknown, string][] = [
      [{ payload: {}, queue: '-bad' }, 'queue'],
      [{ payload: {}, queue: 'x'.repeat(65) }, 'queue'],
      [{ payload: {}, priority: 1.5 }, 'priority'],
      [{ payload: {}, max_attempts: 0 }, 'max_attempts'],
      [{ payload: { step: -1 } }, 'payload.step'],
      [{ payload: {}, callback_url: 'ftp://x/y' }, 'callback_url'],
      [{ payload: {}, id: 'has space' }, 'id'],
      [{}, 'payload'],
    ];
    for (const [input, field] of cases) {
      assert.throws(() => buildJob(input as never), (e: unknown) => e instanceof ValidationError && e.field === field && e.message.startsWith(`${field}: `), field);
    }
  });

  it('intents need an action, and a tool_name when the action is "tool"', () => {
    assert.equal(intentSchema.safeParse({ action: 'finish', finish: true }).success, true);
    assert.equal(intentSchema.safeParse({ action: 'tool', tool_name: 't', args: {} }).success, true);
    assert.equal(intentSchema.safeParse({ action: 'tool' }).success, false);
    assert.equal(intentSchema.safeParse({ tool_name: 't' }).success, false);
    assert.equal(intentSchema.safeParse({ action: 'tool', tool_name: 't', args: 'x' }).success, false);
  });

  it('the state machine allows exactly the moves of docs/architecture.md', () => {
    const allowed = new Set([
      'claim:queued>processing',
      'complete:processing>done',
      'fail:processing>error',
      'fail:processing>queued',
      'requeue:processing>queued',
      'requeue:processing>error',
      'requeue:processing>canceled',
      'cancel:queued>canceled',
      'cancel:processing>canceled',
      'retry:error>queued',
      'retry:canceled>queued',
    ]);
    const moves: Transition[] = ['claim', 'complete', 'fail', 'requeue', 'cancel', 'retry'];
    for (const move of moves) {
      for (const from of JOB_STATUSES) {
        for (const to of JOB_STATUSES) {
          assert.equal(canTransition(move, from as JobStatus, to as JobStatus), allowed.has(`${move}:${from}>${to}`), `${move}: ${from} → ${to}`);
        }
      }
    }
    for (const terminal of ['done', 'error', 'canceled'] as const) {
      for (const move of moves.filter((m) => m !== 'retry')) {
        for (const to of JOB_STATUSES) assert.equal(canTransition(move, terminal, to), false, `${terminal} never changes by ${move}`);
      }
    }
  });

  it('reviveJob turns wire dates back into Dates', () => {
    const job = buildJob({ payload: { goal: 'x' } });
    const back = reviveJob(JSON.parse(JSON.stringify({ ...job, lease: { owner: 'w', token: 't', until: new Date(5) } })));
    assert.ok(back.created_at instanceof Date && back.run_at instanceof Date && back.lease?.until instanceof Date);
    assert.equal(back.lease?.until.getTime(), 5);
    assert.deepEqual({ ...back, lease: null }, { ...job, lease: null });
  });

  it('backoff grows exponentially, is capped, and is jittered to 50–100 %', () => {
    const opts = { baseMs: 100, maxMs: 1000 };
    assert.equal(backoffDelay(1, opts, () => 1), 100);
    assert.equal(backoffDelay(3, opts, () => 1), 400);
    assert.equal(backoffDelay(10, opts, () => 1), 1000);
    assert.equal(backoffDelay(3, opts, () => 0), 200);
  });
});

describe('demo reasoner', () => {
  it('turns a "find where X is defined" goal into an fts_search', () => {
    assert.deepEqual(reason({ goal: 'Find where Framework is defined' }), {
      action: 'tool',
      tool_name: 'savant-context.fts_search',
      args: { query: 'Framework', limit: 10 },
      finish: false,
      reasoning: 'To answer "Find where Framework is defined", search the code index for "Framework".',
    });
    assert.equal(searchTerm('where is "retry policy" configured'), 'retry policy');
    assert.equal(searchTerm('find usages of parse_config'), 'parse_config');
    assert.equal(searchTerm('search for timeout'), 'timeout');
  });

  it('reads named files, lists folders, and finishes after an observation or at the step limit', () => {
    assert.deepEqual(reason({ goal: 'Read the file src/app.ts' }).args, { path: 'src/app.ts' });
    assert.equal(reason({ goal: 'list files in src' }).tool_name, 'savant-context.list_dir');
    assert.equal(reason({ goal: 'Find Framework', context: { observations: [{ hits: 3 }] } }).action, 'finish');
    assert.equal(reason({ goal: 'Find Framework', step: 8 }).finish, true);
    assert.equal(reason({ goal: 'hello there' }).action, 'finish');
    assert.throws(() => reason({ goal: '  ' }), /goal is empty/);
  });

  it('always answers a valid intent', () => {
    for (const goal of ['Find where Framework is defined', 'read a.md', 'list files', 'what is 2+2', 'grep for TODO']) {
      assert.equal(intentSchema.safeParse(reason({ goal })).success, true, goal);
    }
  });
});
