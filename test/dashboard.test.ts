/**
 * The dashboard at /engine in a real browser: Debian's Chromium driven by
 * playwright-core, against a real server on port 0 in front of the memory
 * store, with a real worker whose handler the test controls.
 * `scripts/ensure-chromium.sh` installs the browser.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCallbackSender, type CallbackSender } from '../src/callbacks.js';
import { NonRetryableError } from '../src/errors.js';
import { buildJob, type Intent, type IntentRequest, type Job } from '../src/job.js';
import { createServer } from '../src/server/app.js';
import type { Transport } from '../src/transport.js';
import { createWorker, type HandlerContext, type Worker } from '../src/worker.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { delay, newJob, uniqueQueue, waitFor } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const UI_TIMEOUT = 5_000;
/** Kept as test artifacts: what the dashboard looks like (README links them). */
const SHOTS = 'artifacts/screenshots';

describe('dashboard (/engine) in Chromium', function () {
  this.timeout(20_000);

  let browser: Browser;
  let context: BrowserContext | null = null;
  /** uncaught exceptions in the page; any one fails the test */
  let pageErrors: string[] = [];
  const apps: FastifyInstance[] = [];
  const stores: Transport[] = [];
  const workers: Worker[] = [];
  /** jobs whose handler is blocked, released by the test or by their AbortSignal */
  const gates = new Map<string, () => void>();
  /** ids that already failed once under goal `fail-once` */
  const failedOnce = new Set<string>();

  before(async function () {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing; run scripts/ensure-chromium.sh`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
  });

  afterEach(async () => {
    const errors = pageErrors;
    pageErrors = [];
    for (const release of gates.values()) release();
    gates.clear();
    await context?.close();
    context = null;
    await Promise.all(workers.splice(0).map((w) => w.stop(1000)));
    for (const app of apps.splice(0)) await app.close();
    for (const store of stores.splice(0)) await store.close();
    assert.deepEqual(errors, [], 'uncaught errors in the dashboard page');
  });

  /** Block the handler until the test releases it (`release`) or the run is aborted. */
  function hold(ctx: HandlerContext): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      gates.set(ctx.job_id, () => {
        gates.delete(ctx.job_id);
        resolve();
      });
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
    });
  }
  async function release(id: string): Promise<void> {
    await waitFor(() => gates.has(id), UI_TIMEOUT, `the handler of ${id} to wait at its gate`);
    gates.get(id)!();
  }
  /** Emit tokens one by one, a pause after each, as a model streams. */
  async function say(ctx: HandlerContext, tokens: string[]): Promise<void> {
    for (const text of tokens) {
      await ctx.emit('token', { text });
      await delay(40);
    }
  }

  /** The test's reasoner: `goal` picks what it does. */
  async function handler(payload: IntentRequest, ctx: HandlerContext): Promise<Intent> {
    const goal = String(payload.goal ?? '');
    // Whatever `echo` holds goes into the stream as a stage and as a token.
    if (typeof payload.echo === 'string') {
      await ctx.emit('thinking', { stage: payload.echo });
      await ctx.emit('token', { text: payload.echo });
    }
    if (goal === 'block') {
      await ctx.progress({ stage: 'thinking' });
      await hold(ctx);
    }
    if (goal === 'stream') {
      // A stage, a gate, some tokens, a gate, the rest: the test looks at the page at each gate.
      await ctx.emit('thinking', { stage: 'planning the answer' });
      await hold(ctx);
      await say(ctx, ['Hello ', 'from ', 'the ']);
      await hold(ctx);
      await say(ctx, ['streaming ', 'model.']);
      await ctx.usage({ prompt_tokens: 12, completion_tokens: 5 });
      return { action: 'finish', finish: true, reasoning: 'Hello from the streaming model.' };
    }
    if (goal === 'slow-stream') {
      // Tokens for a while: long enough to outlive a few short-lived SSE streams.
      const n = Number(payload.step ?? 20);
      for (let i = 0; i < n; i++) {
        await ctx.emit('token', { text: `t${i} ` });
        await delay(100);
      }
      return { action: 'finish', finish: true, reasoning: 'slow' };
    }
    if (goal === 'flood') {
      // Many events at once (the worker writes them in batches), then a long text.
      let last = Promise.resolve();
      for (let i = 0; i < 6000; i++) last = ctx.emit('step', { i });
      for (let i = 0; i < 120; i++) last = ctx.emit('token', { text: `${String(i).padStart(3, '0')}${'x'.repeat(996)}.` });
      await last;
      return { action: 'finish', finish: true, reasoning: 'flooded' };
    }
    if (goal === 'flaky') {
      // Streams in both attempts; the first fails with a retryable error.
      await ctx.emit('thinking', { stage: `attempt ${ctx.attempt}` });
      if (ctx.attempt === 1) {
        await say(ctx, ['first ', 'try']);
        throw new Error('upstream 503');
      }
      await say(ctx, ['second ', 'try']);
      return { action: 'finish', finish: true, reasoning: 'second try' };
    }
    if (goal === 'always-fail') throw new Error(`upstream 503 on attempt ${ctx.attempt}`);
    if (goal === 'third-time') {
      // Two attempts fail, each its own way; the third streams and waits at a gate.
      await ctx.emit('thinking', { stage: `attempt ${ctx.attempt}` });
      if (ctx.attempt === 1) throw new Error('upstream 503 from the model server');
      if (ctx.attempt === 2) throw new Error('connection reset while streaming');
      await say(ctx, ['The ', 'third ', 'attempt ', 'is ', 'streaming. ']);
      await hold(ctx);
      await say(ctx, ['Done.']);
      await ctx.usage({ prompt_tokens: 320, completion_tokens: 41 });
      return { action: 'finish', finish: true, reasoning: 'third time lucky' };
    }
    if (goal === 'fail-once' && !failedOnce.has(ctx.job_id)) {
      failedOnce.add(ctx.job_id);
      throw new NonRetryableError('model refused the prompt', { code: 'MODEL_REFUSED' });
    }
    return { action: 'finish', finish: true, reasoning: `answered: ${goal}` };
  }

  async function startServer(token?: string, options: { sseMaxMs?: number; dashboardFeedMs?: number; callbacks?: CallbackSender; maintenanceMs?: number } = {}, wrap: (t: Transport) => Transport = (t) => t) {
    const store = createMemoryTransport();
    await store.init();
    stores.push(store);
    const app = await createServer({ transport: wrap(store), token, ...options });
    apps.push(app);
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return { store, url };
  }

  async function startWorker(store: Transport, queue: string): Promise<Worker> {
    const worker = createWorker({ transport: store, handler, queues: [queue], concurrency: 4, leaseMs: 600, heartbeatMs: 300, claimWaitMs: 200, backoff: { baseMs: 50, maxMs: 100 }, id: `dash-worker-${queue}` });
    workers.push(worker);
    await worker.start();
    return worker;
  }

  async function openDashboard(url: string, viewport = { width: 1440, height: 960 }): Promise<Page> {
    context ??= await browser.newContext({ viewport });
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.setDefaultTimeout(UI_TIMEOUT);
    await page.goto(`${url}/engine`);
    return page;
  }

  const cell = (page: Page, queue: string, status: string) => page.locator(`#queues tr[data-queue="${queue}"] td[data-status="${status}"]`);

  async function expectText(page: Page, selector: string, expected: string | RegExp, what = selector): Promise<void> {
    const probe = async () => {
      const text = (await page.locator(selector).first().textContent().catch(() => null)) ?? '';
      return typeof expected === 'string' ? text.trim() === expected : expected.test(text);
    };
    await waitFor(probe, UI_TIMEOUT, `${what} to read ${String(expected)}`).catch(async (error: unknown) => {
      const actual = await page.locator(selector).first().textContent().catch(() => '(missing)');
      throw new Error(`${(error as Error).message}; it reads ${JSON.stringify(actual)}`);
    });
  }

  it('shows per-queue counts that change live as jobs are enqueued and finished', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('dash');
    const page = await openDashboard(url);
    await expectText(page, '#queues tbody', /no jobs yet/);

    for (let i = 0; i < 3; i++) await store.enqueue(newJob(queue, { payload: { goal: `count ${i}` } }));
    await store.enqueue(newJob(queue, { payload: { goal: 'later' }, delay_ms: 60_000 }));
    await expectText(page, `#queues tr[data-queue="${queue}"] td[data-status="queued"]`, '3', 'queued count (due now: the delayed one is counted apart)');
    assert.equal((await cell(page, queue, 'delayed').textContent())?.trim(), '1');
    assert.equal((await cell(page, queue, 'done').textContent())?.trim(), '0');
    await expectText(page, '[data-testid="total-queued"] b', '3');

    // Same page, no reload: the worker drains the due jobs and the counts follow.
    await startWorker(store, queue);
    await expectText(page, `#queues tr[data-queue="${queue}"] td[data-status="done"]`, '3', 'done count');
    await expectText(page, `#queues tr[data-queue="${queue}"] td[data-status="queued"]`, '0', 'queued count after the run');
    assert.equal((await cell(page, queue, 'delayed').textContent())?.trim(), '1');
    await expectText(page, '#recent-done', /count 2/, 'recent done list');
    assert.equal((await store.stats()).queues[queue]?.done, 3);
  });

  it('filters the job list by status and queue and pages through it', async () => {
    const { store, url } = await startServer();
    const a = uniqueQueue('pa');
    const b = uniqueQueue('pb');
    for (let i = 0; i < 18; i++) await store.enqueue(newJob(a, { payload: { goal: `a-${i}` } }));
    const onlyB = await store.enqueue(newJob(b, { payload: { goal: 'b-only' } }));
    await store.cancel(onlyB.job.id, 'test');
    const page = await openDashboard(url);

    await waitFor(async () => (await page.locator('#jobs tbody tr[data-job-id]').count()) === 15, UI_TIMEOUT, 'a first page of 15');
    await page.selectOption('#filter-queue', a);
    await expectText(page, '#page-info', 'page 1');
    await page.click('#page-next');
    await expectText(page, '#page-info', 'page 2');
    await waitFor(async () => (await page.locator('#jobs tbody tr[data-job-id]').count()) === 3, UI_TIMEOUT, 'the 3 oldest jobs of queue a on page 2');
    await expectText(page, '#jobs tbody', /a-0/);
    assert.equal(await page.locator('#page-next').isDisabled(), true);

    await page.selectOption('#filter-queue', '');
    await page.selectOption('#filter-status', 'canceled');
    await waitFor(async () => (await page.locator('#jobs tbody tr[data-job-id]').count()) === 1, UI_TIMEOUT, 'one canceled job');
    assert.equal(await page.locator('#jobs tbody tr[data-job-id]').getAttribute('data-job-id'), onlyB.job.id);
    await expectText(page, '#page-info', 'page 1');
  });

  it('shows a job in detail: payload (escaped), result, attempts, timeline and a hostile stream as text', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('detail');
    await startWorker(store, queue);
    const hostile = '<img src=x onerror="window.__xss=1"><b>bold</b> & "quotes"';
    // Streamed by the handler as a `thinking` stage and as a token.
    const echo = '<img src=x onerror="window.__xss=2"><script>window.__xss=3</script><svg onload="window.__xss=4">';
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: hostile, session_id: 'sess-42', step: 7, context: { tool: 'search' }, echo } }));
    await waitFor(async () => (await store.get(job.id))?.status === 'done', UI_TIMEOUT, 'the job to finish');

    const page = await openDashboard(url);
    await page.click(`#jobs tr[data-job-id="${job.id}"]`);
    await expectText(page, '[data-testid="detail-id"]', job.id);
    await expectText(page, '[data-testid="detail-status"]', 'done');
    const payload = JSON.parse((await page.locator('[data-testid="detail-payload"]').textContent()) ?? '') as Record<string, unknown>;
    assert.deepEqual(payload, { goal: hostile, session_id: 'sess-42', step: 7, context: { tool: 'search' }, echo });
    const result = JSON.parse((await page.locator('[data-testid="detail-result"]').textContent()) ?? '') as Record<string, unknown>;
    assert.equal(result.reasoning, `answered: ${hostile}`);
    assert.equal(result.action, 'finish');
    await expectText(page, '[data-testid="detail-attempts"]', '1 of 3');
    const events = await page.locator('[data-testid="detail-timeline"] li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-event')));
    assert.deepEqual(events, ['created', 'started', 'finished']);
    // The finished job's stream, replayed: the hostile token and stage are text.
    await expectText(page, '#stream [data-type="done"]', /done/);
    assert.equal(await page.locator('[data-testid="stream-text"] .text').textContent(), echo);
    assert.equal(await page.locator('#stream [data-type="thinking"] .sum').textContent(), echo);

    // User input is text, never markup: no element was made from it, no script ran.
    assert.equal(await page.locator('#detail img, #detail script, #detail svg, #jobs img, #recent-done img').count(), 0);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss), undefined);
    // The open job survives a reload through the URL.
    await page.reload();
    await expectText(page, '[data-testid="detail-id"]', job.id);
  });

  /** The stream box as a list: an event line is its type, a text block `text:<attempt>`. */
  const streamEntries = (page: Page) =>
    page.locator('#stream > *').evaluateAll((els) => els.map((el) => (el.getAttribute('data-testid') === 'stream-text' ? `text:${el.getAttribute('data-attempt')}` : el.getAttribute('data-type'))));

  it('streams a running job: the stage, then its tokens as they come, then done', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('stream');
    await startWorker(store, queue);
    const page = await openDashboard(url);
    const streams: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/v1/jobs/') && r.url().includes('/events')) streams.push(r.url());
    });
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'stream' } }));
    await waitFor(() => gates.has(job.id), UI_TIMEOUT, 'the handler to think');
    await page.click(`#running li[data-job-id="${job.id}"]`);
    await expectText(page, '#stream [data-type="thinking"]', /planning the answer/);
    await expectText(page, '#stream [data-type="started"]', new RegExp(`attempt 1 on dash-worker-${queue}`));
    await waitFor(() => page.locator('#live').textContent().then((t) => t === '● live'), UI_TIMEOUT, 'the stream to open');
    assert.equal(await page.locator('[data-testid="stream-text"]').count(), 0, 'no text before the first token');

    // Three tokens, then the handler waits: the page shows them while the job runs.
    await release(job.id);
    await expectText(page, '[data-testid="stream-text"] .text', 'Hello from the');
    await waitFor(() => gates.has(job.id), UI_TIMEOUT, 'the handler to wait again');
    await expectText(page, '[data-testid="detail-status"]', 'processing');
    assert.equal((await store.get(job.id))?.status, 'processing');
    await expectText(page, '[data-testid="stream-text"] .tag', 'attempt 1');
    const block = await page.locator('[data-testid="stream-text"]').elementHandle();

    await release(job.id);
    await expectText(page, '[data-testid="stream-text"] .text', 'Hello from the streaming model.');
    await expectText(page, '#stream [data-type="done"]', /done/);
    await expectText(page, '[data-testid="detail-status"]', 'done');
    await expectText(page, '[data-testid="detail-usage"]', '12 prompt + 5 completion tokens');
    await expectText(page, '[data-testid="detail-result"]', /Hello from the streaming model/);
    // The tokens went into the block made for the first one, not a re-rendered one.
    assert.equal(await block!.evaluate((el) => el.isConnected), true);
    assert.deepEqual(await streamEntries(page), ['queued', 'started', 'thinking', 'text:1', 'usage', 'done']);
    // `event: end` closed the stream: no reconnect (the server's retry is 1 s) and no reopen (the page's is 1-2 s after an error).
    await expectText(page, '#live', '');
    await delay(2500);
    assert.equal(streams.length, 1, `one stream request, not ${JSON.stringify(streams)}`);
    await expectText(page, '#stream-info', '10 events');
  });

  it('replays the whole stream of a finished job, each attempt labelled', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('replay');
    await startWorker(store, queue);
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'flaky' } }));
    await waitFor(async () => (await store.get(job.id))?.status === 'done', UI_TIMEOUT, 'the job to finish on its second attempt');

    const page = await openDashboard(url);
    await page.click(`#recent-done li[data-job-id="${job.id}"]`);
    await expectText(page, '#stream [data-type="done"]', /attempt 2/);
    assert.deepEqual(await streamEntries(page), ['queued', 'started', 'thinking', 'text:1', 'retry', 'started', 'thinking', 'text:2', 'done']);
    const texts = await page.locator('[data-testid="stream-text"]').evaluateAll((els) => els.map((el) => el.textContent));
    assert.deepEqual(texts, ['attempt 1first try', 'attempt 2second try']);
    await expectText(page, '#stream [data-type="retry"]', /attempt 1 failed \(HANDLER_ERROR: upstream 503\), runs again \d\d:\d\d:\d\d/);
    await expectText(page, '#stream [data-type="retry"] .badge', 'retry');
    assert.match((await page.locator('#stream [data-type="retry"]').getAttribute('class')) ?? '', /s-delayed/);
    await expectText(page, '#live', '');
    await expectText(page, '[data-testid="detail-attempts"]', '2 of 3');
  });

  it('holds at most 5,000 stream entries and the newest text of a long run', async function () {
    this.timeout(40_000);
    const { store, url } = await startServer();
    const queue = uniqueQueue('flood');
    await startWorker(store, queue);
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'flood' } }));
    await waitFor(async () => (await store.get(job.id))?.status === 'done', 15_000, 'the job to finish');

    const page = await openDashboard(url);
    await page.click(`#recent-done li[data-job-id="${job.id}"]`);
    await page.locator('#stream [data-type="done"]').waitFor({ timeout: 15_000 });
    await expectText(page, '#stream-info', '6123 events');
    // queued, started, 6000 steps, one text block, done: the oldest 1004 lines went.
    assert.equal(await page.locator('#stream > *').count(), 5000);
    await expectText(page, '[data-testid="stream-note"]', '… 1004 earlier events not shown');
    assert.equal(await page.locator('#stream > [data-type="step"]').first().getAttribute('title'), '{"i":1002}');
    const text = await page.locator('[data-testid="stream-text"] .text').textContent();
    assert.ok(text!.length <= 100_000 && text!.length >= 90_000, `the text block holds ${text!.length} characters`);
    assert.ok(text!.endsWith(`119${'x'.repeat(996)}.`), 'it ends with the last token');
    assert.match((await page.locator('[data-testid="stream-text"]').getAttribute('class')) ?? '', /\bcut\b/);
  });

  it('reopens a cut stream after the last event it showed: nothing lost, nothing twice', async () => {
    // Streams that the server closes every 400 ms without their end: each cut is an error for the page.
    // With a token: each reopen takes a fresh ticket, and says where to resume.
    const token = 'cut-secret-token';
    const { store, url } = await startServer(token, { sseMaxMs: 400 });
    const queue = uniqueQueue('cut');
    await startWorker(store, queue);
    const page = await openDashboard(url);
    await page.fill('#token-input', token);
    await page.click('#token-submit');
    await page.locator('#queues').waitFor({ state: 'visible' });
    const streams: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/v1/jobs/') && r.url().includes('/events')) streams.push(r.url());
    });
    const n = 30;
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'slow-stream', step: n } }));
    await page.click(`#running li[data-job-id="${job.id}"]`);
    const all = Array.from({ length: n }, (_, i) => `t${i}`).join(' ');
    await waitFor(async () => (await page.locator('[data-testid="stream-text"] .text').textContent().catch(() => ''))?.trim() === all, 10_000, 'all tokens');
    await expectText(page, '#stream [data-type="done"]', /done/);
    await expectText(page, '[data-testid="detail-status"]', 'done');
    assert.equal(await page.locator('[data-testid="stream-text"]').count(), 1);
    const reopened = streams.filter((u) => new URL(u).pathname.endsWith('/events') && !u.includes('format=json')).map((u) => [...new URL(u).searchParams.entries()]);
    assert.ok(reopened.length >= 2, `the stream was reopened: ${JSON.stringify(streams)}`);
    assert.deepEqual(reopened[0]!.map(([k]) => k), ['ticket']);
    for (const params of reopened.slice(1)) {
      assert.deepEqual(params.map(([k]) => k), ['ticket', 'after']);
      assert.ok(Number(params[1]![1]) > 0, 'a reopen resumes after an event it showed');
    }
  });

  it('cancels a running job from its detail view', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('cancel');
    await startWorker(store, queue);
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'block' } }));
    await waitFor(() => gates.has(job.id), UI_TIMEOUT, 'the handler to start');

    const page = await openDashboard(url);
    await page.click(`#running li[data-job-id="${job.id}"]`);
    await expectText(page, '[data-testid="detail-status"]', 'processing');
    await expectText(page, '[data-testid="detail-lease"]', new RegExp(`^dash-worker-${queue}`));
    await expectText(page, '[data-testid="detail-progress"]', '{"stage":"thinking"}');
    await waitFor(() => page.locator('#live').textContent().then((t) => t === '● live'), UI_TIMEOUT, 'the SSE stream to open');

    await page.click('#btn-cancel');
    await waitFor(async () => (await store.get(job.id))?.status === 'canceled', UI_TIMEOUT, 'the store to end the job canceled');
    // The stream's cancel_requested and canceled events (and the polled lists): the page follows without a click.
    await expectText(page, '[data-testid="detail-status"]', 'canceled');
    await expectText(page, '[data-testid="detail-timeline"]', /cancel requested: canceled from the dashboard/);
    await expectText(page, '#stream [data-type="cancel_requested"]', /canceled from the dashboard/);
    await expectText(page, '#stream [data-type="canceled"]', /canceled from the dashboard/);
    await expectText(page, `#queues tr[data-queue="${queue}"] td[data-status="canceled"]`, '1');
    assert.equal(await page.locator('#btn-cancel').isDisabled(), true);
    assert.equal(await page.locator('#btn-retry').isEnabled(), true);
    const stored = await store.get(job.id);
    assert.equal(stored?.cancel_requested?.reason, 'canceled from the dashboard');
  });

  it('retries a failed job, and shows the API error when retry is not allowed', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('retry');
    await startWorker(store, queue);
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'fail-once' } }));
    await waitFor(async () => (await store.get(job.id))?.status === 'error', UI_TIMEOUT, 'the first attempt to fail');

    const page = await openDashboard(url);
    await page.click(`#recent-failed li[data-job-id="${job.id}"]`);
    await expectText(page, '[data-testid="detail-status"]', 'error');
    await expectText(page, '[data-testid="detail-error"]', /MODEL_REFUSED: model refused the prompt/);
    await page.click('#btn-retry');
    await expectText(page, '#action-msg', 'Requeued.');
    await waitFor(async () => (await store.get(job.id))?.status === 'done', UI_TIMEOUT, 'the retried job to succeed');
    await expectText(page, '[data-testid="detail-status"]', 'done');
    await expectText(page, '[data-testid="detail-attempts"]', '1 of 3');

    // A stale page: hold its refresh of this job, end the job's error elsewhere, then click Retry.
    const failed = await store.enqueue(newJob(queue, { payload: { goal: 'fail-once' } }));
    await waitFor(async () => (await store.get(failed.job.id))?.status === 'error', UI_TIMEOUT, 'the second job to fail');
    await page.click(`#recent-failed li[data-job-id="${failed.job.id}"]`);
    await expectText(page, '[data-testid="detail-status"]', 'error');
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    // Never answered: the page's refresh stalls and it keeps showing the job as `error`.
    await page.route(`**/v1/jobs/${failed.job.id}`, () => held());
    await holding;
    await store.retry(failed.job.id);
    await waitFor(async () => (await store.get(failed.job.id))?.status === 'done', UI_TIMEOUT, 'the job to be retried behind the page');
    await page.click('#btn-retry');
    await expectText(page, '#action-msg', /retry failed — INVALID_STATE \(HTTP 409\): job .* is done/);
  });

  it('lays out a busy engine without overflow (screenshot in /tmp/dashboard.png)', async () => {
    const { store, url } = await startServer();
    const queues = [uniqueQueue('reasoning'), uniqueQueue('planner'), uniqueQueue('critic')];
    for (const q of queues) await startWorker(store, q);
    const long = 'Summarise the last 40 tool calls of session 7f3c and decide whether the agent should keep searching or ask the user a clarifying question';
    for (const [i, q] of queues.entries()) {
      for (let n = 0; n < 4; n++) await store.enqueue(newJob(q, { payload: { goal: n === 0 ? long : `step ${n} of plan ${i}`, session_id: `s-${i}` } }));
      await store.enqueue(newJob(q, { payload: { goal: 'fail-once' } }));
      await store.enqueue(newJob(q, { payload: { goal: 'scheduled follow-up' }, delay_ms: 120_000 }));
    }
    const running = await store.enqueue(newJob(queues[0]!, { payload: { goal: 'block', session_id: 'live-session' } }));
    await store.heartbeat({ id: 'gpu-box-2:4242:deadbeef', queues: [queues[1]!], concurrency: 8, running: 0, host: 'gpu-box-2', pid: 4242, started_at: new Date(Date.now() - 600_000), last_seen: new Date(Date.now() - 90_000), ttl_ms: 3000, processed: 212, failed: 3 });
    await waitFor(async () => (await store.stats()).totals.done === 12 && gates.has(running.job.id), UI_TIMEOUT, 'the jobs to settle');

    const page = await openDashboard(url);
    await expectText(page, '[data-testid="total-done"] b', '12');
    await expectText(page, '[data-testid="total-error"] b', '3');
    await expectText(page, '[data-testid="total-delayed"] b', '3');
    await expectText(page, '[data-testid="total-processing"] b', '1');
    const failedId = await page.locator('#recent-failed li[data-job-id]').first().getAttribute('data-job-id');
    await page.click(`#recent-failed li[data-job-id="${failedId}"]`);
    await expectText(page, '[data-testid="detail-status"]', 'error');
    const overflow = await page.locator('html').evaluate((html) => html.scrollWidth - html.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
    const clipped = await page.locator('section.card').evaluateAll((cards) => cards.filter((c) => c.scrollWidth > c.clientWidth + 1).map((c) => c.querySelector('h2')?.textContent));
    assert.deepEqual(clipped, [], 'cards whose content is wider than the card');
    await page.screenshot({ path: '/tmp/dashboard.png', fullPage: true });
  });

  it('lists workers alive and dead', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('wk');
    const worker = await startWorker(store, queue);
    const old = new Date(Date.now() - 60_000);
    await store.heartbeat({ id: 'crashed-worker', queues: [queue], concurrency: 1, running: 0, host: 'elsewhere', pid: 1, started_at: old, last_seen: old, ttl_ms: 3000, processed: 5, failed: 1 });

    const page = await openDashboard(url);
    await expectText(page, `#workers tr[data-worker-id="${worker.id}"] [data-testid="worker-state"]`, 'alive');
    await expectText(page, '#workers tr[data-worker-id="crashed-worker"] [data-testid="worker-state"]', 'stale');
    await expectText(page, '#workers-n', '1');

    // A stopped worker unregisters and leaves the list.
    await worker.stop(1000);
    await waitFor(async () => (await page.locator(`#workers tr[data-worker-id="${worker.id}"]`).count()) === 0, UI_TIMEOUT, 'the stopped worker to disappear');
  });

  it('asks for the token when the server has one, then works with it (SSE included)', async () => {
    const token = 'dash-secret-token';
    const { store, url } = await startServer(token);
    const queue = uniqueQueue('auth');
    await startWorker(store, queue);
    const page = await openDashboard(url);
    await page.locator('[data-testid="auth"]').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#queues').isVisible(), false);

    await page.fill('#token-input', 'wrong-token');
    await page.click('#token-submit');
    await expectText(page, '#auth-error', 'The server rejected this token.');

    // The push opens with the cookie and a feed ticket: no token in its URL.
    const feed = page.waitForResponse((r) => r.url().includes('/v1/dashboard/events?'));
    await page.fill('#token-input', token);
    await page.click('#token-submit');
    await page.locator('#queues').waitFor({ state: 'visible' });
    const opened = await feed;
    assert.equal(opened.status(), 200);
    assert.deepEqual([...new URL(opened.url()).searchParams.keys()], ['ticket']);
    await expectText(page, '#conn', 'live');
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'block' } }));
    await expectText(page, `#queues tr[data-queue="${queue}"] td[data-status="processing"]`, '1');
    // The page keeps no token: not in any storage (sessionStorage holds the session's secret only), and the session cookie is HttpOnly.
    const stored = await page.evaluate(() => {
      type S = { length: number; key(i: number): string | null; getItem(k: string): string | null };
      const g = globalThis as unknown as { localStorage: S; sessionStorage: S; document: { cookie: string } };
      const values: string[] = [];
      for (const store of [g.localStorage, g.sessionStorage]) for (let i = 0; i < store.length; i++) values.push(store.getItem(store.key(i)!) ?? '');
      return { values, local: g.localStorage.length, cookie: g.document.cookie };
    });
    assert.ok(!stored.values.some((v) => v.includes(token)), 'the token is in no storage');
    assert.equal(stored.local, 0, 'nothing in localStorage');
    assert.equal(stored.cookie, '');

    // The job detail stream authenticates with the cookie and a one-job ticket: no token in its URL.
    const events = page.waitForResponse((r) => r.url().includes(`/v1/jobs/${job.id}/events?`));
    await page.click(`#running li[data-job-id="${job.id}"]`);
    const stream = await events;
    assert.equal(stream.status(), 200);
    assert.deepEqual([...new URL(stream.url()).searchParams.keys()], ['ticket']);
    assert.ok(!stream.url().includes(token));
    await waitFor(() => gates.has(job.id), UI_TIMEOUT, 'the handler to start');
    gates.get(job.id)?.();
    await expectText(page, '[data-testid="detail-status"]', 'done');

    // The session outlives a reload; signing out ends it.
    await page.reload();
    await expectText(page, `#queues tr[data-queue="${queue}"] td[data-status="done"]`, '1');
    assert.equal(await page.locator('[data-testid="auth"]').isVisible(), false);
    await page.click('#token-forget');
    await page.locator('[data-testid="auth"]').waitFor({ state: 'visible' });
    await page.reload();
    await page.locator('[data-testid="auth"]').waitFor({ state: 'visible' });
  });
  /** A day of finished jobs, imported as the migrator imports them: each rolled up at its own finish. */
  function syntheticDay(queues: string[], now = Date.now()): Job[] {
    const jobs: Job[] = [];
    // A fixed pseudo-random sequence: the same day every run.
    let seed = 7;
    const rand = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
    for (let minute = 24 * 60 - 20; minute >= 1; minute -= 2) {
      const hour = new Date(now - minute * 60_000).getHours();
      // Busier in the working day; a burst of failures in the afternoon.
      const n = 1 + Math.floor(rand() * (hour >= 9 && hour <= 18 ? 4 : 2));
      for (let k = 0; k < n; k++) {
        const finished = new Date(now - minute * 60_000 - Math.floor(rand() * 60_000));
        const run = 400 + Math.floor(rand() * rand() * 9000);
        const wait = Math.floor(rand() * rand() * (hour === 14 ? 20_000 : 2_500));
        const started = new Date(finished.getTime() - run);
        const created = new Date(started.getTime() - wait);
        const r = rand();
        const status = r < (hour === 15 ? 0.3 : 0.05) ? 'error' : r > 0.985 ? 'canceled' : 'done';
        const job = buildJob({ queue: queues[Math.floor(rand() * queues.length)]!, payload: { goal: `synthetic ${minute}/${k}`, session_id: `day-${minute % 17}` } }, created);
        Object.assign(job, {
          status,
          attempts: status === 'error' ? 3 : 1,
          started_at: started,
          finished_at: finished,
          updated_at: finished,
          result: status === 'done' ? { action: 'finish', finish: true, reasoning: 'ok' } : null,
          error: status === 'error' ? { code: 'HANDLER_ERROR', message: 'upstream 503', retryable: true } : null,
          usage: status === 'canceled' ? null : { prompt_tokens: 200 + Math.floor(rand() * 1800), completion_tokens: 20 + Math.floor(rand() * 400) },
        });
        jobs.push(job);
      }
    }
    return jobs;
  }
  async function importJobs(store: Transport, jobs: Job[]): Promise<void> {
    for (let i = 0; i < jobs.length; i += 500) {
      const chunk = jobs.slice(i, i + 500);
      await store.enqueueMany(chunk, { imported: { events: chunk.map(() => []) } });
    }
  }
  async function shot(page: Page, name: string, fullPage = true): Promise<void> {
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: `${SHOTS}/${name}`, fullPage });
  }
  it('is pushed, not polled: a new job shows without a request, an idle page sends none, and two pages cost the store one read', async () => {
    let statsReads = 0;
    const counting = (t: Transport): Transport =>
      new Proxy(t, {
        get(target, key, receiver) {
          const v = Reflect.get(target, key, receiver) as unknown;
          if (key === 'stats') return (...args: unknown[]) => ((statsReads += 1), (v as (...a: unknown[]) => unknown).apply(target, args));
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    const { store, url } = await startServer(undefined, { dashboardFeedMs: 250 }, counting);
    const queue = uniqueQueue('push');
    const page = await openDashboard(url);
    await expectText(page, '#conn', 'live');
    await expectText(page, '#queues tbody', /no jobs yet/);
    await expectText(page, '#jobs tbody', /no jobs match/);
    await delay(300); // the first reads have landed
    const requests: string[] = [];
    page.on('request', (r) => {
      if (!r.url().includes('/v1/dashboard/events')) requests.push(new URL(r.url()).pathname);
    });

    // Idle: nothing changes, so the page asks for nothing (the old page read /v1/stats every second).
    await delay(1500);
    assert.equal(requests.length, 0, `an idle dashboard sends no request: ${JSON.stringify(requests)}`);

    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'pushed' } }));
    await expectText(page, `#queues tr[data-queue="${queue}"] td[data-status="queued"]`, '1', 'the pushed count');
    await page.locator(`#jobs tr[data-job-id="${job.id}"]`).waitFor();
    assert.ok(!requests.includes('/v1/stats'), `no stats request: ${JSON.stringify(requests)}`);
    assert.ok(requests.includes('/v1/jobs'), 'the counts moved: the page read the job list once');

    // A second dashboard rides on the same feed: store reads per interval stay one, not two.
    const second = await context!.newPage();
    second.on('pageerror', (error) => pageErrors.push(error.message));
    await second.goto(`${url}/engine`);
    await expectText(second, '#conn', 'live');
    const before = statsReads;
    await delay(2000);
    const reads = statsReads - before;
    assert.ok(reads >= 4 && reads <= 10, `two open dashboards read stats ${reads} times in 2 s at a 250 ms interval (one feed: about 8)`);
    await second.close();
    await page.close();
    // No viewer, no reads.
    await delay(600);
    const idle = statsReads;
    await delay(1000);
    assert.equal(statsReads, idle, 'the feed stops when nobody watches');
  });

  it('says when the push is cut and comes back by itself, missing nothing', async () => {
    // Pushes that the server ends every 600 ms: each end is a cut for the page.
    const { store, url } = await startServer(undefined, { sseMaxMs: 600 });
    const queue = uniqueQueue('recon');
    const page = await openDashboard(url);
    await expectText(page, '#conn', 'live');
    await expectText(page, '#conn', 'reconnecting…');
    await expectText(page, '#conn', 'live');
    await store.enqueue(newJob(queue, { payload: { goal: 'after the cut' } }));
    await expectText(page, `#queues tr[data-queue="${queue}"] td[data-status="queued"]`, '1', 'the count after a reconnect');
  });

  it('clicking a queue filters the list and shows it in the queue selector', async () => {
    const { store, url } = await startServer();
    const a = uniqueQueue('qa');
    const b = uniqueQueue('qb');
    await store.enqueue(newJob(a, { payload: { goal: 'in a' } }));
    const inB = await store.enqueue(newJob(b, { payload: { goal: 'in b' } }));
    const page = await openDashboard(url);
    await page.click(`#queues tr[data-queue="${b}"]`);
    await waitFor(async () => (await page.locator('#filter-queue').inputValue()) === b, UI_TIMEOUT, 'the selector to show the clicked queue');
    await waitFor(async () => (await page.locator('#jobs tbody tr[data-job-id]').count()) === 1, UI_TIMEOUT, 'only the clicked queue listed');
    assert.equal(await page.locator('#jobs tbody tr[data-job-id]').getAttribute('data-job-id'), inB.job.id);
    await expectText(page, '#btn-retry-all', `Retry failed in ${b}`);
  });

  it('searches: a job id opens the job, anything else lists that session_id', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('search');
    const mine = [
      await store.enqueue(newJob(queue, { payload: { goal: 'first of mine', session_id: 'sess-alpha' } })),
      await store.enqueue(newJob(queue, { payload: { goal: 'second of mine', session_id: 'sess-alpha' } })),
    ].map((r) => r.job.id);
    const other = await store.enqueue(newJob(queue, { payload: { goal: 'someone else', session_id: 'sess-beta' } }));
    const page = await openDashboard(url);
    await page.locator(`#jobs tr[data-job-id="${other.job.id}"]`).waitFor();

    await page.fill('#search', other.job.id);
    await page.press('#search', 'Enter');
    await expectText(page, '[data-testid="detail-id"]', other.job.id);

    await page.fill('#search', 'sess-alpha');
    await page.press('#search', 'Enter');
    await expectText(page, '[data-testid="search-chip"]', /session_id = sess-alpha/);
    await waitFor(async () => (await page.locator('#jobs tbody tr[data-job-id]').count()) === 2, UI_TIMEOUT, 'the two jobs of the session');
    const listed = await page.locator('#jobs tbody tr[data-job-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job-id')));
    assert.deepEqual([...listed].sort(), [...mine].sort());
  });

  it('retries failed jobs in bulk: all of a queue, then the selected ones, after a confirmation', async () => {
    const { store, url } = await startServer();
    const a = uniqueQueue('bulka');
    const b = uniqueQueue('bulkb');
    await startWorker(store, a);
    await startWorker(store, b);
    const inA: string[] = [];
    for (let i = 0; i < 3; i++) inA.push((await store.enqueue(newJob(a, { payload: { goal: 'fail-once' } }))).job.id);
    const inB = (await store.enqueue(newJob(b, { payload: { goal: 'fail-once' } }))).job.id;
    await waitFor(async () => (await store.stats()).totals.error === 4, UI_TIMEOUT, 'four failed jobs');

    const page = await openDashboard(url);
    await page.click(`#queues tr[data-queue="${a}"]`);
    await expectText(page, '#btn-retry-all', `Retry failed in ${a}`);
    // Declined: nothing happens.
    await page.click('#btn-retry-all');
    await expectText(page, '#confirm-text', new RegExp(`every failed job in ${a}`));
    await page.click('#confirm button[value="no"]');
    await delay(300);
    assert.equal((await store.stats()).totals.error, 4);

    await page.click('#btn-retry-all');
    await page.click('[data-testid="confirm-yes"]');
    await expectText(page, '#toast', 'Retried 3 jobs.');
    await waitFor(async () => (await Promise.all(inA.map((id) => store.get(id)))).every((j) => j?.status === 'done'), UI_TIMEOUT, 'the retried jobs to succeed');
    assert.equal((await store.get(inB))?.status, 'error', 'the other queue was left alone');

    await page.selectOption('#filter-queue', '');
    await page.selectOption('#filter-status', 'error');
    await page.locator(`#jobs tr[data-job-id="${inB}"] [data-testid="row-check"]`).check();
    await expectText(page, '#btn-retry-selected', 'Retry selected (1)');
    await page.click('#btn-retry-selected');
    await page.click('[data-testid="confirm-yes"]');
    await expectText(page, '#toast', 'Retried 1 job.');
    await waitFor(async () => (await store.get(inB))?.status === 'done', UI_TIMEOUT, 'the selected job to succeed');
  });

  it('says a final failure is final, and keeps every attempt: its worker, times and error', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('final');
    await startWorker(store, queue);
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'always-fail' }, max_attempts: 3 }));
    await waitFor(async () => (await store.get(job.id))?.status === 'error', UI_TIMEOUT, 'all three attempts to fail');
    const page = await openDashboard(url);
    await page.click(`#recent-failed li[data-job-id="${job.id}"]`);
    await expectText(page, '[data-testid="detail-error"]', /HANDLER_ERROR: upstream 503 on attempt 3/);
    const text = (await page.locator('[data-testid="detail-error"]').textContent()) ?? '';
    assert.ok(!text.includes('(retryable)'), `a final failure is not labelled retryable: ${text}`);
    await expectText(page, '[data-testid="error-fate"]', '— final: all 3 attempts used');
    const errors = await page.locator('[data-testid="runs"] [data-testid="run-error"]').evaluateAll((tds) => tds.map((td) => td.textContent));
    assert.deepEqual(errors, [1, 2, 3].map((n) => `HANDLER_ERROR upstream 503 on attempt ${n}`));
    const workers = await page.locator('[data-testid="runs"] td.wid').evaluateAll((tds) => tds.map((td) => td.textContent));
    assert.deepEqual(workers, [1, 2, 3].map(() => `dash-worker-${queue}`));
  });

  it('shows a job with several attempts and its live stream (screenshot job-attempts-live.png)', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('attempts');
    await startWorker(store, queue);
    const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'third-time', session_id: 'sess-7f3c' }, max_attempts: 4 }));
    await waitFor(() => gates.has(job.id), UI_TIMEOUT, 'the third attempt to stream and wait');
    const page = await openDashboard(url);
    await page.click(`#running li[data-job-id="${job.id}"]`);
    await expectText(page, '[data-testid="stream-text"][data-attempt="3"] .text', 'The third attempt is streaming.');
    await expectText(page, '#live', '● live');
    await waitFor(async () => (await page.locator('[data-testid="runs"] tbody tr').count()) === 3, UI_TIMEOUT, 'two ended runs and the running one');
    const errors = await page.locator('[data-testid="runs"] [data-testid="run-error"]').evaluateAll((tds) => tds.map((td) => td.textContent));
    assert.deepEqual(errors, ['HANDLER_ERROR upstream 503 from the model server', 'HANDLER_ERROR connection reset while streaming', '']);
    assert.equal(await page.locator('[data-testid="runs"] tbody tr').last().getAttribute('data-end'), 'running');
    const ends = await page.locator('[data-testid="runs"] tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-end')));
    assert.deepEqual(ends, ['retry', 'retry', 'running']);
    // Nothing finished yet: the charts say so rather than draw empty axes.
    await expectText(page, '[data-testid="charts-note"]', 'No job finished in the last hour.');
    await page.locator('#detail').scrollIntoViewIfNeeded();
    await shot(page, 'job-attempts-live.png');
    // Tokens keep coming into the same block while the page watches.
    await release(job.id);
    await expectText(page, '[data-testid="stream-text"][data-attempt="3"] .text', 'The third attempt is streaming. Done.');
    await expectText(page, '[data-testid="detail-status"]', 'done');
    await expectText(page, '[data-testid="detail-usage"]', '320 prompt + 41 completion tokens');
    // The third run ended too: three records, the last `done`.
    await waitFor(async () => (await page.locator('[data-testid="runs"] tbody tr[data-end="done"]').count()) === 1, UI_TIMEOUT, 'the third run recorded done');
    assert.equal(await page.locator('[data-testid="runs"] tbody tr').count(), 3);
  });

  it('charts a day of history in the 24 h view (screenshot charts-24h.png, main.png)', async function () {
    this.timeout(40_000);
    const { store, url } = await startServer();
    const queues = [uniqueQueue('reasoning'), uniqueQueue('planner'), uniqueQueue('critic')];
    const day = syntheticDay(queues);
    await importJobs(store, day);
    for (const q of queues) await startWorker(store, q);
    for (const [i, q] of queues.entries()) {
      await store.enqueue(newJob(q, { payload: { goal: 'block', session_id: `live-${i}` } }));
      await store.enqueue(newJob(q, { payload: { goal: 'scheduled follow-up' }, delay_ms: 600_000 }));
    }
    await store.heartbeat({ id: 'gpu-box-2:4242:deadbeef', queues: [queues[1]!], concurrency: 8, running: 2, host: 'gpu-box-2', pid: 4242, started_at: new Date(Date.now() - 3_600_000), last_seen: new Date(Date.now() - 95_000), ttl_ms: 3000, processed: 1212, failed: 31 });
    await waitFor(() => gates.size === 3, UI_TIMEOUT, 'three jobs running');
    // A job whose worker froze: claimed with a short lease never renewed.
    const frozenQueue = uniqueQueue('frozen');
    const frozen = await store.enqueue(newJob(frozenQueue, { payload: { goal: 'worker froze mid-run' } }));
    assert.ok(await store.claim({ queues: [frozenQueue], owner: 'frozen-worker', lease_ms: 50, wait_ms: 0 }));
    const page = await openDashboard(url);
    // Stalled now (lease ran out) or requeued by the sweep with a stall counted: marked either way.
    await page.locator(`#jobs tr[data-job-id="${frozen.job.id}"] :is([data-testid="stalled"], [data-testid="stalls"])`).waitFor();
    await expectText(page, '[data-testid="total-done"] b', day.filter((j) => j.status === 'done').length.toLocaleString('en-US'));
    await page.click('#win-24h');
    await expectText(page, '#charts-scope', /last 24 hours/);
    await expectText(page, '[data-testid="sum-finished"] b', day.length.toLocaleString('en-US'));
    // 96 buckets; bars drawn where jobs finished, lines where there were some.
    const bars = await page.locator('[data-testid="chart-throughput"] rect.bar').count();
    assert.ok(bars >= 90, `throughput bars: ${bars}`);
    assert.ok((await page.locator('[data-testid="chart-wait"] path.line').count()) === 2);
    assert.ok((await page.locator('[data-testid="chart-tokens"] rect.bar').count()) >= 90);
    // Each queue's failure rate and median run time over the day, beside its counts.
    await expectText(page, `#queues tr[data-queue="${queues[0]}"] [data-testid="queue-failure"]`, /^\d+(\.\d)?%$/);
    await expectText(page, `#queues tr[data-queue="${queues[0]}"] [data-testid="queue-run-p50"]`, /\d/);
    await page.locator('#charts-card').screenshot({ path: `${SHOTS}/charts-24h.png` });
    await shot(page, 'main.png', false);
  });

  it('fits a 390 px wide window: no sideways scroll, tables scroll in their box (screenshot narrow.png)', async () => {
    const { store, url } = await startServer();
    const queue = uniqueQueue('narrow-queue-with-a-long-name');
    await startWorker(store, queue);
    await importJobs(store, syntheticDay([queue]).slice(-80));
    await store.enqueue(newJob(queue, { payload: { goal: 'Summarise the last 40 tool calls of session 7f3c and decide whether to keep searching', session_id: 's' } }));
    await store.enqueue(newJob(queue, { payload: { goal: 'block' } }));
    const page = await openDashboard(url, { width: 390, height: 844 });
    await page.locator(`#queues tr[data-queue="${queue}"]`).waitFor();
    await page.locator('#jobs tbody tr[data-job-id]').first().waitFor();
    const fits = () => page.evaluate(() => {
      const g = globalThis as unknown as { innerWidth: number; document: { documentElement: { scrollWidth: number } } };
      return g.document.documentElement.scrollWidth <= g.innerWidth;
    });
    assert.equal(await fits(), true, 'the main view scrolls sideways');
    await shot(page, 'narrow.png');
    await page.locator('#jobs tbody tr[data-job-id]').first().click();
    await page.locator('[data-testid="detail-id"]').waitFor();
    assert.equal(await fits(), true, 'the job view scrolls sideways');
  });
  it("shows a job's callback deliveries: failed tries, then delivered, without a click", async function () {
    this.timeout(30_000);
    let answer = 503;
    const hits: number[] = [];
    const hook = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => {
        hits.push(answer);
        res.writeHead(answer).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    const sender = createCallbackSender({ allow: ['127.0.0.1'], secrets: [] });
    try {
      const { store, url } = await startServer(undefined, { callbacks: sender, maintenanceMs: 100 });
      const queue = uniqueQueue('hook');
      await startWorker(store, queue);
      const { job } = await store.enqueue(newJob(queue, { payload: { goal: 'call me back' }, callback_url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` }));
      await waitFor(async () => ((await store.get(job.id))?.callback?.attempts ?? 0) >= 1, 10_000, 'a first delivery try');
      const page = await openDashboard(url);
      await page.click(`#recent-done li[data-job-id="${job.id}"]`);
      const log = '[data-testid="detail-callback-log"]';
      await expectText(page, log, /statepending/);
      await expectText(page, log, /last answer503/);
      answer = 200;
      await waitFor(async () => /statedelivered/.test((await page.locator(log).textContent()) ?? ''), 15_000, 'the page to show the delivery');
      assert.match((await page.locator(log).textContent()) ?? '', /delivered\d\d:\d\d:\d\d/);
      assert.equal(hits.at(-1), 200);
    } finally {
      await sender.close();
      await new Promise<void>((resolve) => hook.close(() => resolve()));
    }
  });
});
