/** Request bodies and queries of the HTTP API, validated with zod (400 names the field). */
import { z } from 'zod';
import { enqueueRequestSchema, intentSchema, JOB_STATUSES, queueNameSchema } from '../job.js';

export { enqueueRequestSchema };

const intFromQuery = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const waitQuerySchema = z.object({ wait_ms: intFromQuery(0, 3_600_000).optional() });
export const waitTimeoutQuerySchema = z.object({ timeout_ms: intFromQuery(0, 3_600_000).optional() });

export const intentBodySchema = enqueueRequestSchema.extend({
  timeout_ms: z.number().int().min(1).max(3_600_000).optional(),
  /** per-attempt limit, since `timeout_ms` here is the caller's wait */
  attempt_timeout_ms: z.number().int().min(1).max(24 * 3600 * 1000).optional(),
});

export const listQuerySchema = z.object({
  status: z.enum(JOB_STATUSES).optional(),
  queue: queueNameSchema.optional(),
  limit: intFromQuery(1, 500).optional(),
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
export const completeBodySchema = z.object({ token, result: intentSchema });
export const failBodySchema = z.object({
  token,
  error: z.object({ code: z.string().min(1).max(128), message: z.string().max(10_000), retryable: z.boolean() }),
  retry_at: z.coerce.date().nullable(),
});
export const tokenBodySchema = z.object({ token });
export const progressBodySchema = z.object({ token, data: z.unknown() });

export const heartbeatBodySchema = z.object({
  id: z.string().min(1).max(256),
  queues: z.array(queueNameSchema).max(64),
  concurrency: z.number().int().min(1),
  running: z.number().int().min(0),
  host: z.string().max(256),
  pid: z.number().int(),
  started_at: z.coerce.date(),
  last_seen: z.coerce.date(),
  ttl_ms: z.number().int().min(1),
  processed: z.number().int().min(0),
  failed: z.number().int().min(0),
});
