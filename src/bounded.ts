/**
 * No call waits forever: every operation of a transport settles within a
 * bound, whatever the store or its driver does (a restart with commands in
 * flight, a frozen server, an unreachable one). Past its bound a call
 * rejects with a retryable TransportError `STORE_TIMEOUT` whose outcome is
 * unknown: the write may or may not have happened.
 *
 * Nothing is repeated here: the callers repeat what is safe to repeat — the
 * client its calls (`REASONING_API_RETRIES`; enqueue keeps its id, so a
 * repeat never duplicates), the worker its fenced writes (reading a
 * LEASE_LOST after an unknown outcome back from the store, src/worker.ts
 * write) and its claims (a claim whose reply was lost leaves its jobs leased
 * to nobody; they come back when the lease runs out). A claim's bound is its
 * wait plus the store bound, and the claim is aborted when it passes.
 */
import { TransportError, ValidationError } from './errors.js';
import { FINISHED_STATUSES, type Job } from './job.js';
import { assertAppend, assertReadOptions } from './events.js';
import { ENQUEUE_MANY_MAX, type ClaimRequest, type MoveSource, type Transport } from './transport.js';

export interface BoundOptions {
  /** how long one store operation may take before it is given up as unknown (beyond a claim's or wait's own wait) */
  timeoutMs: number;
}

/** The error of a call past its bound. */
function storeTimeout(store: string, operation: string, ms: number): TransportError {
  return new TransportError(`the ${store} store did not answer ${operation} within ${ms} ms; its outcome is unknown`, {
    code: 'STORE_TIMEOUT',
    retryable: true,
    details: { operation, timeout_ms: ms, outcome: 'unknown' },
  });
}

/** `op` or a STORE_TIMEOUT after `ms`, whichever comes first; `onTimeout` runs when the bound passes. */
export function within<T>(store: string, operation: string, ms: number, op: () => Promise<T>, onTimeout?: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout?.();
      reject(storeTimeout(store, operation, ms));
    }, ms);
    let pending: Promise<T>;
    try {
      pending = op();
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** An import (a migration's copies) carries a stream per job, and jobs a store can take in: queued or finished, never mid-run. */
function assertImport(jobs: Job[], events: unknown[]): void {
  if (events.length !== jobs.length) throw new ValidationError(`an import carries one stream per job (${jobs.length} jobs, ${events.length} streams)`, 'imported.events');
  const wrong = jobs.find((j) => j.status !== 'queued' && !FINISHED_STATUSES.includes(j.status));
  if (wrong) throw new ValidationError(`job ${wrong.id} is ${wrong.status}: only queued and finished jobs are imported`, 'imported');
}

const wrappedOnce = new WeakSet<Transport>();

/** Wrap a transport so that every call settles within its bound (a transport wrapped already is returned as is). */
export function bounded(transport: Transport, { timeoutMs }: BoundOptions): Transport {
  if (wrappedOnce.has(transport)) return transport;
  const name = transport.name;
  const bound =
    <A extends unknown[], T>(operation: string, fn: (...args: A) => Promise<T>) =>
    (...args: A): Promise<T> =>
      within(name, operation, timeoutMs, () => fn(...args));
  const t = transport;
  let sweeping: Promise<Awaited<ReturnType<Transport['sweep']>>> | null = null;
  const wrapped: Transport = {
    name,
    capabilities: t.capabilities,
    init: bound('init', () => t.init()),
    enqueue: bound('enqueue', (job: Job) => t.enqueue(job)),
    // A batch is written in slices of ENQUEUE_MANY_MAX: one bound per slice.
    enqueueMany: (jobs, options) => {
      try {
        if (options?.imported) assertImport(jobs, options.imported.events);
      } catch (error) {
        return Promise.reject(error);
      }
      return within(name, 'enqueueMany', timeoutMs * Math.max(1, Math.ceil(jobs.length / ENQUEUE_MANY_MAX)), () => t.enqueueMany(jobs, options));
    },
    claim: (request: ClaimRequest) => claimWithin(name, timeoutMs, request, (r) => t.claim(r)),
    extend: bound('extend', (id: string, token: string, ms: number) => t.extend(id, token, ms)),
    settle: bound('settle', (id: string, token: string, outcome: Parameters<Transport['settle']>[2]) => t.settle(id, token, outcome)),
    appendEvents: bound('appendEvents', (id: string, token: string, events: Parameters<Transport['appendEvents']>[2], written: number | null) => {
      assertAppend(events, written);
      return t.appendEvents(id, token, events, written);
    }),
    // A read that waits for the next event is bounded by its wait plus the store bound, and aborted when that passes.
    readEvents: (id, options) => {
      try {
        assertReadOptions(options);
      } catch (error) {
        return Promise.reject(error);
      }
      const request = { wait_ms: options.wait_ms ?? 0, signal: options.signal };
      return claimWithin(name, timeoutMs, request, (r) => t.readEvents(id, { ...options, signal: r.signal }), 'readEvents');
    },
    cancel: bound('cancel', (id: string, reason: string) => t.cancel(id, reason)),
    retry: bound('retry', (id: string) => t.retry(id)),
    get: bound('get', (id: string) => t.get(id)),
    wait: (id, options) => within(name, 'wait', Math.max(0, options.timeout_ms) + timeoutMs, () => t.wait(id, options)),
    list: bound('list', (filter: Parameters<Transport['list']>[0]) => t.list(filter)),
    stats: bound('stats', () => t.stats()),
    heartbeat: bound('heartbeat', (worker: Parameters<Transport['heartbeat']>[0]) => t.heartbeat(worker)),
    unregisterWorker: bound('unregisterWorker', (id: string) => t.unregisterWorker(id)),
    workers: bound('workers', () => t.workers()),
    // A sweep works through a batch of writes: four bounds. One at a time: a sweep past its bound that still runs is joined, not doubled.
    sweep: (now?: Date) => {
      sweeping ??= t.sweep(now).finally(() => (sweeping = null));
      const current = sweeping;
      return within(name, 'sweep', timeoutMs * 4, () => current);
    },
    close: bound('close', () => t.close()),
  };
  if (t.claimMany) {
    const claimMany = t.claimMany.bind(t);
    wrapped.claimMany = (request, max) => claimWithin(name, timeoutMs, request, (r) => claimMany(r, max));
  }
  if (t.prefetchFor) wrapped.prefetchFor = t.prefetchFor.bind(t);
  if (t.retryMany) {
    const retryMany = t.retryMany.bind(t);
    // Up to 500 retries behind one request: four bounds, as a sweep.
    wrapped.retryMany = (request) => within(name, 'retryMany', timeoutMs * 4, () => retryMany(request));
  }
  if (t.claimCallbacks && t.settleCallback) {
    const claimCallbacks = t.claimCallbacks.bind(t);
    const settleCallback = t.settleCallback.bind(t);
    wrapped.claimCallbacks = bound('claimCallbacks', (owner: string, ms: number, max: number) => claimCallbacks(owner, ms, max));
    wrapped.settleCallback = bound('settleCallback', (id: string, at: Date, log: Parameters<typeof settleCallback>[2], next: Date | null) => settleCallback(id, at, log, next));
  }
  if (t.moves) {
    const moves = t.moves;
    wrapped.moves = {
      take: bound('moves.take', (queue: string, what: Parameters<MoveSource['take']>[1], max: number) => moves.take(queue, what, max)),
      finish: bound('moves.finish', (ids: string[], to: string) => moves.finish(ids, to)),
      release: bound('moves.release', (ids: string[]) => moves.release(ids)),
    };
  }
  if (t.rollups) {
    const rollups = t.rollups.bind(t);
    wrapped.rollups = bound('rollups', (from: Date, to: Date, step: Parameters<typeof rollups>[2]) => rollups(from, to, step));
  }
  if (t.analytics) {
    const analytics = t.analytics.bind(t);
    wrapped.analytics = bound('analytics', (window: Parameters<typeof analytics>[0], queue?: string) => analytics(window, queue));
  }
  if (t.lead) {
    const lead = t.lead.bind(t);
    wrapped.lead = bound('lead', (lock: string, owner: string, ttl: number) => lead(lock, owner, ttl));
  }
  wrappedOnce.add(wrapped);
  return wrapped;
}

/** A claim (or an event read) bounded by its wait plus the store bound, aborted (its own signal) when that passes. */
function claimWithin<T, R extends Pick<ClaimRequest, 'wait_ms' | 'signal'>>(name: string, timeoutMs: number, request: R, claim: (r: R) => Promise<T>, operation = 'claim'): Promise<T> {
  const controller = new AbortController();
  const outer = request.signal;
  const forward = () => controller.abort(outer?.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  else outer?.addEventListener('abort', forward, { once: true });
  const ms = Math.max(0, request.wait_ms) + timeoutMs;
  return within(name, operation, ms, () => claim({ ...request, signal: controller.signal }), () => controller.abort(storeTimeout(name, operation, ms))).finally(() =>
    outer?.removeEventListener('abort', forward),
  );
}
