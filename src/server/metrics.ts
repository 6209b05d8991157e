/** Prometheus metrics (prom-client): queue depth read from the store on scrape, counters for what passes through, wait/run histograms fed from the store's rollups (metrics-rollups.ts). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Transport } from '../transport.js';
import { registerRollupMetrics } from './metrics-rollups.js';

export interface Metrics {
  registry: Registry;
  /** The label for a queue name: callers choose queue names, so past a bound they share one label instead of growing the registry without end. */
  queueLabel(queue: string): string;
  httpRequests: Counter<'method'>;
  /** long-polls refused at their kind's limit (429) */
  pollsRefused: Counter<'kind'>;
  enqueued: Counter<'queue'>;
  finished: Counter<'queue' | 'status'>;
  jobDuration: Histogram<'queue' | 'outcome'>;
}

/** Distinct queue labels kept per counter family; beyond, `(other)`. */
const MAX_QUEUE_LABELS = 500;

export function createMetrics(transport: Transport): Metrics {
  const registry = new Registry();
  const labels = new Set<string>();
  collectDefaultMetrics({ register: registry, prefix: 'reasonq_process_' });
  new Gauge({
    name: 'reasonq_jobs',
    help: 'Jobs in the store by queue and status (queued: due now; delayed: run_at in the future; the two do not overlap)',
    labelNames: ['queue', 'status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const stats = await transport.stats();
      for (const [queue, counts] of Object.entries(stats.queues)) {
        for (const [status, n] of Object.entries(counts)) this.set({ queue, status }, n);
      }
    },
  });
  new Gauge({
    name: 'reasonq_workers',
    help: 'Workers in the registry by liveness',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const now = Date.now();
      const workers = await transport.workers();
      const alive = workers.filter((w) => now - w.last_seen.getTime() <= w.ttl_ms).length;
      this.set({ state: 'alive' }, alive);
      this.set({ state: 'dead' }, workers.length - alive);
    },
  });
  const queueLabel = (queue: string): string => {
    if (labels.has(queue)) return queue;
    if (labels.size >= MAX_QUEUE_LABELS) return '(other)';
    labels.add(queue);
    return queue;
  };
  // Wait and run histograms, endings and tokens: from the store's rollups, each closed minute once (metrics-rollups.ts).
  registerRollupMetrics(registry, transport, queueLabel);
  return {
    registry,
    queueLabel,
    httpRequests: new Counter({ name: 'reasonq_http_requests_total', help: 'HTTP requests received', labelNames: ['method'] as const, registers: [registry] }),
    pollsRefused: new Counter({ name: 'reasonq_long_polls_refused_total', help: 'Long-polls refused at their limit (429), by kind', labelNames: ['kind'] as const, registers: [registry] }),
    enqueued: new Counter({ name: 'reasonq_jobs_enqueued_total', help: 'Jobs enqueued through this server', labelNames: ['queue'] as const, registers: [registry] }),
    finished: new Counter({ name: 'reasonq_jobs_finished_total', help: 'Attempts ended through this server or its embedded worker, by outcome', labelNames: ['queue', 'status'] as const, registers: [registry] }),
    jobDuration: new Histogram({
      name: 'reasonq_job_duration_seconds',
      help: 'Handler run time of the embedded worker',
      labelNames: ['queue', 'outcome'] as const,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60],
      registers: [registry],
    }),
  };
}
