/**
 * The client an agent runtime uses: `agentIntent(payload)` enqueues an intent
 * request and resolves to the intent. The same client works on every
 * transport; transport failures (not a job's own error) are retried.
 */
import type { Analytics, AnalyticsWindow } from './analytics.js';
import { readAnalytics } from './analytics-read.js';
import { backoffDelay, sleep } from './backoff.js';
import { DEFAULTS, loadConfig, type Config } from './config.js';
import {
  JobNotFoundError,
  RateLimitedError,
  ReasoningAbortedError,
  ReasoningJobError,
  ReasoningTimeoutError,
  TransportError,
  ValidationError,
} from './errors.js';
import { buildJob, enqueueRequestSchema, intentRequestSchema, isTerminal, parseOrThrow, type EnqueueOptions, type EnqueueRequest, type Intent, type IntentRequest, type Job } from './job.js';
import { silentLogger, type Logger } from './logger.js';
import type { ListFilter, ListPage, Stats, Transport, WorkerInfo } from './transport.js';
import { createTransport } from './transports.js';
import { retryMany, type RetryManyRequest, type RetryManyResult } from './retry-many.js';

import { traceSend } from './tracing.js';
import { bounded, within } from './bounded.js';
import type { EventPage, JobEvent } from './events.js';

/** how long agentIntent lets its onEvent stream reach the job's final event after the wait saw it end */
const STREAM_TAIL_MS = 5_000;

/** agentIntent's own deadline lets a store answer this much past it before giving up on the wait */
const DEADLINE_SLACK_MS = 250;

export interface ClientOptions {
  /** use this transport instead of building one from the environment */
  transport?: Transport;
  /** environment to read (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** overrides on top of the environment */
  config?: Partial<Config>;
  logger?: Logger;
}

export interface AgentIntentOptions extends Omit<EnqueueOptions, 'delay_ms' | 'run_at'> {
  /** give up (and cancel the job) after this long; default REASONING_API_TIMEOUT_MS */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** called with each of the job's events as it comes (tokens, stages, lifecycle), in order, before the promise resolves */
  onEvent?: (event: JobEvent) => void;
}

export interface EventsOptions {
  /** start after this event id (0, the default: from the start) */
  after?: number;
  /** false: stop once caught up instead of following live (default true) */
  follow?: boolean;
  signal?: AbortSignal;
}

export interface Client {
  /** Enqueue an intent request and resolve to the intent. */
  agentIntent(payload: IntentRequest, options?: AgentIntentOptions): Promise<Intent>;
  /** Enqueue without waiting; idempotent by `id` and `dedupe_key`. */
  enqueue(payload: IntentRequest, options?: EnqueueOptions): Promise<Job>;
  /**
   * Many jobs in one round trip per batch (the stores) or per 1,000 (http),
   * each idempotent by id and dedupe_key as `enqueue` is; one reply per
   * request, in order, `created: false` for a job that existed already.
   */
  enqueueMany(requests: EnqueueRequest[]): Promise<{ job: Job; created: boolean }[]>;
  get(id: string): Promise<Job | null>;
  /**
   * The job's event stream, in order, from after `after`: every event kept,
   * then live ones as they are written, ending after the job's final event
   * (a trimmed part shows as one `trimmed` event). Resume with the last id seen.
   */
  events(id: string, options?: EventsOptions): AsyncIterable<JobEvent>;
  /** Resolve with the job once finished, or as it is after `timeoutMs`. */
  wait(id: string, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Job>;
  cancel(id: string, reason?: string): Promise<Job>;
  retry(id: string): Promise<Job>;
  /**
   * Retry many failed jobs: `{ids}` (1..500), or `{queue?, status: 'error', limit?}`
   * (the newest failures, default 100, at most 500). Each as `retry` would;
   * those that cannot be are reported in `skipped` with the error's code.
   */
  retryMany(request: RetryManyRequest): Promise<RetryManyResult>;
  list(filter?: ListFilter): Promise<ListPage>;
  stats(): Promise<Stats>;
  /** Throughput, failure rate, wait and run percentiles, tokens of a window (src/analytics.ts), from the store's rollups or the server's answer. */
  analytics(window?: AnalyticsWindow, queue?: string): Promise<Analytics>;
  workers(): Promise<WorkerInfo[]>;
  readonly transport: Transport;
  /** Safe to call twice. Closes the transport only if the client built it. */
  close(): Promise<void>;
}

/** Build a client from the environment (or a given transport). */
export async function createClient(options: ClientOptions = {}): Promise<Client> {
  const config = loadConfig(options.env ?? process.env, options.config);
  const owned = !options.transport;
  const transport = options.transport ? bounded(options.transport, { timeoutMs: config.storeTimeoutMs }) : await createTransport(config, options.logger);
  return new ReasonqClient(transport, config, owned, options.logger);
}

class ReasonqClient implements Client {
  private closed = false;

  constructor(
    readonly transport: Transport,
    private readonly config: Config,
    private readonly owned: boolean,
    private readonly log: Logger = silentLogger,
  ) {}

  async agentIntent(payload: IntentRequest, options: AgentIntentOptions = {}): Promise<Intent> {
    const { timeoutMs = this.config.client.timeoutMs, signal, onEvent, ...enqueueOptions } = options;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new ValidationError(`timeoutMs must be a positive whole number (got ${timeoutMs})`, 'timeoutMs');
    const deadline = Date.now() + timeoutMs; // the caller's limit covers the enqueue too
    const job = await this.enqueue(payload, enqueueOptions);
    const streaming = onEvent ? this.streamTo(job.id, onEvent, signal) : null;
    try {
      const final = await this.waitForIntent(job, deadline, timeoutMs, signal);
      // The ending is written with its event: let the reader get there (bounded) before answering.
      await streaming?.finish(Math.max(0, Math.min(STREAM_TAIL_MS, deadline - Date.now())));
      return final;
    } finally {
      streaming?.stop();
    }
  }

  /** Feed `onEvent` from the job's stream until it ends or `stop()`; a failing reader or listener never fails the intent. */
  private streamTo(id: string, onEvent: (event: JobEvent) => void, signal: AbortSignal | undefined) {
    const controller = new AbortController();
    const stop = () => controller.abort();
    signal?.addEventListener('abort', stop, { once: true });
    const done = (async () => {
      try {
        for await (const event of this.events(id, { signal: controller.signal })) {
          try {
            onEvent(event);
          } catch (error) {
            this.log.warn({ err: error, job_id: id }, 'onEvent threw; the stream goes on');
          }
        }
      } catch (error) {
        if (!controller.signal.aborted) this.log.warn({ err: error, job_id: id }, 'following the job\'s events failed; agentIntent goes on without them');
      }
    })();
    return {
      finish: async (ms: number) => {
        const timer = setTimeout(stop, ms);
        await done;
        clearTimeout(timer);
      },
      stop: () => {
        signal?.removeEventListener('abort', stop);
        stop();
      },
    };
  }

  async *events(id: string, options: EventsOptions = {}): AsyncGenerator<JobEvent> {
    const { follow = true, signal } = options;
    let after = options.after ?? 0;
    for (;;) {
      if (signal?.aborted) return;
      let page: EventPage;
      try {
        page = await this.withRetries(() => this.transport.readEvents(id, { after, wait_ms: follow ? DEFAULTS.eventsWaitMs : 0, signal }));
      } catch (error) {
        // A server at its long-poll limit asks us to come back: a follower does, as EventSource would.
        if (!(error instanceof RateLimitedError)) throw error;
        await sleep(error.retryAfterSec * 1000, signal);
        continue;
      }
      for (const event of page.events) {
        after = event.id;
        yield event;
      }
      if (page.end || (!follow && page.events.length === 0)) return;
    }
  }

  private async waitForIntent(job: Job, deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<Intent> {
    let current = job;
    while (!isTerminal(current.status)) {
      const left = deadline - Date.now();
      if (signal?.aborted) {
        await this.cancelQuietly(job.id, 'agentIntent aborted by the caller');
        throw new ReasoningAbortedError(job.id, signal.reason);
      }
      if (left <= 0) {
        // Cancel so the job does not run late for a caller who is gone.
        await this.cancelQuietly(job.id, `agentIntent timed out after ${timeoutMs} ms`);
        throw new ReasoningTimeoutError(job.id, timeoutMs);
      }
      // The caller's deadline holds whatever the store does: a wait that overruns it ends the loop above.
      current = await within(this.transport.name, 'wait', left + DEADLINE_SLACK_MS, () => this.withRetries(() => this.transport.wait(job.id, { timeout_ms: left, signal }))).catch((error: unknown) => {
        if (error instanceof TransportError && error.code === 'STORE_TIMEOUT') return current;
        throw error;
      });
    }
    if (current.status === 'done' && current.result) return current.result;
    throw new ReasoningJobError(current.id, current.status, current.error, current.moved_to);
  }

  async enqueue(payload: IntentRequest, options: EnqueueOptions = {}): Promise<Job> {
    const request: EnqueueRequest = { ...options, payload: parseOrThrow(intentRequestSchema, payload, 'payload') };
    // The id is fixed before the first try, so a retried enqueue is idempotent.
    const job = buildJob(request);
    // One `send` span over every try; its context is what the job carries to the worker.
    const { job: stored } = await traceSend([job], () => this.withRetries(() => this.transport.enqueue(job)));
    return stored;
  }

  async enqueueMany(requests: EnqueueRequest[]): Promise<{ job: Job; created: boolean }[]> {
    // Ids fixed before the first try: a repeated batch is idempotent job by job.
    const jobs = requests.map((r, i) => buildJob(parseOrThrow(enqueueRequestSchema, r, `jobs.${i}`)));
    return traceSend(jobs, () => this.withRetries(() => this.transport.enqueueMany(jobs)), { batch: true });
  }

  get(id: string): Promise<Job | null> {
    return this.withRetries(() => this.transport.get(id));
  }

  wait(id: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Job> {
    return this.withRetries(() => this.transport.wait(id, { timeout_ms: options.timeoutMs ?? this.config.client.timeoutMs, signal: options.signal }));
  }

  cancel(id: string, reason = 'canceled by user'): Promise<Job> {
    return this.withRetries(() => this.transport.cancel(id, reason));
  }

  retry(id: string): Promise<Job> {
    return this.withRetries(() => this.transport.retry(id));
  }

  retryMany(request: RetryManyRequest): Promise<RetryManyResult> {
    return this.withRetries(() => retryMany(this.transport, request));
  }

  list(filter: ListFilter = {}): Promise<ListPage> {
    return this.withRetries(() => this.transport.list(filter));
  }

  stats(): Promise<Stats> {
    return this.withRetries(() => this.transport.stats());
  }

  analytics(window: AnalyticsWindow = '1h', queue?: string): Promise<Analytics> {
    return this.withRetries(() => readAnalytics(this.transport, window, queue));
  }

  workers(): Promise<WorkerInfo[]> {
    return this.withRetries(() => this.transport.workers());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.owned) await this.transport.close();
  }

  private async cancelQuietly(id: string, reason: string): Promise<void> {
    try {
      await this.withRetries(() => this.transport.cancel(id, reason));
    } catch (error) {
      if (!(error instanceof JobNotFoundError)) throw error;
    }
  }

  /** REASONING_API_RETRIES applies to transport failures only, never to a job's own error. */
  private async withRetries<T>(op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (error) {
        if (!(error instanceof TransportError) || !error.retryable || attempt >= this.config.client.retries) throw error;
        await sleep(backoffDelay(attempt + 1, { baseMs: 100, maxMs: 2000 }));
      }
    }
  }
}
