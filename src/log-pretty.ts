/**
 * The pretty log format: one line an event, for a person at a terminal.
 *
 *   [14:02:07.311] INFO: job ended job=0193… queue=reasoning worker=4711:9f1c2a7e outcome=done duration_ms=812
 *
 * Time, level and message by pino-pretty; then the job's id, queue and
 * worker under short names, then every other field as key=value. pino-pretty
 * runs in this process, called per line (its `prettyFactory`), not as a
 * transport: a transport is a worker thread and a stream pipeline, which
 * can drop the last lines when the process exits on a signal, and a CLI
 * has no use for its throughput.
 */
import { hostname } from 'node:os';
import { prettyFactory } from 'pino-pretty';

/** Fields pino-pretty prints itself, or that say nothing on a terminal. */
const SKIP = new Set(['msg', 'level', 'time', 'pid', 'hostname', 'name']);
/** The fields of a job's lines, first and under short names. */
const LEADING: [field: string, label: string][] = [
  ['job_id', 'job'],
  ['queue', 'queue'],
  ['worker_id', 'worker'],
];

// eslint-disable-next-line no-control-regex -- escaping control characters is the point
const NEEDS_QUOTES = /[\s"=\\\u0000-\u001f\u007f-\u009f]/;
const C1 = /[\u007f-\u009f]/g;

/** Text with its control characters escaped (a message may carry a handler's error text). */
function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex -- escaping control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => (c === '\n' ? '\\n' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** A value as the terminal should see it: bare when it can be, else JSON, never a raw control character. */
function show(value: unknown): string {
  if (typeof value === 'string') {
    if (value !== '' && !NEEDS_QUOTES.test(value)) return value;
    return JSON.stringify(value).replace(C1, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) return show(value.join(','));
  return show(JSON.stringify(value));
}

/** An error as `CODE: message` (the stack stays in the JSON format). */
function showError(err: unknown): string {
  if (err && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') {
    const { code, message } = err as { code?: unknown; message: string };
    return show(typeof code === 'string' && code ? `${code}: ${message}` : message);
  }
  return show(err);
}

/** The worker's id without this machine's name: every line of this log was written here. */
function shortWorker(id: unknown, host: string): unknown {
  return typeof id === 'string' && id.startsWith(`${host}:`) ? id.slice(host.length + 1) : id;
}

/** What follows the level: the message, then the job's fields, then the rest as key=value. */
export function formatLogFields(log: Record<string, unknown>, host = hostname()): string {
  const parts = [typeof log.msg === 'string' ? escapeControls(log.msg) : ''];
  for (const [field, label] of LEADING) {
    if (log[field] !== undefined) parts.push(`${label}=${show(field === 'worker_id' ? shortWorker(log[field], host) : log[field])}`);
  }
  const leading = new Set(LEADING.map(([f]) => f));
  for (const [key, value] of Object.entries(log)) {
    if (SKIP.has(key) || leading.has(key) || value === undefined) continue;
    parts.push(`${key}=${key === 'err' || key === 'error' ? showError(value) : show(value)}`);
  }
  return parts.filter(Boolean).join(' ');
}

/**
 * A pino destination that writes each JSON line to `sink` as one pretty line.
 * Synchronous: the line is written before pino's call returns.
 */
export function createPrettyWriter(sink: { write(text: string): unknown }, options: { colors: boolean }): { write(line: string): void } {
  const host = hostname();
  const pretty = prettyFactory({
    colorize: options.colors,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,name',
    singleLine: true,
    // The fields are printed by messageFormat as key=value; no JSON object, no multi-line stack.
    hideObject: true,
    errorLikeObjectKeys: [],
    messageFormat: (log) => formatLogFields(log, host),
  });
  return {
    write(line) {
      const text = pretty(line);
      // singleLine + hideObject leaves the line unterminated
      if (text) sink.write(text.endsWith('\n') ? text : `${text}\n`);
    },
  };
}
