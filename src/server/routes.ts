/**
 * The route table: every route of the HTTP API with what it takes and what it
 * answers, keyed `METHOD /pattern` exactly as it is registered (and as
 * ROUTE_ACCESS in auth.ts keys who may call it). /openapi.json is built from
 * it (openapi.ts); the request schemas are the very objects the handlers
 * parse with (schemas.ts), so the document cannot say one thing while a
 * route checks another. test/openapi.test.ts fails when a registered route
 * is missing here or an entry here has no route.
 *
 * Adding a route: register it, give it a ROUTE_ACCESS entry, add it here.
 */
import type { z } from 'zod';
import { retryManySchema } from '../retry-many.js';
import {
  analyticsQuerySchema,
  appendBodySchema,
  batchBodySchema,
  cancelBodySchema,
  claimBodySchema,
  dashboardEventsQuerySchema,
  enqueueRequestSchema,
  eventsQuerySchema,
  heartbeatBodySchema,
  intentBodySchema,
  leaseBodySchema,
  listQuerySchema,
  progressBodySchema,
  sessionBodySchema,
  settleBodySchema,
  waitQuerySchema,
  waitTimeoutQuerySchema,
} from './schemas.js';
import * as wire from './wire.js';

export interface RouteAnswer {
  description: string;
  /** JSON body; none for an empty answer */
  schema?: z.ZodType;
  /** a body that is not JSON (text/html, text/event-stream …) */
  contentType?: string;
  /** what that body holds; for text/event-stream, one event (its `event`, `id`, `data`); else text */
  contentSchema?: z.ZodType;
  /** response headers worth telling a client about */
  headers?: Record<string, string>;
}

export interface ApiRoute {
  summary: string;
  description?: string;
  tag: 'jobs' | 'workers' | 'dashboard' | 'operations';
  /** the query string, strict: a key it does not name is a 400 */
  query?: z.ZodType;
  body?: z.ZodType;
  /** the body may be left out */
  bodyOptional?: true;
  /** request headers the route reads */
  headers?: Record<string, { description: string; schema: Record<string, unknown> }>;
  /** what it answers when it works */
  ok: Record<number, RouteAnswer>;
  /** error statuses of this route besides the ones every route has (openapi.ts adds 400, 401/403, 413, 421, 503), each with its meaning */
  errors?: Record<number, string>;
  /** holds the request open (a long-poll or a stream): 429 past the server's limit of open ones */
  longPoll?: true;
}

const jobId = 'the job does not exist (JOB_NOT_FOUND)';
const leaseLost = 'the lease token is not the current one (LEASE_LOST): the lease ran out, the job was reclaimed or canceled';
const storeFull = 'the store holds as many jobs or bytes as it may (STORE_FULL); nothing was created';
const text = (contentType: string, description: string): RouteAnswer => ({ description, contentType });
/** Read by the enqueue routes when the body has no `trace` (src/tracing.ts carrierFromHeaders); an invalid one is ignored, as W3C asks. */
const traceHeaders: ApiRoute['headers'] = {
  // No pattern in the schema: a malformed value is ignored (W3C), not refused, so the contract does not say it is invalid.
  traceparent: { description: "the caller's W3C trace context (`00-<32 hex>-<16 hex>-<2 hex>`), kept on the job when the body has no `trace`; a malformed one is ignored", schema: { type: 'string' } },
  tracestate: { description: 'with `traceparent` (printable ASCII, at most 512 characters; otherwise ignored)', schema: { type: 'string' } },
};

export const API_ROUTES = {
  'GET /healthz': { summary: 'Liveness: the process answers', tag: 'operations', ok: { 200: { description: 'alive', schema: wire.okAnswerSchema } } },
  'GET /readyz': {
    summary: 'Readiness: the store answers',
    tag: 'operations',
    ok: { 200: { description: 'ready', schema: wire.readyAnswerSchema } },
    errors: { 503: 'the store does not answer (NOT_READY)' },
  },
  'GET /metrics': { summary: 'Prometheus metrics', tag: 'operations', ok: { 200: text('text/plain', 'Prometheus text format') } },
  'GET /openapi.json': { summary: 'This document', tag: 'operations', ok: { 200: { description: 'the OpenAPI 3.1 document of this server', schema: wire.documentSchema } } },

  'GET /': { summary: 'Redirect to the dashboard', tag: 'dashboard', ok: { 302: { description: 'to /engine', headers: { location: 'the dashboard' } } } },
  'GET /engine': { summary: 'The dashboard page', tag: 'dashboard', ok: { 200: text('text/html', 'the page') } },
  'GET /engine/app.js': { summary: "The dashboard's script", tag: 'dashboard', ok: { 200: text('text/javascript', 'the script') } },
  'GET /engine/app.css': { summary: "The dashboard's style", tag: 'dashboard', ok: { 200: text('text/css', 'the style') } },
  'GET /engine/charts.js': { summary: "The dashboard's charts", tag: 'dashboard', ok: { 200: text('text/javascript', 'the script') } },
  'GET /v1/dashboard/events': {
    summary: "The dashboard's push: counts and workers as they change (server-sent events)",
    description: 'One shared read of the store per interval for every open dashboard; `event: stats` and `event: workers` when they change, `event: feed_error` once when a read fails; closed after the stream lifetime with `retry:`.',
    tag: 'dashboard',
    query: dashboardEventsQuerySchema,
    ok: { 200: { description: 'the stream', contentType: 'text/event-stream', contentSchema: wire.dashboardEventSchema } },
    longPoll: true,
  },
  'POST /v1/dashboard/events/ticket': {
    summary: "A ticket for the dashboard's push (EventSource cannot send headers)",
    tag: 'dashboard',
    ok: { 200: { description: 'the ticket, or null when the caller has no session', schema: wire.ticketAnswerSchema } },
  },
  'GET /v1/session': {
    summary: 'Whether the server wants a token and the session cookie is live',
    tag: 'dashboard',
    ok: { 200: { description: 'session state', schema: wire.sessionStateSchema } },
  },
  'POST /v1/session': {
    summary: 'Sign the dashboard in: a token for a session cookie and its CSRF secret',
    tag: 'dashboard',
    body: sessionBodySchema,
    ok: { 200: { description: 'signed in; the cookie is in Set-Cookie', schema: wire.sessionOpenedSchema, headers: { 'set-cookie': 'the HttpOnly, SameSite=Strict session cookie' } } },
    errors: { 401: 'the token is not one this server accepts (UNAUTHORIZED)' },
  },
  'DELETE /v1/session': { summary: 'Sign out', tag: 'dashboard', ok: { 200: { description: 'signed out', schema: wire.sessionClosedSchema } } },
  'POST /v1/jobs/:id/events/ticket': {
    summary: "A ticket for one job's event stream (EventSource cannot send headers)",
    tag: 'dashboard',
    ok: { 200: { description: 'the ticket, or null when the caller has no session', schema: wire.ticketAnswerSchema } },
  },

  'POST /v1/jobs': {
    summary: 'Enqueue a job',
    description: 'With `wait_ms`, answers once the job ended or after that long (at most the server\'s limit), whichever is first.',
    headers: traceHeaders,
    tag: 'jobs',
    query: waitQuerySchema,
    body: enqueueRequestSchema,
    ok: { 201: { description: 'created', schema: wire.enqueueAnswerSchema }, 200: { description: 'a job with this id or dedupe_key existed: that one', schema: wire.enqueueAnswerSchema } },
    errors: { 507: storeFull },
    longPoll: true,
  },
  'POST /v1/jobs::batch': {
    summary: 'Enqueue many jobs at once, all or none checked before any is written',
    headers: traceHeaders,
    tag: 'jobs',
    body: batchBodySchema,
    ok: { 201: { description: 'at least one was created', schema: wire.batchAnswerSchema }, 200: { description: 'every one existed already', schema: wire.batchAnswerSchema } },
    errors: { 507: storeFull },
  },
  'POST /v1/jobs::retry': {
    summary: 'Retry many ended jobs: the ids given, or the newest failures of a queue',
    description: 'Limits are checked before any job is retried; each job as `POST /v1/jobs/{id}/retry` would.',
    tag: 'jobs',
    body: retryManySchema,
    ok: { 200: { description: 'what was retried and what was skipped', schema: wire.retryManyAnswerSchema } },
  },
  'POST /v1/intents': {
    summary: 'Enqueue an intent request and wait for its intent',
    description: "`timeout_ms` is the caller's wait (at most the server's limit); `attempt_timeout_ms` the limit of one attempt. A job this request created that has not ended by then is canceled.",
    headers: traceHeaders,
    tag: 'jobs',
    body: intentBodySchema,
    ok: { 200: { description: 'the intent', schema: wire.intentAnswerSchema } },
    errors: { 502: 'the job ended without an intent (REASONING_JOB_ERROR; details say how)', 504: 'no intent in time (REASONING_TIMEOUT); the job was canceled', 507: storeFull },
    longPoll: true,
  },
  'GET /v1/jobs': {
    summary: 'List jobs, newest first, a page at a time',
    tag: 'jobs',
    query: listQuerySchema,
    ok: { 200: { description: 'a page; `next_cursor` asks for the next', schema: wire.listAnswerSchema } },
  },
  'GET /v1/jobs/:id': { summary: 'A job', tag: 'jobs', ok: { 200: { description: 'the job', schema: wire.jobAnswerSchema } }, errors: { 404: jobId } },
  'GET /v1/jobs/:id/wait': {
    summary: 'Wait for a job to end',
    description: "Answers once the job ended or after `timeout_ms` (at most the server's limit) with the job as it is then.",
    tag: 'jobs',
    query: waitTimeoutQuerySchema,
    ok: { 200: { description: 'the job', schema: wire.jobAnswerSchema } },
    errors: { 404: jobId },
    longPoll: true,
  },
  'POST /v1/jobs/:id/cancel': {
    summary: 'Cancel a job (a running one is asked to stop)',
    tag: 'jobs',
    body: cancelBodySchema,
    bodyOptional: true,
    ok: { 200: { description: 'the job', schema: wire.jobAnswerSchema } },
    errors: { 404: jobId, 409: 'the job has ended already (INVALID_STATE)' },
  },
  'POST /v1/jobs/:id/retry': {
    summary: 'Run an ended job (error or canceled) again',
    tag: 'jobs',
    ok: { 200: { description: 'the job, queued', schema: wire.jobAnswerSchema } },
    errors: { 404: jobId, 409: 'the job is not in error or canceled (INVALID_STATE), or callbacks retried it too often (CALLBACK_LOOP)' },
  },
  'GET /v1/jobs/:id/events': {
    summary: "A job's events: server-sent events, or one JSON page with `format=json`",
    description:
      'SSE: every event with its `id:`, from after `Last-Event-ID` (else `after`, else the start), then live, and a last `event: end` once the job ended. 204 when the reader has everything already (an EventSource stops reconnecting). `format=json`: one page after `after`, a long-poll with `wait_ms`.',
    tag: 'jobs',
    query: eventsQuerySchema,
    headers: { 'last-event-id': { description: 'resume after this event id (wins over `after`)', schema: { type: 'string', pattern: '^\\d{1,15}$' } } },
    ok: {
      200: { description: 'the events: a stream, or a page with `format=json`', schema: wire.eventsPageSchema, contentType: 'text/event-stream', contentSchema: wire.streamEventSchema },
      204: { description: 'the job ended and the reader has every event' },
    },
    errors: { 404: jobId },
    longPoll: true,
  },
  'GET /v1/stats': { summary: 'Jobs by queue and status', tag: 'jobs', ok: { 200: { description: 'counts', schema: wire.statsAnswerSchema } } },
  'GET /v1/analytics': {
    summary: 'What ended in the last hour or day: throughput, failure rate, wait and run percentiles, tokens',
    tag: 'jobs',
    query: analyticsQuerySchema,
    ok: { 200: { description: 'the window, per queue and as a series', schema: wire.analyticsAnswerSchema } },
    errors: { 501: 'the store keeps no rollups (UNSUPPORTED)' },
  },
  'GET /v1/workers': { summary: 'Workers that sent a heartbeat', tag: 'workers', ok: { 200: { description: 'the registry', schema: wire.workersAnswerSchema } } },

  'POST /v1/claim': {
    summary: 'Claim jobs to run (a long-poll with `wait_ms`)',
    tag: 'workers',
    body: claimBodySchema,
    ok: { 200: { description: 'the jobs claimed, each with its lease token; none when nothing was ready in time', schema: wire.claimAnswerSchema } },
    longPoll: true,
  },
  'POST /v1/jobs/:id/lease': {
    summary: "Extend a running job's lease",
    tag: 'workers',
    body: leaseBodySchema,
    ok: { 200: { description: 'the new deadline, and whether a cancel was asked', schema: wire.leaseAnswerSchema } },
    errors: { 404: jobId, 409: leaseLost },
  },
  'POST /v1/jobs/:id/settle': {
    summary: 'Write the outcome a worker decided for its job',
    tag: 'workers',
    body: settleBodySchema,
    ok: { 200: { description: 'the job', schema: wire.jobAnswerSchema } },
    errors: { 404: jobId, 409: leaseLost },
  },
  'POST /v1/jobs/:id/events': {
    summary: "Append a running job's events",
    description: '`written` is how many events this attempt has written before: a repeated request appends nothing twice.',
    tag: 'workers',
    body: appendBodySchema,
    ok: { 200: { description: 'the id of the newest event', schema: wire.appendAnswerSchema } },
    errors: { 404: jobId, 409: leaseLost },
  },
  'POST /v1/jobs/:id/progress': {
    summary: 'Report progress (a `progress` event; kept for workers of the first release)',
    tag: 'workers',
    body: progressBodySchema,
    ok: { 200: { description: 'appended', schema: wire.progressAnswerSchema } },
    errors: { 404: jobId, 409: leaseLost },
  },
  'POST /v1/workers/heartbeat': { summary: "A worker's heartbeat", tag: 'workers', body: heartbeatBodySchema, ok: { 200: { description: 'recorded', schema: wire.okAnswerSchema } } },
  'DELETE /v1/workers/:id': { summary: 'Remove a worker from the registry', tag: 'workers', ok: { 200: { description: 'removed (or was not there)', schema: wire.okAnswerSchema } } },
  'POST /v1/sweep': { summary: 'Requeue expired leases and delete expired jobs now', tag: 'workers', ok: { 200: { description: 'what the sweep did', schema: wire.sweepAnswerSchema } } },
} as const satisfies Record<string, ApiRoute>;

export type RouteKey = keyof typeof API_ROUTES;

const PARAM = /:([A-Za-z_]\w*)/g;
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** Each route pattern as a matcher of concrete paths (`:id` one segment; `::` a literal colon), with the methods it takes. */
const matchers: { re: RegExp; methods: Set<string> }[] = (() => {
  const byUrl = new Map<string, Set<string>>();
  for (const key of Object.keys(API_ROUTES)) {
    const [method, url] = key.split(' ') as [string, string];
    if (!byUrl.has(url)) byUrl.set(url, new Set());
    byUrl.get(url)!.add(method);
    if (method === 'GET') byUrl.get(url)!.add('HEAD');
  }
  return [...byUrl].map(([url, methods]) => ({
    re: new RegExp(`^${url.split('::').map((part) => part.split(PARAM).map((piece, i) => (i % 2 === 1 ? '[^/]+' : escapeRe(piece))).join('')).join(':')}$`),
    methods,
  }));
})();

/** The methods the route table takes at this path (empty: no route has it), for 405's `Allow`. */
export function methodsAt(path: string): string[] {
  const found = new Set<string>();
  for (const { re, methods } of matchers) if (re.test(path)) for (const m of methods) found.add(m);
  return [...found].sort();
}
