/**
 * `reasonq serve`: the HTTP API in front of any transport, the dashboard at
 * /engine, Prometheus metrics at /metrics. Errors are always
 * `{error: {code, message}}` with a fitting status, never a stack trace.
 * Who may call what is auth.ts; every limit here is hit before anything is
 * created.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { hostname } from 'node:os';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { bounded } from '../bounded.js';
import { createCallbackSender, deliverDue, type CallbackSender } from '../callbacks.js';
import { DEFAULTS, type ServerConfig } from '../config.js';
import { PayloadTooLargeError, RateLimitedError, ReasonqError, ValidationError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { Maintainer } from '../maintenance.js';
import type { Transport } from '../transport.js';
import type { Worker } from '../worker.js';
import { collectRoutes, createAuth, registerAuth, SECURITY_HEADERS, type Auth } from './auth.js';
import { registerDashboard } from './dashboard.js';
import { createDashboardFeed, type DashboardFeed } from './dashboard-feed.js';
import { createMetrics, type Metrics } from './metrics.js';
import { buildOpenApi } from './openapi.js';
import { methodsAt } from './routes.js';
import { registerJobRoutes } from './routes-jobs.js';
import { registerWorkerRoutes } from './routes-worker.js';

export interface ServerOptions extends Partial<Omit<ServerConfig, 'tokens'>> {
  transport: Transport;
  /** admin token (every scope); shorthand for `tokens: {admin: [token]}` */
  token?: string | undefined;
  /** tokens by scope; with none, the API is open to whoever passes the Host and same-site checks */
  tokens?: Partial<ServerConfig['tokens']>;
  bodyLimitBytes?: number;
  /** connections open at once (a flood of idle sockets is refused instead of exhausting file descriptors) */
  maxConnections?: number;
  /** delivers callbacks of jobs this server ends (a cancel of a queued job); default: public addresses only, unsigned */
  callbacks?: CallbackSender;
  /** how often the elected maintainer sweeps (maintenance.ts); the server takes part in the election */
  maintenanceMs?: number;
  /** JSON bytes of one event a remote worker appends, default REASONQ_EVENT_MAX_BYTES */
  eventMaxBytes?: number;
  /**
   * a long-poll (wait, enqueue-and-wait, a claim, a JSON events page) answers after this long at most (ms), default
   * DEFAULTS.maxWaitMs; given, it bounds POST /v1/intents too, whose `timeout_ms` may otherwise ask for up to an hour
   */
  maxWaitMs?: number;
  /** an SSE stream sends a keep-alive comment this often when quiet (ms) */
  sseKeepAliveMs?: number;
  /** how often the dashboard's shared feed reads stats and workers while a dashboard is open (ms) */
  dashboardFeedMs?: number;
  /** an embedded worker whose job outcomes feed /metrics */
  worker?: Worker;
  logger?: Logger;
}

/** Routes that read a query string (each parses it with a strict schema); every other route takes none. */
const QUERY_ROUTES = new Set(['POST /v1/jobs', 'GET /v1/jobs', 'GET /v1/jobs/:id/wait', 'GET /v1/jobs/:id/events', 'GET /v1/dashboard/events', 'GET /v1/analytics']);

/** The kinds of long-poll, each with its own limit so that one kind cannot starve the others. */
export type PollKind = 'wait' | 'stream' | 'claim';

export interface ServerContext {
  transport: Transport;
  metrics: Metrics;
  log: Logger;
  auth: Auth;
  callbacks: CallbackSender;
  /** what open dashboards are pushed, read once per interval for all of them */
  feed: DashboardFeed;
  sseMaxMs: number;
  sseKeepAliveMs: number;
  /** the longest a long-poll holds a request (ms) */
  maxWaitMs: number;
  /** the longest POST /v1/intents waits, whatever its `timeout_ms` asks (ms) */
  maxIntentWaitMs: number;
  eventMaxBytes: number;
  /**
   * Run a long-poll under its kind's limit; aborts when the client goes away
   * or the server closes. The slot is taken before `run` starts, so a route
   * that creates something inside `run` creates nothing when the limit is hit.
   */
  longPoll<T>(kind: PollKind, request: FastifyRequest, run: (signal: AbortSignal) => Promise<T>): Promise<T>;
}

export async function createServer(given: ServerOptions): Promise<FastifyInstance> {
  // Every store call of the server settles within its bound, whoever built the transport.
  const options = { ...given, transport: bounded(given.transport, { timeoutMs: DEFAULTS.storeTimeoutMs }) };
  const log = options.logger ?? silentLogger;
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
  const app = Fastify({
    bodyLimit: options.bodyLimitBytes ?? DEFAULTS.bodyLimitBytes,
    logger: false,
    // Receiving the request (headers and body) is bounded; the answer of a long-poll is not part of it.
    requestTimeout: requestTimeoutMs,
    http: { headersTimeout: Math.min(requestTimeoutMs, 10_000), connectionsCheckingInterval: 1000 },
    return503OnClosing: true,
    // A path segment is an id: up to 128 characters for a job, 256 for a worker, each byte %-encoded as three.
    // (Fastify's default of 100 made a job enqueued with a long id unreadable by id.)
    routerOptions: { maxParamLength: 256 * 3 * 4 },
    // Errors Fastify raises before routing (a malformed URL) get our error shape too.
    // No request hook has run for these: the security headers are set here, and nothing of the URL is echoed.
    frameworkErrors: (_error, _request, reply) => {
      void (reply as FastifyReply).code(400).headers(SECURITY_HEADERS).send({ error: { code: 'VALIDATION_ERROR', message: 'malformed request URL' } });
    },
    // Errors the HTTP parser raises before Fastify sees a request (431, 400, 408): our shape, on the raw socket.
    clientErrorHandler: (error: Error & { code?: string }, socket: Socket) => rawError(error, socket),
  });
  app.server.maxConnections = options.maxConnections ?? DEFAULTS.maxConnections;
  collectRoutes(app);
  const metrics = createMetrics(options.transport);
  options.worker?.on('job:end', (job, outcome, ms) => {
    metrics.finished.inc({ queue: metrics.queueLabel(job.queue), status: outcome });
    metrics.jobDuration.observe({ queue: metrics.queueLabel(job.queue), outcome }, ms / 1000);
  });
  const tokens = { admin: [...(options.tokens?.admin ?? []), ...(options.token ? [options.token] : [])], client: options.tokens?.client ?? [], worker: options.tokens?.worker ?? [] };
  const auth = createAuth({ tokens });
  const callbacks = options.callbacks ?? createCallbackSender({ allow: [], secrets: [] }, log);
  const ownsCallbacks = !options.callbacks;

  const limits: Record<PollKind, number> = {
    wait: options.maxWaits ?? DEFAULTS.maxWaits,
    stream: options.maxStreams ?? DEFAULTS.maxStreams,
    claim: options.maxClaims ?? DEFAULTS.maxClaims,
  };
  const open: Record<PollKind, number> = { wait: 0, stream: 0, claim: 0 };
  // Open long-polls end when the server closes, so shutdown never waits on a client.
  const polls = new Set<AbortController>();
  const feed = createDashboardFeed(options.transport, { intervalMs: options.dashboardFeedMs ?? DEFAULTS.dashboardFeedMs, log });
  app.addHook('preClose', async () => {
    for (const poll of polls) poll.abort(new Error('server is closing'));
    feed.close();
  });

  const ctx: ServerContext = {
    transport: options.transport,
    metrics,
    log,
    auth,
    callbacks,
    feed,
    sseMaxMs: options.sseMaxMs ?? DEFAULTS.sseMaxMs,
    sseKeepAliveMs: options.sseKeepAliveMs ?? DEFAULTS.sseKeepAliveMs,
    maxWaitMs: options.maxWaitMs ?? DEFAULTS.maxWaitMs,
    maxIntentWaitMs: options.maxWaitMs ?? Number.POSITIVE_INFINITY,
    eventMaxBytes: options.eventMaxBytes ?? DEFAULTS.eventMaxBytes,
    async longPoll(kind, request, run) {
      if (open[kind] >= limits[kind]) {
        metrics.pollsRefused.inc({ kind });
        throw new RateLimitedError(`too many open ${kind} long-polls (${limits[kind]}); nothing was created; try again shortly`);
      }
      open[kind] += 1;
      const controller = new AbortController();
      polls.add(controller);
      const onClose = () => controller.abort(new Error('client went away'));
      // A client that left before the slot was taken (while the route read the store) has no 'close' to come.
      if (!request.raw.socket || request.raw.socket.destroyed) onClose();
      request.raw.socket?.once('close', onClose);
      try {
        return await run(controller.signal);
      } finally {
        open[kind] -= 1;
        polls.delete(controller);
        request.raw.socket?.off('close', onClose);
      }
    },
  };

  app.addHook('onRequest', async (request, reply) => {
    metrics.httpRequests.inc({ method: request.method });
    void reply.headers(SECURITY_HEADERS);
  });
  registerAuth(app, auth, options.allowedHosts ?? DEFAULTS.allowedHosts);
  // A path we have, with a method it does not take: 405 and what it takes (the route table), before any body is read.
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.url !== undefined) return;
    const path = request.url.split('?')[0]!;
    const allow = methodsAt(path);
    if (allow.length === 0) return;
    void reply.header('allow', allow.join(', '));
    throw new ReasonqError('METHOD_NOT_ALLOWED', `${request.method.slice(0, 16)} is not allowed here; this path takes ${allow.join(', ')}`, { status: 405 });
  });
  // A query key no route reads (`?status[$ne]=done`, a typo) is refused, never ignored.
  app.addHook('preValidation', async (request) => {
    const keys = Object.keys(request.query as object);
    if (keys.length > 0 && !QUERY_ROUTES.has(`${request.method === 'HEAD' ? 'GET' : request.method} ${request.routeOptions.url}`)) {
      throw new ValidationError(`unknown query parameter ${JSON.stringify(keys[0]!.slice(0, 64))}`, keys[0]!.slice(0, 64));
    }
  });

  app.setErrorHandler((error: unknown, request, reply: FastifyReply) => {
    const err = httpErrorOf(error);
    if (err.code === 'INTERNAL') log.error({ err: { message: (error as Error).message, stack: (error as Error).stack }, url: request.url }, 'request failed');
    if (err instanceof RateLimitedError) void reply.header('retry-after', String(err.retryAfterSec));
    void reply.status(err.status).send({ error: err.toJSON() });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}` } });
  });

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_request, reply) => {
    try {
      await options.transport.stats();
      return { ok: true, transport: options.transport.name };
    } catch (error) {
      log.warn({ err: (error as Error).message }, 'readyz: store not reachable');
      return reply.status(503).send({ error: { code: 'NOT_READY', message: 'store not reachable; see the server log' } });
    }
  });
  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  // Built once, from the route table: the contract of exactly this server's routes (openapi.ts).
  const openapi = JSON.stringify(buildOpenApi());
  app.get('/openapi.json', async (_request, reply) => reply.type('application/json; charset=utf-8').send(openapi));

  registerJobRoutes(app, ctx);
  registerWorkerRoutes(app, ctx);
  registerDashboard(app, ctx);

  const owner = `server:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const deliver = () => deliverDue(options.transport, callbacks, owner, log).then(() => undefined);
  const maintainer = new Maintainer(options.transport, owner, options.maintenanceMs ?? DEFAULTS.maintenanceMs, (error) => log.warn({ err: (error as Error).message }, 'maintenance failed'), log, deliver);
  maintainer.start();
  app.addHook('onClose', async () => {
    await maintainer.stop();
    if (ownsCallbacks) await callbacks.close();
  });
  return app;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large' };

function rawError(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable || error.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const code = status === 431 ? 'HEADERS_TOO_LARGE' : status === 408 ? 'REQUEST_TIMEOUT' : 'VALIDATION_ERROR';
  const message = status === 431 ? 'request headers are larger than the limit' : status === 408 ? 'the request was not received in time' : 'malformed HTTP request';
  const body = JSON.stringify({ error: { code, message } });
  const head = [`HTTP/1.1 ${status} ${STATUS_TEXT[status]}`, 'content-type: application/json; charset=utf-8', `content-length: ${Buffer.byteLength(body)}`, 'connection: close'];
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) head.push(`${k}: ${v}`);
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

/** Map anything thrown in a route to a ReasonqError with a status. */
function httpErrorOf(error: unknown): ReasonqError {
  if (error instanceof ReasonqError) return error;
  const e = error as { code?: string; statusCode?: number; message?: string };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new PayloadTooLargeError(`request body is larger than the limit: ${e.message ?? ''}`);
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ValidationError('content-type must be application/json', 'content-type');
  if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return new ValidationError('body must be a JSON object', 'body');
  if (e.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return new ValidationError('content-length does not match the body', 'content-length');
  if (e.statusCode === 408 || e.code === 'FST_ERR_REQUEST_TIMEOUT') return new ReasonqError('REQUEST_TIMEOUT', 'the request was not received in time', { status: 408 });
  if (e.statusCode === 400) return new ValidationError(`body is not valid JSON: ${e.message ?? ''}`, 'body');
  if (e.statusCode && e.statusCode < 500) return new ReasonqError('BAD_REQUEST', 'bad request', { status: e.statusCode });
  return new ReasonqError('INTERNAL', 'internal error; see the server log');
}
