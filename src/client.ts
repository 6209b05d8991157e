/**
 * The client an agent runtime uses: `agentIntent(payload)` enqueues an intent
 * request and resolves to the intent. The same client works on every
 * transport; transport failures (not a job's own error) are retried.
 */
import { backoffDelay, sleep } from './backoff.js';
import { loadConfig, type Config } from './config.js';
import {
  JobNotFoundError,
  ReasoningAbortedError,
  ReasoningJobError,
  ReasoningTimeoutError,
  TransportError,
  ValidationError,
} from './errors.js';
import { buildJob, intentRequestSchema, isTerminal, parseOrThrow, type EnqueueOptions, type EnqueueRequest, type Intent, type IntentRequest, type Job } from './job.js';
import { silentLogger, type Logger } from './logger.js';
import type { ListFilter, ListPage, Stats, Transport, WorkerInfo } from './transport.js';
import { createTransport } from './transports.js';
import { bounded, within } from './bounded.js';

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
}

export interface Client {
  /** Enqueue an intent request and resolve to the intent. */
  agentIntent(payload: IntentRequest, options?: AgentIntentOptions): Promise<Intent>;
  /** Enqueue without waiting; idempotent by `id` and `dedupe_key`. */
  enqueue(payload: IntentRequest, options?: EnqueueOptions): Promise<Job>;
  get(id: string): Promise<Job | null>;
  /** Resolve with the job once finished, or as it is after `timeoutMs`. */
  wait(id: string, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Job>;
  cancel(id: string, reason?: string): Promise<Job>;
  retry(id: string): Promise<Job>;
  list(filter?: ListFilter): Promise<ListPage>;
  stats(): Promise<Stats>;
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
    const { timeoutMs = this.config.client.timeoutMs, signal, ...enqueueOptions } = options;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new ValidationError(`timeoutMs must be a positive whole number (got ${timeoutMs})`, 'timeoutMs');
    const deadline = Date.now() + timeoutMs; // the caller's limit covers the enqueue too
    const job = await this.enqueue(payload, enqueueOptions);
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
    throw new ReasoningJobError(current.id, current.status, current.error);
  }

  async enqueue(payload: IntentRequest, options: EnqueueOptions = {}): Promise<Job> {
    const request: EnqueueRequest = { ...options, payload: parseOrThrow(intentRequestSchema, payload, 'payload') };
    // The id is fixed before the first try, so a retried enqueue is idempotent.
    const job = buildJob(request);
    const { job: stored } = await this.withRetries(() => this.transport.enqueue(job));
    return stored;
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

  list(filter: ListFilter = {}): Promise<ListPage> {
    return this.withRetries(() => this.transport.list(filter));
  }

  stats(): Promise<Stats> {
    return this.withRetries(() => this.transport.stats());
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
