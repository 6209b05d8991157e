/**
 * Every error reasonq raises, built in one place so that the same failure
 * reads the same on every transport and on the wire. Each class has a stable
 * `code` (like undici's `UND_ERR_*`) that callers can switch on.
 */

export interface ReasonqErrorOptions {
  cause?: unknown;
  /** Extra machine-readable detail, sent on the wire as `error.details`. */
  details?: Record<string, unknown>;
  /** HTTP status, for errors without a class of their own */
  status?: number;
}

export class ReasonqError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  /** HTTP status the server answers with when this error reaches a route. */
  readonly status: number;

  constructor(code: string, message: string, options: ReasonqErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status ?? 500;
    this.details = options.details;
  }

  toJSON(): { code: string; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

/** Input that does not match the contract; `field` names what was wrong. */
export class ValidationError extends ReasonqError {
  override readonly status = 400;
  readonly field: string | undefined;
  constructor(message: string, field?: string, options: ReasonqErrorOptions = {}) {
    super('VALIDATION_ERROR', message, { ...options, details: { ...options.details, ...(field ? { field } : {}) } });
    this.field = field;
  }
}

/** Configuration (environment or options) that cannot be used. */
export class ConfigError extends ReasonqError {
  override readonly status = 500;
  readonly variable: string | undefined;
  constructor(message: string, variable?: string, options: ReasonqErrorOptions = {}) {
    super('CONFIG_INVALID', message, options);
    this.variable = variable;
  }
}

export class NotFoundError extends ReasonqError {
  override readonly status = 404;
  constructor(message: string, options: ReasonqErrorOptions = {}) {
    super('NOT_FOUND', message, options);
  }
}

export class JobNotFoundError extends ReasonqError {
  override readonly status = 404;
  constructor(id: string, options: ReasonqErrorOptions = {}) {
    super('JOB_NOT_FOUND', `job ${id} does not exist`, { ...options, details: { id } });
  }
}

/**
 * A fenced write (complete, fail, extend, release, progress) whose lease token
 * no longer matches: the lease expired, the job was reclaimed or canceled.
 */
export class LeaseLostError extends ReasonqError {
  override readonly status = 409;
  constructor(id: string, options: ReasonqErrorOptions = {}) {
    super('LEASE_LOST', `lease on job ${id} is no longer held by this worker`, { ...options, details: { id, ...options.details } });
  }
}

/** A move the state machine does not allow (e.g. retry of a done job). */
export class InvalidStateError extends ReasonqError {
  override readonly status = 409;
  constructor(message: string, options: ReasonqErrorOptions = {}) {
    super('INVALID_STATE', message, options);
  }
}

export class UnauthorizedError extends ReasonqError {
  override readonly status = 401;
  constructor(message = 'missing or invalid bearer token') {
    super('UNAUTHORIZED', message);
  }
}

export class PayloadTooLargeError extends ReasonqError {
  override readonly status = 413;
  constructor(message: string) {
    super('PAYLOAD_TOO_LARGE', message);
  }
}

export class ForbiddenError extends ReasonqError {
  override readonly status = 403;
  constructor(message: string, code = 'FORBIDDEN') {
    super(code, message);
  }
}

/** The Host header names no host this server answers for (DNS rebinding). */
export class HostNotAllowedError extends ReasonqError {
  override readonly status = 421;
  constructor(host: string) {
    super('HOST_NOT_ALLOWED', `host ${JSON.stringify(host.slice(0, 100))} is not one this server answers for; add it to REASONQ_ALLOWED_HOSTS`);
  }
}

export class RateLimitedError extends ReasonqError {
  override readonly status = 429;
  /** seconds the caller should wait, sent as Retry-After */
  readonly retryAfterSec: number;
  constructor(message: string, retryAfterSec = 1) {
    super('RATE_LIMITED', message);
    this.retryAfterSec = retryAfterSec;
  }
}

/** A store limit (jobs or bytes held) was reached; nothing was created. */
export class StoreFullError extends ReasonqError {
  override readonly status = 507;
  constructor(message: string) {
    super('STORE_FULL', message);
  }
}

/** A callback address that policy refuses (internal, our own, not http(s)). Checked before any connection. */
export class CallbackRefusedError extends ReasonqError {
  override readonly status = 400;
  constructor(message: string) {
    super('CALLBACK_FORBIDDEN', message, { details: { field: 'callback_url' } });
  }
}

/**
 * The store (or the server in front of it) could not be reached or failed.
 * `retryable` tells the client whether trying again may help.
 */
export class TransportError extends ReasonqError {
  override readonly status = 503;
  readonly retryable: boolean;
  constructor(message: string, options: ReasonqErrorOptions & { code?: string; retryable?: boolean } = {}) {
    super(options.code ?? 'TRANSPORT_UNAVAILABLE', message, options);
    this.retryable = options.retryable ?? true;
  }
}

/** `agentIntent` / `wait` gave up before the job finished. */
export class ReasoningTimeoutError extends ReasonqError {
  override readonly status = 504;
  readonly jobId: string;
  constructor(jobId: string, timeoutMs: number) {
    super('REASONING_TIMEOUT', `no intent for job ${jobId} within ${timeoutMs} ms; the job was canceled`, { details: { job_id: jobId, timeout_ms: timeoutMs } });
    this.jobId = jobId;
  }
}

/** The caller's AbortSignal fired while waiting for an intent. */
export class ReasoningAbortedError extends ReasonqError {
  override readonly status = 499;
  readonly jobId: string;
  constructor(jobId: string, reason: unknown) {
    super('REASONING_ABORTED', `waiting for job ${jobId} was aborted: ${describeReason(reason)}`, { cause: reason, details: { job_id: jobId } });
    this.jobId = jobId;
  }
}

/** The job itself ended in `error` or `canceled`; `jobError` is the job's own error. */
export class ReasoningJobError extends ReasonqError {
  override readonly status = 502;
  readonly jobId: string;
  readonly jobStatus: string;
  readonly jobError: { code: string; message: string; retryable: boolean } | null;
  /** set when the job was moved to another store by a migration (`JOB_MOVED`): the store it went to */
  readonly movedTo: string | null;
  constructor(jobId: string, jobStatus: string, jobError: { code: string; message: string; retryable: boolean } | null, movedTo: string | null = null) {
    super(
      jobStatus === 'canceled' ? 'JOB_CANCELED' : jobStatus === 'moved' ? 'JOB_MOVED' : 'JOB_FAILED',
      jobStatus === 'canceled'
        ? `job ${jobId} was canceled${jobError ? `: ${jobError.message}` : ''}`
        : jobStatus === 'moved'
          ? `job ${jobId} was moved to ${movedTo ?? 'another store'} by a migration and runs on there: read it there (clients of that store with REASONING_MIGRATE_FROM find it by this id)`
          : `job ${jobId} failed: ${jobError ? `${jobError.code}: ${jobError.message}` : 'unknown error'}`,
      { details: { job_id: jobId, job_status: jobStatus, job_error: jobError, ...(movedTo ? { moved_to: movedTo } : {}) } },
    );
    this.movedTo = movedTo;
    this.jobId = jobId;
    this.jobStatus = jobStatus;
    this.jobError = jobError;
  }
}

/** Thrown by a handler to fail the job at once, without retries. */
export class NonRetryableError extends ReasonqError {
  constructor(message: string, options: ReasonqErrorOptions & { code?: string } = {}) {
    super(options.code ?? 'NON_RETRYABLE', message, options);
  }
}

/**
 * A model server (src/reasoners) failed in a way another try may mend: it
 * was busy (429, 5xx), unreachable or too slow, its stream was cut, or its
 * answer was unusable (an unknown tool, arguments that are not a JSON
 * object, nothing at all). Retried like any handler error; refusals no retry
 * mends (400, 401, 403, 404, 422) are NonRetryableError instead.
 */
export class ModelError extends ReasonqError {
  override readonly status = 502;
  readonly retryable = true;
  constructor(code: string, message: string, options: ReasonqErrorOptions = {}) {
    super(code, message, options);
  }
}

export function describeReason(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  if (typeof reason === 'string') return reason;
  return String(reason ?? 'aborted');
}

/** Error codes a job's `error.code` can carry when reasonq itself set it. */
export const JobErrorCode = {
  HANDLER_ERROR: 'HANDLER_ERROR',
  TIMEOUT: 'TIMEOUT',
  /** the first release's poison-pill code (a lease expired with no attempt left); jobs ended before WORKER_CRASHED carry it */
  LEASE_EXPIRED: 'LEASE_EXPIRED',
  /** the job's runs lost their lease `max_stalls` times (its worker died or froze while running it) */
  WORKER_CRASHED: 'WORKER_CRASHED',
  INVALID_INTENT: 'INVALID_INTENT',
  RESULT_REJECTED: 'RESULT_REJECTED',
  CANCELED: 'CANCELED',
  /** the worker failed around the handler (an event listener threw, an unexpected error) */
  WORKER_ERROR: 'WORKER_ERROR',
  /** the stored record could not be decoded (edited by hand, or written by something else) */
  CORRUPT_RECORD: 'CORRUPT_RECORD',
} as const;

const byCode: Record<string, (message: string, details?: Record<string, unknown>) => ReasonqError> = {
  VALIDATION_ERROR: (m, d) => new ValidationError(m, typeof d?.field === 'string' ? d.field : undefined),
  CONFIG_INVALID: (m) => new ConfigError(m),
  NOT_FOUND: (m) => new NotFoundError(m),
  JOB_NOT_FOUND: (_m, d) => new JobNotFoundError(String(d?.id ?? 'unknown')),
  LEASE_LOST: (_m, d) => new LeaseLostError(String(d?.id ?? 'unknown')),
  INVALID_STATE: (m) => new InvalidStateError(m),
  UNAUTHORIZED: (m) => new UnauthorizedError(m),
  PAYLOAD_TOO_LARGE: (m) => new PayloadTooLargeError(m),
  RATE_LIMITED: (m) => new RateLimitedError(m),
  FORBIDDEN: (m) => new ForbiddenError(m),
  STORE_FULL: (m) => new StoreFullError(m),
  CALLBACK_FORBIDDEN: (m) => new CallbackRefusedError(m),
  REASONING_TIMEOUT: (_m, d) => new ReasoningTimeoutError(String(d?.job_id ?? 'unknown'), Number(d?.timeout_ms ?? 0)),
  JOB_FAILED: (_m, d) => jobErrorFromDetails(d),
  JOB_CANCELED: (_m, d) => jobErrorFromDetails(d),
  JOB_MOVED: (_m, d) => jobErrorFromDetails(d),
};

function jobErrorFromDetails(d: Record<string, unknown> | undefined): ReasoningJobError {
  const e = d?.job_error as { code: string; message: string; retryable: boolean } | null | undefined;
  return new ReasoningJobError(String(d?.job_id ?? 'unknown'), String(d?.job_status ?? 'error'), e ?? null, typeof d?.moved_to === 'string' ? d.moved_to : null);
}

/** Rebuild a typed error from its wire form `{code, message, details}`. */
export function errorFromWire(body: { code?: unknown; message?: unknown; details?: unknown }, httpStatus: number): ReasonqError {
  const code = typeof body.code === 'string' ? body.code : 'UNKNOWN';
  const message = typeof body.message === 'string' ? body.message : `HTTP ${httpStatus}`;
  const details = body.details && typeof body.details === 'object' ? (body.details as Record<string, unknown>) : undefined;
  const make = byCode[code];
  if (make) return make(message, details);
  if (httpStatus >= 500) return new TransportError(message, { code, retryable: httpStatus === 503 || httpStatus === 502 || httpStatus === 504 });
  return new ReasonqError(code, message, details ? { details } : {});
}
