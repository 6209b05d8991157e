/** The worker side of the API, so a worker can run remotely over HTTP: claim, lease, settle, events, heartbeat. */
import type { FastifyInstance } from 'fastify';
import { parseOrThrow, publicJob } from '../job.js';
import { MAX_CLAIM_WAIT_MS } from '../transport-helpers.js';
import type { ServerContext } from './app.js';
import { appendBodySchema, claimBodySchema, heartbeatBodySchema, leaseBodySchema, progressBodySchema, settleBodySchema } from './schemas.js';
import { checkEvent } from '../events.js';
import { decideOutcome, type Outcome } from '../outcome.js';
import type { Job } from '../job.js';

/** The `finished` metric's label: the worker's JobOutcome names (retry, released), so both feeds agree. */
const outcomeLabel = (job: Job, outcome: Outcome) => (job.status !== 'queued' ? job.status : outcome.give_back ? 'released' : 'retry');

type ById = { Params: { id: string } };

export function registerWorkerRoutes(app: FastifyInstance, { transport, metrics, longPoll, eventMaxBytes, maxWaitMs }: ServerContext): void {
  app.post('/v1/claim', async (request) => {
    const body = parseOrThrow(claimBodySchema, request.body ?? {});
    const jobs = await longPoll('claim', request, async (signal) => {
      const claim = { queues: body.queues, owner: body.owner, lease_ms: body.lease_ms, wait_ms: Math.min(body.wait_ms, MAX_CLAIM_WAIT_MS, maxWaitMs), signal };
      if (body.max > 1 && transport.claimMany) return transport.claimMany(claim, body.max);
      const job = await transport.claim(claim);
      return job ? [job] : [];
    });
    if (jobs.length > 0 && request.raw.socket?.destroyed) {
      // The worker went away while we claimed: hand the leases straight back.
      await Promise.all(jobs.map((j) => transport.settle(j.id, j.lease.token, decideOutcome(j, { kind: 'released' })).catch(() => undefined)));
      return { jobs: [] };
    }
    return { jobs: jobs.map((j) => publicJob(j, { withToken: true })) };
  });

  app.post<ById>('/v1/jobs/:id/lease', async (request) => {
    const body = parseOrThrow(leaseBodySchema, request.body ?? {});
    return transport.extend(request.params.id, body.token, body.lease_ms);
  });

  // The outcome a remote worker decided (src/outcome.ts), written fenced on its token.
  app.post<ById>('/v1/jobs/:id/settle', async (request) => {
    const { token, outcome } = parseOrThrow(settleBodySchema, request.body ?? {});
    const job = await transport.settle(request.params.id, token, outcome);
    metrics.finished.inc({ queue: metrics.queueLabel(job.queue), status: outcomeLabel(job, outcome) });
    return { job: publicJob(job) };
  });

  // A remote worker's events (src/event-writer.ts), each checked as a local worker's are.
  app.post<ById>('/v1/jobs/:id/events', async (request) => {
    const body = parseOrThrow(appendBodySchema, request.body ?? {});
    const events = body.events.map((e) => checkEvent(e.type, e.data, eventMaxBytes));
    return { last: await transport.appendEvents(request.params.id, body.token, events, body.written) };
  });

  // The first release's progress report, for remote workers that still send it: a `progress` event (not repeat-safe, as it never was).
  app.post<ById>('/v1/jobs/:id/progress', async (request) => {
    const body = parseOrThrow(progressBodySchema, request.body ?? {});
    const last = await transport.appendEvents(request.params.id, body.token, [checkEvent('progress', body.data ?? null, eventMaxBytes)], null);
    return { ok: true, last };
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
