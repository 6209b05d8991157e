/**
 * pino JSON logs to stderr (stdout belongs to the CLI's output). Library code
 * never prints; every line about a job carries job_id, queue and worker_id.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({ name: options.name ?? 'reasonq', level: options.level ?? process.env.REASONQ_LOG_LEVEL ?? 'info' }, pino.destination(2));
}

/** A logger that drops everything, for library users who pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
