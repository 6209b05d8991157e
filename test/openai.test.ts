/**
 * The OpenAI-compatible reasoner against a scripted chat-completions server
 * on 127.0.0.1 (node:http, port 0): what it sends, what it makes of each
 * kind of answer, how it fails, what reaches the job's events and usage,
 * and that a cancel closes the request's socket.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadLlmConfig } from '../src/config.js';
import { ConfigError, ModelError, NonRetryableError } from '../src/errors.js';
import type { JobEvent } from '../src/events.js';
import type { IntentRequest, Job } from '../src/job.js';
import { silentLogger } from '../src/logger.js';
import { createOpenAIHandler, type OpenAIHandlerOptions } from '../src/reasoners/openai.js';
import { SseDecoder } from '../src/reasoners/sse.js';
import { createClient } from '../src/client.js';
import { createWorker, type Handler, type HandlerContext } from '../src/worker.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { delay, uniqueQueue, waitFor } from './helpers.js';

// ---------------------------------------------------------------- the model server

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  /** resolves when the request's socket closed */
  socketClosed: Promise<void>;
}
type Script = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void | Promise<void>;

interface ModelServer {
  baseUrl: string;
  seen: Seen[];
  /** the answer to each next request, in turn (the last one repeats) */
  script(...answers: Script[]): void;
  close(): Promise<void>;
}

async function startModelServer(): Promise<ModelServer> {
  let answers: Script[] = [];
  let served = 0;
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      const socket = req.socket;
      const entry: Seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: JSON.parse(Buffer.concat(parts).toString() || '{}') as Record<string, unknown>,
        socketClosed: new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve()))),
      };
      seen.push(entry);
      const answer = answers[Math.min(served++, answers.length - 1)];
      if (!answer) return void res.writeHead(500).end('no script');
      void Promise.resolve(answer(req, res, entry)).catch(() => res.destroy());
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    seen,
    script: (...next) => {
      answers = next;
      served = 0;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const contentChunk = (text: string) => ({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] });
const toolChunk = (index: number, fn: { name?: string; arguments?: string }, id?: string) => ({
  object: 'chat.completion.chunk',
  choices: [{ index: 0, delta: { tool_calls: [{ index, ...(id ? { id, type: 'function' } : {}), function: fn }] }, finish_reason: null }],
});
const finishChunk = (reason: string) => ({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: reason }] });
const usageChunk = (prompt: number, completion: number) => ({ object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } });

/** A whole streamed answer: the chunks, then [DONE]. */
const streamed =
  (chunks: object[], options: { done?: boolean } = {}): Script =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const c of chunks) res.write(`data: ${JSON.stringify(c)}\n\n`);
    if (options.done !== false) res.write('data: [DONE]\n\n');
    res.end();
  };

const json =
  (status: number, body: unknown, headers: Record<string, string> = {}): Script =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

const completion = (message: Record<string, unknown>, usage?: { prompt_tokens: number; completion_tokens: number }) => ({
  object: 'chat.completion',
  choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: message.tool_calls ? 'tool_calls' : 'stop' }],
  ...(usage ? { usage } : {}),
});

// ---------------------------------------------------------------- running a job

interface Ran {
  job: Job;
  events: JobEvent[];
}

/** Enqueue `payload`, let a worker run `handler` on the memory store, and return the ended job and its events. */
async function runJob(handler: Handler, payload: IntentRequest, options: { max_attempts?: number; during?: (id: string, cancel: (id: string) => Promise<unknown>) => Promise<void> } = {}): Promise<Ran> {
  const store = createMemoryTransport();
  await store.init();
  const q = uniqueQueue('llm');
  const worker = createWorker({ transport: store, queues: [q], handler, claimWaitMs: 100, leaseMs: 600, backoff: { baseMs: 10, maxMs: 20 } });
  const client = await createClient({ transport: store });
  await worker.start();
  try {
    const job = await client.enqueue(payload, { queue: q, max_attempts: options.max_attempts ?? 1 });
    await options.during?.(job.id, (id) => client.cancel(id, 'the agent moved on'));
    const ended = await waitFor(async () => {
      const j = await store.get(job.id);
      return j && ['done', 'error', 'canceled'].includes(j.status) ? j : null;
    }, 10_000, 'the job to end');
    await worker.stop();
    const page = await store.readEvents(job.id, { after: 0 });
    return { job: ended, events: page.events };
  } finally {
    await worker.stop();
    await client.close();
    await store.close();
  }
}

const ofType = (events: JobEvent[], type: string) => events.filter((e) => e.type === type);

/** A context of our own for calling the handler directly. */
function fakeContext(signal: AbortSignal = new AbortController().signal) {
  const events: { type: string; data: unknown }[] = [];
  const usages: unknown[] = [];
  const ctx: HandlerContext = {
    job_id: 'j-1',
    queue: 'q',
    attempt: 1,
    max_attempts: 1,
    stalls: 0,
    signal,
    log: silentLogger,
    emit: async (type, data) => void events.push({ type, data }),
    progress: async (data) => void events.push({ type: 'progress', data }),
    usage: async (u) => void usages.push(u),
  };
  return { ctx, events, usages };
}

const KEY = 'sk-test-0123456789abcdef';

describe('openai reasoner', function () {
  this.timeout(20_000);
  let server: ModelServer;
  const handler = (options: Partial<OpenAIHandlerOptions> = {}) => createOpenAIHandler({ baseUrl: server.baseUrl, model: 'test-model', apiKey: KEY, ...options });

  beforeEach(async () => {
    server = await startModelServer();
  });
  afterEach(async () => {
    await server.close();
  });

  describe('answers', () => {
    it('a streamed answer: the request as built from goal, step and context; tokens as events in order; usage on the job; a finish intent', async () => {
      const tokens = ['The ', 'answer ', 'is ', '42', '.'];
      server.script(streamed([...tokens.map(contentChunk), finishChunk('stop'), usageChunk(31, 5)]));
      const { job, events } = await runJob(handler(), { goal: 'What is the answer?', step: 3, context: { observations: ['searched: nothing'] }, session_id: 's' });

      const [req] = server.seen;
      assert.ok(req && server.seen.length === 1);
      assert.equal(req.method, 'POST');
      assert.equal(req.url, '/v1/chat/completions');
      assert.equal(req.headers.authorization, `Bearer ${KEY}`);
      assert.equal(req.body.model, 'test-model');
      assert.equal(req.body.stream, true);
      assert.deepEqual(req.body.stream_options, { include_usage: true });
      assert.equal(req.body.tools, undefined, 'no tools listed, none sent');
      const messages = req.body.messages as { role: string; content: string }[];
      assert.equal(messages.length, 2);
      assert.equal(messages[0]!.role, 'system');
      assert.match(messages[0]!.content, /call exactly one of the tools/);
      assert.equal(messages[1]!.role, 'user');
      assert.match(messages[1]!.content, /^Goal: What is the answer\?/);
      assert.match(messages[1]!.content, /Step: 3/);
      assert.match(messages[1]!.content, /Context \(JSON\):\n\{[\s\S]*"observations"[\s\S]*"searched: nothing"/);

      assert.equal(job.status, 'done', JSON.stringify(job.error));
      assert.deepEqual(job.result, { action: 'finish', finish: true, tool_name: null, args: null, reasoning: 'The answer is 42.' });
      assert.deepEqual(job.usage, { prompt_tokens: 31, completion_tokens: 5 });

      assert.deepEqual(ofType(events, 'thinking')[0]?.data, { stage: 'calling model', model: 'test-model' });
      const tokenEvents = ofType(events, 'token');
      assert.deepEqual(tokenEvents.map((e) => (e.data as { text: string }).text), tokens);
      assert.equal(tokenEvents.map((e) => (e.data as { text: string }).text).join(''), job.result?.reasoning);
      assert.ok(tokenEvents.every((e, i) => i === 0 || e.id > tokenEvents[i - 1]!.id), 'token events in id order');
      assert.ok(ofType(events, 'thinking')[0]!.id < tokenEvents[0]!.id, 'thinking comes first');
      assert.deepEqual(ofType(events, 'usage').map((e) => e.data), [{ prompt_tokens: 31, completion_tokens: 5 }]);
    });

    it('a streamed tool call: tools of both forms mapped (names OpenAI refuses sent safe and mapped back), arguments joined from several deltas, the first call taken', async () => {
      const parameters = { type: 'object', properties: { query: { type: 'string' }, limit: { type: 'integer' } }, required: ['query'] };
      const tools = [
        { name: 'savant-context.fts_search', description: 'Full-text search of the code index', parameters },
        { type: 'function', function: { name: 'read_file', description: 'Read a file', parameters: { type: 'object', properties: { path: { type: 'string' } } } } },
        { name: 'list_dir' },
      ];
      server.script(
        streamed([
          contentChunk('Searching the index.'),
          toolChunk(0, { name: 'savant-context_fts_search', arguments: '' }, 'call_1'),
          toolChunk(0, { arguments: '{"query": "Fra' }),
          toolChunk(0, { arguments: 'mework", ' }),
          toolChunk(0, { arguments: '"limit": 10}' }),
          toolChunk(1, { name: 'read_file', arguments: '{"path": "a.ts"}' }, 'call_2'),
          finishChunk('tool_calls'),
          usageChunk(120, 18),
        ]),
      );
      const { job, events } = await runJob(handler(), { goal: 'Find where Framework is defined', tools });

      const sent = server.seen[0]!.body.tools;
      assert.deepEqual(sent, [
        { type: 'function', function: { name: 'savant-context_fts_search', description: 'Full-text search of the code index', parameters } },
        { type: 'function', function: { name: 'read_file', description: 'Read a file', parameters: { type: 'object', properties: { path: { type: 'string' } } } } },
        { type: 'function', function: { name: 'list_dir', parameters: { type: 'object', properties: {} } } },
      ]);
      assert.equal(job.status, 'done', JSON.stringify(job.error));
      assert.deepEqual(job.result, { action: 'tool', tool_name: 'savant-context.fts_search', args: { query: 'Framework', limit: 10 }, finish: false, reasoning: 'Searching the index.' });
      assert.deepEqual(job.usage, { prompt_tokens: 120, completion_tokens: 18 });

      const drafts = ofType(events, 'tool_call').map((e) => e.data as { index: number; name?: string; arguments: string });
      assert.equal(drafts[0]!.name, 'savant-context.fts_search', 'the draft names the tool as the payload does');
      assert.equal(drafts.filter((d) => d.index === 0).map((d) => d.arguments).join(''), '{"query": "Framework", "limit": 10}');
      assert.equal(drafts.filter((d) => d.index === 0).length, 4, 'one event per delta');
      assert.deepEqual(ofType(events, 'token').map((e) => e.data), [{ text: 'Searching the index.' }]);
    });

    it('a non-streamed answer (stream off): no stream fields sent, the payload\'s own messages used, tool call and usage read from the body', async () => {
      server.script(json(200, completion({ content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'read_file', arguments: '{"path":"src/job.ts"}' } }] }, { prompt_tokens: 50, completion_tokens: 9 })));
      const messages = [
        { role: 'user', content: 'Open src/job.ts' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c0', type: 'function', function: { name: 'list_dir', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c0', content: 'src/job.ts\nsrc/worker.ts' },
      ];
      const { job, events } = await runJob(handler({ stream: false }), { messages, tools: [{ name: 'read_file' }, { name: 'list_dir' }] });

      const body = server.seen[0]!.body;
      assert.equal(body.stream, false);
      assert.equal(body.stream_options, undefined);
      const sent = body.messages as Record<string, unknown>[];
      assert.equal(sent[0]!.role, 'system', 'the system prompt goes first when the messages bring none');
      assert.deepEqual(sent.slice(1), messages);
      assert.equal(job.status, 'done', JSON.stringify(job.error));
      assert.deepEqual(job.result, { action: 'tool', tool_name: 'read_file', args: { path: 'src/job.ts' }, finish: false, reasoning: 'Calling read_file.' });
      assert.deepEqual(job.usage, { prompt_tokens: 50, completion_tokens: 9 });
      assert.deepEqual(ofType(events, 'tool_call').map((e) => e.data), [{ index: 0, name: 'read_file', arguments: '{"path":"src/job.ts"}' }]);
    });

    it('a long context is cut to contextMaxChars, with a note saying so', async () => {
      server.script(streamed([contentChunk('ok'), finishChunk('stop')]));
      const { ctx } = fakeContext();
      await handler({ contextMaxChars: 200 })({ goal: 'g', context: { log: 'x'.repeat(5000) } }, ctx);
      const user = (server.seen[0]!.body.messages as { content: string }[])[1]!.content;
      assert.ok(user.length < 400, `user message is ${user.length} characters`);
      assert.match(user, /… \(\d+ more characters cut\)$/);
    });

    it('a server that answers JSON to a streamed request is read as a whole answer', async () => {
      server.script(json(200, completion({ content: 'Done already.' })));
      const { ctx, events } = fakeContext();
      const intent = await handler()({ goal: 'g' }, ctx);
      assert.equal(intent.reasoning, 'Done already.');
      assert.deepEqual(events.filter((e) => e.type === 'token').map((e) => e.data), [{ text: 'Done already.' }]);
    });
  });

  describe('errors', () => {
    for (const [status, code, said] of [
      [400, 'MODEL_REQUEST_REFUSED', "'messages' must contain at least one message"],
      [401, 'MODEL_UNAUTHORIZED', `Incorrect API key provided: ${KEY}`],
      [404, 'MODEL_NOT_FOUND', 'model "test-model" not found, try pulling it first'],
      [422, 'MODEL_REQUEST_REFUSED', 'tools.0.function.parameters: invalid schema'],
    ] as const) {
      it(`HTTP ${status} ends the job at once, not retried: ${code}, the status and the server's message in it`, async () => {
        server.script(json(status, { error: { message: said, type: 'invalid_request_error' } }));
        const { job } = await runJob(handler(), { goal: 'g' }, { max_attempts: 3 });
        assert.equal(job.status, 'error');
        assert.equal(job.error?.code, code);
        assert.equal(job.error?.retryable, false);
        assert.equal(server.seen.length, 1, 'asked once');
        assert.match(job.error!.message, new RegExp(`answered ${status}: `));
        assert.ok(job.error!.message.includes(said.replace(KEY, '***')), job.error!.message);
        assert.ok(!job.error!.message.includes(KEY), 'the API key is masked');
      });
    }

    it('HTTP 429 is retryable and mentions Retry-After; 500 then an answer: the job is retried and done', async () => {
      server.script(json(429, { error: { message: 'Rate limit reached for requests' } }, { 'retry-after': '20' }));
      const limited = await runJob(handler(), { goal: 'g' }, { max_attempts: 1 });
      assert.equal(limited.job.status, 'error');
      assert.equal(limited.job.error?.code, 'MODEL_RATE_LIMITED', 'a model failure keeps its code on the job');
      assert.equal(limited.job.error?.retryable, true);
      assert.match(limited.job.error!.message, /answered 429: Rate limit reached for requests; it asks to retry after 20 s/);

      const { ctx } = fakeContext();
      server.script(json(429, { error: 'slow down' }));
      const err = await handler()({ goal: 'g' }, ctx).catch((e: unknown) => e);
      assert.ok(err instanceof ModelError && !(err instanceof NonRetryableError), String(err));
      assert.equal(err.code, 'MODEL_RATE_LIMITED');
      assert.equal(err.retryable, true);

      server.script(json(500, { message: 'CUDA out of memory' }), streamed([contentChunk('Recovered.'), finishChunk('stop')]));
      const before = server.seen.length;
      const { job } = await runJob(handler(), { goal: 'g' }, { max_attempts: 2 });
      assert.equal(server.seen.length - before, 2, 'asked twice');
      assert.equal(job.status, 'done', JSON.stringify(job.error));
      assert.equal(job.attempts, 2);
      assert.equal(job.result?.reasoning, 'Recovered.');
    });

    it('tool arguments that are not a JSON object are retryable, and the message shows what came back', async () => {
      server.script(streamed([toolChunk(0, { name: 'read_file', arguments: '{"path": "a.ts"' }, 'c'), finishChunk('tool_calls')]));
      const { job } = await runJob(handler(), { goal: 'g', tools: [{ name: 'read_file' }] });
      assert.equal(job.status, 'error');
      assert.equal(job.error?.retryable, true);
      assert.match(job.error!.message, /arguments for read_file are not a JSON object: \{"path": "a\.ts"$/);

      server.script(json(200, completion({ tool_calls: [{ id: 'c', type: 'function', function: { name: 'read_file', arguments: '["a.ts"]' } }] })));
      const { ctx } = fakeContext();
      const err = await handler()({ goal: 'g', tools: [{ name: 'read_file' }] }, ctx).catch((e: unknown) => e);
      assert.ok(err instanceof ModelError, String(err));
      assert.equal(err.code, 'MODEL_BAD_ARGUMENTS');
    });

    it('a tool the payload did not list is retryable, naming the tool called and those listed', async () => {
      server.script(streamed([toolChunk(0, { name: 'rm_rf', arguments: '{}' }, 'c'), finishChunk('tool_calls')]));
      const { job } = await runJob(handler(), { goal: 'g', tools: [{ name: 'read_file' }, { name: 'list_dir' }] });
      assert.equal(job.status, 'error');
      assert.equal(job.error?.retryable, true);
      assert.match(job.error!.message, /called tool "rm_rf", which the payload does not list \(it lists read_file, list_dir\)/);
    });

    it('an empty answer is retryable', async () => {
      server.script(streamed([contentChunk('  '), finishChunk('stop')]));
      const { ctx } = fakeContext();
      const err = await handler()({ goal: 'g' }, ctx).catch((e: unknown) => e);
      assert.ok(err instanceof ModelError, String(err));
      assert.equal(err.code, 'MODEL_EMPTY_ANSWER');
      assert.match(err.message, /neither text nor a tool call \(finish_reason: stop\)/);
    });

    it('a stream cut midway (connection dropped, or ended without [DONE] or a finish_reason) is retryable', async () => {
      server.script((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${JSON.stringify(contentChunk('Half '))}\n\n`);
        res.write(`data: ${JSON.stringify(contentChunk('an'))}\n\ndata: {"choi`);
        setTimeout(() => res.socket?.destroy(), 50);
      });
      const { job, events } = await runJob(handler(), { goal: 'g' });
      assert.equal(job.status, 'error');
      assert.equal(job.error?.retryable, true);
      assert.match(job.error!.message, /broke off after 2 chunk\(s\)/);
      assert.deepEqual(ofType(events, 'token').map((e) => e.data), [{ text: 'Half ' }, { text: 'an' }], 'what came before the cut was streamed');

      server.script(streamed([contentChunk('Half '), contentChunk('an')], { done: false }));
      const { ctx } = fakeContext();
      const err = await handler()({ goal: 'g' }, ctx).catch((e: unknown) => e);
      assert.ok(err instanceof ModelError, String(err));
      assert.equal(err.code, 'MODEL_STREAM_CUT');
      assert.match(err.message, /ended after 2 chunk\(s\) without \[DONE\] or a finish_reason/);
    });

    it('an unreachable server and a bad payload: retryable MODEL_UNREACHABLE; INVALID_TOOLS / EMPTY_GOAL not retryable, nothing sent', async () => {
      const closed = await startModelServer();
      await closed.close();
      const { ctx } = fakeContext();
      const err = await createOpenAIHandler({ baseUrl: closed.baseUrl, model: 'm' })({ goal: 'g' }, ctx).catch((e: unknown) => e);
      assert.ok(err instanceof ModelError, String(err));
      assert.equal(err.code, 'MODEL_UNREACHABLE');
      assert.match(err.message, /could not be reached: ECONNREFUSED/);

      const bad = await handler()({ goal: 'g', tools: [{ description: 'no name' }] }, ctx).catch((e: unknown) => e);
      assert.ok(bad instanceof NonRetryableError, String(bad));
      assert.equal(bad.code, 'INVALID_TOOLS');
      assert.match(bad.message, /payload\.tools\.0/);
      const empty = await handler()({ goal: '  ' }, ctx).catch((e: unknown) => e);
      assert.ok(empty instanceof NonRetryableError && empty.code === 'EMPTY_GOAL', String(empty));
      assert.equal(server.seen.length, 0);
    });

    it('timeoutMs stops a slow answer: retryable MODEL_TIMEOUT, the request closed', async () => {
      server.script((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${JSON.stringify(contentChunk('slow'))}\n\n`); // and nothing more
      });
      const { ctx } = fakeContext();
      const started = Date.now();
      const err = await handler({ timeoutMs: 300 })({ goal: 'g' }, ctx).catch((e: unknown) => e);
      assert.ok(err instanceof ModelError, String(err));
      assert.equal(err.code, 'MODEL_TIMEOUT');
      assert.ok(Date.now() - started < 3000);
      await within(server.seen[0]!.socketClosed, 2000, 'the socket to close after the timeout');
    });
  });

  describe('cancel', () => {
    it('client.cancel(id) mid-stream closes the request (the spend stops) and the job ends canceled', async () => {
      let written = 0;
      const total = 200;
      server.script(async (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (let i = 0; i < total && !res.destroyed; i++) {
          res.write(`data: ${JSON.stringify(contentChunk(`t${i} `))}\n\n`);
          written += 1;
          await delay(40);
        }
        if (!res.destroyed) res.end('data: [DONE]\n\n');
      });
      const { job, events } = await runJob(handler(), { goal: 'g' }, {
        during: async (id, cancel) => {
          await waitFor(() => written >= 5, 5000, 'some tokens streamed');
          await cancel(id);
          await within(server.seen[0]!.socketClosed, 3000, 'the request socket to close after the cancel');
        },
      });
      assert.ok(written < total / 2, `the server wrote ${written} of ${total} chunks`);
      assert.equal(job.status, 'canceled');
      assert.ok(ofType(events, 'token').length >= 1, 'tokens streamed before the cancel are in the stream');
      assert.ok(events.some((e) => e.type === 'canceled'));
    });

    it('when ctx.signal fires the handler throws the signal\'s reason', async () => {
      server.script(async (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${JSON.stringify(contentChunk('a'))}\n\n`);
      });
      const ac = new AbortController();
      const { ctx } = fakeContext(ac.signal);
      const reason = new Error('job canceled');
      setTimeout(() => ac.abort(reason), 100);
      const err = await handler()({ goal: 'g' }, ctx).catch((e: unknown) => e);
      assert.equal(err, reason);
      await within(server.seen[0]!.socketClosed, 2000, 'the socket to close after the abort');
    });
  });

  describe('SSE framing', () => {
    it('events split at every byte (inside a CRLF, inside a UTF-8 character) come out whole', () => {
      const text = ': keep-alive\r\ndata: {"a":"é—🙂"}\r\n\r\nevent: x\ndata: line1\ndata: line2\n\ndata:[DONE]\n\n';
      const bytes = Buffer.from(text);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const d = new SseDecoder();
        const out = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut)), ...d.end()];
        assert.deepEqual(out, ['{"a":"é—🙂"}', 'line1\nline2', '[DONE]'], `cut at ${cut}`);
      }
      const d = new SseDecoder();
      assert.deepEqual([...d.push(Buffer.from('data: last')), ...d.end()], ['last'], 'a last event without its blank line');
    });
  });

  describe('config', () => {
    it('loadLlmConfig: defaults, REASONING_LLM_MODEL required, bad values named, the key masked', () => {
      const llm = loadLlmConfig({ REASONING_LLM_MODEL: 'llama3.1' });
      assert.deepEqual(llm, { baseUrl: 'http://127.0.0.1:11434/v1', model: 'llama3.1', apiKey: undefined, timeoutMs: 120_000 });
      assert.deepEqual(loadLlmConfig({ REASONING_LLM_MODEL: 'm', REASONING_LLM_BASE_URL: 'https://api.example.test/v1', REASONING_LLM_API_KEY: KEY, REASONING_LLM_TIMEOUT_MS: '5000' }), {
        baseUrl: 'https://api.example.test/v1',
        model: 'm',
        apiKey: KEY,
        timeoutMs: 5000,
      });
      const missing = (() => { try { loadLlmConfig({}); } catch (e) { return e; } })();
      assert.ok(missing instanceof ConfigError && missing.variable === 'REASONING_LLM_MODEL', String(missing));
      const badUrl = (() => { try { loadLlmConfig({ REASONING_LLM_MODEL: 'm', REASONING_LLM_BASE_URL: 'ftp://x' }); } catch (e) { return e; } })();
      assert.ok(badUrl instanceof ConfigError && badUrl.variable === 'REASONING_LLM_BASE_URL', String(badUrl));
      const badKey = (() => { try { loadLlmConfig({ REASONING_LLM_MODEL: 'm', REASONING_LLM_API_KEY: 'sk secret value' }); } catch (e) { return e; } })();
      assert.ok(badKey instanceof ConfigError && badKey.variable === 'REASONING_LLM_API_KEY', String(badKey));
      assert.ok(!badKey.message.includes('secret'), badKey.message);
      assert.throws(() => createOpenAIHandler({ model: ' ' }), (e: unknown) => e instanceof ConfigError && e.variable === 'model');
    });
  });

  describe('CLI', () => {
    const CLI = fileURLToPath(new URL('../src/cli/index.ts', import.meta.url));
    const run = (args: string[], env: Record<string, string>) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...process.env, REASONQ_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('exit', (code) => resolve({ code, out, err }));
      });

    it('--reasoner openai with --handler, or without REASONING_LLM_MODEL, is a usage error; dev --reasoner openai answers from the model', async function () {
      this.timeout(40_000);
      const remote = { REASONING_TRANSPORT: 'http', REASONING_API_URL: 'http://127.0.0.1:9' };
      const both = await run(['worker', '--reasoner', 'openai', '--handler', 'x.mjs'], { ...remote, REASONING_LLM_MODEL: 'm' });
      assert.equal(both.code, 2, both.err);
      assert.match(both.err, /--handler and --reasoner openai both name the handler/);
      const noModel = await run(['worker', '--reasoner', 'openai'], { ...remote, REASONING_LLM_MODEL: '' });
      assert.equal(noModel.code, 2, noModel.err);
      assert.match(noModel.err, /REASONING_LLM_MODEL must name the model/);
      const unknown = await run(['worker', '--reasoner', 'gpt'], remote);
      assert.equal(unknown.code, 2);
      assert.match(unknown.err, /Allowed choices are demo, openai/);

      server.script(streamed([contentChunk('From the model.'), finishChunk('stop')]));
      const dev = spawn(process.execPath, ['--import', 'tsx', CLI, 'dev', '--port', '0', '--reasoner', 'openai'], {
        env: { ...process.env, REASONQ_LOG_LEVEL: 'warn', REASONING_LLM_BASE_URL: server.baseUrl, REASONING_LLM_MODEL: 'cli-model', REASONING_LLM_API_KEY: KEY },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      dev.stdout.on('data', (d: Buffer) => (out += d.toString()));
      dev.stderr.on('data', (d: Buffer) => (out += d.toString()));
      try {
        const url = await waitFor(() => /API\s+(http:\/\/\S+)\/v1/.exec(out)?.[1], 20_000, `the dev server URL in:\n${out}`);
        assert.match(out, /openai reasoner/);
        const res = await run(['intent', '--goal', 'Say hi', '--json'], { REASONING_API_URL: url });
        assert.equal(res.code, 0, res.err);
        assert.equal(JSON.parse(res.out).reasoning, 'From the model.');
        assert.equal(server.seen[0]!.body.model, 'cli-model');
        assert.equal(server.seen[0]!.headers.authorization, `Bearer ${KEY}`);
        assert.ok(!out.includes(KEY), 'the key is not printed');
      } finally {
        dev.kill('SIGKILL');
      }
    });
  });
});

async function within(promise: Promise<unknown>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  try {
    await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
