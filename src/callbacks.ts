/**
 * Callbacks: POST the finished job to its `callback_url`. Best effort with a
 * few retries; a failing receiver never changes the job's outcome.
 */
import { request } from 'undici';
import { backoffDelay, sleep } from './backoff.js';
import { publicJob, type Job } from './job.js';
import type { Logger } from './logger.js';
import type { Transport } from './transport.js';

export interface CallbackOptions {
  attempts?: number;
  timeoutMs?: number;
}

/** Resolves to true once the receiver answered 2xx. */
export async function postCallback(job: Job, log: Logger, options: CallbackOptions = {}): Promise<boolean> {
  if (!job.callback_url) return false;
  const attempts = options.attempts ?? 3;
  const timeoutMs = options.timeoutMs ?? 5000;
  for (let i = 1; i <= attempts; i++) {
    try {
      const res = await request(job.callback_url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'reasonq-callback' },
        body: JSON.stringify({ job: publicJob(job) }),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) return true;
      log.warn({ job_id: job.id, queue: job.queue, status: res.statusCode }, 'callback answered with an error status');
      if (res.statusCode < 500 && res.statusCode !== 429) return false;
    } catch (error) {
      log.warn({ job_id: job.id, queue: job.queue, err: (error as Error).message }, 'callback failed');
    }
    if (i < attempts) await sleep(backoffDelay(i, { baseMs: 200, maxMs: 2000 }));
  }
  return false;
}

/**
 * Cancel a job and, when this call is what ended it (a queued job), POST its
 * callback: no worker will. A running job's callback comes from its worker.
 * Over the http transport the server does this, so the client does not.
 */
export async function cancelAndNotify(transport: Transport, id: string, reason: string, log: Logger): Promise<Job> {
  const asked = Date.now();
  const job = await transport.cancel(id, reason);
  const endedNow = job.status === 'canceled' && job.finished_at !== null && job.finished_at.getTime() >= asked - 1000;
  if (endedNow && job.callback_url && transport.name !== 'http') void postCallback(job, log);
  return job;
}
