/**
 * HTTP transport: the Transport interface spoken to a `reasonq serve`
 * server, for clients and for remote workers alike.
 *
 * Layout: nothing is stored here. Every operation is one request on a
 * keep-alive undici Pool; blocking claims and waits are long-polls that the
 * server bounds, so the transport loops until the caller's own deadline.
 * Errors come back as `{error: {code, message, details}}` and are rebuilt
 * into the same classes the server raised (errorFromWire).
 */
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { DEFAULTS } from '../../src/config.js';
import { errorFromWire, ReasonqError, TransportError, ValidationError } from '../../src/errors.js';
import { ENQUEUE_FIELDS, isTerminal, reviveJob, type Job } from '../../src/job.js';
import { reviveEvent, type EventPage, type NewEvent, type ReadEventsOptions } from '../../src/events.js';
import type { Outcome } from '../../src/outcome.js';
import type { RetryManyRequest, RetryManyResult } from '../../src/retry-many.js';
import { ENQUEUE_MANY_MAX } from '../../src/transport.js';
import type { Analytics, AnalyticsWindow } from '../../src/analytics.js';
import type {
  EnqueueManyOptions,
  EnqueueReply,
  ClaimRequest,
  ClaimedJob,
  ExtendResult,
  ListFilter,
  ListPage,
  Stats,
  SweepResult,
  Transport,
  WaitOptions,
  WorkerInfo,
} from '../../src/transport.js';
import { MAX_CLAIM_WAIT_MS } from '../../src/transport-helpers.js';

export interface HttpTransportOptions {
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  /** bearer token for every call, unless a scoped one below is set */
  token?: string | undefined;
  /** presented on client calls (enqueue, get, wait, cancel, …) */
  clientToken?: string | undefined;
  /** presented on worker calls (claim, lease, complete, fail, …) */
  workerToken?: string | undefined;
  /** limit for one ordinary request (long-polls get their wait on top) */
  timeoutMs?: number;
  /** keep-alive connections to the server */
  connections?: number;
}

/** Longest single long-poll; the server caps waits at 60 s. */
const LONG_POLL_MS = 25_000;

export function createHttpTransport(options: HttpTransportOptions): Transport {
  return new HttpTransport(options);
}

type Method = 'GET' | 'POST' | 'DELETE';
/** Which token a call presents: the server checks each route's scope. */
type Role = 'client' | 'worker';

/** What a caller may set (the field table's enqueue fields), null ones left out. */
function enqueueBody(job: Job): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const f of ENQUEUE_FIELDS) {
    const v = job[f];
    if (v !== null && v !== undefined) body[f] = v instanceof Date ? v.toISOString() : v;
  }
  return body;
}

export class HttpTransport implements Transport {
  readonly name = 'http';
  readonly capabilities = { blockingClaim: true, pushWait: true, nativeRetention: false, atomicClaim: true };
  private readonly pool: Pool;
  private readonly base: URL;
  private readonly auth: Record<Role, string | undefined>;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(options: HttpTransportOptions) {
    this.base = new URL(options.url);
    this.pool = new Pool(this.base.origin, { connections: options.connections ?? DEFAULTS.httpConnections, keepAliveTimeout: 30_000, pipelining: 1 });
    const bearer = (t: string | undefined) => (t ? `Bearer ${t}` : undefined);
    this.auth = { client: bearer(options.clientToken ?? options.token ?? options.workerToken), worker: bearer(options.workerToken ?? options.token ?? options.clientToken) };
    this.timeoutMs = options.timeoutMs ?? DEFAULTS.apiTimeoutMs;
  }

  async init(): Promise<void> {
    await this.call('GET', '/healthz');
  }

  async enqueue(job: Job): Promise<{ job: Job; created: boolean }> {
    const res = await this.call<{ job: unknown; created: boolean }>('POST', '/v1/jobs', enqueueBody(job));
    return { job: reviveJob(res.job), created: res.created };
  }

  /** `POST /v1/jobs:batch`, a request per ENQUEUE_MANY_MAX jobs. Imports are the stores' (the migrator runs against them). */
  async enqueueMany(jobs: Job[], options: EnqueueManyOptions = {}): Promise<EnqueueReply[]> {
    if (options.imported) throw new ValidationError('jobs are imported into a store directly (reasonq migrate), not through the HTTP API', 'imported');
    const out: EnqueueReply[] = [];
    for (let i = 0; i < jobs.length; i += ENQUEUE_MANY_MAX) {
      const res = await this.call<{ jobs: { job: unknown; created: boolean }[] }>('POST', '/v1/jobs:batch', { jobs: jobs.slice(i, i + ENQUEUE_MANY_MAX).map(enqueueBody) });
      for (const r of res.jobs) out.push({ job: reviveJob(r.job), created: r.created });
    }
    return out;
  }

  async claim(request: ClaimRequest): Promise<ClaimedJob | null> {
    const jobs = await this.claimMany(request, 1);
    return jobs[0] ?? null;
  }

  async claimMany(request: ClaimRequest, max: number): Promise<ClaimedJob[]> {
    const wait = Math.min(request.wait_ms, MAX_CLAIM_WAIT_MS);
    const res = await this.call<{ jobs: unknown[] }>(
      'POST',
      '/v1/claim',
      { queues: request.queues, owner: request.owner, lease_ms: request.lease_ms, wait_ms: wait, max },
      { extraMs: wait, signal: request.signal, role: 'worker' },
    ).catch((error: unknown) => {
      if (request.signal?.aborted) return { jobs: [] };
      throw error;
    });
    return res.jobs.map((j) => reviveJob(j) as ClaimedJob);
  }

  async extend(id: string, token: string, lease_ms: number): Promise<ExtendResult> {
    const res = await this.call<{ until: string; cancel_requested: { at: string; reason: string } | null }>('POST', `/v1/jobs/${enc(id)}/lease`, { token, lease_ms }, { role: 'worker' });
    return { until: new Date(res.until), cancel_requested: res.cancel_requested ? { at: new Date(res.cancel_requested.at), reason: res.cancel_requested.reason } : null };
  }

  settle(id: string, token: string, outcome: Outcome): Promise<Job> {
    const wire = { ...outcome, ...(outcome.run_at ? { run_at: outcome.run_at.toISOString() } : {}) };
    return this.jobCall('POST', `/v1/jobs/${enc(id)}/settle`, { token, outcome: wire }, { role: 'worker' });
  }

  async appendEvents(id: string, token: string, events: NewEvent[], written: number | null): Promise<number> {
    if (written === null) {
      // Only the first release's route takes events that are not repeat-safe: progress reports, one at a time.
      let last = 0;
      for (const e of events) {
        if (e.type !== 'progress') throw new ValidationError('over HTTP, an append that is never repeated (written: null) carries progress events only', 'written');
        ({ last } = await this.call<{ last: number }>('POST', `/v1/jobs/${enc(id)}/progress`, { token, data: e.data }, { role: 'worker' }));
      }
      return last;
    }
    const res = await this.call<{ last: number }>('POST', `/v1/jobs/${enc(id)}/events`, { token, written, events }, { role: 'worker' });
    return res.last;
  }

  /** The JSON form of the events route (the SSE form is for curl, browsers and the CLI): one long-poll per page. */
  async readEvents(id: string, options: ReadEventsOptions): Promise<EventPage> {
    const wait = Math.min(Math.max(0, options.wait_ms ?? 0), LONG_POLL_MS);
    const q = new URLSearchParams({ format: 'json', after: String(options.after ?? 0) });
    if (options.limit !== undefined) q.set('limit', String(options.limit));
    if (wait > 0) q.set('wait_ms', String(wait));
    try {
      const res = await this.call<{ events: Parameters<typeof reviveEvent>[0][]; last: number; end: boolean }>('GET', `/v1/jobs/${enc(id)}/events?${q.toString()}`, undefined, { extraMs: wait, signal: options.signal });
      return { events: res.events.map(reviveEvent), last: res.last, end: res.end };
    } catch (error) {
      // Aborted by the caller: an empty page, as every store answers a wait cut short.
      if (options.signal?.aborted) return { events: [], last: options.after ?? 0, end: false };
      throw error;
    }
  }

  cancel(id: string, reason: string): Promise<Job> {
    return this.jobCall('POST', `/v1/jobs/${enc(id)}/cancel`, { reason });
  }

  retry(id: string): Promise<Job> {
    return this.jobCall('POST', `/v1/jobs/${enc(id)}/retry`, {});
  }

  /** One request for up to 500 retries (the server runs them: src/retry-many.ts). */
  retryMany(request: RetryManyRequest): Promise<RetryManyResult> {
    return this.call<RetryManyResult>('POST', '/v1/jobs:retry', request, { extraMs: this.timeoutMs * 3 });
  }

  async get(id: string): Promise<Job | null> {
    try {
      return await this.jobCall('GET', `/v1/jobs/${enc(id)}`);
    } catch (error) {
      if (error instanceof ReasonqError && error.code === 'JOB_NOT_FOUND') return null;
      throw error;
    }
  }

  async wait(id: string, options: WaitOptions): Promise<Job> {
    const deadline = Date.now() + options.timeout_ms;
    for (;;) {
      const left = Math.max(0, deadline - Date.now());
      const chunk = Math.min(left, LONG_POLL_MS);
      let job: Job;
      try {
        job = await this.jobCall('GET', `/v1/jobs/${enc(id)}/wait?timeout_ms=${chunk}`, undefined, { extraMs: chunk, signal: options.signal });
      } catch (error) {
        if (options.signal?.aborted) return this.mustGet(id);
        throw error;
      }
      if (isTerminal(job.status) || Date.now() >= deadline || options.signal?.aborted) return job;
    }
  }

  async list(filter: ListFilter): Promise<ListPage> {
    const q = new URLSearchParams();
    // `summary` is not a query parameter: the server's lists are summaries always.
    for (const [k, v] of Object.entries(filter)) if (v !== undefined && v !== null && k !== 'summary') q.set(k, String(v));
    const res = await this.call<{ jobs: unknown[]; next_cursor: string | null }>('GET', `/v1/jobs?${q.toString()}`);
    return { jobs: res.jobs.map(reviveJob), next_cursor: res.next_cursor };
  }

  stats(): Promise<Stats> {
    return this.call<Stats>('GET', '/v1/stats');
  }

  /** The server reads the rollups (GET /v1/analytics). */
  analytics(window: AnalyticsWindow, queue?: string): Promise<Analytics> {
    const q = new URLSearchParams({ window });
    if (queue !== undefined) q.set('queue', queue);
    return this.call<Analytics>('GET', `/v1/analytics?${q.toString()}`);
  }

  async heartbeat(worker: WorkerInfo): Promise<void> {
    await this.call('POST', '/v1/workers/heartbeat', worker, { role: 'worker' });
  }

  async unregisterWorker(id: string): Promise<void> {
    await this.call('DELETE', `/v1/workers/${enc(id)}`, undefined, { role: 'worker' });
  }

  async workers(): Promise<WorkerInfo[]> {
    const res = await this.call<{ workers: (WorkerInfo & { started_at: string; last_seen: string })[] }>('GET', '/v1/workers');
    return res.workers.map((w) => ({ ...w, started_at: new Date(w.started_at), last_seen: new Date(w.last_seen) }));
  }

  sweep(): Promise<SweepResult> {
    return this.call<SweepResult>('POST', '/v1/sweep', {}, { role: 'worker' });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  private async mustGet(id: string): Promise<Job> {
    const job = await this.get(id);
    if (!job) throw errorFromWire({ code: 'JOB_NOT_FOUND', message: `job ${id} does not exist`, details: { id } }, 404);
    return job;
  }

  private async jobCall(method: Method, path: string, body?: unknown, opts?: CallOptions): Promise<Job> {
    const res = await this.call<{ job: unknown }>(method, path, body, opts);
    return reviveJob(res.job);
  }

  private async call<T>(method: Method, path: string, body?: unknown, opts: CallOptions = {}): Promise<T> {
    if (this.closed) throw new TransportError('http transport is closed', { code: 'TRANSPORT_CLOSED', retryable: false });
    const limit = this.timeoutMs + (opts.extraMs ?? 0);
    const authorization = this.auth[opts.role ?? 'client'];
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        method,
        path: this.base.pathname.replace(/\/$/, '') + path,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(authorization ? { authorization } : {}) },
        body: body === undefined ? null : JSON.stringify(body),
        headersTimeout: limit,
        bodyTimeout: limit,
        signal: opts.signal,
      });
    } catch (error) {
      throw this.translate(error, method, path);
    }
    const text = await res.body.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      throw new TransportError(`${method} ${path}: server answered ${res.statusCode} with a body that is not JSON`, { code: 'TRANSPORT_BAD_RESPONSE', retryable: res.statusCode >= 500 });
    }
    if (res.statusCode >= 400) {
      const err = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error ?? {};
      throw errorFromWire(err, res.statusCode);
    }
    return parsed as T;
  }

  private translate(error: unknown, method: string, path: string): ReasonqError {
    if (error instanceof ReasonqError) return error;
    const e = error as { code?: string; message?: string; name?: string };
    if (e.name === 'AbortError' || e.code === 'UND_ERR_ABORTED') return new TransportError(`${method} ${path} aborted`, { code: 'TRANSPORT_ABORTED', retryable: false, cause: error });
    const timeout = error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError || error instanceof undiciErrors.ConnectTimeoutError;
    return new TransportError(`reasonq server at ${this.base.origin} ${timeout ? 'timed out' : 'is unreachable'} (${method} ${path}: ${e.code ?? e.message ?? 'error'})`, {
      code: timeout ? 'TRANSPORT_TIMEOUT' : 'TRANSPORT_UNAVAILABLE',
      retryable: true,
      cause: error,
    });
  }
}

interface CallOptions {
  extraMs?: number;
  signal?: AbortSignal | undefined;
  role?: Role;
}

const enc = encodeURIComponent;
