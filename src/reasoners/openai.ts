/**
 * The OpenAI-compatible reasoner: a handler that asks any chat-completions
 * server (OpenAI, vLLM, llama.cpp's llama-server, Ollama) for the agent's
 * next step and turns the answer into an intent. See docs/reasoners.md.
 *
 * - The answer streams (SSE) by default: content deltas become `token`
 *   events, tool-call argument deltas `tool_call` events, as they arrive;
 *   the usage chunk becomes `ctx.usage`.
 * - `ctx.signal` aborts the request, so a cancel or a timeout stops the
 *   spend, not only the wait.
 * - Failures are classified once, here: a refusal no retry mends
 *   (400/401/403/404/422) is NonRetryableError; a busy or unreachable
 *   server, a cut stream or an unusable answer is ModelError (retried by
 *   the queue's backoff).
 */
import { request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { DEFAULTS, redactUri } from '../config.js';
import { ConfigError, ModelError, NonRetryableError, type ReasonqError } from '../errors.js';
import { usageSchema } from '../events.js';
import type { Intent, IntentRequest } from '../job.js';
import type { HandlerContext } from '../worker.js';
import { messagesOf, SYSTEM_PROMPT, toolsOf } from './openai-request.js';
import { SseDecoder } from './sse.js';

export interface OpenAIHandlerOptions {
  /** the server's `/v1` root; `/chat/completions` is added (default: Ollama on this machine, http://127.0.0.1:11434/v1) */
  baseUrl?: string;
  /** the model the server runs (`gpt-4o-mini`, `llama3.1`, the path vLLM was started with …) */
  model: string;
  /** sent as `Authorization: Bearer …`; never logged, masked in error messages */
  apiKey?: string | undefined;
  /** stream the answer (default true): tokens and tool-call drafts reach the job's events as they arrive */
  stream?: boolean;
  /** one request, connect to last byte (default 120 s); the job's own timeout and cancel stop it too */
  timeoutMs?: number;
  /** replaces the built-in system prompt */
  systemPrompt?: string;
  /** characters of `context` (as JSON) put in the prompt, default 16 000 */
  contextMaxChars?: number;
  /** merged into every request body (`temperature`, `max_tokens` …); cannot replace model, messages, tools or stream */
  body?: Record<string, unknown>;
  /** the undici dispatcher to send through (a proxy agent, a pool with other limits); default undici's global one */
  dispatcher?: Dispatcher;
}

/** A Handler (src/worker.ts) that always answers with a promise. */
export type OpenAIHandler = (payload: IntentRequest, ctx: HandlerContext) => Promise<Intent>;

const optionsSchema = z.object({
  baseUrl: z
    .string()
    .trim()
    .refine((v) => {
      try {
        return ['http:', 'https:'].includes(new URL(v).protocol);
      } catch {
        return false;
      }
    }, 'must be a URL starting with http:// or https://')
    .default(DEFAULTS.llmBaseUrl),
  model: z.string().trim().min(1, 'must name the model the server runs').max(256),
  apiKey: z.string().trim().min(1).optional(),
  stream: z.boolean().default(true),
  timeoutMs: z.number().int().min(1).max(24 * 3600 * 1000).default(DEFAULTS.llmTimeoutMs),
  systemPrompt: z.string().min(1).max(100_000).default(SYSTEM_PROMPT),
  contextMaxChars: z.number().int().min(0).max(10_000_000).default(DEFAULTS.llmContextMaxChars),
  body: z.record(z.string(), z.unknown()).default({}),
});

/** An answer longer than this (content, one tool call's arguments, an unfinished SSE line, a JSON body) is refused: a runaway model or a wrong server, not an intent. */
const MAX_ANSWER_CHARS = 4 * 1024 * 1024;
/** How much of an error body is read for its message. */
const MAX_ERROR_BODY = 16 * 1024;
/** What a message quotes of what came back. */
const QUOTE_CHARS = 300;
/** intentSchema's limit on `reasoning`. */
const MAX_REASONING = 100_000;

/** Statuses another try may mend: the server was busy, timed out or hit a conflict. */
const RETRYABLE_STATUS = new Set([408, 409, 425, 429]);

/**
 * A handler that asks an OpenAI-compatible chat-completions server for the
 * next step of an agent. Throws ConfigError naming the option when the
 * options are unusable.
 */
export function createOpenAIHandler(options: OpenAIHandlerOptions): OpenAIHandler {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const option = issue.path.map(String).join('.') || 'options';
    throw new ConfigError(`createOpenAIHandler: ${option} ${issue.message}`, option);
  }
  const o = parsed.data;
  const url = `${o.baseUrl.replace(/\/+$/, '')}/chat/completions`;
  const shown = redactUri(url);
  const mask = (text: string) => (o.apiKey ? text.split(o.apiKey).join('***') : text);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: o.stream ? 'text/event-stream, application/json' : 'application/json',
    'user-agent': 'reasonq',
    ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}),
  };

  return async function openaiHandler(payload: IntentRequest, ctx: HandlerContext): Promise<Intent> {
    const { tools, byWireName } = toolsOf(payload);
    const messages = messagesOf(payload, o);
    const body = {
      ...o.body,
      model: o.model,
      messages,
      ...(tools.length > 0 ? { tools } : {}),
      stream: o.stream,
      ...(o.stream ? { stream_options: { include_usage: true } } : {}),
    };
    const answer = new Answer(ctx, byWireName);
    answer.event('thinking', { stage: 'calling model', model: o.model });
    ctx.log.debug({ model: o.model, url: shown, tools: tools.length, stream: o.stream }, 'calling model');

    const timeout = AbortSignal.timeout(o.timeoutMs);
    const signal = AbortSignal.any([ctx.signal, timeout]);
    /** The error to throw for a failed send or read: the abort's own reason, a timeout, or a connection that failed. */
    const broken = (error: unknown, what: string): unknown => {
      if (ctx.signal.aborted) return ctx.signal.reason;
      if (timeout.aborted) return new ModelError('MODEL_TIMEOUT', `no complete answer from ${shown} within ${o.timeoutMs} ms`, { cause: error });
      if (error instanceof ModelError || error instanceof NonRetryableError) return error;
      const e = error as { code?: unknown; message?: unknown };
      const detail = [typeof e.code === 'string' ? e.code : '', typeof e.message === 'string' ? e.message : String(error)].filter(Boolean).join(' ');
      return new ModelError(what === 'send' ? 'MODEL_UNREACHABLE' : 'MODEL_STREAM_CUT', mask(`${what === 'send' ? `model server at ${shown} could not be reached` : `the answer from ${shown} broke off after ${answer.chunks} chunk(s)`}: ${detail}`), { cause: error });
    };

    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'POST', headers, body: JSON.stringify(body), signal, dispatcher: options.dispatcher, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs });
    } catch (error) {
      throw broken(error, 'send');
    }
    try {
      if (res.statusCode >= 300) throw refused(res.statusCode, res.headers, await readCapped(res.body, MAX_ERROR_BODY, true), shown, mask);
      const type = String(res.headers['content-type'] ?? '');
      // A server that ignores `stream: true` answers with one JSON body: taken as such.
      if (type.includes('text/event-stream')) await readStream(res.body, answer, shown);
      else answer.whole(parseJson(await readCapped(res.body, MAX_ANSWER_CHARS, false), shown));
    } catch (error) {
      res.body.destroy();
      throw broken(error, 'read');
    }
    return answer.intent();
  };
}

/** The answer as it comes in: content, tool calls by index, the finish reason, usage; and its events. */
class Answer {
  content = '';
  finishReason: string | null = null;
  done = false;
  chunks = 0;
  private readonly calls = new Map<number, { name: string; arguments: string }>();
  private usageSeen = false;
  private emitFailed = false;

  constructor(
    private readonly ctx: HandlerContext,
    private readonly byWireName: Map<string, string>,
  ) {}

  /** Events are a side channel: one the stream refuses (too large for REASONQ_EVENT_MAX_BYTES) is logged once and skipped, the answer goes on. */
  event(type: string, data: unknown): void {
    try {
      void this.ctx.emit(type, data);
    } catch (error) {
      if (!this.emitFailed) this.ctx.log.warn({ type, err: (error as Error).message }, 'an event of the model answer was refused; its stream will miss some');
      this.emitFailed = true;
    }
  }

  /** One `data:` of the stream. */
  chunk(data: string, shown: string): void {
    if (data.trim() === '[DONE]') {
      this.done = true;
      return;
    }
    this.chunks += 1;
    const chunk = parseJson(data, shown) as Chunk;
    if (chunk.error) throw new ModelError('MODEL_STREAM_ERROR', `the model server reported an error mid-answer: ${quote(errorMessage(chunk) ?? JSON.stringify(chunk.error))}`);
    this.usage(chunk.usage);
    const choice = Array.isArray(chunk.choices) ? chunk.choices.find((c) => (c?.index ?? 0) === 0) : undefined;
    if (!choice) return;
    const delta = choice.delta ?? {};
    if (typeof delta.content === 'string' && delta.content !== '') {
      this.content += delta.content;
      this.event('token', { text: delta.content });
    }
    if (Array.isArray(delta.tool_calls)) {
      for (const [position, part] of delta.tool_calls.entries()) {
        const index = typeof part?.index === 'number' ? part.index : position;
        const call = this.calls.get(index) ?? { name: '', arguments: '' };
        const name = typeof part?.function?.name === 'string' ? part.function.name : '';
        const args = typeof part?.function?.arguments === 'string' ? part.function.arguments : '';
        call.name += name;
        call.arguments += args;
        this.calls.set(index, call);
        this.event('tool_call', { index, ...(name ? { name: this.toolName(name) ?? name } : {}), arguments: args });
      }
    }
    if (this.content.length > MAX_ANSWER_CHARS || [...this.calls.values()].some((c) => c.arguments.length > MAX_ANSWER_CHARS)) {
      throw new ModelError('MODEL_BAD_ANSWER', `the answer from ${shown} ran past ${MAX_ANSWER_CHARS} characters`);
    }
    if (typeof choice.finish_reason === 'string') this.finishReason = choice.finish_reason;
  }

  /** A non-streamed answer: the same events, one each. */
  whole(body: unknown): void {
    const b = body as Chunk;
    if (b.error) throw new ModelError('MODEL_STREAM_ERROR', `the model server reported an error: ${quote(errorMessage(b) ?? JSON.stringify(b.error))}`);
    this.usage(b.usage);
    const choice = Array.isArray(b.choices) ? b.choices[0] : undefined;
    const message = choice?.message ?? {};
    this.done = true;
    this.finishReason = typeof choice?.finish_reason === 'string' ? choice.finish_reason : null;
    if (typeof message.content === 'string' && message.content !== '') {
      this.content = message.content;
      this.event('token', { text: message.content });
    }
    for (const [index, call] of (Array.isArray(message.tool_calls) ? message.tool_calls : []).entries()) {
      const name = typeof call?.function?.name === 'string' ? call.function.name : '';
      const raw: unknown = call?.function?.arguments;
      // Some servers (Ollama's native form) give the arguments as an object, not as a JSON string.
      const args = typeof raw === 'string' ? raw : raw === undefined ? '' : JSON.stringify(raw);
      this.calls.set(index, { name, arguments: args });
      this.event('tool_call', { index, ...(name ? { name: this.toolName(name) ?? name } : {}), arguments: args });
    }
  }

  /** The intent: the first tool call, else the content as the final answer. */
  intent(): Intent {
    const calls = [...this.calls.entries()].sort(([a], [b]) => a - b).map(([, c]) => c);
    const said = this.content.trim();
    const first = calls[0];
    if (first) {
      if (calls.length > 1) this.ctx.log.info({ taken: first.name, ignored: calls.slice(1).map((c) => c.name) }, 'the model asked for several tool calls; taking the first');
      const tool = this.toolName(first.name);
      if (tool === undefined) {
        const listed = [...new Set(this.byWireName.values())];
        throw new ModelError(
          'MODEL_UNKNOWN_TOOL',
          `the model called tool ${quote(JSON.stringify(first.name))}, which the payload does not list (${listed.length > 0 ? `it lists ${quote(listed.join(', '))}` : 'it lists none'})`,
        );
      }
      const args = argsObject(first.arguments);
      if (!args) throw new ModelError('MODEL_BAD_ARGUMENTS', `the model's arguments for ${tool} are not a JSON object: ${quote(first.arguments || '(empty)')}`);
      return { action: 'tool', tool_name: tool, args, finish: false, reasoning: capReasoning(said) || `Calling ${tool}.` };
    }
    if (!said) throw new ModelError('MODEL_EMPTY_ANSWER', `the model answered with neither text nor a tool call (finish_reason: ${this.finishReason ?? 'none'})`);
    if (this.finishReason === 'length') this.ctx.log.warn({ chars: said.length }, 'the answer was cut at the token limit (finish_reason length); taking it as it is');
    return { action: 'finish', finish: true, tool_name: null, args: null, reasoning: capReasoning(said) };
  }

  /** The payload's name for a tool the model called (sent under a wire name, or called by its own name). */
  private toolName(name: string): string | undefined {
    const mapped = this.byWireName.get(name);
    if (mapped !== undefined) return mapped;
    return [...this.byWireName.values()].includes(name) ? name : undefined;
  }

  private usage(raw: unknown): void {
    if (this.usageSeen || raw === undefined || raw === null) return;
    const u = usageSchema.safeParse(raw);
    if (!u.success) return; // some servers send partial usage objects: nothing to total
    this.usageSeen = true;
    try {
      void this.ctx.usage({ prompt_tokens: u.data.prompt_tokens, completion_tokens: u.data.completion_tokens });
    } catch (error) {
      this.ctx.log.warn({ err: (error as Error).message }, 'usage could not be reported');
    }
  }
}

/** The shapes read from a chunk or a body: everything optional, nothing trusted. */
interface Chunk {
  error?: unknown;
  usage?: unknown;
  choices?: ({
    index?: number;
    finish_reason?: unknown;
    delta?: { content?: unknown; tool_calls?: ({ index?: unknown; function?: { name?: unknown; arguments?: unknown } } | null)[] };
    message?: { content?: unknown; tool_calls?: ({ function?: { name?: unknown; arguments?: unknown } } | null)[] };
  } | null)[];
}

async function readStream(body: Dispatcher.ResponseData['body'], answer: Answer, shown: string): Promise<void> {
  const sse = new SseDecoder();
  for await (const bytes of body as AsyncIterable<Uint8Array>) {
    for (const data of sse.push(bytes)) {
      answer.chunk(data, shown);
      if (answer.done) return; // leaving the loop ends the response: nothing after [DONE] counts
    }
    if (sse.pending > MAX_ANSWER_CHARS) throw new ModelError('MODEL_BAD_ANSWER', `the stream from ${shown} sent a line longer than ${MAX_ANSWER_CHARS} characters`);
  }
  for (const data of sse.end()) answer.chunk(data, shown);
  // With a finish_reason the answer is whole even if [DONE] (or the usage chunk) did not follow.
  if (!answer.done && answer.finishReason === null) {
    throw new ModelError('MODEL_STREAM_CUT', `the stream from ${shown} ended after ${answer.chunks} chunk(s) without [DONE] or a finish_reason: the answer is incomplete`);
  }
}

/** The body as text, at most `max` characters; past it an error, or (for an error body) what fit. */
async function readCapped(body: Dispatcher.ResponseData['body'], max: number, cut: boolean): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const bytes of body as AsyncIterable<Uint8Array>) {
    text += decoder.decode(bytes, { stream: true });
    if (text.length > max) {
      body.destroy();
      if (cut) return text.slice(0, max);
      throw new ModelError('MODEL_BAD_ANSWER', `the answer ran past ${max} characters`);
    }
  }
  return text + decoder.decode();
}

function parseJson(text: string, shown: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ModelError('MODEL_BAD_ANSWER', `${shown} answered something that is not JSON: ${quote(text)}`);
  }
}

/** The error for a status of 300 or more: NonRetryableError when no retry mends it, else ModelError. */
function refused(status: number, headers: Record<string, string | string[] | undefined>, text: string, shown: string, mask: (t: string) => string): ReasonqError {
  let said = text.trim();
  try {
    said = errorMessage(JSON.parse(text)) ?? said;
  } catch {
    // not JSON: the text itself
  }
  const retryAfter = headers['retry-after'];
  const wait = retryAfter ? `; it asks to retry after ${quote(String(retryAfter), 40)}${/^\d+$/.test(String(retryAfter)) ? ' s' : ''} (the queue's backoff decides when)` : '';
  const hint =
    status === 401 || status === 403 ? ' (check REASONING_LLM_API_KEY)' : status === 404 ? ' (is the model available on that server, and the base URL its /v1 root?)' : '';
  const message = mask(`model server ${shown} answered ${status}: ${quote(said || '(no message)')}${hint}${wait}`);
  const details = { status };
  if (RETRYABLE_STATUS.has(status) || status >= 500) return new ModelError(status === 429 ? 'MODEL_RATE_LIMITED' : 'MODEL_UNAVAILABLE', message, { details });
  const code = status === 401 || status === 403 ? 'MODEL_UNAUTHORIZED' : status === 404 ? 'MODEL_NOT_FOUND' : 'MODEL_REQUEST_REFUSED';
  return new NonRetryableError(message, { code, details });
}

/** The message of an OpenAI-style error body: `{error: {message}}`, `{error: "…"}`, `{message}` (vLLM), `{detail}`. */
function errorMessage(body: unknown): string | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const b = body as { error?: unknown; message?: unknown; detail?: unknown };
  if (typeof b.error === 'string') return b.error;
  if (b.error && typeof b.error === 'object' && typeof (b.error as { message?: unknown }).message === 'string') return (b.error as { message: string }).message;
  if (typeof b.message === 'string') return b.message;
  if (typeof b.detail === 'string') return b.detail;
  return undefined;
}

/** Tool-call arguments as an object; "" (a tool called without any) is `{}`. null when they are not a JSON object. */
function argsObject(text: string): Record<string, unknown> | null {
  if (text.trim() === '') return {};
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function quote(text: string, max = QUOTE_CHARS): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max)}… (${flat.length - max} more characters)`;
}

function capReasoning(text: string): string {
  return text.length <= MAX_REASONING ? text : `${text.slice(0, MAX_REASONING - 40)}… (cut: ${text.length} characters in all)`;
}
