/**
 * Callbacks: POST the finished job to its `callback_url`, signed (Standard
 * Webhooks, see webhooks.ts) and dialled only through the address guard
 * (net-guard.ts). Best effort with a few retries; a failing receiver never
 * changes the job's outcome. Redirects are not followed.
 */
import { Agent, request } from 'undici';
import { backoffDelay, sleep } from './backoff.js';
import { DEFAULTS } from './config.js';
import { CallbackRefusedError } from './errors.js';
import { publicJob, type Job } from './job.js';
import { silentLogger, type Logger } from './logger.js';
import { guardedConnector, precheckCallbackUrl, type AddressPolicy } from './net-guard.js';
import type { Transport } from './transport.js';
import { signDelivery } from './webhooks.js';

export interface CallbackConfig {
  /** CIDRs, addresses or host names that may be called although internal (`REASONQ_CALLBACK_ALLOW`) */
  allow: readonly string[];
  /** `whsec_…` secrets; deliveries are signed with the first (`REASONQ_CALLBACK_SECRET`) */
  secrets: readonly string[];
  /** tries per delivery */
  attempts?: number;
  timeoutMs?: number;
  /** name resolution, for tests that must never send a query off the machine */
  resolve?: AddressPolicy['resolve'];
}

export interface CallbackSender {
  /** Throws CallbackRefusedError for an address known bad without DNS (a 400 at enqueue). */
  check(url: string): void;
  /** Resolves to true once the receiver answered 2xx; never throws. */
  deliver(job: Job, log?: Logger): Promise<boolean>;
  /** Lets deliveries under way finish (bounded by one delivery's timeout), then closes the connections. Safe to call twice. */
  close(): Promise<void>;
}

/** The delivery id: the same for every try of one ending of a job, new for a later ending (after a retry). */
export const deliveryId = (job: Job) => `${job.id}.${job.finished_at?.getTime() ?? 0}`;

export function createCallbackSender(config: CallbackConfig, baseLog: Logger = silentLogger): CallbackSender {
  const policy: AddressPolicy = { allow: config.allow, ...(config.resolve ? { resolve: config.resolve } : {}) };
  const attempts = config.attempts ?? 3;
  const timeoutMs = config.timeoutMs ?? DEFAULTS.callbackTimeoutMs;
  const dispatcher = new Agent({ connect: guardedConnector(policy, timeoutMs), headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  let warnedUnsigned = false;
  const pending = new Set<Promise<boolean>>();
  let closing: Promise<void> | null = null;

  const deliver = async (job: Job, log: Logger): Promise<boolean> => {
    const body = JSON.stringify({ job: publicJob(job) });
    const id = deliveryId(job);
    for (let i = 1; i <= attempts; i++) {
      try {
        const res = await request(job.callback_url!, {
          method: 'POST',
          dispatcher,
          headers: { 'content-type': 'application/json', 'user-agent': 'reasonq-callback', ...signDelivery(id, body, config.secrets) },
          body,
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) return true;
        log.warn({ job_id: job.id, queue: job.queue, status: res.statusCode }, 'callback answered with an error status');
        if (res.statusCode < 500 && res.statusCode !== 429) return false;
      } catch (error) {
        const refused = error instanceof CallbackRefusedError;
        log.warn({ job_id: job.id, queue: job.queue, err: (error as Error).message }, refused ? 'callback refused' : 'callback failed');
        if (refused || closing) return false;
      }
      if (i < attempts && !closing) await sleep(backoffDelay(i, { baseMs: 200, maxMs: 2000 }));
    }
    return false;
  };

  return {
    check(url) {
      precheckCallbackUrl(url, policy);
    },
    async deliver(job, log = baseLog) {
      if (!job.callback_url || closing) return false;
      if (config.secrets.length === 0 && !warnedUnsigned) {
        warnedUnsigned = true;
        log.warn('callbacks are sent unsigned: set REASONQ_CALLBACK_SECRET so that receivers can verify them');
      }
      const delivery = deliver(job, log);
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

/**
 * Cancel a job and, when this call is what ended it (a queued job), POST its
 * callback: no worker will. A running job's callback comes from its worker.
 * Over the http transport the server does this, so the client does not.
 */
export async function cancelAndNotify(transport: Transport, id: string, reason: string, log: Logger, callbacks?: CallbackSender): Promise<Job> {
  const asked = Date.now();
  const job = await transport.cancel(id, reason);
  const endedNow = job.status === 'canceled' && job.finished_at !== null && job.finished_at.getTime() >= asked - 1000;
  if (endedNow && job.callback_url && callbacks && transport.name !== 'http') void callbacks.deliver(job, log);
  return job;
}
