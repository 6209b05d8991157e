/** The client side of the API: enqueue, intents, get, wait, cancel, retry, list, stats, analytics, workers, SSE. */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { JobEvent } from '../events.js';
import { DEFAULTS } from '../config.js';
import { JobNotFoundError, ReasonqError, ReasoningJobError, ReasoningTimeoutError } from '../errors.js';
import { buildJob, isTerminal, parseOrThrow, publicJob, summarizeJob, type Job, type TraceCarrier } from '../job.js';
import { carrierFromHeaders } from '../tracing.js';
import type { ServerContext } from './app.js';
import { SECURITY_HEADERS } from './auth.js';
import { readAnalytics } from '../analytics-read.js';
import { retryMany } from '../retry-many.js';
import { analyticsQuerySchema, batchBodySchema, cancelBodySchema, enqueueRequestSchema, eventsQuerySchema, lastEventIdSchema, intentBodySchema, listQuerySchema, waitQuerySchema, waitTimeoutQuerySchema } from './schemas.js';

type ById = { Params: { id: string } };

/** An event as the API sends it (the time as ISO text). */
const wireEvent = (e: JobEvent) => ({ id: e.id, type: e.type, at: e.at.toISOString(), attempt: e.attempt, data: e.data });

/**
 * Resolve when a written-out response can take more, or the stream is over
 * (closed, aborted, or `ms` passed: a reader that stops reading does not
 * hold its slot past the stream's lifetime; the caller then destroys it).
 * True when it drained.
 */
function drained(res: ServerResponse, signal: AbortSignal, ms: number): Promise<boolean> {
  if (res.destroyed || signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      res.off('close', onEnd);
      signal.removeEventListener('abort', onEnd);
      resolve(ok);
    };
    const onDrain = done(true);
    const onEnd = done(false);
    const timer = setTimeout(onEnd, Math.max(1, ms));
    res.once('drain', onDrain);
    res.once('close', onEnd);
    signal.addEventListener('abort', onEnd, { once: true });
  });
}

/**
 * Retries asked by callback deliveries (a request carrying `webhook-id`),
 * counted per job: a callback aimed at its own job's retry route would
 * otherwise loop as fast as the job can fail.
 */
function createLoopGuard(limit: number, maxJobs = 10_000) {
  const counts = new Map<string, number>();
  return (id: string) => {
    const n = (counts.get(id) ?? 0) + 1;
    counts.delete(id);
    counts.set(id, n);
    if (counts.size > maxJobs) counts.delete(counts.keys().next().value!);
    if (n > limit) {
      throw new ReasonqError('CALLBACK_LOOP', `job ${id} was already retried ${limit} times by callback deliveries; a callback cannot retry it again (retry it by hand)`, { status: 409 });
    }
  };
}

export function registerJobRoutes(app: FastifyInstance, { transport, metrics, longPoll, callbacks, sseMaxMs, sseKeepAliveMs, maxWaitMs: MAX_WAIT_MS, maxIntentWaitMs }: ServerContext): void {
  const must = async (id: string): Promise<Job> => {
    const job = await transport.get(id);
    if (!job) throw new JobNotFoundError(id);
    return job;
  };
  const enqueue = async (job: Job) => {
    const out = await transport.enqueue(job);
    if (out.created) metrics.enqueued.inc({ queue: metrics.queueLabel(out.job.queue) });
    return out;
  };
  const callbackRetry = createLoopGuard(DEFAULTS.callbackRetryLimit);
  /**
   * The producer's trace context: the body's `trace` (the client's `send`
   * span) wins; a body without one takes a valid `traceparent` header, so a
   * runtime whose OpenTelemetry propagates by header is followed too.
   */
  const traced = <T extends { trace?: TraceCarrier }>(body: T, fromHeaders: TraceCarrier | undefined): T => (body.trace || !fromHeaders ? body : { ...body, trace: fromHeaders });

  app.post('/v1/jobs', async (request, reply) => {
    const body = parseOrThrow(enqueueRequestSchema, request.body ?? {});
    const { wait_ms } = parseOrThrow(waitQuerySchema, request.query);
    if (body.callback_url) callbacks.check(body.callback_url);
    const job = buildJob(traced(body, carrierFromHeaders(request.headers)));
    // With wait_ms the wait slot is taken first: at the limit nothing is created.
    const { job: stored, created, final } = wait_ms
      ? await longPoll('wait', request, async (signal) => {
          const out = await enqueue(job);
          const end = isTerminal(out.job.status) ? out.job : await transport.wait(out.job.id, { timeout_ms: Math.min(wait_ms, MAX_WAIT_MS), signal });
          return { ...out, final: end };
        })
      : { ...(await enqueue(job)), final: null };
    return reply.status(created ? 201 : 200).send({ job: publicJob(final ?? stored), created });
  });

  // `::` is a literal colon to the router: the path is /v1/jobs:batch.
  app.post('/v1/jobs::batch', async (request, reply) => {
    const { jobs } = parseOrThrow(batchBodySchema, request.body ?? {});
    // Every job is checked before any is written: one bad job refuses the batch.
    for (const body of jobs) if (body.callback_url) callbacks.check(body.callback_url);
    const fromHeaders = carrierFromHeaders(request.headers);
    const built = jobs.map((body) => buildJob(traced(body, fromHeaders)));
    const out = await transport.enqueueMany(built);
    for (const r of out) if (r.created) metrics.enqueued.inc({ queue: metrics.queueLabel(r.job.queue) });
    return reply.status(out.some((r) => r.created) ? 201 : 200).send({ jobs: out.map((r) => ({ job: publicJob(r.job), created: r.created })) });
  });

  app.post('/v1/intents', async (request) => {
    const { timeout_ms, attempt_timeout_ms, ...rest } = parseOrThrow(intentBodySchema, request.body ?? {});
    if (rest.callback_url) callbacks.check(rest.callback_url);
    const job = buildJob(traced({ ...rest, ...(attempt_timeout_ms ? { timeout_ms: attempt_timeout_ms } : {}) }, carrierFromHeaders(request.headers)));
    const limit = Math.min(timeout_ms ?? MAX_WAIT_MS, maxIntentWaitMs);
    const { final, created } = await longPoll('wait', request, async (signal) => {
      const out = await enqueue(job);
      return { final: await transport.wait(out.job.id, { timeout_ms: limit, signal }), created: out.created };
    });
    if (!isTerminal(final.status)) {
      // Only a job this request made is canceled: one it attached to (same id or dedupe_key) is somebody else's.
      if (created) await transport.cancel(final.id, `intent request timed out after ${limit} ms`);
      throw new ReasoningTimeoutError(final.id, limit);
    }
    if (final.status !== 'done') throw new ReasoningJobError(final.id, final.status, final.error, final.moved_to);
    return { job_id: final.id, intent: final.result, job: publicJob(final) };
  });

  app.get<ById>('/v1/jobs/:id', async (request) => {
    return { job: publicJob(await must(request.params.id)) };
  });

  app.get<ById>('/v1/jobs/:id/wait', async (request) => {
    const { timeout_ms } = parseOrThrow(waitTimeoutQuerySchema, request.query);
    const job = await longPoll('wait', request, (signal) => transport.wait(request.params.id, { timeout_ms: Math.min(timeout_ms ?? DEFAULTS.waitDefaultMs, MAX_WAIT_MS), signal }));
    return { job: publicJob(job) };
  });

  app.post<ById>('/v1/jobs/:id/cancel', async (request) => {
    // No body at all is no reason; a JSON `null` is a body that is not the object the contract says.
    const body = parseOrThrow(cancelBodySchema, request.body);
    return { job: publicJob(await transport.cancel(request.params.id, body?.reason ?? 'canceled via API')) };
  });

  app.post<ById>('/v1/jobs/:id/retry', async (request) => {
    if (request.headers['webhook-id'] !== undefined) callbackRetry(request.params.id);
    return { job: publicJob(await transport.retry(request.params.id)) };
  });

  // Bulk retry (src/retry-many.ts): `{ids}` or `{queue?, status: 'error', limit?}`, at most 500, checked before any is retried.
  app.post('/v1/jobs::retry', async (request) => {
    const fromCallback = request.headers['webhook-id'] !== undefined;
    return retryMany(transport, (request.body ?? {}) as Parameters<typeof retryMany>[1], fromCallback ? callbackRetry : undefined);
  });

  app.get('/v1/jobs', async (request) => {
    const filter = parseOrThrow(listQuerySchema, request.query);
    const page = await transport.list({ ...filter, summary: true });
    return { jobs: page.jobs.map((j) => ({ ...publicJob(summarizeJob(j)), summarized: true })), next_cursor: page.next_cursor };
  });

  app.get('/v1/stats', async () => transport.stats());

  // Analytics of a window from the store's rollups (src/analytics.ts): a cost that does not grow with the history.
  app.get('/v1/analytics', async (request) => {
    const query = parseOrThrow(analyticsQuerySchema, request.query);
    return readAnalytics(transport, query.window ?? '1h', query.queue);
  });

  app.get('/v1/workers', async () => {
    const now = Date.now();
    const workers = await transport.workers();
    return { workers: workers.map((w) => ({ ...w, alive: now - w.last_seen.getTime() <= w.ttl_ms })) };
  });

  /**
   * A job's event stream (src/events.ts). `format=json`: one page after
   * `after`, a long-poll with `wait_ms`. Otherwise server-sent events: every
   * event with its `id:`, from after `Last-Event-ID` (or `after`, or the
   * start), then live, a keep-alive comment when quiet, and a last
   * `event: end` once the job's final event went out; then the stream
   * closes. A reconnect with `Last-Event-ID` resumes right after that event
   * (no gap, no duplicate); one that has everything already gets 204, which
   * tells an EventSource to stop reconnecting.
   */
  app.get<ById>('/v1/jobs/:id/events', async (request, reply) => {
    const query = parseOrThrow(eventsQuerySchema, request.query);
    const header = request.headers['last-event-id'];
    const after = header !== undefined ? parseOrThrow(lastEventIdSchema, Array.isArray(header) ? header[0] : header) : (query.after ?? 0);
    const id = request.params.id;
    if (query.format === 'json') {
      const wait = Math.min(query.wait_ms ?? 0, MAX_WAIT_MS);
      const page = wait > 0 ? await longPoll('wait', request, (signal) => transport.readEvents(id, { after, limit: query.limit, wait_ms: wait, signal })) : await transport.readEvents(id, { after, limit: query.limit });
      return { events: page.events.map(wireEvent), last: page.last, end: page.end };
    }
    const first = await transport.readEvents(id, { after, limit: query.limit });
    if (first.end && first.events.length === 0) return reply.status(204).send();
    await longPoll('stream', request, async (signal) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write('retry: 1000\n\n');
      const endBy = Date.now() + sseMaxMs;
      let page = first;
      let cursor = after;
      try {
        for (;;) {
          let text = '';
          for (const event of page.events) text += `id: ${event.id}\ndata: ${JSON.stringify(wireEvent(event))}\n\n`;
          if (page.events.length > 0) cursor = page.events[page.events.length - 1]!.id;
          if (page.end) text += `event: end\ndata: ${JSON.stringify({ last: page.last })}\n\n`;
          else if (page.events.length === 0) text += ': keep-alive\n\n';
          if (!res.write(text) && !(await drained(res, signal, endBy - Date.now()))) {
            res.destroy(); // gone, or not reading past the stream's lifetime
            break;
          }
          if (page.end || signal.aborted || Date.now() >= endBy) break;
          page = await transport.readEvents(id, { after: cursor, wait_ms: Math.min(sseKeepAliveMs, Math.max(1, endBy - Date.now())), signal });
        }
      } catch (error) {
        // The store failed or the job is gone: the reader reconnects with Last-Event-ID and resumes (or learns it is gone).
        if (!signal.aborted) app.log.debug({ err: error, job_id: id }, 'event stream ended early');
      }
      res.end();
    });
  });
}
