/**
 * `npm run bench:tracing [off|on]`: what tracing (src/tracing.ts) costs, on
 * the memory store, where the library's own work is most of a job's cost.
 *
 * - `off` (default): the OpenTelemetry API alone, no SDK: what every user
 *   who has not set OpenTelemetry up runs. Compare with the same script run
 *   against a build from before tracing to see what the no-op path costs.
 * - `on`: an SDK that keeps every span (AlwaysOn) with a BatchSpanProcessor
 *   and an exporter that drops what it is given: the cost of making the
 *   spans, not of shipping them.
 *
 * Two figures: `client.enqueue` awaited one by one (one `send` span each),
 * and no-op jobs processed at concurrency 50 (one `process` span each), as
 * jobs/s and as CPU time per job (user + system): on a shared machine the
 * CPU time moves far less than the wall clock.
 */
import { cpus } from 'node:os';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { createClient } from '../../dist/src/client.js';
import { createWorker } from '../../dist/src/worker.js';
import { createMemoryTransport } from '../../dist/transports/memory/index.js';
import { fill } from './common.js';

const mode = process.argv[2] ?? 'off';
if (mode !== 'off' && mode !== 'on') throw new Error(`mode must be off or on (got ${mode})`);
/** 20 000: at 5 000 the SDK's warm-up weighed as much as its steady cost */
const ENQUEUES = 20_000;
const JOBS = 20_000;

let provider: BasicTracerProvider | null = null;
if (mode === 'on') {
  let exported = 0;
  const drop: SpanExporter = {
    export: (spans: ReadableSpan[], done) => {
      exported += spans.length;
      done({ code: 0 });
    },
    shutdown: async () => console.log(`(${exported} spans made and dropped)`),
  };
  provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(drop, { maxQueueSize: 100_000, maxExportBatchSize: 4096 })] });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}

const store = createMemoryTransport({ maxJobs: 1_000_000 });
await store.init();
const client = await createClient({ transport: store });

/** Run `fn` over `n` jobs: jobs/s and CPU µs per job. */
async function measure(n: number, fn: () => Promise<void>): Promise<string> {
  const cpu = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const used = process.cpuUsage(cpu);
  return `${Math.round(n / seconds)} jobs/s, ${((used.user + used.system) / n).toFixed(1)} µs CPU/job`;
}

const enqueued = await measure(ENQUEUES, async () => {
  for (let i = 0; i < ENQUEUES; i++) await client.enqueue({ goal: 'bench' }, { queue: 'bench-enqueue' });
});

await fill(store, 'bench-process', JOBS);
let done = 0;
let allDone!: () => void;
const all = new Promise<void>((resolve) => (allDone = resolve));
const worker = createWorker({ transport: store, queues: ['bench-process'], concurrency: 50, handler: async () => ({ action: 'finish', finish: true }), claimWaitMs: 1000 });
worker.on('job:end', () => {
  if (++done === JOBS) allDone();
});
const processed = await measure(JOBS, async () => {
  await worker.start();
  await all;
});
await worker.stop();
await client.close();
await store.close();
await provider?.shutdown();

console.log(`tracing ${mode}, Node ${process.version}, ${cpus().length} cores: client.enqueue ${enqueued}; process c=50 ${processed}`);
