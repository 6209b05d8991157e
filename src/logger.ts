/**
 * pino logs to stderr (stdout belongs to the CLI's output). Library code
 * never prints; every line about a job carries job_id, queue and worker_id.
 *
 * Two formats: `json` (one pino object a line, for collectors) and `pretty`
 * (one readable line an event, for a person at a terminal, src/log-pretty.ts).
 * Unless told, the format follows the destination: pretty on a terminal,
 * JSON into a pipe or a file.
 */
import { pino, type Logger } from 'pino';
import { createPrettyWriter } from './log-pretty.js';

export type { Logger };

export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Where a logger writes: a stream, and whether it is a terminal. */
export type LogDestination = { write(text: string): unknown; isTTY?: boolean | undefined };

export interface LoggerOptions {
  level?: string | undefined;
  name?: string | undefined;
  /** `pretty` or `json`; unset, REASONQ_LOG_FORMAT (checked by src/config.ts), else pretty when the destination is a terminal, JSON otherwise */
  format?: LogFormat | undefined;
  /** default stderr (fd 2) */
  destination?: LogDestination | undefined;
  /** colour the level in pretty lines; default: when the destination is a terminal and NO_COLOR is unset */
  colors?: boolean | undefined;
}

/** The format a logger writes: the one asked for, else pretty on a terminal and JSON anywhere else. */
export function pickLogFormat(asked: LogFormat | undefined, destination: { isTTY?: boolean | undefined }): LogFormat {
  return asked ?? (destination.isTTY === true ? 'pretty' : 'json');
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const base = { name: options.name ?? 'reasonq', level: options.level ?? process.env.REASONQ_LOG_LEVEL ?? 'info' };
  const tty = options.destination ? options.destination.isTTY === true : process.stderr.isTTY === true;
  const fromEnv = LOG_FORMATS.find((f) => f === process.env.REASONQ_LOG_FORMAT);
  const format = pickLogFormat(options.format ?? fromEnv, { isTTY: tty });
  // Synchronous writes to fd 2: the last lines before a process.exit are not lost.
  const sink = options.destination ?? pino.destination({ dest: 2, sync: true });
  if (format === 'json') return pino(base, sink);
  return pino(base, createPrettyWriter(sink, { colors: options.colors ?? (tty && !('NO_COLOR' in process.env)) }));
}

/** A logger that drops everything, for library users who pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
