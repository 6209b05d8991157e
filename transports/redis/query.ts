/**
 * The read-mostly side of the redis transport, across every queue: list,
 * stats, sweep and the worker registry. Each queue's part is one script in
 * that queue's slot; the queues run concurrently (auto-pipelined).
 */
import { DEFAULTS } from '../../src/config.js';
import { QUEUE_NAME_RE, type Job } from '../../src/job.js';
import { buildStats, queueTable, type ListFilter, type ListPage, type QueueCounts, type Stats, type SweepResult, type WorkerInfo } from '../../src/transport.js';
import { decodeCursor, encodeCursor, listKey, listOrder } from '../../src/transport-helpers.js';
import { fieldsToJob, runArgs } from './codec.js';
import type { RedisClient } from './connection.js';
import { idKey, queuePrefix, queuesKey, workerKey, workersSeenKey } from './keys.js';
import { runScript } from './scripts.js';
import { decideOutcome, type Outcome } from '../../src/outcome.js';
import { periodOf, rollupFromFields, type Rollup, type RollupStep } from '../../src/analytics.js';

/** Entries one list call examines per queue before it returns a short page. */
const LIST_SCAN = 5_000;
/** Jobs per sweep script call; the sweep loops while a queue has more. */
const SWEEP_BATCH = 500;

export interface QueryContext {
  client: RedisClient;
  prefix: string;
  /** a worker not seen for this long leaves the registry */
  workerHorizonMs: number;
}

export async function knownQueues({ client, prefix }: QueryContext): Promise<string[]> {
  return (await client.smembers(queuesKey(prefix))).filter((q) => QUEUE_NAME_RE.test(q)).sort();
}

interface Position {
  t: number;
  id: string;
}

/** Newer first: the order key desc (listOrder: created_at, or finished_at), then id desc. */
const newer = (a: Position, b: Position): number => b.t - a.t || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/**
 * A page across queues. Each queue returns up to limit+1 jobs after the
 * cursor, and where it stopped looking; jobs older than the newest such stop
 * of a queue that was not exhausted might be missing from the merge, so the
 * page ends there and the cursor resumes from it.
 */
export async function listJobs(ctx: QueryContext, filter: ListFilter): Promise<ListPage> {
  const limit = Math.min(Math.max(Math.floor(filter.limit ?? DEFAULTS.listLimit), 1), DEFAULTS.listMaxLimit);
  const after = filter.cursor ? decodeCursor(filter.cursor) : null;
  const queues = filter.queue ? (QUEUE_NAME_RE.test(filter.queue) ? [filter.queue] : []) : await knownQueues(ctx);
  const order = listOrder(filter);
  // The index a queue's page is read from (list.lua): a session's, a finished status's history (scored by finished_at), or every job's.
  const index = filter.session_id !== undefined ? 'session' : order === 'finished_at' ? 'status' : 'all';
  const parts = await Promise.all(
    queues.map(async (q) => {
      const args = [filter.status ?? '', limit + 1, after ? after.t : '', after?.id ?? '', LIST_SCAN, index, filter.session_id ?? ''];
      const reply = (await runScript(ctx.client, 'list', queuePrefix(ctx.prefix, q), ...args)) as unknown[];
      const jobs = reply.slice(3).map(fieldsToJob).filter((j): j is Job => j !== null);
      const exhausted = Number(reply[0]) === 1;
      return { jobs, stop: exhausted ? null : { t: Number(reply[1]), id: String(reply[2]) } };
    }),
  );
  let frontier: Position | null = null;
  for (const part of parts) if (part.stop && (!frontier || newer(part.stop, frontier) < 0)) frontier = part.stop;
  const merged = parts
    .flatMap((p) => p.jobs)
    .map((job) => ({ job, pos: { t: listKey(job, order), id: job.id } }))
    .filter((e) => !frontier || newer(e.pos, frontier) <= 0)
    .sort((a, b) => newer(a.pos, b.pos));
  const page = merged.slice(0, limit);
  const last = page[page.length - 1];
  // More merged jobs than fit: resume after the last one shown. Otherwise a
  // queue that stopped early decides where the next page starts.
  const next = merged.length > limit && last ? last.pos : frontier;
  return { jobs: page.map((e) => e.job), next_cursor: next ? encodeCursor(new Date(next.t), next.id) : null };
}

/** The rollups of one step of every queue for the periods starting in [from, to): one script per queue (lua/rollups.lua), concurrently. */
export async function readRollups(ctx: QueryContext, from: Date, to: Date, step: RollupStep): Promise<Rollup[]> {
  const first = periodOf(from.getTime() + step - 1, step);
  const end = periodOf(to.getTime() + step - 1, step);
  if (end <= first) return [];
  const queues = await knownQueues(ctx);
  const parts = await Promise.all(
    queues.map(async (q) => {
      const reply = (await runScript(ctx.client, 'rollups', queuePrefix(ctx.prefix, q), first, end, step)) as string[];
      const out: Rollup[] = [];
      for (let i = 0; i + 1 < reply.length; i += 2) {
        const flat = reply[i + 1]!.split(',');
        const fields: Record<string, string> = {};
        for (let k = 0; k + 1 < flat.length; k += 2) fields[flat[k]!] = flat[k + 1]!;
        out.push(rollupFromFields(q, Number(reply[i]), step, fields));
      }
      return out;
    }),
  );
  return parts.flat();
}

export async function queueStats(ctx: QueryContext): Promise<Stats> {
  const queues = await knownQueues(ctx);
  const replies = await Promise.all(queues.map((q) => runScript(ctx.client, 'stats', queuePrefix(ctx.prefix, q)) as Promise<number[]>));
  const out = queueTable();
  queues.forEach((q, i) => {
    const [ready = 0, delayedAll = 0, delayed = 0, processing = 0, done = 0, error = 0, canceled = 0, moving = 0, moved = 0] = replies[i]!.map(Number);
    // queued = due now (ready, and the due ones not promoted yet), delayed = not yet: they never overlap.
    const counts: QueueCounts = { queued: ready + delayedAll - delayed, delayed, processing, done, error, canceled, moving, moved };
    if (Object.values(counts).some((n) => n > 0)) out[q] = counts;
  });
  return buildStats(out);
}

/**
 * Sweep every queue, looping while a queue reports more work. The job
 * records go in the queue's slot; the id index entries of deleted jobs live
 * elsewhere, so they are unlinked here afterwards (a leftover entry only
 * points at nothing, which reads as "no such job").
 */
export async function sweepQueues(
  ctx: QueryContext,
  options: { now: Date | undefined; retentionMs: number; historyLimit: number; queues?: string[]; leasesOnly?: boolean },
): Promise<{ result: SweepResult; deleted: string[] }> {
  const result: SweepResult = { requeued: 0, expired: 0, canceled: 0, deleted: 0 };
  const deleted: string[] = [];
  const queues = options.queues ?? (await knownQueues(ctx));
  await Promise.all(
    queues.map(async (q) => {
      for (let round = 0; round < 20; round++) {
        const prefix = queuePrefix(ctx.prefix, q);
        const reply = (await runScript(ctx.client, 'sweep', prefix, options.now ? options.now.getTime() : '', options.retentionMs, options.historyLimit, SWEEP_BATCH, options.leasesOnly ? '1' : '')) as unknown[];
        const now = Number(reply[0]);
        const expired = Number(reply[2]);
        for (let i = 0; i < expired; i++) {
          const [id, token, attempts, maxAttempts, cancel, stalls, maxStalls] = reply.slice(3 + i * 7, 10 + i * 7).map(String) as [string, string, string, string, string, string, string];
          const job = {
            attempts: Number(attempts),
            max_attempts: Number(maxAttempts),
            stalls: Number(stalls),
            max_stalls: maxStalls === '' ? DEFAULTS.maxStalls : Number(maxStalls),
            cancel_requested: cancel === '1' ? { at: new Date(now), reason: '' } : null,
          };
          const status = await settleExpired(ctx, prefix, id, token, decideOutcome(job, { kind: 'lease-expired' }, undefined, now), now);
          if (status === 'queued') result.requeued += 1;
          else if (status === 'error') result.expired += 1;
          else if (status === 'canceled') result.canceled += 1;
        }
        const ids = reply.slice(3 + expired * 7).map(String);
        result.deleted += ids.length;
        deleted.push(...ids);
        if (Number(reply[1]) !== 1) break;
      }
    }),
  );
  await Promise.all(deleted.map((id) => ctx.client.unlink(idKey(ctx.prefix, id))));
  return { result, deleted };
}

/** settle.lua with the sweep's fence (the lease must have run out); the status written, or null when the job was renewed meanwhile. */
async function settleExpired(ctx: QueryContext, prefix: string, id: string, token: string, outcome: Outcome, now: number): Promise<string | null> {
  const error = outcome.error ? JSON.stringify(outcome.error) : '';
  const runAt = outcome.run_at ? String(outcome.run_at.getTime()) : '';
  const reply = (await runScript(ctx.client, 'settle', prefix, id, token, outcome.status, error, runAt, !outcome.run_at || outcome.run_at.getTime() <= now ? '1' : '0', outcome.give_back ? '1' : '', '1', outcome.stall ? '1' : '', ...runArgs(outcome))) as string[] | null;
  if (!reply) return null;
  for (let i = 0; i < reply.length; i += 2) if (reply[i] === 'status') return reply[i + 1] ?? null;
  return null;
}

export async function saveWorker(ctx: QueryContext, worker: WorkerInfo): Promise<void> {
  await ctx.client
    .multi()
    .zadd(workersSeenKey(ctx.prefix), worker.last_seen.getTime(), worker.id)
    .set(workerKey(ctx.prefix, worker.id), JSON.stringify(worker), 'PX', ctx.workerHorizonMs)
    .exec();
}

export async function removeWorker(ctx: QueryContext, id: string): Promise<void> {
  await ctx.client.multi().zrem(workersSeenKey(ctx.prefix), id).del(workerKey(ctx.prefix, id)).exec();
}

/** Workers seen within the last hour; their records expire by TTL after that. */
export async function listWorkers(ctx: QueryContext): Promise<WorkerInfo[]> {
  const horizon = Date.now() - ctx.workerHorizonMs;
  const seen = workersSeenKey(ctx.prefix);
  await ctx.client.zremrangebyscore(seen, '-inf', `(${horizon}`);
  const ids = await ctx.client.zrangebyscore(seen, horizon, '+inf');
  if (ids.length === 0) return [];
  const records = await ctx.client.mget(ids.map((id) => workerKey(ctx.prefix, id)));
  return records
    .filter((r): r is string => r !== null)
    .map((r) => {
      const w = JSON.parse(r) as WorkerInfo & { started_at: string; last_seen: string };
      return { ...w, started_at: new Date(w.started_at), last_seen: new Date(w.last_seen) };
    });
}
