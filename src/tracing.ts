/**
 * OpenTelemetry traces, after the messaging conventions
 * (https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/):
 * a PRODUCER span `send <queue>` around an enqueue, whose context rides on
 * the job (`Job.trace`, W3C `traceparent`/`tracestate`), and a CONSUMER span
 * `process <queue>` around every run of the handler, a child of that context
 * and linked to it. An enqueue in an agent runtime and each attempt in a
 * worker, in whatever process or store, read as one trace.
 *
 * Only `@opentelemetry/api` is imported. Without an SDK registered its
 * tracer is a no-op: nothing records, nothing is written on the job (`trace`
 * stays null) and a run takes the shared NO_PROCESS below. The carrier is
 * written and read here rather than by the app's global propagator: the
 * field is W3C trace context whatever propagator the app configured (B3,
 * none at all), so a runtime in any language reads it the same way.
 *
 * No span is made for what is not a message being sent or processed: empty
 * claims, heartbeats, lease renewals, sweeps.
 */
import { readFileSync } from 'node:fs';
import { context, createTraceState, isSpanContextValid, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type SpanContext } from '@opentelemetry/api';
import { TRACEPARENT_RE, tracestateSchema, traceCarrierSchema, TRACESTATE_MAX, type Job, type JobError, type TraceCarrier } from './job.js';

/** `messaging.system` of every span, and the tracer's name. */
export const MESSAGING_SYSTEM = 'reasonq';
const VERSION = packageVersion();

/**
 * Asked of the global API at each use rather than kept: a tracer kept from
 * one SDK would go on recording into it after the app (or a test) disabled
 * it. With an SDK this is a map lookup; without, a small proxy object.
 */
const tracer = () => trace.getTracer(MESSAGING_SYSTEM, VERSION);

/** The W3C carrier of a span context; null for an invalid one (no SDK, nothing to continue). */
export function carrierOf(sc: SpanContext): TraceCarrier | null {
  if (!isSpanContextValid(sc)) return null;
  const carrier: TraceCarrier = { traceparent: `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}` };
  const state = fitTracestate(sc.traceState?.serialize() ?? '');
  if (state) carrier.tracestate = state;
  return carrier;
}

/** A tracestate within the limit: list members dropped from the right until it fits (W3C), left out if not printable. */
function fitTracestate(state: string): string {
  if (!state) return '';
  let fitted = state;
  while (fitted.length > TRACESTATE_MAX) fitted = fitted.slice(0, Math.max(0, fitted.lastIndexOf(',')));
  return tracestateSchema.safeParse(fitted).success ? fitted : '';
}

/**
 * The remote span context a job carries; null when it carries none or one
 * that does not parse (a store's record is checked again: it may predate
 * the schema or come from another writer).
 */
export function spanContextOf(carrier: TraceCarrier | null | undefined): SpanContext | null {
  if (!carrier || typeof carrier.traceparent !== 'string' || !TRACEPARENT_RE.test(carrier.traceparent)) return null;
  const [, traceId, spanId, flags] = carrier.traceparent.split('-') as [string, string, string, string];
  const sc: SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true };
  if (typeof carrier.tracestate === 'string' && carrier.tracestate) sc.traceState = createTraceState(carrier.tracestate);
  return isSpanContextValid(sc) ? sc : null;
}

/**
 * The trace context of an HTTP request's `traceparent`/`tracestate`
 * headers, for a producer that propagates by header (a runtime with its own
 * OpenTelemetry). An invalid traceparent is ignored, as W3C asks of a
 * receiver; an invalid tracestate is dropped alone.
 */
export function carrierFromHeaders(headers: Record<string, string | string[] | undefined>): TraceCarrier | undefined {
  const traceparent = headers.traceparent;
  if (typeof traceparent !== 'string') return undefined;
  const tracestate = headers.tracestate;
  const full = traceCarrierSchema.safeParse(typeof tracestate === 'string' && tracestate ? { traceparent, tracestate } : { traceparent });
  if (full.success) return full.data;
  const alone = traceCarrierSchema.safeParse({ traceparent });
  return alone.success ? alone.data : undefined;
}

/** The attributes the conventions ask for on both sides. */
function messageAttributes(operation: 'send' | 'process', queue: string | null, job: Job | null): Attributes {
  const attributes: Attributes = { 'messaging.system': MESSAGING_SYSTEM, 'messaging.operation.name': operation, 'messaging.operation.type': operation };
  if (queue !== null) attributes['messaging.destination.name'] = queue;
  if (job) {
    attributes['messaging.message.id'] = job.id;
    if (typeof job.payload.session_id === 'string') attributes['messaging.message.conversation_id'] = job.payload.session_id;
  }
  return attributes;
}

/**
 * Run an enqueue of `jobs` inside a PRODUCER span `send <queue>`, after
 * writing the span's context on each job's `trace`. Its parent is the
 * caller's active span or, when there is none, the `trace` a single job was
 * given (a context that came from elsewhere). When there is no span context
 * (no SDK), the jobs keep the `trace` they were built with (null unless the
 * caller gave one) and `send` is called as is. `batch`: an enqueueMany,
 * which counts its messages.
 */
export async function traceSend<T>(jobs: Job[], send: () => Promise<T>, { batch = false } = {}): Promise<T> {
  const first = jobs[0];
  const queue = first && jobs.every((j) => j.queue === first.queue) ? first.queue : null;
  const attributes = messageAttributes('send', queue, jobs.length === 1 && first ? first : null);
  if (batch) attributes['messaging.batch.message_count'] = jobs.length;
  const given = jobs.length === 1 && first?.trace && !trace.getSpanContext(context.active()) ? spanContextOf(first.trace) : null;
  const parent = given ? trace.setSpanContext(context.active(), given) : context.active();
  const span = tracer().startSpan(queue ? `send ${queue}` : 'send', { kind: SpanKind.PRODUCER, attributes }, parent);
  const carrier = carrierOf(span.spanContext());
  if (!carrier) {
    span.end();
    return send();
  }
  for (const job of jobs) job.trace = carrier;
  try {
    return await context.with(trace.setSpan(context.active(), span), send);
  } catch (error) {
    failSpan(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** A run's CONSUMER span, as the worker drives it. */
export interface ProcessTrace {
  /** Call `fn` with the span active: what a handler starts (a model call) nests under it. */
  active<T>(fn: () => T): T;
  /** The attempt failed: ERROR with the job error's code and message, and the exception when one was thrown. */
  failed(error: JobError, exception?: unknown): void;
  /** End the span with how the run ended (`reasonq.outcome`); a run whose lease was lost is an ERROR too. Call once. */
  end(outcome: string): void;
}

/** What a run gets when nothing is traced: the handler called as is, nothing made per job. */
const NO_PROCESS: ProcessTrace = { active: (fn) => fn(), failed: () => undefined, end: () => undefined };

/**
 * Start the CONSUMER span `process <queue>` of one run of `job`. Its parent
 * is the producer's context stored on the job (one trace from the enqueue to
 * every attempt, across retries and migrations, since the context is part of
 * the job) and it links to it, as the conventions ask of consumers. A job
 * without a context starts a trace of its own.
 */
export function startProcessSpan(job: Job, workerId: string): ProcessTrace {
  const producer = spanContextOf(job.trace);
  const attributes = messageAttributes('process', job.queue, job);
  attributes['messaging.client.id'] = workerId;
  attributes['reasonq.attempt'] = job.attempts;
  const span = tracer().startSpan(
    `process ${job.queue}`,
    { kind: SpanKind.CONSUMER, attributes, links: producer ? [{ context: producer }] : [] },
    producer ? trace.setSpanContext(ROOT_CONTEXT, producer) : ROOT_CONTEXT,
  );
  if (!isSpanContextValid(span.spanContext())) return NO_PROCESS;
  const active: Context = trace.setSpan(ROOT_CONTEXT, span);
  let errored = false;
  return {
    active: (fn) => context.with(active, fn),
    failed: (error, exception) => {
      errored = true;
      if (exception !== undefined) span.recordException(exception instanceof Error ? exception : String(exception));
      span.setAttribute('error.type', error.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    },
    end: (outcome) => {
      span.setAttribute('reasonq.outcome', outcome);
      if (outcome === 'lost' && !errored) {
        span.setAttribute('error.type', 'LEASE_LOST');
        span.setStatus({ code: SpanStatusCode.ERROR, message: 'the lease was lost before the outcome was written; the run is dropped' });
      }
      span.end();
    },
  };
}

/** Record a thrown value on a span as its exception and mark it ERROR. */
function failSpan(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}

/** This package's version (the tracer's), from its package.json next to src/ or dist/src/. */
function packageVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'reasonq' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not this one
    }
  }
  return '0.0.0';
}
