/** The worker side of the API, so a worker can run remotely over HTTP: claim, lease, complete, fail, release, progress, heartbeat. */
import type { FastifyInstance } from 'fastify';
import { parseOrThrow, publicJob } from '../job.js';
import { MAX_CLAIM_WAIT_MS } from '../transport-helpers.js';
import type { ServerContext } from './app.js';
import { claimBodySchema, completeBodySchema, failBodySchema, heartbeatBodySchema, leaseBodySchema, progressBodySchema, tokenBodySchema } from './schemas.js';

type ById = { Params: { id: string } };

export function registerWorkerRoutes(app: FastifyInstance, { transport, metrics, longPoll }: ServerContext): void {
  app.post('/v1/claim', async (request) => {
    const body = parseOrThrow(claimBodySchema, request.body ?? {});
    const jobs = await longPoll('claim', request, async (signal) => {
      const claim = { queues: body.queues, owner: body.owner, lease_ms: body.lease_ms, wait_ms: Math.min(body.wait_ms, MAX_CLAIM_WAIT_MS), signal };
      if (body.max > 1 && transport.claimMany) return transport.claimMany(claim, body.max);
      const job = await transport.claim(claim);
      return job ? [job] : [];
    });
    if (jobs.length > 0 && request.raw.socket?.destroyed) {
      // The worker went away while we claimed: hand the leases straight back.
      await Promise.all(jobs.map((j) => transport.release(j.id, j.lease.token).catch(() => undefined)));
      return { jobs: [] };
    }
    return { jobs: jobs.map((j) => publicJob(j, { withToken: true })) };
  });

  app.post<ById>('/v1/jobs/:id/lease', async (request) => {
    const body = parseOrThrow(leaseBodySchema, request.body ?? {});
    return transport.extend(request.params.id, body.token, body.lease_ms);
  });

  app.post<ById>('/v1/jobs/:id/complete', async (request) => {
    const body = parseOrThrow(completeBodySchema, request.body ?? {});
    const job = await transport.complete(request.params.id, body.token, body.result);
    metrics.finished.inc({ queue: job.queue, status: job.status });
    return { job: publicJob(job) };
  });

  app.post<ById>('/v1/jobs/:id/fail', async (request) => {
    const body = parseOrThrow(failBodySchema, request.body ?? {});
    const job = await transport.fail(request.params.id, body.token, { error: body.error, retry_at: body.retry_at });
    metrics.finished.inc({ queue: job.queue, status: job.status === 'queued' ? 'retry' : job.status });
    return { job: publicJob(job) };
  });

  app.post<ById>('/v1/jobs/:id/release', async (request) => {
    const body = parseOrThrow(tokenBodySchema, request.body ?? {});
    return { job: publicJob(await transport.release(request.params.id, body.token)) };
  });

  app.post<ById>('/v1/jobs/:id/cancel-ack', async (request) => {
    const body = parseOrThrow(tokenBodySchema, request.body ?? {});
    const job = await transport.acknowledgeCancel(request.params.id, body.token);
    metrics.finished.inc({ queue: job.queue, status: job.status });
    return { job: publicJob(job) };
  });

  app.post<ById>('/v1/jobs/:id/progress', async (request) => {
    const body = parseOrThrow(progressBodySchema, request.body ?? {});
    await transport.progress(request.params.id, body.token, body.data ?? null);
    return { ok: true };
  });

  app.post('/v1/workers/heartbeat', async (request) => {
    const beat = parseOrThrow(heartbeatBodySchema, request.body ?? {});
    // Our clock, not the caller's: a last_seen in year 9999 would be a worker that never dies.
    const now = new Date();
    await transport.heartbeat({ ...beat, last_seen: now, started_at: beat.started_at > now ? now : beat.started_at });
    return { ok: true };
  });

  app.delete<ById>('/v1/workers/:id', async (request) => {
    await transport.unregisterWorker(request.params.id);
    return { ok: true };
  });

  app.post('/v1/sweep', async () => transport.sweep());
}
