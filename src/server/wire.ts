/**
 * What the HTTP API answers, as zod schemas of the JSON on the wire (times as
 * ISO 8601 text): the source of the response half of /openapi.json
 * (src/server/openapi.ts). The server builds its answers from the job model
 * (publicJob, src/job.ts), not from these; the fuzz test
 * (test/openapi-fuzz.test.ts) checks every answer against them, so a field
 * added to one and not the other fails there.
 *
 * Objects are open (`looseObject`): a client must take a field it does not
 * know. The lease of a job read by a client is closed on purpose: a lease
 * token that leaked into it would fail the check.
 */
import { z } from 'zod';
import { JOB_STATUSES } from '../job.js';

const dateTime = z.iso.datetime({ offset: true });
const count = z.number().int().min(0);

/** Every error answer: `{error: {code, message, details?}}` (src/errors.ts, the error handler in app.ts). */
export const errorResponseSchema = z
  .looseObject({
    error: z.looseObject({
      code: z.string().min(1).meta({ description: 'stable, machine-readable: VALIDATION_ERROR, JOB_NOT_FOUND, LEASE_LOST, UNAUTHORIZED …' }),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional().meta({ description: 'e.g. `field` for VALIDATION_ERROR, `id` for JOB_NOT_FOUND' }),
    }),
  })
  .meta({ id: 'Error' });

const jobErrorSchema = z.looseObject({ code: z.string(), message: z.string(), retryable: z.boolean() }).meta({ id: 'JobError' });

const intentSchema = z
  .looseObject({
    action: z.string(),
    tool_name: z.string().nullish(),
    args: z.record(z.string(), z.unknown()).nullish(),
    finish: z.boolean().nullish(),
    reasoning: z.string().nullish(),
  })
  .meta({ id: 'Intent', description: 'what a reasoning worker answered' });

const callbackLogSchema = z
  .looseObject({
    state: z.enum(['pending', 'delivered', 'failed']),
    attempts: count,
    last_status: z.number().int().nullish(),
    last_error: z.string().nullish(),
    next_at: dateTime.nullish(),
    delivered_at: dateTime.nullish(),
    delivery_id: z.string().nullish(),
  })
  .meta({ id: 'CallbackLog' });

const jobFields = {
  id: z.string(),
  queue: z.string(),
  status: z.enum(JOB_STATUSES),
  payload: z.looseObject({ session_id: z.string().optional(), step: z.number().int().optional(), goal: z.string().optional(), context: z.unknown().optional() }).meta({ description: 'the intent request, as enqueued' }),
  result: intentSchema.nullable(),
  error: jobErrorSchema.nullable(),
  priority: z.number().int(),
  run_at: dateTime,
  attempts: count,
  max_attempts: count,
  stalls: count,
  max_stalls: count,
  timeout_ms: z.number().int().nullable(),
  cancel_requested: z.looseObject({ at: dateTime, reason: z.string() }).nullable(),
  dedupe_key: z.string().nullable(),
  callback_url: z.string().nullable(),
  progress: z.unknown().meta({ description: 'the last value a handler reported' }),
  usage: z.looseObject({ prompt_tokens: count, completion_tokens: count }).nullable(),
  callback: callbackLogSchema.nullable(),
  moved_to: z.string().nullable(),
  created_at: dateTime,
  updated_at: dateTime,
  started_at: dateTime.nullable(),
  finished_at: dateTime.nullable(),
  stalled: z.boolean().meta({ description: 'processing, but its lease ran out: its worker died or froze' }),
  runs: z
    .array(
      z
        .looseObject({
          attempt: count,
          worker: z.string(),
          started_at: dateTime,
          ended_at: dateTime,
          end: z.enum(['done', 'error', 'retry', 'canceled', 'released', 'stalled']),
          error: jobErrorSchema.nullable(),
        })
        .meta({ id: 'Run', description: 'one run of the job that ended (src/runs.ts)' }),
    )
    .meta({ description: 'the runs that ended, newest last, the newest 25; a list keeps only the newest' }),
  trace: z.looseObject({ traceparent: z.string(), tracestate: z.string().optional() }).nullable().meta({ description: "the producer's W3C trace context, null when nothing was traced" }),
};

/** A job as a client reads it: the lease without its token. */
export const jobSchema = z.looseObject({ ...jobFields, lease: z.strictObject({ owner: z.string(), until: dateTime }).nullable() }).meta({ id: 'Job' });

/** A job as its claiming worker gets it: the lease with the token that fences every later write. */
export const claimedJobSchema = z.looseObject({ ...jobFields, lease: z.looseObject({ owner: z.string(), token: z.string(), until: dateTime }) }).meta({ id: 'ClaimedJob' });

export const jobAnswerSchema = z.looseObject({ job: jobSchema });
export const enqueueAnswerSchema = z.looseObject({ job: jobSchema, created: z.boolean().meta({ description: 'false: a job with this id or dedupe_key existed and is returned instead' }) });
export const batchAnswerSchema = z.looseObject({ jobs: z.array(enqueueAnswerSchema) });
export const intentAnswerSchema = z.looseObject({ job_id: z.string(), intent: intentSchema, job: jobSchema });
export const listAnswerSchema = z.looseObject({
  jobs: z.array(z.looseObject({ ...jobSchema.shape, summarized: z.literal(true) }).meta({ description: 'a job summarised (payload, result, error and progress cut short): GET /v1/jobs/{id} has it all' })),
  next_cursor: z.string().nullable(),
});

const queueCountsSchema = z
  .looseObject({ queued: count, delayed: count, processing: count, done: count, error: count, canceled: count, moving: count, moved: count })
  .meta({ id: 'QueueCounts' });
export const statsAnswerSchema = z.looseObject({ queues: z.record(z.string(), queueCountsSchema), totals: queueCountsSchema }).meta({ id: 'Stats' });

export const workersAnswerSchema = z.looseObject({
  workers: z.array(
    z
      .looseObject({
        id: z.string(),
        queues: z.array(z.string()),
        concurrency: count,
        running: count,
        host: z.string(),
        pid: count,
        started_at: dateTime,
        last_seen: dateTime,
        ttl_ms: count,
        processed: count,
        failed: count,
        alive: z.boolean(),
      })
      .meta({ id: 'Worker' }),
  ),
});

const eventSchema = z
  .looseObject({ id: z.number().int().min(1), type: z.string(), at: dateTime, attempt: count, data: z.unknown() })
  .meta({ id: 'JobEvent' });
export const eventsPageSchema = z.looseObject({
  events: z.array(eventSchema),
  last: count.meta({ description: "the id of the job's newest event (0: none yet)" }),
  end: z.boolean().meta({ description: 'the job is finished and this page reaches its newest event' }),
});

/**
 * One server-sent event of a job's stream, as OpenAPI 3.1 tools read a
 * `text/event-stream` schema (the fields of the event): a job event as JSON
 * with its id, or the last one, `event: end`, saying the id of the newest.
 */
export const streamEventSchema = z
  .union([
    z.looseObject({
      event: z.literal('message'),
      id: z.string().regex(/^\d+$/),
      data: z.string().meta({ contentMediaType: 'application/json', contentSchema: { $ref: '#/components/schemas/JobEvent' } }),
    }),
    z.looseObject({
      event: z.literal('end'),
      data: z.string().meta({ contentMediaType: 'application/json', contentSchema: { type: 'object', properties: { last: { type: 'integer', minimum: 0 } }, required: ['last'] } }),
    }),
  ])
  .meta({ id: 'StreamEvent' });

export const claimAnswerSchema = z.looseObject({ jobs: z.array(claimedJobSchema) });
export const leaseAnswerSchema = z.looseObject({ until: dateTime, cancel_requested: z.looseObject({ at: dateTime, reason: z.string() }).nullable() });
export const appendAnswerSchema = z.looseObject({ last: count });
export const okAnswerSchema = z.looseObject({ ok: z.literal(true) });
export const progressAnswerSchema = z.looseObject({ ok: z.literal(true), last: count });
export const sweepAnswerSchema = z.looseObject({ requeued: count, expired: count, canceled: count, deleted: count });
export const readyAnswerSchema = z.looseObject({ ok: z.literal(true), transport: z.string() });
export const sessionStateSchema = z.looseObject({ auth_required: z.boolean(), signed_in: z.boolean() });
export const sessionOpenedSchema = z.looseObject({
  signed_in: z.literal(true),
  scopes: z.array(z.enum(['client', 'worker', 'admin'])),
  csrf: z.string().meta({ description: 'send back as `x-reasonq-csrf` with the session cookie' }),
});
export const sessionClosedSchema = z.looseObject({ signed_in: z.literal(false) });
export const ticketAnswerSchema = z.looseObject({ ticket: z.string().nullable().meta({ description: "for `?ticket=` on this job's event stream, a minute; null without a session" }) });
/** `POST /v1/jobs:retry`. */
export const retryManyAnswerSchema = z.looseObject({
  retried: z.array(z.string()).meta({ description: 'the ids queued again' }),
  skipped: z.array(z.looseObject({ id: z.string(), code: z.string(), message: z.string() })).meta({ description: 'the ids not retried, with the error code `retry` gave' }),
});

const durationSummarySchema = z
  .looseObject({ count, mean: z.number().nullable(), p50: z.number().nullable(), p90: z.number().nullable(), p99: z.number().nullable() })
  .meta({ id: 'DurationSummary', description: 'milliseconds; percentiles estimated from fixed buckets' });
const analyticsSummarySchema = z
  .looseObject({
    finished: count,
    done: count,
    error: count,
    canceled: count,
    throughput_per_min: z.number().min(0),
    failure_rate: z.number().min(0).max(1).nullable(),
    wait_ms: durationSummarySchema,
    run_ms: durationSummarySchema,
    usage: z.looseObject({ prompt_tokens: count, completion_tokens: count }),
  })
  .meta({ id: 'AnalyticsSummary' });
/** `GET /v1/analytics` (src/analytics.ts). */
export const analyticsAnswerSchema = z
  .looseObject({
    window: z.enum(['1h', '24h']),
    from: dateTime,
    to: dateTime,
    step_ms: z.number().int().min(1),
    totals: analyticsSummarySchema,
    queues: z.record(z.string(), analyticsSummarySchema).meta({ description: 'the busiest 100 queues; the totals count every queue' }),
    queues_omitted: count.meta({ description: 'queues left out of queues' }),
    series: z.array(
      z.looseObject({
        at: dateTime,
        done: count,
        error: count,
        canceled: count,
        wait_p50_ms: z.number().nullable(),
        wait_p90_ms: z.number().nullable(),
        run_p50_ms: z.number().nullable(),
        run_p90_ms: z.number().nullable(),
        prompt_tokens: count,
        completion_tokens: count,
      }),
    ),
  })
  .meta({ id: 'Analytics' });

/** One server-sent event of the dashboard's push. */
export const dashboardEventSchema = z
  .union([
    z.looseObject({ event: z.literal('stats'), data: z.string().meta({ contentMediaType: 'application/json', contentSchema: { $ref: '#/components/schemas/Stats' } }) }),
    z.looseObject({ event: z.literal('workers'), data: z.string().meta({ contentMediaType: 'application/json' }) }),
    z.looseObject({ event: z.literal('feed_error'), data: z.string().meta({ contentMediaType: 'application/json' }) }),
  ])
  .meta({ id: 'DashboardEvent' });

/** The document itself is described as an object: describing OpenAPI in OpenAPI adds nothing a client needs. */
export const documentSchema = z.looseObject({ openapi: z.string() });
