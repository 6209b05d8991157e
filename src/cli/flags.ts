/**
 * Flag parsers of the client commands: each refuses a bad value with a
 * message that names the flag and what it accepts (ValidationError, exit 2),
 * before anything is sent. The limits are read from the enqueue schema
 * (src/job.ts), so the CLI and the API cannot disagree about them.
 */
import type { z } from 'zod';
import { ValidationError } from '../errors.js';
import { enqueueOptionsSchema, intentRequestSchema, QUEUE_NAME_RE, type EnqueueOptions, type IntentRequest } from '../job.js';
import { cancelBodySchema, intentBodySchema } from '../server/schemas.js';

/** What the user typed, quoted and cut, for "(got …)". */
const got = (value: string): string => `(got ${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)})`;

/** A number schema's bounds (z.number().min().max()), optional or not. */
function bounds(schema: z.ZodType): [number, number] {
  const inner = ('unwrap' in schema && typeof schema.unwrap === 'function' ? schema.unwrap() : schema) as z.ZodNumber;
  return [inner.minValue ?? Number.MIN_SAFE_INTEGER, inner.maxValue ?? Number.MAX_SAFE_INTEGER];
}

const shape = enqueueOptionsSchema.shape;
/** The enqueue limits, from the schema. */
export const LIMITS = {
  priority: bounds(shape.priority),
  delay: bounds(shape.delay_ms),
  maxAttempts: bounds(shape.max_attempts),
  attemptTimeout: bounds(shape.timeout_ms),
  /** `intent --timeout`: the caller's wait, as the API's enqueue-and-wait takes it */
  intentTimeout: bounds(intentBodySchema.shape.timeout_ms),
  /** `cancel --reason`: characters */
  cancelReason: cancelBodySchema.unwrap().shape.reason.unwrap().maxLength ?? 1000,
} as const;

/** Text of at most `max` characters. */
export const maxChars = (flag: string, max: number) => (value: string) => {
  if (value.length > max) throw new ValidationError(`--${flag} must be at most ${max} characters (got ${value.length})`, flag);
  return value;
};

/** A whole number within [min, max] (negative ones too when min < 0); no max: any from min up. */
export const wholeNumber = (flag: string, min: number, max = Number.MAX_SAFE_INTEGER, what = '') => (value: string) => {
  const text = value.trim();
  if (!/^-?\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `, ${min} or more` : ` from ${min} to ${max}`;
    throw new ValidationError(`--${flag} must be a whole number${range}${what} ${got(value)}`, flag);
  }
  return Number(text);
};

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration in ms, as the user writes it. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`;
  return `${ms}ms`;
}

/**
 * A duration: milliseconds (`1500`), or a number with a unit (`1500ms`,
 * `30s`, `1.5m`, `2h`, `1d`), within [min, max] ms; whole milliseconds.
 */
export const duration = (flag: string, min: number, max: number) => (value: string) => {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(value.trim());
  const ms = match ? Math.round(Number(match[1]) * UNIT_MS[match[2] ?? 'ms']!) : NaN;
  if (!match || (match[2] === undefined && match[1]!.includes('.')) || !(ms >= min && ms <= max)) {
    throw new ValidationError(`--${flag} must be a duration from ${formatDuration(min)} to ${formatDuration(max)}: milliseconds (1500) or a number with a unit (1500ms, 30s, 5m, 2h, 1d) ${got(value)}`, flag);
  }
  return ms;
};

export const queueName = (flag: string) => (value: string) => {
  if (!QUEUE_NAME_RE.test(value)) throw new ValidationError(`--${flag} must be a queue name: 1 to 64 letters, digits, _ . : or -, starting with a letter or digit ${got(value)}`, flag);
  return value;
};

/** " (got …)" for a value a flag gave, when it is short text (a URL's credentials masked). */
function gotValue(value: unknown): string {
  if (typeof value === 'number') return ` (got ${value})`;
  return typeof value === 'string' ? ` ${got(value.replace(/\/\/[^@/]*@/, '//***@'))}` : '';
}

/** Comma-separated queue names, at least one. */
export const queueList = (flag: string) => (value: string) => {
  const names = value.split(',').map((q) => q.trim()).filter(Boolean);
  const bad = names.find((q) => !QUEUE_NAME_RE.test(q));
  if (names.length === 0 || bad !== undefined) {
    throw new ValidationError(`--${flag} must be comma-separated queue names, each 1 to 64 letters, digits, _ . : or -, starting with a letter or digit ${got(bad ?? value)}`, flag);
  }
  return names;
};

/** The flag each enqueue option and payload field comes from. */
const FLAG_OF: Record<string, string> = {
  id: 'id',
  queue: 'queue',
  priority: 'priority',
  delay_ms: 'delay',
  max_attempts: 'max-attempts',
  timeout_ms: 'attempt-timeout',
  dedupe_key: 'dedupe-key',
  callback_url: 'callback-url',
  goal: 'goal',
  session_id: 'session',
  step: 'step',
  context: 'context',
};

/** A zod issue in our words: what the value must be, without zod's vocabulary. */
export function describeIssue(issue: z.core.$ZodIssue): string {
  const field = String(issue.path[issue.path.length - 1] ?? '');
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${issue.expected === 'int' ? 'a whole number' : issue.expected === 'object' ? 'a JSON object' : `a ${issue.expected}`}`;
    case 'too_small':
      return issue.origin === 'string' ? `must be at least ${issue.minimum} character${issue.minimum === 1 ? '' : 's'} long` : `must be at least ${issue.minimum}`;
    case 'too_big':
      return issue.origin === 'string' ? `must be at most ${issue.maximum} characters long` : `must be at most ${issue.maximum}`;
    default:
      // our own messages start with the field's name: the flag replaces it
      return field && issue.message.startsWith(`${field} `) ? issue.message.slice(field.length + 1) : issue.message;
  }
}

/**
 * Check what a command is about to send, as the API would, and refuse it in
 * our words: the flag that set a field is named (`--max-attempts must be …`),
 * else the field inside --payload.
 */
export function checkEnqueue(payload: IntentRequest, options: EnqueueOptions, fromFlags: ReadonlySet<string>): void {
  const request = intentRequestSchema.safeParse(payload);
  if (!request.success) {
    const issue = request.error.issues[0]!;
    const field = String(issue.path[0] ?? '');
    const flag = FLAG_OF[field];
    if (flag && fromFlags.has(field)) throw new ValidationError(`--${flag} ${describeIssue(issue)}${gotValue(payload[field])}`, flag);
    throw new ValidationError(`--payload: ${field ? `"${issue.path.join('.')}" ` : ''}${describeIssue(issue)}`, 'payload');
  }
  const opts = enqueueOptionsSchema.safeParse(options);
  if (!opts.success) {
    const issue = opts.error.issues[0]!;
    const field = String(issue.path[0]);
    const flag = FLAG_OF[field] ?? field;
    throw new ValidationError(`--${flag} ${describeIssue(issue)}${gotValue(options[field as keyof EnqueueOptions])}`, flag);
  }
}

/**
 * --url: the reasonq server's address. http(s) only, and without
 * credentials in it (the token goes in --token, where it is never echoed).
 */
export function serverUrl(value: string): string {
  let url: URL | null = null;
  try {
    url = new URL(value.trim());
  } catch {
    // refused below
  }
  // What we repeat of it: no credentials, no query (either may hold a secret).
  const shown = url
    ? `${url.protocol}//${url.username || url.password ? '***@' : ''}${url.host}${url.pathname === '/' ? '' : url.pathname}`
    : value.replace(/\/\/[^@/]*@/, '//***@').slice(0, 60);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new ValidationError(`--url must be the reasonq server's http:// or https:// address, like http://127.0.0.1:8080 (got ${JSON.stringify(shown)})`, 'url');
  }
  if (url.username || url.password) throw new ValidationError(`--url must not carry user:password@ (got ${JSON.stringify(shown)}): give the token with --token or REASONQ_API_TOKEN`, 'url');
  // The http transport would drop a query anyway; refused so that nothing (a key in it) is repeated in a printed command.
  if (url.search || url.hash) throw new ValidationError(`--url is the server's address without ?query or #fragment (got ${JSON.stringify(shown)}): give the token with --token or REASONQ_API_TOKEN`, 'url');
  return url.href.replace(/\/$/, '');
}

/** --token: the server's tokens are at least 16 printable characters; the value is never echoed. */
export function token(value: string): string {
  if (value.length < 16 || !/^[\x21-\x7e]+$/.test(value)) {
    throw new ValidationError(`--token must be one of the server's tokens: at least 16 printable characters without spaces (the value given is not repeated here)`, 'token');
  }
  return value;
}

/** --cursor: the opaque value a previous page handed out. */
export function cursor(value: string): string {
  if (!/^[A-Za-z0-9_-]{1,512}$/.test(value)) throw new ValidationError(`--cursor must be the cursor a previous \`reasonq list\` printed (after "more:") ${got(value)}`, 'cursor');
  return value;
}
