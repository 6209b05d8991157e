/**
 * The cut-over view (README, "Migrating"): a transport on the store a queue
 * moves to (the target) that still finds the jobs of the store it leaves
 * (the source). Set by REASONING_MIGRATE_FROM on clients and servers
 * configured for the target, so that an agent runtime waiting on an old id
 * is never told "not found" while `reasonq migrate` runs.
 *
 * - By id (get, wait, cancel, retry, events): the target first; a job it
 *   lacks is looked up in the source, and a source job marked `moved` is
 *   followed back to the target. A `moving` one is waited for (it is
 *   runnable nowhere for the moment it takes to copy).
 * - enqueue: an id (or the whole batch) the source holds and has not moved
 *   is answered from the source, as an idempotent enqueue would be: the
 *   same id never becomes two jobs.
 * - Everything else (claims, worker writes, list, stats, sweep, the
 *   outbox) is the target's alone.
 */
import { sleep } from './backoff.js';
import { JobNotFoundError } from './errors.js';
import type { EventPage, ReadEventsOptions } from './events.js';
import { isTerminal, type Job } from './job.js';
import type { EnqueueManyOptions, EnqueueReply, Transport, WaitOptions } from './transport.js';

/**
 * How long a cancel or retry waits for a `moving` job to land (a migrator
 * killed mid-step leaves it there until it runs again): well within the
 * store bound (REASONQ_STORE_TIMEOUT_MS, 10 s) that a server puts around it.
 */
const MOVING_WAIT_MS = 5_000;
/** A `moving` job is looked at again this often. */
const MOVING_POLL_MS = 100;
/** A waiter or follower on the source asks again this often, so that it notices the job moved (a move writes no event there). */
const SOURCE_READ_SLICE_MS = 1_000;

/**
 * Errors told by their code: the stores may come from another instance of
 * this module graph (a loader that runs both CommonJS and ESM copies), where
 * `instanceof` would not match.
 */
const hasCode = (error: unknown, code: string) => typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
const isNotFound = (error: unknown) => hasCode(error, 'JOB_NOT_FOUND');

export function withFallback(target: Transport, source: Transport): Transport {
  /** The source's copy of a job the target lacks; null when neither has it. */
  async function settledSource(id: string, deadline = Date.now() + MOVING_WAIT_MS): Promise<Job | null> {
    for (;;) {
      const job = await source.get(id);
      if (!job || job.status !== 'moving' || Date.now() >= deadline) return job;
      await sleep(MOVING_POLL_MS);
    }
  }

  /**
   * By id: `act` on the target, else on the source unless the job moved
   * (then the target, which has it now). A job that a migration takes in
   * between (the source answers it `moving`, unchanged, or refuses a retry)
   * is looked up again once it landed.
   */
  async function byId(id: string, act: (t: Transport) => Promise<Job>): Promise<Job> {
    try {
      return await act(target);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const deadline = Date.now() + MOVING_WAIT_MS;
    for (;;) {
      const job = await settledSource(id, deadline);
      if (!job) throw new JobNotFoundError(id);
      if (job.status === 'moved') return act(target);
      try {
        const out = await act(source);
        if (out.status !== 'moving' || Date.now() >= deadline) return out;
      } catch (error) {
        if (!hasCode(error, 'INVALID_STATE') || Date.now() >= deadline) throw error;
        const now = await source.get(id);
        if (now?.status !== 'moving' && now?.status !== 'moved') throw error;
      }
    }
  }

  const fallback: Transport = {
    name: target.name,
    capabilities: target.capabilities,
    async init() {
      await Promise.all([target.init(), source.init()]);
    },
    async enqueue(job) {
      const there = await source.get(job.id);
      if (there && there.status !== 'moved') return { job: there, created: false };
      return target.enqueue(job);
    },
    async enqueueMany(jobs, options?: EnqueueManyOptions) {
      const there = await Promise.all(jobs.map((j) => source.get(j.id)));
      const rest = jobs.filter((_, i) => !there[i] || there[i]!.status === 'moved');
      const written = rest.length > 0 ? await target.enqueueMany(rest, options) : [];
      let k = 0;
      return jobs.map((_, i): EnqueueReply => (there[i] && there[i]!.status !== 'moved' ? { job: there[i]!, created: false } : written[k++]!));
    },
    claim: (request) => target.claim(request),
    extend: (id, token, ms) => target.extend(id, token, ms),
    settle: (id, token, outcome) => target.settle(id, token, outcome),
    appendEvents: (id, token, events, written) => target.appendEvents(id, token, events, written),
    async readEvents(id, options: ReadEventsOptions): Promise<EventPage> {
      try {
        return await target.readEvents(id, options);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
      // The source's stream, until the job moves: the target carries the same ids on.
      const deadline = Date.now() + Math.max(0, options.wait_ms ?? 0);
      for (;;) {
        const left = deadline - Date.now();
        const page = await source.readEvents(id, { ...options, wait_ms: Math.max(0, Math.min(left, SOURCE_READ_SLICE_MS)) });
        if (page.events.length > 0 && !page.end) return page;
        const job = await source.get(id);
        if (job?.status === 'moved' || !job) return target.readEvents(id, { ...options, wait_ms: Math.max(0, deadline - Date.now()) });
        if (page.events.length > 0 || page.end || deadline - Date.now() <= 0 || options.signal?.aborted) return page;
      }
    },
    cancel: (id, reason) => byId(id, (t) => t.cancel(id, reason)),
    retry: (id) => byId(id, (t) => t.retry(id)),
    async get(id) {
      const job = await target.get(id);
      if (job) return job;
      const there = await source.get(id);
      return there?.status === 'moved' ? ((await target.get(id)) ?? there) : there;
    },
    async wait(id, options: WaitOptions) {
      const deadline = Date.now() + Math.max(0, options.timeout_ms);
      for (;;) {
        const left = () => Math.max(0, deadline - Date.now());
        if (await target.get(id)) return target.wait(id, { ...options, timeout_ms: left() });
        let job: Job;
        try {
          // In slices: a migrator that died after writing the job to the target leaves it `moving` here, running there.
          job = await source.wait(id, { ...options, timeout_ms: Math.min(left(), SOURCE_READ_SLICE_MS) });
        } catch (error) {
          // moved and gone from the source (retention) between the two reads: the target has it
          if (isNotFound(error) && (await target.get(id))) continue;
          throw error;
        }
        if (job.status === 'moved') {
          // moved meanwhile: the target has it now (unless the target lost it: then the marker is the answer)
          if (!(await target.get(id))) return job;
        } else if (isTerminal(job.status) || left() <= 0 || options.signal?.aborted) return job;
      }
    },
    list: (filter) => target.list(filter),
    stats: () => target.stats(),
    heartbeat: (worker) => target.heartbeat(worker),
    unregisterWorker: (id) => target.unregisterWorker(id),
    workers: () => target.workers(),
    sweep: (now) => target.sweep(now),
    async close() {
      await Promise.all([target.close(), source.close()]);
    },
  };
  if (target.claimMany) fallback.claimMany = target.claimMany.bind(target);
  if (target.prefetchFor) fallback.prefetchFor = target.prefetchFor.bind(target);
  if (target.lead) fallback.lead = target.lead.bind(target);
  if (target.claimCallbacks) fallback.claimCallbacks = target.claimCallbacks.bind(target);
  if (target.settleCallback) fallback.settleCallback = target.settleCallback.bind(target);
  // The numbers are the target's, like stats(): the store jobs end in from the cut-over on (an imported finished job is counted there at its own minute).
  if (target.rollups) fallback.rollups = target.rollups.bind(target);
  if (target.analytics) fallback.analytics = target.analytics.bind(target);
  return fallback;
}
