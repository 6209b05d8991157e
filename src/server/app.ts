/**
 * `reasonq serve`: the HTTP API of DESIGN in front of any transport, the
 * dashboard at /engine, Prometheus metrics at /metrics. Errors are always
 * `{error: {code, message}}` with a fitting status, never a stack trace.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { DEFAULTS } from '../config.js';
import { PayloadTooLargeError, RateLimitedError, ReasonqError, UnauthorizedError, ValidationError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import type { Transport } from '../transport.js';
import type { Worker } from '../worker.js';
import { registerDashboard } from './dashboard.js';
import { createMetrics, type Metrics } from './metrics.js';
import { registerJobRoutes } from './routes-jobs.js';
import { registerWorkerRoutes } from './routes-worker.js';

export interface ServerOptions {
  transport: Transport;
  /** bearer token required on /v1 and /metrics when set */
  token?: string | undefined;
  bodyLimitBytes?: number;
  /** most long-polls (wait, claim, SSE) open at once before 429 */
  maxWaiters?: number;
  /** how often the server recovers expired leases and applies retention */
  sweepMs?: number;
  /** an embedded worker whose job outcomes feed /metrics */
  worker?: Worker;
  logger?: Logger;
}

export interface ServerContext {
  transport: Transport;
  metrics: Metrics;
  log: Logger;
  /** Run a long-poll under the waiter limit; aborts when the client goes away. */
  longPoll<T>(request: FastifyRequest, run: (signal: AbortSignal) => Promise<T>): Promise<T>;
}

export async function createServer(options: ServerOptions): Promise<FastifyInstance> {
  const log = options.logger ?? silentLogger;
  const app = Fastify({
    bodyLimit: options.bodyLimitBytes ?? DEFAULTS.bodyLimitBytes,
    logger: false,
    // Long-polls may be held open; the default 72 s keep-alive is fine behind it.
    requestTimeout: 0,
    return503OnClosing: true,
    // Errors Fastify raises before routing (a malformed URL) get our error shape too.
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(400).send({ error: { code: 'VALIDATION_ERROR', message: `bad request: ${error.message}` } });
    },
  });
  const metrics = createMetrics(options.transport);
  options.worker?.on('job:end', (job, outcome, ms) => {
    metrics.finished.inc({ queue: job.queue, status: outcome });
    metrics.jobDuration.observe({ queue: job.queue, outcome }, ms / 1000);
  });
  const maxWaiters = options.maxWaiters ?? 10_000;
  let waiters = 0;
  // Open long-polls end when the server closes, so shutdown never waits on a client.
  const polls = new Set<AbortController>();
  app.addHook('preClose', async () => {
    for (const poll of polls) poll.abort(new Error('server is closing'));
  });

  const ctx: ServerContext = {
    transport: options.transport,
    metrics,
    log,
    async longPoll(request, run) {
      if (waiters >= maxWaiters) throw new RateLimitedError(`too many open long-polls (${maxWaiters}); try again shortly`);
      waiters += 1;
      const controller = new AbortController();
      polls.add(controller);
      const onClose = () => controller.abort(new Error('client went away'));
      request.raw.socket?.once('close', onClose);
      try {
        return await run(controller.signal);
      } finally {
        waiters -= 1;
        polls.delete(controller);
        request.raw.socket?.off('close', onClose);
      }
    },
  };

  const expected = options.token ? Buffer.from(options.token) : null;
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const path = request.url.split('?')[0]!;
    metrics.httpRequests.inc({ method: request.method });
    if (!expected || !(path.startsWith('/v1/') || path === '/metrics')) return;
    const header = request.headers.authorization ?? '';
    // EventSource cannot send headers, so the dashboard passes ?token= on SSE (and only there).
    const query = path.endsWith('/events') ? (request.query as Record<string, unknown> | undefined)?.token : undefined;
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : typeof query === 'string' ? query : '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new UnauthorizedError();
  });

  app.setErrorHandler((error: unknown, request, reply: FastifyReply) => {
    const err = toReasonqError(error);
    if (err.status >= 500) log.error({ err: { message: (error as Error).message, stack: (error as Error).stack }, url: request.url }, 'request failed');
    void reply.status(err.status).send({ error: err.toJSON() });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } });
  });

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_request, reply) => {
    try {
      await options.transport.stats();
      return { ok: true, transport: options.transport.name };
    } catch (error) {
      return reply.status(503).send({ error: { code: 'NOT_READY', message: `store not reachable: ${(error as Error).message}` } });
    }
  });
  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  registerJobRoutes(app, ctx);
  registerWorkerRoutes(app, ctx);
  registerDashboard(app);

  const sweepMs = options.sweepMs ?? 1000;
  const sweeper = setInterval(() => {
    options.transport.sweep().catch((error: unknown) => log.warn({ err: (error as Error).message }, 'sweep failed'));
  }, sweepMs);
  sweeper.unref();
  app.addHook('onClose', async () => clearInterval(sweeper));
  return app;
}

/** Map anything thrown in a route to a ReasonqError with a status. */
export function toReasonqError(error: unknown): ReasonqError {
  if (error instanceof ReasonqError) return error;
  const e = error as { code?: string; statusCode?: number; message?: string };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new PayloadTooLargeError(`request body is larger than the limit: ${e.message ?? ''}`);
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ValidationError('content-type must be application/json', 'content-type');
  if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return new ValidationError('body must be a JSON object', 'body');
  if (e.statusCode === 400) return new ValidationError(`body is not valid JSON: ${e.message ?? ''}`, 'body');
  if (e.statusCode && e.statusCode < 500) return new ReasonqError(e.code ?? 'BAD_REQUEST', e.message ?? 'bad request');
  return new ReasonqError('INTERNAL', 'internal error; see the server log');
}
