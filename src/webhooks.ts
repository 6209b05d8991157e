/**
 * Callback signatures in the Standard Webhooks format (`webhook-id`,
 * `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` over
 * `id.timestamp.body`), so that receivers can use any Standard Webhooks
 * library. Signing and the signature check are the spec's reference package
 * (`standardwebhooks`); what it leaves to the receiver — several secrets for
 * rotation, a configurable clock-skew tolerance, replay protection — is here.
 *
 * Secrets are `whsec_` + base64 (24 to 64 random bytes). Several, comma
 * separated in `REASONQ_CALLBACK_SECRET`: we sign with the first, receivers
 * verify with any, so a secret can be rotated without a gap.
 */
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { ReasonqError } from './errors.js';

export const SECRET_PREFIX = 'whsec_';
/** The reference package refuses timestamps further off than this whatever the caller asks. */
const MAX_TOLERANCE_SEC = 300;

/** Throws unless `secret` is `whsec_` + base64 of 24 to 64 bytes. */
export function assertSecret(secret: string): void {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error('a callback secret must start with whsec_ (then base64)');
  const body = secret.slice(SECRET_PREFIX.length);
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(body) ? Buffer.from(body, 'base64').length : 0;
  if (bytes < 24 || bytes > 64) throw new Error('a callback secret must be whsec_ followed by the base64 of 24 to 64 random bytes');
}

/** A fresh secret, for `reasonq secret` and the README. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** Headers for one delivery of `body`, signed with the first secret. */
export function signDelivery(id: string, body: string, secrets: readonly string[], now = new Date()): SignedHeaders | Pick<SignedHeaders, 'webhook-id' | 'webhook-timestamp'> {
  const timestamp = String(Math.floor(now.getTime() / 1000));
  if (secrets.length === 0) return { 'webhook-id': id, 'webhook-timestamp': timestamp };
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': new Webhook(secrets[0]!).sign(id, now, body) };
}

/** `code` is CALLBACK_SIGNATURE_INVALID, or CALLBACK_REPLAYED for an id seen before (a receiver answers 2xx to those: it has the delivery). */
export class CallbackVerificationError extends ReasonqError {
  override readonly status = 401;
  constructor(message: string, code = 'CALLBACK_SIGNATURE_INVALID') {
    super(code, message);
  }
}

/** Remembers delivery ids for the tolerance window, so that a captured delivery cannot be played again. */
export interface ReplayGuard {
  /** true the first time an id is seen within the window */
  firstSeen(id: string, nowMs?: number): boolean;
}

export function createReplayGuard(windowMs = 2 * MAX_TOLERANCE_SEC * 1000, maxIds = 100_000): ReplayGuard {
  const seen = new Map<string, number>();
  return {
    firstSeen(id, nowMs = Date.now()) {
      for (const [k, expires] of seen) {
        if (expires > nowMs && seen.size < maxIds) break;
        seen.delete(k);
      }
      if (seen.has(id)) return false;
      seen.set(id, nowMs + windowMs);
      return true;
    },
  };
}

export interface VerifyOptions {
  /** accepted clock skew either way, in seconds (at most 300), default 300 */
  toleranceSec?: number;
  /** refuse a delivery id seen before (pass one guard per receiver) */
  replay?: ReplayGuard;
  now?: Date;
}

/**
 * Check a delivery as a receiver: the signature against any of `secrets`,
 * the timestamp within the tolerance, the id not seen before (when a replay
 * guard is given). Returns the parsed body; throws CallbackVerificationError.
 *
 * ```ts
 * const replay = createReplayGuard();
 * app.post('/hook', { config: { rawBody: true } }, (req) => {
 *   const { job } = verifyCallback(req.headers, req.rawBody, process.env.REASONQ_CALLBACK_SECRET!.split(','), { replay });
 * });
 * ```
 */
export function verifyCallback(
  headers: Record<string, string | string[] | undefined>,
  rawBody: string | Buffer,
  secrets: string | readonly string[],
  options: VerifyOptions = {},
): { job: Record<string, unknown> } {
  const list = (typeof secrets === 'string' ? secrets.split(',') : secrets).map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new CallbackVerificationError('no secret to verify with');
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) h[k.toLowerCase()] = Array.isArray(v) ? v.join(' ') : v;
  const id = h['webhook-id'];
  const ts = Number(h['webhook-timestamp']);
  if (!id || !h['webhook-signature'] || !Number.isInteger(ts)) throw new CallbackVerificationError('missing webhook-id, webhook-timestamp or webhook-signature');
  const tolerance = Math.min(options.toleranceSec ?? MAX_TOLERANCE_SEC, MAX_TOLERANCE_SEC);
  const nowSec = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (Math.abs(nowSec - ts) > tolerance) throw new CallbackVerificationError(`webhook-timestamp is ${nowSec - ts} s away from now (tolerance ${tolerance} s)`);
  const body = typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8');
  let parsed: unknown;
  const matched = list.some((secret) => {
    try {
      parsed = new Webhook(secret).verify(body, { 'webhook-id': id, 'webhook-timestamp': h['webhook-timestamp']!, 'webhook-signature': h['webhook-signature']! });
      return true;
    } catch {
      return false;
    }
  });
  if (!matched) throw new CallbackVerificationError('no signature matches any of the secrets');
  if (options.replay && !options.replay.firstSeen(id)) throw new CallbackVerificationError(`delivery ${id} was seen before (replay)`, 'CALLBACK_REPLAYED');
  return parsed as { job: Record<string, unknown> };
}
