/**
 * Callbacks: POST the finished job to its `callback_url`. Best effort with a
 * few retries; a failing receiver never changes the job's outcome.
 */
import { request } from 'undici';
import { backoffDelay, sleep } from './backoff.js';
import { publicJob, type Job } from './job.js';
import type { Logger } from './logger.js';

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
