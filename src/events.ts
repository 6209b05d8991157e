/**
 * A job's event stream: what its runs said as they went (tokens, tool-call
 * drafts, "thinking…" stages, progress) and what happened to it (queued,
 * started, retry, cancel, the ending), in one ordered, durable log per job.
 *
 * - Every event has an id, 1, 2, 3 … per job, in the order the store wrote
 *   them; a reader resumes after any id with no gap and no duplicate.
 * - A handler's events are appended fenced on its lease token: a run that
 *   lost its lease cannot write into the stream. The store writes the
 *   lifecycle events itself, in the same step as the change they report.
 * - The store keeps the newest `eventsMax` events of a job. A reader whose
 *   offset was trimmed away gets a `trimmed` marker (its id is the last
 *   event dropped) instead of a silent gap. Events go with their job.
 */
import { z } from 'zod';
import { ValidationError } from './errors.js';
import { MAX_JSON_DEPTH, withinDepth } from './job.js';

/** One event of a job's stream. */
export interface JobEvent {
  /** 1, 2, 3 … per job, in the order written */
  id: number;
  /** a lifecycle type (LIFECYCLE_EVENTS), `trimmed`, or one a handler chose (`token`, `thinking`, `progress`, `usage` …) */
  type: string;
  /** when the store wrote it */
  at: Date;
  /** the attempt that wrote it (0 before the first claim) */
  attempt: number;
  data: unknown;
}

/** What a handler appends; the store gives it an id, a time and the attempt. */
export interface NewEvent {
  type: string;
  data: unknown;
}

/** Events the store writes itself; a handler may not forge them. */
export const LIFECYCLE_EVENTS = ['queued', 'started', 'retry', 'cancel_requested', 'canceled', 'done', 'error'] as const;
export type LifecycleEvent = (typeof LIFECYCLE_EVENTS)[number];
/** The marker of a gap left by trimming: `data: { after, dropped }`, its id the last event dropped. */
export const TRIMMED = 'trimmed';
const RESERVED = new Set<string>([...LIFECYCLE_EVENTS, TRIMMED]);

/** A page of a job's stream. */
export interface EventPage {
  /** in id order, starting right after the `after` asked (a `trimmed` marker first when that part is gone) */
  events: JobEvent[];
  /** the id of the job's newest event (0: none yet) */
  last: number;
  /** the job is finished and this page reaches its newest event: nothing more will come unless it is retried */
  end: boolean;
}

export interface ReadEventsOptions {
  /** return events after this id; 0 (default): from the start */
  after?: number | undefined;
  /** at most this many events (default and cap: EVENTS_PAGE_MAX) */
  limit?: number | undefined;
  /** when there is nothing after `after` yet, wait this long for more (0: answer at once) */
  wait_ms?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** A page holds at most this many events. */
export const EVENTS_PAGE_MAX = 1000;
/** One append (a coalesced batch) carries at most this many events. */
export const APPEND_MAX = 500;

/** Token usage a handler reports with a `usage` event; the store totals it on the job (`Job.usage`). */
export const usageSchema = z.object({
  prompt_tokens: z.number().int().nonnegative().max(1e12),
  completion_tokens: z.number().int().nonnegative().max(1e12),
});
export type Usage = z.infer<typeof usageSchema>;

/** An event type a handler or remote worker may append (lifecycle types are the store's). */
export const eventTypeSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_.:-]{0,63}$/, 'an event type is 1-64 characters: a lowercase letter, then letters, digits, _ . : -')
  .refine((t) => !RESERVED.has(t), 'that is a lifecycle event type: only the store writes it');

/**
 * Check what a handler (or a remote worker) appends, and return it with its
 * data as stored (JSON: `undefined` → null). Throws ValidationError naming
 * the limit: the type, the depth, `maxBytes` of JSON per event.
 */
export function checkEvent(type: string, data: unknown, maxBytes: number): NewEvent {
  const parsedType = eventTypeSchema.safeParse(type);
  if (!parsedType.success) throw new ValidationError(`event type: ${parsedType.error.issues[0]!.message}`, 'type');
  if (!withinDepth(data)) throw new ValidationError(`event data nests deeper than ${MAX_JSON_DEPTH} levels`, 'data');
  let text: string | undefined;
  try {
    text = JSON.stringify(data ?? null);
  } catch (error) {
    throw new ValidationError(`event data is not JSON: ${(error as Error).message}`, 'data');
  }
  if (Buffer.byteLength(text) > maxBytes) {
    throw new ValidationError(`event data is ${Buffer.byteLength(text)} bytes of JSON, more than the ${maxBytes} allowed (REASONQ_EVENT_MAX_BYTES)`, 'data');
  }
  if (type === 'usage' && !usageSchema.safeParse(data).success) {
    throw new ValidationError('a usage event carries { prompt_tokens, completion_tokens }, whole numbers', 'data');
  }
  return { type, data: JSON.parse(text) as unknown };
}

/** Total of a job's usage events. */
export function addUsage(total: Usage | null, more: Usage): Usage {
  return { prompt_tokens: (total?.prompt_tokens ?? 0) + more.prompt_tokens, completion_tokens: (total?.completion_tokens ?? 0) + more.completion_tokens };
}

/** An event from its JSON form (dates as strings), as the http transport and the CLI receive it. */
export function reviveEvent(raw: { id: number; type: string; at: string | number | Date; attempt: number; data?: unknown }): JobEvent {
  return { id: raw.id, type: raw.type, at: new Date(raw.at), attempt: raw.attempt, data: raw.data ?? null };
}

/** The marker a reader gets when events after `after` up to `last` were trimmed away. */
export function trimmedMarker(after: number, lastDropped: number, at: Date): JobEvent {
  return { id: lastDropped, type: TRIMMED, at, attempt: 0, data: { after, dropped: lastDropped - after } };
}

/** A terminal lifecycle event: a reader that has it and nothing after it may stop (unless the job is retried). */
export function isEnding(event: Pick<JobEvent, 'type'>): boolean {
  return event.type === 'done' || event.type === 'error' || event.type === 'canceled';
}

const offset = (name: string, value: unknown, allowNull = false): void => {
  if (allowNull && value === null) return;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new ValidationError(`${name} must be a whole number from 0 (got ${String(value)})`, name);
};

/** What every store may rely on in a read: whole, non-negative offsets and bounds. */
export function assertReadOptions(options: ReadEventsOptions): void {
  if (options.after !== undefined) offset('after', options.after);
  if (options.limit !== undefined) offset('limit', options.limit);
  if (options.wait_ms !== undefined) offset('wait_ms', options.wait_ms);
}

/** What every store may rely on in an append: 1 to APPEND_MAX events, `written` null or a whole number from 0. */
export function assertAppend(events: NewEvent[], written: number | null): void {
  offset('written', written, true);
  if (!Array.isArray(events) || events.length === 0 || events.length > APPEND_MAX) throw new ValidationError(`an append carries 1 to ${APPEND_MAX} events`, 'events');
}
