/** CLI output: readable lines on a terminal, JSON with --json. Errors go to stderr. */
import type { Analytics, Summary } from '../analytics.js';
import { ReasonqError } from '../errors.js';
import { isStalled, type Job } from '../job.js';
import type { Stats, WorkerInfo } from '../transport.js';
import type { JobEvent } from '../events.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printError(error: unknown, json: boolean): void {
  const err = error instanceof ReasonqError ? error.toJSON() : { code: 'ERROR', message: error instanceof Error ? error.message : String(error) };
  if (json) process.stderr.write(`${JSON.stringify({ error: err })}\n`);
  else process.stderr.write(`reasonq: ${err.code}: ${err.message}\n`);
}

const ago = (d: Date | null) => (d ? `${Math.max(0, Math.round((Date.now() - d.getTime()) / 1000))}s ago` : '-');

export function formatIntent(intent: Job['result']): string {
  if (!intent) return '(no intent)';
  const lines = [`action:    ${intent.action}`];
  if (intent.tool_name) lines.push(`tool_name: ${intent.tool_name}`);
  if (intent.args) lines.push(`args:      ${JSON.stringify(intent.args)}`);
  if (intent.finish !== undefined && intent.finish !== null) lines.push(`finish:    ${intent.finish}`);
  if (intent.reasoning) lines.push(`reasoning: ${intent.reasoning}`);
  return lines.join('\n');
}

export function formatJob(job: Job): string {
  const lines = [
    `job ${job.id}`,
    `  queue:     ${job.queue}`,
    `  status:    ${job.status}${isStalled(job) ? ` — stalled: its lease ran out ${ago(job.lease!.until)} (${job.lease!.owner} stopped renewing it); the next sweep requeues it` : ''}`,
    `  attempts:  ${job.attempts}/${job.max_attempts}`,
    `  stalls:    ${job.stalls}/${job.max_stalls}${job.stalls ? ' (runs that lost their lease: the worker died or froze)' : ''}`,
    `  priority:  ${job.priority}`,
    `  created:   ${job.created_at.toISOString()} (${ago(job.created_at)})`,
  ];
  if (job.started_at) lines.push(`  started:   ${job.started_at.toISOString()}`);
  if (job.finished_at) lines.push(`  finished:  ${job.finished_at.toISOString()}`);
  if (job.lease) lines.push(`  lease:     ${job.lease.owner} until ${job.lease.until.toISOString()}`);
  if (job.cancel_requested) lines.push(`  cancel:    asked ${ago(job.cancel_requested.at)}: ${job.cancel_requested.reason}`);
  lines.push(`  payload:   ${JSON.stringify(job.payload)}`);
  if (job.result) lines.push(`  result:\n${formatIntent(job.result).replace(/^/gm, '    ')}`);
  if (job.error) lines.push(`  error:     ${job.error.code}: ${job.error.message}${job.error.retryable ? ' (retryable)' : ''}`);
  return lines.join('\n');
}

export function formatStats(stats: Stats): string {
  // The migration's columns only while a store has any (the store a queue moved away from).
  const cols = (['queued', 'delayed', 'processing', 'done', 'error', 'canceled', 'moving', 'moved'] as const).filter((c) => (c !== 'moving' && c !== 'moved') || stats.totals[c] > 0);
  const rows = Object.entries(stats.queues).sort(([a], [b]) => a.localeCompare(b));
  const width = Math.max(5, ...rows.map(([q]) => q.length), 'total'.length);
  const head = `${'queue'.padEnd(width)}  ${cols.map((c) => c.padStart(10)).join(' ')}`;
  const line = (name: string, counts: Stats['totals']) => `${name.padEnd(width)}  ${cols.map((c) => String(counts[c]).padStart(10)).join(' ')}`;
  return [head, ...rows.map(([q, c]) => line(q, c)), line('total', stats.totals)].join('\n');
}

const ms = (v: number | null): string => (v === null ? '-' : v < 1000 ? `${v} ms` : v < 60_000 ? `${(v / 1000).toFixed(1)} s` : `${(v / 60_000).toFixed(1)} min`);

/** The window summary of `reasonq stats`: the totals, then one line per queue when there are several. */
export function formatAnalytics(a: Analytics): string {
  const line = (s: Summary) =>
    `${s.finished} finished (${s.done} done, ${s.error} error, ${s.canceled} canceled), ${s.throughput_per_min}/min, ` +
    `failure rate ${s.failure_rate === null ? '-' : `${(s.failure_rate * 100).toFixed(1)}%`}`;
  const lines = [`last ${a.window} (${a.from} to ${a.to}): ${line(a.totals)}`];
  for (const [name, d] of [['wait', a.totals.wait_ms], ['run', a.totals.run_ms]] as const) {
    lines.push(`  ${name.padEnd(5)} p50 ${ms(d.p50)}, p90 ${ms(d.p90)}, p99 ${ms(d.p99)} (mean ${ms(d.mean)}, ${d.count} runs)`);
  }
  lines.push(`  tokens ${a.totals.usage.prompt_tokens} prompt, ${a.totals.usage.completion_tokens} completion`);
  const queues = Object.entries(a.queues);
  if (queues.length > 1) for (const [q, s] of queues) lines.push(`  ${q}: ${line(s)}, run p90 ${ms(s.run_ms.p90)}`);
  return lines.join('\n');
}

export function formatWorkers(workers: (WorkerInfo & { alive?: boolean })[]): string {
  if (workers.length === 0) return 'no workers registered';
  return workers
    .map((w) => {
      const alive = w.alive ?? Date.now() - w.last_seen.getTime() <= w.ttl_ms;
      // A dead worker's counts are what it last said, not what it does now.
      const running = alive ? `running=${w.running}/${w.concurrency}` : `last running=${w.running}/${w.concurrency} (stale)`;
      return `${alive ? 'alive' : 'dead '}  ${w.id}  queues=${w.queues.join(',')}  ${running}  processed=${w.processed} failed=${w.failed}  seen ${ago(w.last_seen)}`;
    })
    .join('\n');
}

/**
 * Print a job's events as they come: JSON lines with `json`, else tokens
 * inline (as a model writes them) and every other event on a line of its own.
 */
export function createEventPrinter(json: boolean, out: NodeJS.WritableStream = process.stdout): { print(event: JobEvent): void; end(): void } {
  let inline = false;
  const line = (text: string) => {
    out.write(`${inline ? '\n' : ''}${text}\n`);
    inline = false;
  };
  return {
    print(event) {
      if (json) return void out.write(`${JSON.stringify(event)}\n`);
      const data = (event.data ?? {}) as Record<string, unknown>;
      if (event.type === 'token' && typeof data.text === 'string') {
        out.write(plain(data.text));
        inline = true;
        return;
      }
      line(`· ${plain(describeEvent(event, data))}`);
    },
    end() {
      if (inline) out.write('\n');
      inline = false;
    },
  };
}

/**
 * Text from a job (a model's tokens, a cancel reason) without the control
 * characters a terminal would obey (escape sequences can rewrite the screen
 * or the clipboard); newlines and tabs stay.
 */
export function plain(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
}

function describeEvent(event: JobEvent, data: Record<string, unknown>): string {
  const attempt = event.attempt > 0 ? ` (attempt ${event.attempt})` : '';
  switch (event.type) {
    case 'queued':
      return data.retried ? 'queued again (retried by hand)' : 'queued';
    case 'started':
      return `started${attempt} on ${String(data.worker ?? '?')}`;
    case 'thinking':
      return `thinking: ${String(data.stage ?? JSON.stringify(data))}`;
    case 'retry':
      return `retry${attempt}: ${String(data.reason)}${data.error ? `, ${(data.error as { code?: string }).code}` : ''}, runs again at ${new Date(Number(data.run_at)).toISOString()}`;
    case 'cancel_requested':
    case 'canceled':
      return `${event.type}: ${String(data.reason ?? '')}`;
    case 'error':
      return `error${attempt}: ${String(data.code)}: ${String(data.message)}`;
    case 'done':
      return `done${attempt}`;
    case 'trimmed':
      return `… ${String(data.dropped)} earlier events trimmed`;
    case 'usage':
      return `usage: ${String(data.prompt_tokens)} prompt + ${String(data.completion_tokens)} completion tokens`;
    default:
      return `${event.type}${attempt} ${JSON.stringify(event.data)}`;
  }
}
