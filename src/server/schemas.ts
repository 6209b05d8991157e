/** Request bodies and queries of the HTTP API, validated with zod (400 names the field). */
import { z } from 'zod';
import { APPEND_MAX, EVENTS_PAGE_MAX, eventTypeSchema } from '../events.js';
import { ENQUEUE_MANY_MAX } from '../transport.js';
import { enqueueRequestSchema, instantSchema, intentSchema, JOB_STATUSES, MAX_JSON_DEPTH, queueNameSchema, withinDepth } from '../job.js';

export { enqueueRequestSchema };

const intFromQuery = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${name} must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name} must be a whole number from ${min} to ${max}`)
    // The OpenAPI document (openapi.ts) says what the text must hold: an integer in this range.
    .meta({ 'x-query-int': [min, max] });

/** Query strings are strict: a key we do not know (`status[$ne]`, a typo) is a 400, never silently ignored. */
const query = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown query parameter ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}` : undefined) });

/** `POST /v1/jobs:batch`: 1 to ENQUEUE_MANY_MAX enqueue requests, each as `POST /v1/jobs` takes it. */
export const batchBodySchema = z.object({
  jobs: z.array(enqueueRequestSchema).min(1, 'jobs must hold at least one job').max(ENQUEUE_MANY_MAX, `jobs holds at most ${ENQUEUE_MANY_MAX} jobs a request`),
});

export const waitQuerySchema = query({ wait_ms: intFromQuery('wait_ms', 0, 3_600_000).optional() });
export const waitTimeoutQuerySchema = query({ timeout_ms: intFromQuery('timeout_ms', 0, 3_600_000).optional() });

export const intentBodySchema = enqueueRequestSchema.extend({
  timeout_ms: z.number().int().min(1).max(3_600_000).optional(),
  /** per-attempt limit, since `timeout_ms` here is the caller's wait */
  attempt_timeout_ms: z.number().int().min(1).max(24 * 3600 * 1000).optional(),
});

export const listQuerySchema = query({
  status: z.enum(JOB_STATUSES).optional(),
  queue: queueNameSchema.optional(),
  session_id: z.string().min(1, 'session_id must not be empty').max(256, 'session_id is at most 256 characters').optional(),
  limit: intFromQuery('limit', 1, 500).optional(),
  cursor: z.string().max(512).optional(),
});

export const cancelBodySchema = z.object({ reason: z.string().max(1000).optional() }).optional();

export const claimBodySchema = z.object({
  queues: z.array(queueNameSchema).min(1).max(64),
  owner: z.string().min(1).max(256),
  lease_ms: z.number().int().min(50).max(3_600_000),
  wait_ms: z.number().int().min(0).max(60_000).default(0),
  max: z.number().int().min(1).max(500).default(1),
});

const token = z.string().min(1).max(256);
export const leaseBodySchema = z.object({ token, lease_ms: z.number().int().min(50).max(3_600_000) });
const jobErrorSchema = z.object({ code: z.string().min(1).max(128), message: z.string().max(10_000), retryable: z.boolean() });
/** An outcome a worker decided (src/outcome.ts). */
export const settleBodySchema = z.object({
  token,
  outcome: z.discriminatedUnion('status', [
    z.object({ status: z.literal('done'), result: intentSchema }),
    z.object({ status: z.literal('error'), error: jobErrorSchema }),
    z.object({ status: z.literal('canceled'), error: jobErrorSchema.optional() }),
    z.object({ status: z.literal('queued'), run_at: instantSchema, error: jobErrorSchema.optional(), give_back: z.literal(true).optional() }),
  ]),
});
export const progressBodySchema = z.object({ token, data: z.unknown().refine((d) => withinDepth(d), `data nests deeper than ${MAX_JSON_DEPTH} levels`) });

export const heartbeatBodySchema = z.object({
  id: z.string().min(1).max(256),
  queues: z.array(queueNameSchema).max(64),
  concurrency: z.number().int().min(1),
  running: z.number().int().min(0),
  host: z.string().max(256),
  pid: z.number().int().min(0).max(2 ** 32),
  started_at: instantSchema,
  /** taken, but the server stamps its own clock: a caller cannot make a worker that never dies */
  last_seen: instantSchema,
  ttl_ms: z.number().int().min(1).max(10 * 60_000),
  processed: z.number().int().min(0),
  failed: z.number().int().min(0),
});

/** `after` resumes after that event id (a `Last-Event-ID` header wins over it); `format=json` answers one page (a long-poll with `wait_ms`) instead of SSE. */
export const eventsQuerySchema = query({
  ticket: z.string().max(200).optional(),
  after: intFromQuery('after', 0, Number.MAX_SAFE_INTEGER).optional(),
  format: z.enum(['sse', 'json']).optional(),
  wait_ms: intFromQuery('wait_ms', 0, 3_600_000).optional(),
  limit: intFromQuery('limit', 1, EVENTS_PAGE_MAX).optional(),
});

/** A `Last-Event-ID` header: the id of the last event the reader has. */
export const lastEventIdSchema = z.string().regex(/^\d{1,15}$/, 'Last-Event-ID must be an event id (a whole number)').transform(Number);

/** A remote worker's events (checked one by one with checkEvent, src/events.ts). */
export const appendBodySchema = z.object({
  token,
  written: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  events: z.array(z.object({ type: eventTypeSchema, data: z.unknown().optional() })).min(1).max(APPEND_MAX),
});

/** `GET /v1/analytics`: the window (default 1h) and optionally one queue. */
export const analyticsQuerySchema = query({
  window: z.enum(['1h', '24h'], { error: 'window must be 1h or 24h' }).optional(),
  queue: queueNameSchema.optional(),
});

export const sessionBodySchema = z.object({ token: z.string().min(1).max(1024) });

/** `GET /v1/dashboard/events`: an EventSource sends no header, so a session's ticket comes in the query. */
export const dashboardEventsQuerySchema = query({ ticket: z.string().max(200).optional() });
