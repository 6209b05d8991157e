/**
 * Callbacks: POST the finished job to its `callback_url`, signed (Standard
 * Webhooks, see webhooks.ts) and dialled only through the address guard
 * (net-guard.ts). Redirects are not followed; a failing receiver never
 * changes the job's outcome.
 *
 * Never lost (the outbox): a store records that a callback is owed in the
 * same step as the job's terminal status (`callback` on the job, `pending`;
 * the store's due index). Whoever maintains the store — the elected
 * maintainer, a worker or a server (maintenance.ts) — takes the due
 * deliveries with a lease (`claimCallbacks`), tries each once and records
 * the try (`settleCallback`): delivered, due again after a backoff, or given
 * up after `callbackPeriodMs`. A deliverer that dies mid-delivery leaves its
 * lease to run out and the delivery is tried again: at-least-once, with the
 * same `webhook-id` (deliveryId) for every try of one ending, by which
 * receivers dedupe.
 */
import { Agent, request } from 'undici';
import { backoffDelay, sleep } from './backoff.js';
import { DEFAULTS } from './config.js';
import { CallbackRefusedError } from './errors.js';
import { publicJob, type CallbackLog, type Job } from './job.js';
import { silentLogger, type Logger } from './logger.js';
import { guardedConnector, precheckCallbackUrl, type AddressPolicy } from './net-guard.js';
import type { Transport } from './transport.js';
import { signDelivery } from './webhooks.js';

export interface CallbackConfig {
  /** CIDRs, addresses or host names that may be called although internal (`REASONQ_CALLBACK_ALLOW`) */
  allow: readonly string[];
  /** `whsec_…` secrets; deliveries are signed with the first (`REASONQ_CALLBACK_SECRET`) */
  secrets: readonly string[];
  timeoutMs?: number;
  /** how long a delivery is tried before it is given up (`REASONQ_CALLBACK_PERIOD_MS`) */
  periodMs?: number;
  /** name resolution, for tests that must never send a query off the machine */
  resolve?: AddressPolicy['resolve'];
}

/** How one try went. */
export interface DeliveryTry {
  ok: boolean;
  /** the receiver's status, null when it did not answer */
  status: number | null;
  error: string | null;
  /** no later try can do better (an address refused by the guard, a 4xx other than 408/429) */
  final: boolean;
}

export interface CallbackSender {
  /** Throws CallbackRefusedError for an address known bad without DNS (a 400 at enqueue). */
  check(url: string): void;
  /** One POST of the job to its callback_url; never throws. */
  attempt(job: Job, log?: Logger): Promise<DeliveryTry>;
  /** how long a delivery is tried before it is given up */
  readonly periodMs: number;
  /** how long one try may take */
  readonly timeoutMs?: number;
  /** Lets deliveries under way finish (bounded by one delivery's timeout), then closes the connections. Safe to call twice. */
  close(): Promise<void>;
}

/** The delivery id: the same for every try of one ending of a job, new for a later ending (after a retry). */
const deliveryId = (job: Job) => `${job.id}.${job.finished_at?.getTime() ?? 0}`;

export function createCallbackSender(config: CallbackConfig, baseLog: Logger = silentLogger): CallbackSender {
  const policy: AddressPolicy = { allow: config.allow, ...(config.resolve ? { resolve: config.resolve } : {}) };
  const timeoutMs = config.timeoutMs ?? DEFAULTS.callbackTimeoutMs;
  const dispatcher = new Agent({ connect: guardedConnector(policy, timeoutMs), headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  let warnedUnsigned = false;
  const pending = new Set<Promise<DeliveryTry>>();
  let closing: Promise<void> | null = null;

  const post = async (job: Job, log: Logger): Promise<DeliveryTry> => {
    const body = JSON.stringify({ job: publicJob(job) });
    try {
      const res = await request(job.callback_url!, {
        method: 'POST',
        dispatcher,
        // The whole try, answer included: a receiver that trickles its answer cannot hold the maintainer.
        signal: AbortSignal.timeout(timeoutMs),
        headers: { 'content-type': 'application/json', 'user-agent': 'reasonq-callback', ...signDelivery(deliveryId(job), body, config.secrets) },
        body,
      });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true, status: res.statusCode, error: null, final: true };
      log.warn({ job_id: job.id, queue: job.queue, status: res.statusCode }, 'callback answered with an error status');
      const final = res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429;
      return { ok: false, status: res.statusCode, error: `answered ${res.statusCode}`, final };
    } catch (error) {
      const refused = error instanceof CallbackRefusedError;
      log.warn({ job_id: job.id, queue: job.queue, err: (error as Error).message }, refused ? 'callback refused' : 'callback failed');
      return { ok: false, status: null, error: (error as Error).message.slice(0, 500), final: refused };
    }
  };

  return {
    check(url) {
      precheckCallbackUrl(url, policy);
    },
    periodMs: config.periodMs ?? DEFAULTS.callbackPeriodMs,
    timeoutMs,
    async attempt(job, log = baseLog) {
      if (!job.callback_url) return { ok: false, status: null, error: 'the job has no callback_url', final: true };
      if (closing) return { ok: false, status: null, error: 'the sender is closing', final: false };
      if (config.secrets.length === 0 && !warnedUnsigned) {
        warnedUnsigned = true;
        log.warn('callbacks are sent unsigned: set REASONQ_CALLBACK_SECRET so that receivers can verify them');
      }
      const delivery = post(job, log);
      pending.add(delivery);
      return delivery.finally(() => pending.delete(delivery));
    },
    close() {
      closing ??= (async () => {
        const grace = new AbortController();
        await Promise.race([Promise.allSettled([...pending]), sleep(timeoutMs, grace.signal)]);
        grace.abort();
        await dispatcher.destroy();
      })();
      return closing;
    },
  };
}

/** Deliveries taken at once; a round takes batches while they come back full, for at most ROUND_BUDGET_MS. */
const DELIVERY_BATCH = 50;
const ROUND_BUDGET_MS = 1_000;

/**
 * One round of the outbox: take the due deliveries, try each once, record
 * how it went. Returns how many were tried. Run by the maintainer.
 */
export async function deliverDue(transport: Transport, sender: CallbackSender, owner: string, log: Logger = silentLogger): Promise<number> {
  if (!transport.claimCallbacks || !transport.settleCallback) return 0;
  const started = Date.now();
  let tried = 0;
  for (;;) {
    const n = await deliverBatch(transport, sender, owner, log);
    tried += n;
    if (n < DELIVERY_BATCH || Date.now() - started > ROUND_BUDGET_MS) return tried;
  }
}

async function deliverBatch(transport: Transport, sender: CallbackSender, owner: string, log: Logger): Promise<number> {
  const leaseMs = (sender.timeoutMs ?? DEFAULTS.callbackTimeoutMs) * 3;
  const due = await transport.claimCallbacks!(owner, leaseMs, DELIVERY_BATCH);
  // allSettled: one record that cannot be written (the store is away) leaves that delivery to its lease, not the batch.
  await Promise.allSettled(
    due.map(async (job) => {
      const tried = await sender.attempt(job, log.child({ job_id: job.id }));
      const now = Date.now();
      const attempts = (job.callback?.attempts ?? 0) + 1;
      const next = tried.ok || tried.final ? null : now + backoffDelay(attempts, { baseMs: DEFAULTS.callbackBackoffMs, maxMs: DEFAULTS.callbackBackoffMaxMs });
      const givenUp = next !== null && next - (job.finished_at?.getTime() ?? now) > sender.periodMs;
      const entry: CallbackLog = {
        state: tried.ok ? 'delivered' : next === null || givenUp ? 'failed' : 'pending',
        attempts,
        last_status: tried.status,
        last_error: tried.error,
        next_at: next !== null && !givenUp ? new Date(next).toISOString() : null,
        delivered_at: tried.ok ? new Date(now).toISOString() : null,
        delivery_id: deliveryId(job),
      };
      if (entry.state === 'failed') log.warn({ job_id: job.id, attempts, err: tried.error }, 'callback given up');
      await transport.settleCallback!(job.id, job.finished_at ?? new Date(0), entry, entry.state === 'pending' ? new Date(next!) : null);
    }),
  );
  return due.length;
}
