/** The client side of the API: enqueue, intents, get, wait, cancel, retry, list, stats, workers, SSE. */
import type { FastifyInstance } from 'fastify';
import { cancelAndNotify } from '../callbacks.js';
import { JobNotFoundError, ReasoningJobError, ReasoningTimeoutError } from '../errors.js';
import { buildJob, isTerminal, parseOrThrow, publicJob, type Job } from '../job.js';
import type { ServerContext } from './app.js';
import { cancelBodySchema, enqueueRequestSchema, intentBodySchema, listQuerySchema, waitQuerySchema, waitTimeoutQuerySchema } from './schemas.js';

const MAX_WAIT_MS = 60_000;

export function registerJobRoutes(app: FastifyInstance, { transport, metrics, log, longPoll }: ServerContext): void {
  const must = async (id: string): Promise<Job> => {
    const job = await transport.get(id);
    if (!job) throw new JobNotFoundError(id);
    return job;
  };

  app.post('/v1/jobs', async (request, reply) => {
    const body = parseOrThrow(enqueueRequestSchema, request.body ?? {});
    const { wait_ms } = parseOrThrow(waitQuerySchema, request.query);
    const { job, created } = await transport.enqueue(buildJob(body));
    if (created) metrics.enqueued.inc({ queue: job.queue });
    let out = job;
    if (wait_ms && !isTerminal(job.status)) {
      out = await longPoll(request, (signal) => transport.wait(job.id, { timeout_ms: Math.min(wait_ms, MAX_WAIT_MS), signal }));
    }
    return reply.status(created ? 201 : 200).send({ job: publicJob(out), created });
  });

  app.post('/v1/intents', async (request) => {
    const { timeout_ms, attempt_timeout_ms, ...rest } = parseOrThrow(intentBodySchema, request.body ?? {});
    const job = buildJob({ ...rest, ...(attempt_timeout_ms ? { timeout_ms: attempt_timeout_ms } : {}) });
    const { job: stored, created } = await transport.enqueue(job);
    if (created) metrics.enqueued.inc({ queue: stored.queue });
    const limit = timeout_ms ?? MAX_WAIT_MS;
    const final = await longPoll(request, (signal) => transport.wait(stored.id, { timeout_ms: limit, signal }));
    if (!isTerminal(final.status)) {
      await cancelAndNotify(transport, stored.id, `intent request timed out after ${limit} ms`, log);
      throw new ReasoningTimeoutError(stored.id, limit);
    }
    if (final.status !== 'done') throw new ReasoningJobError(final.id, final.status, final.error);
    return { job_id: final.id, intent: final.result, job: publicJob(final) };
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (request) => ({ job: publicJob(await must(request.params.id)) }));

  app.get<{ Params: { id: string } }>('/v1/jobs/:id/wait', async (request) => {
    const { timeout_ms } = parseOrThrow(waitTimeoutQuerySchema, request.query);
    const job = await longPoll(request, (signal) => transport.wait(request.params.id, { timeout_ms: Math.min(timeout_ms ?? 30_000, MAX_WAIT_MS), signal }));
    return { job: publicJob(job) };
  });

  app.post<{ Params: { id: string } }>('/v1/jobs/:id/cancel', async (request) => {
    const body = parseOrThrow(cancelBodySchema, request.body ?? undefined);
    return { job: publicJob(await cancelAndNotify(transport, request.params.id, body?.reason ?? 'canceled via API', log)) };
  });

  app.post<{ Params: { id: string } }>('/v1/jobs/:id/retry', async (request) => ({ job: publicJob(await transport.retry(request.params.id)) }));

  app.get('/v1/jobs', async (request) => {
    const filter = parseOrThrow(listQuerySchema, request.query);
    const page = await transport.list(filter);
    return { jobs: page.jobs.map((j) => publicJob(j)), next_cursor: page.next_cursor };
  });

  app.get('/v1/stats', async () => transport.stats());

  app.get('/v1/workers', async () => {
    const now = Date.now();
    const workers = await transport.workers();
    return { workers: workers.map((w) => ({ ...w, alive: now - w.last_seen.getTime() <= w.ttl_ms })) };
  });

  // Server-sent events: the job's state whenever it changes, until it ends.
  app.get<{ Params: { id: string } }>('/v1/jobs/:id/events', async (request, reply) => {
    let job = await must(request.params.id);
    await longPoll(request, async (signal) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      const send = (j: Job) => res.write(`event: job\ndata: ${JSON.stringify(publicJob(j))}\n\n`);
      send(job);
      let last = job.updated_at.getTime();
      while (!isTerminal(job.status) && !signal.aborted) {
        // Terminal changes arrive through wait(); the poll catches the others.
        const next = await transport.wait(job.id, { timeout_ms: 500, signal });
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
