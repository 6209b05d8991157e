/** The client side of the API: enqueue, intents, get, wait, cancel, retry, list, stats, workers, SSE. */
import type { FastifyInstance } from 'fastify';
import { DEFAULTS } from '../config.js';
import { JobNotFoundError, ReasonqError, ReasoningJobError, ReasoningTimeoutError } from '../errors.js';
import { buildJob, isTerminal, parseOrThrow, publicJob, summarizeJob, type Job } from '../job.js';
import type { ServerContext } from './app.js';
import { SECURITY_HEADERS } from './auth.js';
import { cancelBodySchema, enqueueRequestSchema, eventsQuerySchema, intentBodySchema, listQuerySchema, waitQuerySchema, waitTimeoutQuerySchema } from './schemas.js';

const MAX_WAIT_MS = DEFAULTS.maxWaitMs;

type ById = { Params: { id: string } };

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

export function registerJobRoutes(app: FastifyInstance, { transport, metrics, longPoll, callbacks, sseMaxMs }: ServerContext): void {
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

  app.post('/v1/jobs', async (request, reply) => {
    const body = parseOrThrow(enqueueRequestSchema, request.body ?? {});
    const { wait_ms } = parseOrThrow(waitQuerySchema, request.query);
    if (body.callback_url) callbacks.check(body.callback_url);
    const job = buildJob(body);
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

  app.post('/v1/intents', async (request) => {
    const { timeout_ms, attempt_timeout_ms, ...rest } = parseOrThrow(intentBodySchema, request.body ?? {});
    if (rest.callback_url) callbacks.check(rest.callback_url);
    const job = buildJob({ ...rest, ...(attempt_timeout_ms ? { timeout_ms: attempt_timeout_ms } : {}) });
    const limit = timeout_ms ?? MAX_WAIT_MS;
    const { final, created } = await longPoll('wait', request, async (signal) => {
      const out = await enqueue(job);
      return { final: await transport.wait(out.job.id, { timeout_ms: limit, signal }), created: out.created };
    });
    if (!isTerminal(final.status)) {
      // Only a job this request made is canceled: one it attached to (same id or dedupe_key) is somebody else's.
      if (created) await transport.cancel(final.id, `intent request timed out after ${limit} ms`);
      throw new ReasoningTimeoutError(final.id, limit);
    }
    if (final.status !== 'done') throw new ReasoningJobError(final.id, final.status, final.error);
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
    const body = parseOrThrow(cancelBodySchema, request.body ?? undefined);
    return { job: publicJob(await transport.cancel(request.params.id, body?.reason ?? 'canceled via API')) };
  });

  app.post<ById>('/v1/jobs/:id/retry', async (request) => {
    if (request.headers['webhook-id'] !== undefined) callbackRetry(request.params.id);
    return { job: publicJob(await transport.retry(request.params.id)) };
  });

  app.get('/v1/jobs', async (request) => {
    const filter = parseOrThrow(listQuerySchema, request.query);
    const page = await transport.list({ ...filter, summary: true });
    return { jobs: page.jobs.map((j) => ({ ...publicJob(summarizeJob(j)), summarized: true })), next_cursor: page.next_cursor };
  });

  app.get('/v1/stats', async () => transport.stats());

  app.get('/v1/workers', async () => {
    const now = Date.now();
    const workers = await transport.workers();
    return { workers: workers.map((w) => ({ ...w, alive: now - w.last_seen.getTime() <= w.ttl_ms })) };
  });

  // Server-sent events: the job's state whenever it changes, until it ends or the stream's lifetime is up.
  app.get<ById>('/v1/jobs/:id/events', async (request, reply) => {
    parseOrThrow(eventsQuerySchema, request.query);
    let job = await must(request.params.id);
    await longPoll('stream', request, async (signal) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      const send = (j: Job) => res.write(`event: job\ndata: ${JSON.stringify(publicJob(j))}\n\n`);
      send(job);
      let last = job.updated_at.getTime();
      const endBy = Date.now() + sseMaxMs;
      while (!isTerminal(job.status) && !signal.aborted && Date.now() < endBy) {
        // Terminal changes arrive through wait(); the poll catches the others.
        const next = await transport.wait(job.id, { timeout_ms: Math.min(500, Math.max(1, endBy - Date.now())), signal });
        if (next.updated_at.getTime() !== last || next.status !== job.status) {
          last = next.updated_at.getTime();
          send(next);
        } else {
          res.write(': keep-alive\n\n');
        }
        job = next;
      }
      res.end();
    });
  });
}
