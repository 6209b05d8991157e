/**
 * OpenTelemetry (src/tracing.ts): an enqueue's PRODUCER `send` span and each
 * run's CONSUMER `process` span make one trace, through the memory store and
 * through a real server. An SDK with an in-memory exporter is registered
 * globally for the `with an SDK` suite only, and fully unregistered after it,
 * so no other test file records anything.
 */
import assert from 'node:assert/strict';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span as ApiSpan } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type Span, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { request } from 'undici';
import { createClient } from '../src/client.js';
import { ReasoningJobError } from '../src/errors.js';
import type { Transport } from '../src/transport.js';
import { createWorker, type Handler, type WorkerOptions } from '../src/worker.js';
import { createHttpTransport } from '../transports/http/index.js';
import { createMemoryTransport } from '../transports/memory/index.js';
import { startServer } from './server-helpers.js';
import { delay, intent } from './helpers.js';

const QUEUE = 'reasoning';

/** A fresh store; `transport` is what the client and the worker speak to (the store itself, or a server in front of it). */
async function setup(kind: 'memory' | 'http'): Promise<{ store: Transport; transport: Transport; url: string | null; done: () => Promise<void> }> {
  if (kind === 'memory') {
    const store = createMemoryTransport();
    await store.init();
    return { store, transport: store, url: null, done: () => store.close() };
  }
  const { url, store } = await startServer();
  const transport = createHttpTransport({ url });
  return { store, transport, url, done: () => transport.close() };
}

/** Start a worker on `transport`, run `fn`, stop the worker (every run's span has ended once stop resolves). */
async function withWorker<T>(transport: Transport, handler: Handler, fn: () => Promise<T>, options: Partial<WorkerOptions> = {}): Promise<T> {
  const worker = createWorker({ transport, handler, claimWaitMs: 100, backoff: { baseMs: 10, maxMs: 20 }, ...options });
  await worker.start();
  try {
    return await fn();
  } finally {
    await worker.stop();
  }
}

async function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await request(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const ids = (span: ReadableSpan | ApiSpan) => ({ traceId: span.spanContext().traceId, spanId: span.spanContext().spanId });

/** The messaging attributes both sides carry (semantic conventions). */
function assertMessaging(span: ReadableSpan, operation: 'send' | 'process', jobId: string, session: string | undefined): void {
  assert.equal(span.name, `${operation} ${QUEUE}`);
  assert.equal(span.kind, operation === 'send' ? SpanKind.PRODUCER : SpanKind.CONSUMER);
  const a = span.attributes;
  assert.equal(a['messaging.system'], 'reasonq');
  assert.equal(a['messaging.operation.name'], operation);
  assert.equal(a['messaging.operation.type'], operation);
  assert.equal(a['messaging.destination.name'], QUEUE);
  assert.equal(a['messaging.message.id'], jobId);
  assert.equal(a['messaging.message.conversation_id'], session);
  assert.equal(span.instrumentationScope.name, 'reasonq');
}

/** The consumer continues the producer: same trace, producer as parent, and a link to it. */
function assertContinues(consumer: ReadableSpan, producer: { traceId: string; spanId: string }): void {
  assert.equal(consumer.spanContext().traceId, producer.traceId, 'one trace from the enqueue to the run');
  assert.equal(consumer.parentSpanContext?.spanId, producer.spanId, "the process span's parent is the producer's context");
  assert.equal(consumer.links.length, 1);
  assert.deepEqual({ traceId: consumer.links[0]!.context.traceId, spanId: consumer.links[0]!.context.spanId }, producer, 'and it links to it');
}

describe('tracing (OpenTelemetry)', () => {
  describe('with no SDK registered (the API alone)', () => {
    it('writes no trace context on the job, and the job runs as before', async () => {
      assert.equal(trace.getTracer('probe').startSpan('probe').isRecording(), false, 'precondition: no SDK is registered');
      const { store, transport, done } = await setup('memory');
      try {
        const client = await createClient({ transport });
        const job = await client.enqueue({ goal: 'x', session_id: 's' });
        assert.equal(job.trace, null);
        assert.equal((await store.get(job.id))?.trace, null);
        const got = await withWorker(store, () => intent, () => client.agentIntent({ goal: 'y' }, { timeoutMs: 5000 }));
        assert.equal(got.action, 'tool');
        assert.deepEqual((await store.list({ queue: QUEUE })).jobs.map((j) => j.trace), [null, null]);
      } finally {
        await done();
      }
    });
  });

  describe('with an SDK', () => {
    const exporter = new InMemorySpanExporter();
    /** every span started, ended or not: a span started for an empty poll and never ended would show here */
    const started: Span[] = [];
    const counting: SpanProcessor = { onStart: (span) => void started.push(span), onEnd: () => undefined, forceFlush: async () => undefined, shutdown: async () => undefined };
    let provider: BasicTracerProvider;
    const app = trace.getTracer('agent-runtime');

    before(() => {
      provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), counting] });
      trace.setGlobalTracerProvider(provider);
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    });

    after(async () => {
      trace.disable();
      context.disable();
      propagation.disable();
      await provider.shutdown();
    });

    beforeEach(() => {
      exporter.reset();
      started.length = 0;
    });

    const spans = (kind: SpanKind) => exporter.getFinishedSpans().filter((s) => s.kind === kind);

    for (const kind of ['memory', 'http'] as const) {
      it(`one agentIntent over ${kind} is one PRODUCER send and one CONSUMER process span in one trace, linked`, async () => {
        const { store, transport, done } = await setup(kind);
        try {
          const client = await createClient({ transport });
          let modelCall: ApiSpan | null = null;
          const handler: Handler = () => {
            // What a handler starts (a model call) nests under its run's span.
            modelCall = trace.getTracer('model').startSpan('model call');
            modelCall.end();
            return intent;
          };
          const step = app.startSpan('agent step');
          const got = await withWorker(transport, handler, () => context.with(trace.setSpan(context.active(), step), () => client.agentIntent({ goal: 'trace me', session_id: 'sess-1', step: 3 }, { timeoutMs: 10_000 })));
          step.end();
          assert.equal(got.action, 'tool');

          const [producer, ...moreProducers] = spans(SpanKind.PRODUCER);
          const [consumer, ...moreConsumers] = spans(SpanKind.CONSUMER);
          assert.ok(producer && consumer, `spans: ${exporter.getFinishedSpans().map((s) => s.name).join(', ')}`);
          assert.equal(moreProducers.length + moreConsumers.length, 0, 'exactly one of each');
          const [job] = (await store.list({ queue: QUEUE })).jobs;
          assert.ok(job);
          assertMessaging(producer, 'send', job.id, 'sess-1');
          assertMessaging(consumer, 'process', job.id, 'sess-1');
          assert.equal(producer.parentSpanContext?.spanId, ids(step).spanId, "the send span is a child of the caller's span");
          assertContinues(consumer, ids(producer));
          assert.equal(consumer.attributes['reasonq.attempt'], 1);
          assert.equal(consumer.attributes['reasonq.outcome'], 'done');
          assert.equal(consumer.status.code, SpanStatusCode.UNSET);
          assert.equal(typeof consumer.attributes['messaging.client.id'], 'string');
          assert.ok(modelCall, 'the handler ran');
          const model = exporter.getFinishedSpans().find((s) => s.name === 'model call')!;
          assert.equal(model.parentSpanContext?.spanId, ids(consumer).spanId, 'the handler ran with its process span active');

          // The job carries the send span's context as W3C trace context: the standard propagator reads it.
          assert.ok(job.trace, 'the job carries the trace context');
          const carried = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, job.trace));
          assert.deepEqual({ traceId: carried?.traceId, spanId: carried?.spanId }, ids(producer));
        } finally {
          await done();
        }
      });
    }

    it('a run that fails once then succeeds: two process spans linked to the same producer, the first ERROR with its exception', async () => {
      const { store, done } = await setup('memory');
      try {
        const client = await createClient({ transport: store });
        const handler: Handler = (_payload, ctx) => {
          if (ctx.attempt === 1) throw new Error('the model is flaky');
          return intent;
        };
        await withWorker(store, handler, () => client.agentIntent({ goal: 'retry me' }, { timeoutMs: 10_000, max_attempts: 3 }));
        const [producer] = spans(SpanKind.PRODUCER);
        assert.ok(producer);
        const runs = spans(SpanKind.CONSUMER).sort((a, b) => Number(a.attributes['reasonq.attempt']) - Number(b.attributes['reasonq.attempt']));
        assert.deepEqual(runs.map((s) => s.attributes['reasonq.attempt']), [1, 2]);
        for (const run of runs) assertContinues(run, ids(producer));
        const [first, second] = runs as [ReadableSpan, ReadableSpan];
        assert.equal(first.status.code, SpanStatusCode.ERROR);
        assert.equal(first.status.message, 'the model is flaky');
        assert.equal(first.attributes['error.type'], 'HANDLER_ERROR');
        assert.equal(first.attributes['reasonq.outcome'], 'retry');
        const exception = first.events.find((e) => e.name === 'exception');
        assert.equal(exception?.attributes?.['exception.message'], 'the model is flaky');
        assert.equal(second.status.code, SpanStatusCode.UNSET);
        assert.equal(second.attributes['reasonq.outcome'], 'done');
        assert.equal(second.events.length, 0);
      } finally {
        await done();
      }
    });

    it('an attempt past its timeout ends its span ERROR with the TIMEOUT exception', async () => {
      const { store, done } = await setup('memory');
      try {
        const client = await createClient({ transport: store });
        const hang: Handler = (_payload, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error)));
        const err = await withWorker(store, hang, () => client.agentIntent({ goal: 'slow' }, { timeoutMs: 10_000, timeout_ms: 100, max_attempts: 1 }).catch((e: unknown) => e));
        assert.ok(err instanceof ReasoningJobError, String(err));
        const [run, ...more] = spans(SpanKind.CONSUMER);
        assert.ok(run);
        assert.equal(more.length, 0);
        assert.equal(run.status.code, SpanStatusCode.ERROR);
        assert.equal(run.attributes['error.type'], 'TIMEOUT');
        assert.equal(run.attributes['reasonq.outcome'], 'error');
        assert.match(String(run.events.find((e) => e.name === 'exception')?.attributes?.['exception.message']), /timeout of 100 ms/);
      } finally {
        await done();
      }
    });

    it('an idle worker makes no spans for its empty polls, heartbeats and sweeps; the one job it gets makes one', async () => {
      const { store, done } = await setup('memory');
      try {
        const client = await createClient({ transport: store });
        await withWorker(
          store,
          () => intent,
          async () => {
            await delay(400); // some twenty empty claims, heartbeats and sweeps
            assert.deepEqual(started.map((s) => s.name), [], 'nothing traced while idle');
            await client.agentIntent({ goal: 'now' }, { timeoutMs: 5000 });
          },
          { claimWaitMs: 20, heartbeatMs: 20, maintenanceMs: 20 },
        );
        assert.deepEqual(started.map((s) => s.name).sort(), [`process ${QUEUE}`, `send ${QUEUE}`]);
      } finally {
        await done();
      }
    });

    it('a trace the caller gives is the parent of the send span when no span is active; an active span wins', async () => {
      const { store, done } = await setup('memory');
      try {
        const client = await createClient({ transport: store });
        const given = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
        const job = await client.enqueue({ goal: 'x' }, { trace: given });
        const [send] = spans(SpanKind.PRODUCER);
        assert.ok(send);
        assert.deepEqual([send.spanContext().traceId, send.parentSpanContext?.spanId], ['0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331']);
        assert.equal(job.trace?.traceparent, `00-${ids(send).traceId}-${ids(send).spanId}-01`, 'the job carries the send span, child of the given context');
        exporter.reset();
        const step = app.startSpan('agent step');
        await context.with(trace.setSpan(context.active(), step), () => client.enqueue({ goal: 'y' }, { trace: given }));
        step.end();
        const [second] = spans(SpanKind.PRODUCER);
        assert.equal(second?.parentSpanContext?.spanId, ids(step).spanId);
      } finally {
        await done();
      }
    });

    it('enqueueMany is one send span whose context every job of the batch carries', async () => {
      const { store, done } = await setup('memory');
      try {
        const client = await createClient({ transport: store });
        const out = await client.enqueueMany([1, 2, 3].map((n) => ({ payload: { goal: `g${n}` } })));
        const [send, ...more] = spans(SpanKind.PRODUCER);
        assert.ok(send);
        assert.equal(more.length, 0);
        assert.equal(send.name, `send ${QUEUE}`);
        assert.equal(send.attributes['messaging.batch.message_count'], 3);
        const { traceId, spanId } = ids(send);
        for (const { job } of out) assert.equal(job.trace?.traceparent, `00-${traceId}-${spanId}-01`);
      } finally {
        await done();
      }
    });

    describe('the HTTP API takes the trace context of a producer that is not ours', () => {
      /** A span of another runtime (Python, Ruby …): only its context crosses, as headers. */
      const remote = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED, isRemote: true };
      const remoteHeaders = () => {
        const headers: Record<string, string> = {};
        propagation.inject(trace.setSpanContext(ROOT_CONTEXT, remote) as Context, headers);
        return headers;
      };
      const traceparent = `00-${remote.traceId}-${remote.spanId}-01`;

      it('from a traceparent header on /v1/jobs, /v1/jobs:batch and /v1/intents; the run continues it', async () => {
        const { url, store, done } = await setup('http');
        try {
          const headers: Record<string, string> = { ...remoteHeaders(), tracestate: 'py=1' };
          assert.equal(headers.traceparent, traceparent);
          const one = await post(url!, '/v1/jobs', { payload: { goal: 'a' } }, headers);
          assert.equal(one.status, 201);
          assert.deepEqual(one.body.job.trace, { traceparent, tracestate: 'py=1' });
          const batch = await post(url!, '/v1/jobs:batch', { jobs: [{ payload: { goal: 'b' } }, { payload: { goal: 'c' } }] }, headers);
          assert.deepEqual(batch.body.jobs.map((r: { job: { trace: unknown } }) => r.job.trace), [{ traceparent, tracestate: 'py=1' }, { traceparent, tracestate: 'py=1' }]);
          exporter.reset();
          const intentReply = await withWorker(store, () => intent, () => post(url!, '/v1/intents', { payload: { goal: 'd' }, timeout_ms: 5000 }, remoteHeaders()));
          assert.equal(intentReply.status, 200);
          assert.deepEqual(intentReply.body.job.trace, { traceparent });
          const processed = spans(SpanKind.CONSUMER);
          assert.equal(processed.length, 4, 'the worker ran the four jobs');
          for (const run of processed) assertContinues(run, { traceId: remote.traceId, spanId: remote.spanId });
          assert.equal(spans(SpanKind.PRODUCER).length, 0, 'the server makes no send spans: the producer did');
        } finally {
          await done();
        }
      });

      it("the body's trace wins over the header; an invalid header is ignored; an invalid body trace is a 400 naming the field", async () => {
        const { url, done } = await setup('http');
        try {
          const own = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' };
          const both = await post(url!, '/v1/jobs', { payload: { goal: 'a' }, trace: own }, remoteHeaders());
          assert.deepEqual(both.body.job.trace, own);
          for (const bad of ['garbage', `${traceparent}-extra`, traceparent.toUpperCase(), `00-${'0'.repeat(32)}-${remote.spanId}-01`]) {
            const ignored = await post(url!, '/v1/jobs', { payload: { goal: 'a' } }, { traceparent: bad });
            assert.equal(ignored.status, 201, bad);
            assert.equal(ignored.body.job.trace, null, bad);
          }
          const badState = await post(url!, '/v1/jobs', { payload: { goal: 'a' } }, { traceparent, tracestate: 'x'.repeat(600) });
          assert.deepEqual(badState.body.job.trace, { traceparent }, 'a tracestate past its limit is dropped alone');
          const refused: [unknown, RegExp][] = [
            [{ traceparent: 'nope' }, /^trace\.traceparent: /],
            [{ traceparent: `ff-${remote.traceId}-${remote.spanId}-01` }, /^trace\.traceparent: /],
            [{ traceparent: `00-${remote.traceId}-${'0'.repeat(16)}-01` }, /^trace\.traceparent: /],
            [{ traceparent, tracestate: 'x'.repeat(513) }, /^trace\.tracestate: /],
            [{ traceparent, tracestate: 'a=\n' }, /^trace\.tracestate: /],
            [{ traceparent, baggage: 'k=v' }, /^trace: /],
            ['00-x', /^trace: /],
          ];
          for (const [carrier, message] of refused) {
            for (const [path, body] of [
              ['/v1/jobs', { payload: { goal: 'a' }, trace: carrier }],
              ['/v1/jobs:batch', { jobs: [{ payload: { goal: 'a' }, trace: carrier }] }],
              ['/v1/intents', { payload: { goal: 'a' }, trace: carrier, timeout_ms: 100 }],
            ] as const) {
              const res = await post(url!, path, body);
              assert.equal(res.status, 400, `${path} ${JSON.stringify(carrier)}`);
              assert.match(res.body.error.message.replace(/^jobs\.0\./, ''), message, `${path} ${JSON.stringify(carrier)}: ${res.body.error.message}`);
            }
          }
        } finally {
          await done();
        }
      });
    });
  });
});
