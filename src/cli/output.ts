/** CLI output: readable lines on a terminal, JSON with --json. Errors go to stderr. */
import type { Analytics, Summary } from '../analytics.js';
import { ReasonqError } from '../errors.js';
import { isStalled, type Job } from '../job.js';
import type { RunRecord } from '../runs.js';
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

/** A span of time as a person reads it: 340ms, 4.2s, 38s, 4m05s, 3h12m, 2d04h. */
export function humanMs(ms: number): string {
  const t = Math.max(0, Math.round(ms));
  if (t < 1000) return `${t}ms`;
  if (t < 10_000) return `${(t / 1000).toFixed(1)}s`;
  const s = Math.round(t / 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${two(Math.floor((s % 86_400) / 3600))}h`;
}

/** A date crossed JSON as an ISO string; in process it is a Date. */
type When = Date | string | null | undefined;
const ms = (d: When) => (d === null || d === undefined ? null : new Date(d).getTime());

const ago = (d: When, now = Date.now()) => {
  const t = ms(d);
  return t === null ? '-' : `${humanMs(now - t)} ago`;
};

export function formatIntent(intent: Job['result']): string {
  if (!intent) return '(no intent)';
  const lines = [`action:    ${plain(intent.action)}`];
  if (intent.tool_name) lines.push(`tool_name: ${plain(intent.tool_name)}`);
  if (intent.args) lines.push(`args:      ${plain(JSON.stringify(intent.args))}`);
  if (intent.finish !== undefined && intent.finish !== null) lines.push(`finish:    ${intent.finish}`);
  if (intent.reasoning) lines.push(`reasoning: ${plain(intent.reasoning)}`);
  return lines.join('\n');
}

/** Rows as aligned columns (two spaces apart), the last one not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** What the callback's delivery log says, in a line. */
function describeCallback(job: Job, now: number): string | null {
  const cb = job.callback;
  if (!cb) return job.callback_url ? `${plain(job.callback_url)} (sent when the job ends)` : null;
  const tries = `${cb.attempts} ${cb.attempts === 1 ? 'try' : 'tries'}`;
  const last = [cb.last_status ? `HTTP ${cb.last_status}` : null, cb.last_error ? plain(cb.last_error) : null].filter(Boolean).join(', ');
  if (cb.state === 'delivered') return `delivered${cb.delivered_at ? ` ${ago(cb.delivered_at, now)}` : ''} (${tries})`;
  if (cb.state === 'failed') return `failed after ${tries}${last ? `: ${last}` : ''} (given up)`;
  return `pending: ${tries} so far${last ? `, last ${last}` : ''}${cb.next_at ? `, next ${new Date(cb.next_at).toISOString()}` : ''}`;
}

/** The attempt history as a small table. */
function formatRuns(runs: RunRecord[], now: number): string {
  const rows = [['attempt', 'worker', 'started', 'took', 'end', 'error']];
  for (const run of runs) {
    const started = ms(run.started_at);
    const ended = ms(run.ended_at);
    rows.push([
      String(run.attempt),
      plain(run.worker),
      started === null ? '-' : new Date(started).toISOString(),
      started === null ? '-' : ended === null ? `${humanMs(now - started)} so far` : humanMs(ended - started),
      plain(run.end),
      run.error ? plain(`${run.error.code}: ${run.error.message}`).slice(0, 120) : '',
    ]);
  }
  return table(rows);
}

export function formatJob(job: Job, now = Date.now()): string {
  const lines = [
    `job ${job.id}`,
    `  queue:     ${job.queue}`,
    `  status:    ${job.status}${isStalled(job, now) ? ` — stalled: its lease ran out ${ago(job.lease!.until, now)} (${job.lease!.owner} stopped renewing it); the next sweep requeues it` : ''}`,
    `  attempts:  ${job.attempts}/${job.max_attempts}`,
  ];
  if (job.stalls) lines.push(`  stalls:    ${job.stalls}/${job.max_stalls} (runs that lost their lease: the worker died or froze)`);
  lines.push(`  priority:  ${job.priority}`, `  created:   ${job.created_at.toISOString()} (${ago(job.created_at, now)})`);
  if (job.status === 'queued' && job.run_at.getTime() > now) lines.push(`  runs at:   ${job.run_at.toISOString()} (in ${humanMs(job.run_at.getTime() - now)})`);
  if (job.started_at) lines.push(`  started:   ${job.started_at.toISOString()}`);
  if (job.finished_at) lines.push(`  finished:  ${job.finished_at.toISOString()}${job.started_at ? ` (ran ${humanMs(job.finished_at.getTime() - job.started_at.getTime())})` : ''}`);
  if (job.lease) lines.push(`  lease:     ${job.lease.owner} until ${job.lease.until.toISOString()}`);
  if (job.cancel_requested) lines.push(`  cancel:    asked ${ago(job.cancel_requested.at, now)}: ${plain(job.cancel_requested.reason)}`);
  if (job.progress !== null && job.progress !== undefined) lines.push(`  progress:  ${plain(typeof job.progress === 'string' ? job.progress : JSON.stringify(job.progress))}`);
  if (job.usage) lines.push(`  usage:     ${job.usage.prompt_tokens} prompt + ${job.usage.completion_tokens} completion tokens`);
  const callback = describeCallback(job, now);
  if (callback) lines.push(`  callback:  ${callback}`);
  if (job.moved_to) lines.push(`  moved to:  ${job.moved_to}`);
  lines.push(`  payload:   ${plain(JSON.stringify(job.payload))}`);
  if (job.result) lines.push(`  result:\n${formatIntent(job.result).replace(/^/gm, '    ')}`);
  if (job.error) lines.push(`  error:     ${plain(`${job.error.code}: ${job.error.message}`)}${job.error.retryable ? ' (retryable)' : ''}`);
  if (job.runs && job.runs.length > 0) lines.push(`  runs:\n${formatRuns(job.runs, now).replace(/^/gm, '    ')}`);
  return lines.join('\n');
}

/**
 * The time column of a list: how long it ran (finished), has been running
 * (processing; since its lease ran out when stalled), has waited or will
 * wait (queued).
 */
export function jobTime(job: Job, now = Date.now()): string {
  if (isStalled(job, now)) return `stalled ${humanMs(now - job.lease!.until.getTime())}`;
  if (job.status === 'processing') return job.started_at ? `running ${humanMs(now - job.started_at.getTime())}` : 'running';
  if (job.status === 'queued') {
    const due = job.run_at.getTime();
    return due > now ? `due in ${humanMs(due - now)}` : `waiting ${humanMs(now - Math.max(due, job.created_at.getTime()))}`;
  }
  if (job.finished_at && job.started_at) return humanMs(job.finished_at.getTime() - job.started_at.getTime());
  return '-';
}

/** A page of `list`: a header, one aligned row a job. */
export function formatList(jobs: Job[], now = Date.now()): string {
  if (jobs.length === 0) return 'no jobs';
  const rows = [['ID', 'QUEUE', 'STATUS', 'ATTEMPTS', 'CREATED', 'FINISHED', 'TIME', 'GOAL']];
  for (const j of jobs) {
    rows.push([
      j.id,
      j.queue,
      j.status,
      `${j.attempts}/${j.max_attempts}`,
      ago(j.created_at, now),
      j.finished_at ? ago(j.finished_at, now) : '-',
      jobTime(j, now),
      plain(String(j.payload.goal ?? '')).replace(/\s+/g, ' ').slice(0, 50),
    ]);
  }
  return table(rows);
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

const msText = (v: number | null): string => (v === null ? '-' : v < 1000 ? `${v} ms` : v < 60_000 ? `${(v / 1000).toFixed(1)} s` : `${(v / 60_000).toFixed(1)} min`);

/** The window summary of `reasonq stats`: the totals, then one line per queue when there are several. */
export function formatAnalytics(a: Analytics): string {
  const line = (s: Summary) =>
    `${s.finished} finished (${s.done} done, ${s.error} error, ${s.canceled} canceled), ${s.throughput_per_min}/min, ` +
    `failure rate ${s.failure_rate === null ? '-' : `${(s.failure_rate * 100).toFixed(1)}%`}`;
  const lines = [`last ${a.window} (${a.from} to ${a.to}): ${line(a.totals)}`];
  for (const [name, d] of [['wait', a.totals.wait_ms], ['run', a.totals.run_ms]] as const) {
    lines.push(`  ${name.padEnd(5)} p50 ${msText(d.p50)}, p90 ${msText(d.p90)}, p99 ${msText(d.p99)} (mean ${msText(d.mean)}, ${d.count} runs)`);
  }
  lines.push(`  tokens ${a.totals.usage.prompt_tokens} prompt, ${a.totals.usage.completion_tokens} completion`);
  const queues = Object.entries(a.queues);
  if (queues.length > 1) for (const [q, s] of queues) lines.push(`  ${q}: ${line(s)}, run p90 ${msText(s.run_ms.p90)}`);
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
