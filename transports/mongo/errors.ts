/**
 * The one place where MongoDB driver errors become reasonq errors, so that a
 * failure reads the same here as on every other store. Network trouble,
 * elections and shutdowns are retryable `TransportError`s: the worker loop
 * backs off and carries on when the server is back.
 */
import { MongoError, MongoNetworkError, MongoServerError, MongoServerSelectionError, MongoTopologyClosedError, MongoNotConnectedError } from 'mongodb';
import { redactUri } from '../../src/config.js';
import { PayloadTooLargeError, ReasonqError, TransportError } from '../../src/errors.js';

/**
 * Server codes that mean "not now", not "this command is wrong": host
 * unreachable, network timeout, shutdown in progress, elections, time limits.
 */
const TRANSIENT_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 50, 64]);

/** FerretDB (and old servers) answer `NotImplemented` for features they lack. */
const NOT_IMPLEMENTED = 238;

/** Error code of the server, when it has one. */
function errorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * A unique index refused the write. MongoDB says 11000; FerretDB says 11000
 * on insert but `InternalError` with "UNIQUE constraint failed" on updates.
 */
export function isDuplicateKey(error: unknown): boolean {
  const code = errorCode(error);
  if (code === 11000 || code === 11001) return true;
  return error instanceof Error && /UNIQUE constraint failed|E11000/.test(error.message);
}

/**
 * The write errors of an unordered insert, by position in what was sent, each
 * told duplicate (a unique index refused it) or not; null when the failure
 * says nothing about which documents landed (a dropped connection).
 */
export function writeErrorsOf(error: unknown): { index: number; duplicate: boolean }[] | null {
  const raw = (error as { writeErrors?: unknown } | null)?.writeErrors;
  const list = (Array.isArray(raw) ? raw : raw ? [raw] : []) as { index?: unknown; code?: unknown; errmsg?: unknown }[];
  if (list.length === 0 || list.some((e) => typeof e.index !== 'number')) return null;
  return list.map((e) => ({ index: e.index as number, duplicate: isDuplicateKey(Object.assign(new Error(String(e.errmsg ?? '')), { code: e.code })) }));
}

export function isNotImplemented(error: unknown): boolean {
  return errorCode(error) === NOT_IMPLEMENTED || (error instanceof Error && /not ?implemented|not supported/i.test(error.message));
}

/** Whether trying again later may help. */
function isTransient(error: unknown): boolean {
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError || error instanceof MongoNotConnectedError) return true;
  if (error instanceof MongoError && (error.hasErrorLabel('RetryableWriteError') || error.hasErrorLabel('ResetPool') || error.hasErrorLabel('TransientTransactionError'))) return true;
  const code = errorCode(error);
  return code !== undefined && TRANSIENT_CODES.has(code);
}

/** Translate anything the driver throws; reasonq errors pass through unchanged. */
/** BSON too large, on the driver side (RangeError, BSONError) or the server's (10334, 17419, 17420). */
function isTooLarge(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (code === 10334 || code === 17419 || code === 17420) return true;
  const name = (error as { name?: unknown }).name;
  const message = error instanceof Error ? error.message : '';
  return (name === 'RangeError' || name === 'BSONError' || name === 'BSONOffsetError') && /offset|size|too large|out of range/i.test(message);
}

export function fromMongoError(error: unknown, uri: string): ReasonqError {
  if (error instanceof ReasonqError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const where = `MongoDB at ${redactUri(uri)}`;
  if (error instanceof MongoTopologyClosedError) {
    return new TransportError(`${where}: the mongo transport is closed`, { cause: error, retryable: false, code: 'TRANSPORT_CLOSED' });
  }
  if (isTransient(error)) {
    return new TransportError(`${where} is unavailable: ${message}`, { cause: error, retryable: true });
  }
  if (isTooLarge(error)) {
    return new PayloadTooLargeError(`${where}: the document is larger than the server takes: ${message}`);
  }
  if (error instanceof MongoServerError) {
    return new TransportError(`${where} refused the command: ${message}`, { cause: error, retryable: false, code: 'TRANSPORT_FAILED' });
  }
  return new TransportError(`${where} failed: ${message}`, { cause: error, retryable: false, code: 'TRANSPORT_FAILED' });
}
