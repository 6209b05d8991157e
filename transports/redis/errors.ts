/**
 * The one place where ioredis and script errors become reasonq errors, so a
 * failure reads the same here as on every other store.
 */
import { redactUri } from '../../src/config.js';
import { JobNotFoundError, LeaseLostError, ReasonqError, TransportError } from '../../src/errors.js';

/** Server answers that mean "try again soon", not "this command is wrong". */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS|OOM|MOVED|ASK)\b/;

/** A URL or comma-separated list of URLs with every password masked. */
export function redactUrls(url: string): string {
  return url
    .split(',')
    .map((part) => redactUri(part.trim()))
    .join(',');
}

/**
 * Translate anything thrown by ioredis or by our Lua scripts. Scripts signal
 * contract failures with replies that start `RQ_<CODE> <id>` (lua/lib.lua).
 */
export function fromRedisError(error: unknown, url: string, lastConnectionError?: string): ReasonqError {
  if (error instanceof ReasonqError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const script = /\bRQ_([A-Z_]+) (\S+)(.*)$/.exec(message);
  if (script) {
    const [, code, id = '', rest = ''] = script;
    if (code === 'LEASE_LOST') return new LeaseLostError(id, { cause: error, ...(rest.includes('expired') ? { details: { reason: 'expired' } } : {}) });
    if (code === 'NOT_FOUND') return new JobNotFoundError(id, { cause: error });
  }
  const where = `redis at ${redactUrls(url)}`;
  if (error instanceof Error && error.name === 'ReplyError') {
    const transient = TRANSIENT_REPLY.test(message);
    return new TransportError(`${where} refused the command: ${message}`, {
      cause: error,
      retryable: transient,
      code: transient ? 'TRANSPORT_UNAVAILABLE' : 'TRANSPORT_FAILED',
    });
  }
  // ioredis' own words ("Connection is closed", "max retries") hide the
  // reason; the connection's last error (ECONNREFUSED, NOAUTH…) says it.
  const why = lastConnectionError && !message.includes(lastConnectionError) ? ` (${lastConnectionError})` : '';
  return new TransportError(`${where} is unavailable: ${message}${why}`, { cause: error, retryable: true });
}
