/**
 * The job model: zod schemas for the intent request, the intent and the job,
 * and the one state machine every transport obeys.
 *
 * Glossary
 * - intent request: the payload an agent runtime sends (`{session_id, step, goal, context, ...}`).
 * - intent: what a reasoning worker answers (`{action, tool_name, args, finish, reasoning}`).
 * - lease: `{owner, token, until}`; a claim gets a fresh token and every later
 *   write of that worker is fenced on it.
 */
import { z } from 'zod';
import { v7 as uuidv7 } from 'uuid';
import { DEFAULTS } from './config.js';
import { InvalidStateError, ValidationError } from './errors.js';
import type { RunRecord } from './runs.js';

export const QUEUE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const DEFAULT_QUEUE = DEFAULTS.queue;

/**
 * `moving` and `moved` exist only in the store a job leaves during a
 * migration (src/migrate.ts): `moving` while it is copied (no worker may
 * claim it, nobody may retry it), then `moved`, the marker of where it
 * went (`moved_to`). `moved` is terminal here: the job lives on elsewhere.
 */
export const JOB_STATUSES = ['queued', 'processing', 'done', 'error', 'canceled', 'moving', 'moved'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['done', 'error', 'canceled', 'moved'];
/** What a job ends as where it runs (a `moved` job ends in the store it moved to). */
export const FINISHED_STATUSES: readonly JobStatus[] = ['done', 'error', 'canceled'];

const TERMINAL = new Set<JobStatus>(TERMINAL_STATUSES);

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL.has(status);
}

/** Deepest nesting accepted in a payload, intent or progress report (deeper input would overflow a clone or a parser later). */
export const MAX_JSON_DEPTH = 64;

/** True when `value` nests no deeper than `limit` (checked without recursion, so a hostile input cannot overflow the stack here). */
export function withinDepth(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= limit) return false;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return true;
}

const depthMessage = `nests deeper than ${MAX_JSON_DEPTH} levels`;

export const queueNameSchema = z
  .string()
  .regex(QUEUE_NAME_RE, 'queue must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$');

/** What an agent runtime asks: unknown keys are kept. */
export const intentRequestSchema = z
  .object({
    session_id: z.string().max(256).optional(),
    step: z.number().int().nonnegative().optional(),
    goal: z.string().max(100_000).optional(),
    context: z.unknown().optional(),
  })
  .passthrough()
  .refine((v) => withinDepth(v), depthMessage);
export type IntentRequest = z.infer<typeof intentRequestSchema>;

/** What a reasoning worker answers. */
export const intentSchema = z
  .object({
    action: z.string().min(1).max(64),
    tool_name: z.string().max(256).nullish(),
    args: z.record(z.string(), z.unknown()).nullish(),
    finish: z.boolean().nullish(),
    reasoning: z.string().max(100_000).nullish(),
  })
  .passthrough()
  .superRefine((intent, ctx) => {
    if (!withinDepth(intent)) ctx.addIssue({ code: 'custom', message: depthMessage });
    if (intent.action === 'tool' && !intent.tool_name) {
      ctx.addIssue({ code: 'custom', path: ['tool_name'], message: 'tool_name is required when action is "tool"' });
    }
  });
export type Intent = z.infer<typeof intentSchema>;

export interface JobError {
  code: string;
  message: string;
  retryable: boolean;
}

/**
 * The delivery log of a job's callback (the outbox): written with the
 * terminal status, in the same step, as `pending`; then by whoever delivers
 * it (src/callbacks.ts deliverDue). Times are ISO 8601 strings.
 */
export interface CallbackLog {
  state: 'pending' | 'delivered' | 'failed';
  /** POSTs tried so far */
  attempts: number;
  /** the receiver's HTTP status at the last try (null: no answer) */
  last_status?: number | null;
  last_error?: string | null;
  /** when the next try is due (pending) */
  next_at?: string | null;
  delivered_at?: string | null;
  /** the `webhook-id` of this ending's deliveries (receivers dedupe by it) */
  delivery_id?: string | null;
}

/** The log a terminal write starts with. */
export const PENDING_CALLBACK: Readonly<CallbackLog> = Object.freeze({ state: 'pending', attempts: 0 });

/**
 * A W3C trace context as it rides on a job (`Job.trace`): the `traceparent`
 * and `tracestate` of the producer's span, as the headers of the same names
 * would carry them (https://www.w3.org/TR/trace-context/).
 */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

export interface Lease {
  /** worker id that holds the lease */
  owner: string;
  /** fresh random token on every claim; fences every later write */
  token: string;
  /** the job is reclaimable after this instant */
  until: Date;
}

export interface CancelRequest {
  at: Date;
  reason: string;
}

/** One record per intent request, with the same snake_case fields on every store. */
export interface Job {
  /** UUIDv7 unless the caller gave one */
  id: string;
  /** queue name, default `reasoning` */
  queue: string;
  /** queued · processing · done · error · canceled (· moving · moved in the store a migration leaves) */
  status: JobStatus;
  /** the intent request */
  payload: IntentRequest;
  /** the intent, set when done */
  result: Intent | null;
  /** set when error, kept from the last failed attempt */
  error: JobError | null;
  /** higher first; FIFO within a priority */
  priority: number;
  /** not claimable before this instant */
  run_at: Date;
  /** attempts of the handler so far: counted when claimed, given back when the run ends without the handler failing (a lost lease, a shutdown) */
  attempts: number;
  /** limit on attempts */
  max_attempts: number;
  /** runs that lost their lease (the worker's process died or froze while holding the job) */
  stalls: number;
  /** limit on stalls: past it the job ends `error` / WORKER_CRASHED */
  max_stalls: number;
  /** per-attempt execution limit, null for the worker's default */
  timeout_ms: number | null;
  /** set while processing */
  lease: Lease | null;
  /** set once cancel was asked for a running job */
  cancel_requested: CancelRequest | null;
  /** a second enqueue with the same key returns the first job */
  dedupe_key: string | null;
  /** POSTed the finished job */
  callback_url: string | null;
  /** last value a handler reported with ctx.progress() (its newest `progress` event) */
  progress: unknown;
  /** model tokens spent on this job, every attempt together: the total of its `usage` events (src/events.ts), null if none */
  usage: { prompt_tokens: number; completion_tokens: number } | null;
  /** the callback's delivery log once the job ended with a `callback_url` (the outbox), else null */
  callback: CallbackLog | null;
  /** set with `moved`: the store the job went to (`redis`, `mongo` …), where it goes on */
  moved_to: string | null;
  /** one record per run that ended, newest last, the newest 25 (src/runs.ts); kept by a retry */
  runs: RunRecord[];

  /** the producer's W3C trace context (its `send` span, src/tracing.ts): every run's `process` span continues it; null when the producer traced nothing */
  trace: TraceCarrier | null;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

/**
 * The field table: every field of a job, what it holds and whether it may
 * change once the job is enqueued. Codecs derive from it (the redis `spec`,
 * the mongo document, revival from JSON, the http enqueue body), and it must
 * name every field of `Job` (a field added to the interface and not here
 * does not compile).
 *
 * - kind: how a store keeps it: `string`, `int`, `date`, `json` (any JSON
 *   value), or a composite of the worker side (`status`, `lease`, `cancel`).
 * - immutable: set at enqueue, never changed after (the redis `spec`).
 * - enqueue: a caller may set it when enqueueing (enqueueOptionsSchema).
 */
export const JOB_FIELDS = {
  id: { kind: 'string', immutable: true, enqueue: true },
  queue: { kind: 'string', immutable: true, enqueue: true },
  status: { kind: 'status', immutable: false, enqueue: false },
  payload: { kind: 'json', immutable: true, enqueue: true },
  result: { kind: 'json', immutable: false, enqueue: false },
  error: { kind: 'json', immutable: false, enqueue: false },
  priority: { kind: 'int', immutable: true, enqueue: true },
  run_at: { kind: 'date', immutable: false, enqueue: true },
  attempts: { kind: 'int', immutable: false, enqueue: false },
  max_attempts: { kind: 'int', immutable: true, enqueue: true },
  stalls: { kind: 'int', immutable: false, enqueue: false },
  max_stalls: { kind: 'int', immutable: true, enqueue: true },
  timeout_ms: { kind: 'int', immutable: true, enqueue: true },
  lease: { kind: 'lease', immutable: false, enqueue: false },
  cancel_requested: { kind: 'cancel', immutable: false, enqueue: false },
  dedupe_key: { kind: 'string', immutable: true, enqueue: true },
  callback_url: { kind: 'string', immutable: true, enqueue: true },
  trace: { kind: 'json', immutable: true, enqueue: true },
  progress: { kind: 'json', immutable: false, enqueue: false },
  usage: { kind: 'json', immutable: false, enqueue: false },
  callback: { kind: 'json', immutable: false, enqueue: false },
  moved_to: { kind: 'string', immutable: false, enqueue: false },
  runs: { kind: 'json', immutable: false, enqueue: false },
  created_at: { kind: 'date', immutable: true, enqueue: false },
  updated_at: { kind: 'date', immutable: false, enqueue: false },
  started_at: { kind: 'date', immutable: false, enqueue: false },
  finished_at: { kind: 'date', immutable: false, enqueue: false },
} as const satisfies { [K in keyof Job]-?: { kind: 'string' | 'int' | 'date' | 'json' | 'status' | 'lease' | 'cancel'; immutable: boolean; enqueue: boolean } };

export type JobField = keyof typeof JOB_FIELDS;
type FieldsWhere<P extends 'immutable' | 'enqueue'> = { [K in JobField]: (typeof JOB_FIELDS)[K][P] extends true ? K : never }[JobField];
/** Set at enqueue, never changed after. */
export type ImmutableField = FieldsWhere<'immutable'>;
/** What a caller may set when enqueueing. */
export type EnqueueField = FieldsWhere<'enqueue'>;

export const FIELD_NAMES = Object.keys(JOB_FIELDS) as JobField[];
export const IMMUTABLE_FIELDS = FIELD_NAMES.filter((f) => JOB_FIELDS[f].immutable) as ImmutableField[];
export const ENQUEUE_FIELDS = FIELD_NAMES.filter((f) => JOB_FIELDS[f].enqueue) as EnqueueField[];

/** 9999-12-31T23:59:59.999Z, the last instant an RFC 3339 date-time can say. */
export const LAST_INSTANT_MS = 253_402_300_799_999;

/**
 * A point in time as a caller gives it: a Date (in process), ISO 8601 text
 * or epoch milliseconds (JSON). Nothing else: `z.coerce.date()` alone reads
 * `null` and `true` as 1970, so a `run_at: null` would have been "now" in
 * disguise and a heartbeat's `started_at: false` the epoch.
 */
export const instantSchema = z
  .union([z.date(), z.string().max(64), z.number().min(0).max(LAST_INSTANT_MS)])
  .pipe(z.coerce.date({ error: `must be an ISO 8601 date-time or milliseconds since 1970` }))
  // Years past 9999 (or before 1970) would go back out as `+275760-…`, which no date-time reader takes.
  .refine((d) => d.getTime() >= 0 && d.getTime() <= LAST_INSTANT_MS, 'must lie between 1970 and the end of 9999')
  // The OpenAPI document (src/server/openapi.ts) says it as a date-time or a number.
  .meta({ 'x-instant': true });

export const TRACEPARENT_RE = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
/** Longest `tracestate` kept (W3C lets a receiver cut it at 512 characters). */
export const TRACESTATE_MAX = 512;

/** `traceparent` as W3C defines it: version, trace id, parent id, flags; the all-zero ids and version ff are invalid. */
export const traceparentSchema = z
  .string()
  .regex(TRACEPARENT_RE, 'traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, lowercase)')
  .refine((t) => !t.startsWith('ff-') && t.slice(3, 35) !== '0'.repeat(32) && t.slice(36, 52) !== '0'.repeat(16), 'traceparent must not be version ff nor carry an all-zero trace or parent id');
/** `tracestate`: printable ASCII, at most TRACESTATE_MAX characters. */
export const tracestateSchema = z
  .string()
  .max(TRACESTATE_MAX, `tracestate must be at most ${TRACESTATE_MAX} characters`)
  .regex(/^[\x20-\x7e]*$/, 'tracestate must be printable ASCII');

/** The producer's trace context on a job (TraceCarrier): these two keys and no other. */
export const traceCarrierSchema = z.strictObject({ traceparent: traceparentSchema, tracestate: tracestateSchema.optional() });

/** Options a caller may give when enqueueing. */
export const enqueueOptionsSchema = z.object({
  id: z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/, 'id may contain only letters, digits and _ . : -').optional(),
  queue: queueNameSchema.optional(),
  priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
  delay_ms: z.number().int().nonnegative().max(365 * 24 * 3600 * 1000).optional(),
  run_at: instantSchema
    .refine((d) => d.getTime() < Date.now() + 366 * 24 * 3600 * 1000, 'run_at must be within a year from now')
    .meta({ description: 'not claimable before this instant; within a year from now' })
    .optional(),
  max_attempts: z.number().int().min(1).max(1000).optional(),
  max_stalls: z.number().int().min(1).max(1000).optional(),
  timeout_ms: z.number().int().min(1).max(24 * 3600 * 1000).optional(),
  dedupe_key: z.string().min(1).max(256).optional(),
  callback_url: z
    .string()
    .max(2048, 'callback_url must be at most 2048 characters')
    .transform((u, ctx) => {
      let url: URL;
      try {
        url = new URL(u);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'callback_url must be an absolute http(s) URL' });
        return z.NEVER;
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: 'callback_url must be http: or https:' });
      else if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'callback_url must not carry user:password@ (every reader of the job would see it); use the signature to authenticate us' });
      url.hash = '';
      return url.href;
    })
    // What the transform checks, said in JSON Schema for the OpenAPI document (src/server/openapi.ts).
    .meta({ format: 'uri', pattern: '^[Hh][Tt][Tt][Pp][Ss]?://' })
    .optional(),
  /** the producer's trace context (src/tracing.ts sets it from its `send` span; a runtime with its own OpenTelemetry may give it, or send a `traceparent` header to the HTTP API) */
  trace: traceCarrierSchema.optional(),
});
export type EnqueueOptions = z.input<typeof enqueueOptionsSchema>;

export const enqueueRequestSchema = enqueueOptionsSchema.extend({ payload: intentRequestSchema });
export type EnqueueRequest = z.input<typeof enqueueRequestSchema>;

type AssertTrue<T extends true> = T;
/** Compile-time check: every field the table lets a caller set is in the enqueue schema. */
export type EnqueueSchemaCoversTable = AssertTrue<EnqueueField extends keyof EnqueueRequest ? true : false>;

/** Turn a zod failure into a ValidationError that names the field. */
export function toValidationError(error: z.ZodError, prefix = ''): ValidationError {
  const issue = error.issues[0];
  const path = issue ? [prefix, ...issue.path.map(String)].filter(Boolean).join('.') : prefix;
  const message = issue ? `${path || 'input'}: ${issue.message}` : 'invalid input';
  return new ValidationError(message, path || undefined, { cause: error });
}

export function parseOrThrow<T extends z.ZodTypeAny>(schema: T, value: unknown, prefix = ''): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw toValidationError(parsed.error, prefix);
  return parsed.data;
}

/** Build the full job record for an enqueue: ids, defaults, timestamps. */
export function buildJob(request: EnqueueRequest, now = new Date()): Job {
  const req = parseOrThrow(enqueueRequestSchema, request);
  const runAt = req.run_at ?? (req.delay_ms ? new Date(now.getTime() + req.delay_ms) : now);
  return {
    id: req.id ?? uuidv7(),
    queue: req.queue ?? DEFAULT_QUEUE,
    status: 'queued',
    payload: req.payload,
    result: null,
    error: null,
    priority: req.priority ?? 0,
    run_at: runAt,
    attempts: 0,
    max_attempts: req.max_attempts ?? DEFAULTS.maxAttempts,
    stalls: 0,
    max_stalls: req.max_stalls ?? DEFAULTS.maxStalls,
    timeout_ms: req.timeout_ms ?? null,
    lease: null,
    cancel_requested: null,
    dedupe_key: req.dedupe_key ?? null,
    callback_url: req.callback_url ?? null,
    trace: req.trace ?? null,
    progress: null,
    usage: null,
    callback: null,
    moved_to: null,
    runs: [],
    created_at: now,
    updated_at: now,
    started_at: null,
    finished_at: null,
  };
}

/**
 * The state machine (docs/architecture.md), the only legal moves. `retry` is the one move
 * out of a terminal state and only a user asks for it.
 */
export type Transition = 'claim' | 'complete' | 'fail' | 'requeue' | 'cancel' | 'retry' | 'take' | 'finish-move' | 'release';

const MOVES: Record<Transition, { from: readonly JobStatus[]; to: readonly JobStatus[] }> = {
  claim: { from: ['queued'], to: ['processing'] },
  complete: { from: ['processing'], to: ['done'] },
  fail: { from: ['processing'], to: ['error', 'queued'] },
  requeue: { from: ['processing'], to: ['queued', 'error', 'canceled'] }, // lease expired / released / poison pill
  cancel: { from: ['queued', 'processing'], to: ['canceled'] },
  retry: { from: ['error', 'canceled'], to: ['queued'] },
  // a migration (src/migrate.ts): taken, then moved, or handed back as it was
  take: { from: ['queued', 'done', 'error', 'canceled'], to: ['moving'] },
  'finish-move': { from: ['moving'], to: ['moved'] },
  release: { from: ['moving'], to: ['queued', 'done', 'error', 'canceled'] },
};

/** The statuses a user's retry starts from, as the table says: stores filter on these instead of writing them again. */
export const RETRY_FROM: readonly JobStatus[] = MOVES.retry.from;

export function canTransition(move: Transition, from: JobStatus, to: JobStatus): boolean {
  const rule = MOVES[move];
  return rule.from.includes(from) && rule.to.includes(to);
}

export function assertTransition(job: Pick<Job, 'id' | 'status'>, move: Transition, to: JobStatus): void {
  if (!canTransition(move, job.status, to)) {
    throw new InvalidStateError(`job ${job.id} is ${job.status}: ${move} to ${to} is not allowed`);
  }
}

/** Revive a job that crossed JSON (HTTP, Redis) into the in-process shape, by the field table. */
export function reviveJob(raw: unknown): Job {
  if (!raw || typeof raw !== 'object') throw new ValidationError('job must be an object', 'job');
  const source = raw as Record<string, unknown>;
  // The fields of the table only: what the API derives (`stalled`) is not part of the record.
  const job: Record<string, unknown> = {};
  for (const field of FIELD_NAMES) {
    const v = source[field];
    job[field] = v;
    if (v === undefined || v === null) {
      job[field] = null;
      continue;
    }
    const kind = JOB_FIELDS[field].kind;
    if (kind === 'date') job[field] = new Date(v as string | number);
    else if (kind === 'lease') job[field] = { ...(v as object), until: new Date((v as { until: string | number }).until) };
    else if (kind === 'cancel') job[field] = { ...(v as object), at: new Date((v as { at: string | number }).at) };
  }
  // A job from before run histories (or a peer that leaves them out) has none yet.
  if (!Array.isArray(job.runs)) job.runs = [];
  return job as unknown as Job;
}

/** In lists a payload is summarised to this many characters of goal, so a page stays small whatever the payloads weigh. */
const SUMMARY_GOAL_CHARS = 200;

/**
 * A job as a list shows it: the whole record but for what can be large
 * (payload beyond its session, step and the start of its goal; the result's
 * args and reasoning; progress; a long error message; runs but the newest). Built without copying
 * what it leaves out. `GET /v1/jobs/:id` has it all.
 */
export function summarizeJob(job: Job): Job {
  const { session_id, step, goal } = job.payload;
  const payload: IntentRequest = {};
  if (session_id !== undefined) payload.session_id = session_id;
  if (step !== undefined) payload.step = step;
  if (typeof goal === 'string') payload.goal = goal.length > SUMMARY_GOAL_CHARS ? `${goal.slice(0, SUMMARY_GOAL_CHARS)}…` : goal;
  const result = job.result ? ({ action: job.result.action, tool_name: job.result.tool_name ?? null, finish: job.result.finish ?? null } as Intent) : null;
  const error = job.error ? { ...job.error, message: job.error.message.slice(0, 1000) } : null;
  // The newest run only: a page of 500 jobs does not carry 25 records each (the job's own page has them all).
  return { ...job, payload, result, error, progress: null, runs: (job.runs ?? []).slice(-1) };
}

/**
 * Processing, but its lease has run out: its worker died or froze and the
 * job waits for the sweep (or the next claim) to requeue it.
 */
export function isStalled(job: Pick<Job, 'status' | 'lease'>, now = Date.now()): boolean {
  return job.status === 'processing' && job.lease !== null && job.lease.until.getTime() <= now;
}

/** The job as it goes on the wire: lease token hidden unless asked for, and `stalled` (isStalled) derived. */
export function publicJob(job: Job, { withToken = false } = {}): Record<string, unknown> {
  const stalled = isStalled(job);
  if (!job.lease || withToken) return { ...job, stalled };
  return { ...job, lease: { owner: job.lease.owner, until: job.lease.until }, stalled };
}
