/** Exponential backoff with jitter, shared by retries and reconnect loops. */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/** Delay before attempt `n + 1` after `n` failures (n ≥ 1): base·2^(n−1), capped, jittered to 50–100 %. */
export function backoffDelay(failures: number, { baseMs, maxMs }: BackoffOptions, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(exp * (0.5 + random() * 0.5));
}

/** Resolve after `ms`, or at once when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
