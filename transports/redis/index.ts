/**
 * Redis transport: Redis lists, sorted sets, streams and Lua, standalone or Cluster.
 *
 * Data layout. Every key of a queue carries the hash tag `{queue}` (one
 * queue = one Cluster slot); `rq` is the default prefix:
 * - `rq:{q}:j:<id>`   hash, the one record of a job: `spec` (JSON of what
 *                     never changes: id, queue, payload, priority,
 *                     max_attempts, timeout_ms, dedupe_key, callback_url,
 *                     created_at), the rest as fields (status, attempts,
 *                     run_at, lease_*, times, and the few spec values the
 *                     scripts need); result, error, progress, usage as
 *                     JSON strings; `ev` the id of its newest event, and
 *                     `ev_token`/`ev_written` what the run holding that
 *                     token appended (a repeated append skips it); `runs`
 *                     the run history, one JSON line per record (lib.lua
 *                     append_run); `sid` a copy of payload.session_id
 * - `rq:{q}:ev:<id>`  stream, the job's events (src/events.ts): event n is
 *                     the entry `<n>-0`, one JSON text {type, at, attempt,
 *                     data}; the scripts write the lifecycle ones in the
 *                     same call as the change they report, appends trim it
 *                     to about `eventsMax` (MAXLEN ~), readers block on it
 *                     with XREAD; deleted with the job (lib.lua delete_job)
 * - `rq:{q}:ready`    zset of due `queued` ids, score = priority (higher
 *                     first) then a per-queue sequence `rq:{q}:seq` (FIFO)
 * - `rq:{q}:delayed`  zset of `queued` ids not yet due, score = run_at;
 *                     promoted to `ready` by the claim and sweep scripts
 * - `rq:{q}:leases`   zset of `processing` ids, score = lease deadline
 * - `rq:{q}:done` · `:error` · `:canceled`  zsets of finished ids by
 *                     finished_at: histories, trimmed by retention and capped
 *                     at `historyLimit` per status by sweep; a list of one of
 *                     these statuses reads it (newest ending first)
 * - `rq:{q}:moving`   zset of the ids a migration holds (moves.ts), the
 *                     status each had in its hash's `mv_from`
 * - `rq:{q}:moved`    zset of `moved` markers by finished_at, swept like the
 *                     histories
 * - `rq:{q}:all`      zset of every id by created_at (list, newest first)
 * - `rq:{q}:s:<sid>`  zset of a session's ids by created_at (list by
 *                     session_id), written at enqueue, cleaned by delete_job
 * - `rq:{q}:roll:<step ms>:<start ms>` hash, the rollup of the jobs of the
 *                     queue that ended in that minute or quarter of an hour
 *                     (src/analytics.ts; lib.lua rollup, written by the
 *                     script of the ending), expiring 25 h after its start
 * - `rq:{q}:dedupe`   hash dedupe_key → id (dedupe is per queue)
 * - `rq:{q}:wake`     list of wake-up tokens that idle claimers BLPOP
 * - `rq:{q}:fin:<id>` list pushed when a job that somebody `wait`s on ends;
 *                     waiters BLMOVE it onto itself (all of them wake), TTL 60 s
 * - `rq:{q}:upgraded` set once records of the first release in the queue were
 *                     upgraded (lua/upgrade.lua, at transport start)
 * Shared keys: `rq:~id:<id>` → queue (find a job's slot from its id),
 * `rq:{~meta}:queues` (set of queue names), `rq:{~workers}:seen` (zset of
 * heartbeats) and `rq:{~workers}:w:<id>` (worker record, TTL the registry horizon).
 *
 * Every state change is one Lua script (lua/*.lua, called by SHA), fenced on
 * the lease token (docs/architecture.md). A claim moves the id from `ready` to
 * `leases` inside the script: the job is never only in a worker's memory,
 * and a crashed worker's job comes back when its lease deadline passes.
 * Claims block on the wake list of a dedicated connection, never poll; so
 * do readers of a job's events, on its stream (XREAD).
 */
import { randomBytes } from 'node:crypto';
import { DEFAULTS } from '../../src/config.js';
import { ConfigError, JobErrorCode, JobNotFoundError, LeaseLostError, TransportError, ValidationError } from '../../src/errors.js';
import { assertTransition, FINISHED_STATUSES, isTerminal, PENDING_CALLBACK, RETRY_FROM, type CallbackLog, type Intent, type Job, type JobStatus } from '../../src/job.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import type {
  ClaimRequest,
  ClaimedJob,
  EnqueueManyOptions,
  EnqueueReply,
  ExtendResult,
  ListFilter,
  ListPage,
  MoveSource,
  Stats,
  SweepResult,
  Transport,
  TransportCapabilities,
  TransportOptions,
  WaitOptions,
  WorkerInfo,
} from '../../src/transport.js';
import { EVENTS_PAGE_MAX, type EventPage, type JobEvent, type NewEvent, type ReadEventsOptions } from '../../src/events.js';
import { decideOutcome, type Outcome } from '../../src/outcome.js';
import { assertSettle, MAX_CLAIM_WAIT_MS } from '../../src/transport-helpers.js';
import { claimedJobs, fieldsToJob, jobToFields, runArgs, type UnreadableJob } from './codec.js';
import { runRecord } from '../../src/runs.js';
import { BlockingPool, createClient, parseRedisUrl, type RedisClient, type RedisEndpoint } from './connection.js';
import { redactUrls, fromRedisError } from './errors.js';
import { eventsKey, finKey, idKey, lockKey, queuePrefix, queuesKey, wakeKey } from './keys.js';
import { appendArgs, eventPage, lastProgress, pendingEvents, waitForEvent } from './events.js';
import { knownQueues, listJobs, listWorkers, queueStats, readRollups, removeWorker, saveWorker, sweepQueues, type QueryContext } from './query.js';
import type { Rollup, RollupStep } from '../../src/analytics.js';
import { defineScripts, runScript, type ScriptName } from './scripts.js';
import { checkEvictionPolicy } from './eviction.js';
import { ScriptBatcher } from './batch.js';
import { Prefetcher } from './prefetch.js';
import { JobLocator, type HeldJob } from './locator.js';
import { blockForWake, slotGroups } from './wake.js';
import { createMoveSource } from './moves.js';

export interface RedisTransportOptions extends TransportOptions {
  /** REDIS_URL: `redis://`, `rediss://`, `redis+cluster://` or a comma-separated node list */
  url: string;
  /** pino logger for warnings (eviction policy, outages); silent when absent */
  logger?: Logger | undefined;
  /** key prefix, default `rq` */
  prefix?: string;
  /** finished jobs kept per status and queue at most (sweep trims), default 100 000 */
  historyLimit?: number;
  /** accept an `allkeys-*` maxmemory-policy with a warning instead of refusing at init */
  allowEviction?: boolean;
}

/** The factory `src/transports.ts` calls. */
export function createRedisTransport(options: RedisTransportOptions): RedisTransport {
  return new RedisTransport(options);
}

export class RedisTransport implements Transport {
  readonly name = 'redis';
  readonly capabilities: TransportCapabilities = { blockingClaim: true, pushWait: true, nativeRetention: false, atomicClaim: true };

  private readonly url: string;
  private readonly endpoint: RedisEndpoint;
  private readonly client: RedisClient;
  private readonly pool: BlockingPool;
  private readonly prefix: string;
  private readonly retentionMs: number;
  private readonly workerHorizonMs: number;
  private readonly historyLimit: number;
  private readonly eventsMax: number;
  private readonly allowEviction: boolean;
  private readonly log: Logger;
  private readonly completions: ScriptBatcher<CompleteItem>;
  private readonly enqueues: ScriptBatcher<Job>;
  private readonly prefetch: Prefetcher;
  private readonly locate: JobLocator;
  /** The side a migration leaves (moves.ts). */
  readonly moves: MoveSource;
  /** Lease tokens: a random base per transport (no collisions across processes) and a counter (none within one). */
  private readonly tokenBase = randomBytes(12).toString('base64url');
  private tokens = 0;
  private readonly registered = new Map<string, Promise<void>>();
  private initializing: Promise<void> | null = null;
  private closed = false;
  private down = false;
  private lastConnectionError: string | undefined;
  private turn = 0;
  private callbackTurn = 0;
  /** CLIENT ID or UNBLOCK was refused: no claim behind the BLPOP (blockThenClaim) */
  private clientRefused = false;

  constructor(options: RedisTransportOptions) {
    this.url = options.url;
    this.endpoint = parseRedisUrl(options.url);
    this.prefix = options.prefix ?? DEFAULTS.redisPrefix;
    this.retentionMs = options.retentionMs ?? DEFAULTS.retentionMs;
    this.workerHorizonMs = options.workerHorizonMs ?? DEFAULTS.workerHorizonMs;
    this.historyLimit = options.historyLimit ?? DEFAULTS.historyLimit;
    this.eventsMax = options.eventsMax ?? DEFAULTS.eventsMax;
    this.allowEviction = options.allowEviction ?? false;
    this.log = (options.logger ?? silentLogger).child({ transport: 'redis' });
    this.client = createClient(this.endpoint, 'command');
    this.locate = new JobLocator(this.client, this.prefix);
    this.moves = createMoveSource({ client: this.client, prefix: this.prefix, locate: this.locate, op: (fn) => this.op(fn) });
    defineScripts(this.client);
    this.client.on('error', (error: Error) => {
      this.lastConnectionError = error.message;
      if (this.down || this.closed) return;
      this.down = true;
      this.log.warn({ url: redactUrls(this.url), err: error.message }, 'redis unavailable; reconnecting');
    });
    this.client.on('ready', () => {
      this.lastConnectionError = undefined;
      if (!this.down) return;
      this.down = false;
      this.log.info({ url: redactUrls(this.url) }, 'redis reachable again');
    });
    this.pool = new BlockingPool(() => {
      const client = createClient(this.endpoint, 'blocking');
      defineScripts(client); // blockThenClaim runs the claim script there
      return client;
    });
    this.completions = new ScriptBatcher<CompleteItem>((prefix, items) => this.completeBatch(prefix, items), { max: COMPLETE_BATCH });
    this.prefetch = new Prefetcher((job) => this.settle(job.id, job.lease.token, decideOutcome(job, { kind: 'released' })));
    this.enqueues = new ScriptBatcher<Job>((prefix, jobs) => this.enqueueBatch(prefix, jobs), { schedule: 'microtask' });
  }

  /** Connect and check that Redis will not evict queue keys. Idempotent. */
  init(): Promise<void> {
    if (this.closed) return Promise.reject(new TransportError('the redis transport is closed', { retryable: false }));
    this.initializing ??= this.connect().catch((error: unknown) => {
      this.initializing = null;
      throw error instanceof ConfigError ? error : this.translate(error);
    });
    return this.initializing;
  }

  private async connect(): Promise<void> {
    if (this.client.status === 'wait') await this.client.connect();
    else await this.client.ping();
    await checkEvictionPolicy(this.client, { url: redactUrls(this.url), allowEviction: this.allowEviction, log: this.log });
    await this.upgradeRecords();
  }

  /**
   * Records of the first release (no `spec` field) are rewritten once, queue
   * by queue, when a transport starts (lua/upgrade.lua); a queue done before
   * carries a marker and costs one call.
   */
  private async upgradeRecords(): Promise<void> {
    // Every queue at once: a start on a store of many queues, all marked, costs one pipelined round trip, not one per queue.
    const queues = await this.client.smembers(queuesKey(this.prefix));
    await Promise.all(
      queues.map(async (queue) => {
        let cursor = '0';
        let upgraded = 0;
        do {
          const [next, n] = (await runScript(this.client, 'upgrade', queuePrefix(this.prefix, queue), cursor, 500)) as [string, number];
          cursor = next;
          upgraded += n;
        } while (cursor !== '0');
        if (upgraded > 0) this.log.info({ queue, upgraded }, 'records of the first release upgraded');
      }),
    );
  }

  /**
   * One script call on a single server (it also writes the id index and the
   * queue set), shared by the enqueues made together. On a Cluster those keys
   * live in other slots: see claimIndex.
   */
  async enqueue(job: Job): Promise<{ job: Job; created: boolean }> {
    return this.op(async () => {
      const { elsewhere, indexed } = this.endpoint.cluster ? await this.claimIndex(job) : UNINDEXED;
      if (elsewhere) return { job: elsewhere, created: false };
      const reply = this.enqueued(job, await this.enqueues.call(queuePrefix(this.prefix, job.queue), job));
      // A dedupe hit: no job has this id, so the index entry just written is void.
      if (indexed && reply.job.id !== job.id) await this.client.unlink(idKey(this.prefix, job.id));
      return reply;
    });
  }

  /**
   * The jobs of each queue in slices of ENQUEUE_SLICE, one enqueue.lua call
   * each (imported: the same script, writing the jobs as given), all sent
   * at once: auto-pipelined, one round trip on a single server, and in
   * order, so the jobs of a queue keep theirs and a dedupe_key meets the
   * earlier job of the batch. On a Cluster the id index entries are claimed
   * first, all together, as `enqueue` does (claimIndex).
   */
  async enqueueMany(jobs: Job[], options: EnqueueManyOptions = {}): Promise<EnqueueReply[]> {
    const streams = options.imported?.events;
    if (streams) {
      for (const job of jobs) {
        if (job.status !== 'queued' && !FINISHED_STATUSES.includes(job.status)) {
          throw new ValidationError(`an imported job is queued or finished (${FINISHED_STATUSES.join(', ')}); job ${job.id} is ${job.status}`, 'status');
        }
      }
    }
    return this.op(async () => {
      // Built before anything is sent: an event that is not JSON fails the batch, not the slices after it.
      const tails = streams && jobs.map((job, i) => this.importedArgs(job, streams[i] ?? []));
      const replies = new Array<EnqueueReply>(jobs.length);
      const indexed = new Set<number>();
      const byQueue = new Map<string, number[]>();
      const claims = this.endpoint.cluster ? await Promise.all(jobs.map((job) => this.claimIndex(job))) : null;
      jobs.forEach((job, i) => {
        const claim = claims?.[i];
        if (claim?.elsewhere) return void (replies[i] = { job: claim.elsewhere, created: false });
        if (claim?.indexed) indexed.add(i);
        const list = byQueue.get(job.queue);
        if (list) list.push(i);
        else byQueue.set(job.queue, [i]);
      });
      const calls: Promise<void>[] = [];
      for (const [queue, all] of byQueue) {
        const prefix = queuePrefix(this.prefix, queue);
        for (let at = 0; at < all.length; at += ENQUEUE_SLICE) {
          const slice = all.slice(at, at + ENQUEUE_SLICE);
          const call = this.enqueueBatch(prefix, slice.map((i) => jobs[i]!), tails && slice.map((i) => tails[i]!));
          calls.push(call.then((out) => slice.forEach((i, k) => (replies[i] = this.enqueued(jobs[i]!, out[k])))));
        }
      }
      await Promise.all(calls);
      // Dedupe hits: no job has these ids, so the index entries just written are void.
      await Promise.all([...indexed].filter((i) => replies[i]!.job.id !== jobs[i]!.id).map((i) => this.client.unlink(idKey(this.prefix, jobs[i]!.id))));
      return replies;
    });
  }

  /**
   * On a Cluster the id index lives in another slot than the job, so it is
   * claimed before the script with SET NX (a second round trip): no job can
   * exist in two queues under one id. `elsewhere`: the job that holds the id
   * in another queue; `indexed`: the entry was written here.
   */
  private async claimIndex(job: Job): Promise<IndexClaim> {
    const index = idKey(this.prefix, job.id);
    const [set] = await Promise.all([this.client.set(index, job.queue, 'NX'), this.registerQueue(job.queue)]);
    if (set !== null) return { elsewhere: null, indexed: true };
    const owner = await this.client.get(index);
    if (owner && owner !== job.queue) {
      const existing = await this.locate.read(owner, job.id);
      if (existing) return { elsewhere: existing, indexed: false };
      await this.client.set(index, job.queue); // points at a deleted job: take it over
    }
    return UNINDEXED;
  }

  /** A job's entry of enqueue.lua's reply as the reply to its enqueue. */
  private enqueued(job: Job, reply: unknown): EnqueueReply {
    this.locate.remember(job.id, job.queue);
    if (Number(reply) === 1) return { job: { ...job }, created: true };
    const existing = fieldsToJob(reply);
    if (!existing) throw new TransportError('redis enqueue script returned no job', { retryable: false });
    if (existing.id !== job.id || existing.queue !== job.queue) this.locate.remember(existing.id, existing.queue);
    return { job: existing, created: false };
  }

  prefetchFor(owner: string, until: AbortSignal): void {
    this.prefetch.register(owner, until);
  }

  async claim(request: ClaimRequest): Promise<ClaimedJob | null> {
    return (await this.claimMany(request, 1))[0] ?? null;
  }

  /**
   * Claim up to `max` jobs in one script call per slot. When none is due,
   * block on the queues' wake lists (one dedicated connection) for at most
   * `wait_ms` (capped at MAX_CLAIM_WAIT_MS) or until the next delayed job or
   * lease deadline, then try again. The signal disconnects the blocked call.
   */
  async claimMany(request: ClaimRequest, max: number): Promise<ClaimedJob[]> {
    const limit = Math.min(MAX_CLAIM_BATCH, Math.max(1, Math.floor(max)));
    const prefetched = this.prefetch.take(request, limit);
    if (prefetched.length > 0) return prefetched;
    try {
      return await this.claimFromRedis(request, limit);
    } finally {
      this.prefetch.claimDone(request.owner);
    }
  }

  private async claimFromRedis(request: ClaimRequest, limit: number): Promise<ClaimedJob[]> {
    const groups = slotGroups(request.queues, this.prefix, this.endpoint.cluster);
    if (groups.length === 0) return [];
    // One server, one slot: the claim goes behind the BLPOP on the blocking connection (blockThenClaim).
    const single = !this.endpoint.cluster && groups.length === 1;
    const deadline = Date.now() + Math.max(0, Math.min(request.wait_ms, MAX_CLAIM_WAIT_MS));
    let woke: Claimed | null = null;
    for (;;) {
      let nextAt = Infinity;
      if (woke) {
        if (woke.jobs.length > 0) return woke.jobs;
        nextAt = woke.nextAt;
        const expired = woke.expired;
        woke = null;
        if (expired && (await this.recoverExpired(groups[0]!))) continue;
      } else {
        const start = this.turn++ % groups.length; // several slots: take turns
        let recovered = false;
        for (let i = 0; i < groups.length; i++) {
          const group = groups[(start + i) % groups.length]!;
          const found = await this.claimFrom(group, request, limit);
          if (found.jobs.length > 0) return found.jobs;
          if (found.expired) recovered = (await this.recoverExpired(group)) || recovered;
          nextAt = Math.min(nextAt, found.nextAt);
        }
        if (recovered) continue; // what was recovered is claimable now
      }
      const now = Date.now();
      if (deadline - now <= 0 || request.signal?.aborted || this.closed) return [];
      const left = Math.min(deadline, nextAt + 2) - now;
      if (left <= 0) continue;
      if (single && !this.clientRefused) woke = await this.blockThenClaim(groups[0]!, request, limit, left);
      else await blockForWake(this.pool, this.prefix, groups, left, request.signal, this.log);
    }
  }

  /**
   * Block on the queues' wake lists and claim as soon as a token arrives, the
   * claim script sent right behind the BLPOP on the same connection: Redis
   * runs it the moment the BLPOP returns, without a round trip through this
   * process, which is most of an idle worker's pickup time. An abort unblocks
   * the BLPOP (CLIENT UNBLOCK) rather than dropping the connection, so the
   * claim's reply is never lost (jobs it took are then handed back by the
   * worker, uncharged). Null when nothing was claimed this way (an outage;
   * the next claim reports it).
   */
  private async blockThenClaim(queues: string[], request: ClaimRequest, max: number, ms: number): Promise<Claimed | null> {
    const keys = queues.map((q) => queuePrefix(this.prefix, q));
    const wake = queues.map((q) => wakeKey(this.prefix, q));
    const leaseMs = Math.floor(request.lease_ms);
    const base = this.newToken();
    const seconds = Math.max(ms, 10) / 1000;
    let reply: unknown[] | undefined;
    try {
      reply = await this.pool.run(
        async (c) => {
          const [, claimed] = await Promise.all([c.blpop(...wake, seconds), runScript(c, 'claim', keys.length, ...keys, request.owner, leaseMs, max, base)]);
          return claimed as unknown[];
        },
        request.signal,
        { send: (id) => this.unblock(id), blockMs: seconds * 1000 },
      );
    } catch (error) {
      this.noteClientRefused(error);
      this.log.debug({ err: error instanceof Error ? error.message : String(error) }, 'blocking claim interrupted');
      await pause(Math.min(ms, 100));
      return null;
    }
    return reply ? this.claimReply(reply, request.owner, base, leaseMs) : null;
  }

  /** CLIENT UNBLOCK from the command connection; not sent while it is reconnecting (the id could then be another server's client). */
  private unblock(id: number): Promise<boolean> {
    if (this.client.status !== 'ready') return Promise.resolve(false);
    return this.client.client('UNBLOCK', id).then(
      (n) => Number(n) === 1,
      (error: unknown) => {
        this.noteClientRefused(error);
        throw error;
      },
    );
  }

  /** CLIENT refused (an ACL, a proxy): idle claims go back to waking up first and claiming after (blockForWake). */
  private noteClientRefused(error: unknown): void {
    if (this.clientRefused || !/NOPERM|unknown command|unknown subcommand/i.test(error instanceof Error ? error.message : String(error))) return;
    this.clientRefused = true;
    this.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'CLIENT ID/UNBLOCK refused: idle claims will wake up first and claim after (one round trip more per pickup)');
  }

  async extend(id: string, token: string, leaseMs: number): Promise<ExtendResult> {
    const reply = (await this.onJob(id, 'extend', token, leaseMs)) as unknown[];
    return {
      until: new Date(Number(reply[0])),
      cancel_requested: reply[1] ? { at: new Date(Number(reply[1])), reason: String(reply[2] ?? '') } : null,
    };
  }

  /**
   * Concurrent completes on one queue share one script call (batch.ts), which
   * also claims the owners' next jobs when they claim from this queue
   * (prefetch.ts, completeBatch).
   */
  private complete(id: string, token: string, result: Intent): Promise<Job> {
    let json: string;
    try {
      json = JSON.stringify(result);
    } catch (error) {
      // A BigInt, a cycle, a throwing toJSON: no try will ever store it.
      return Promise.reject(new ValidationError(`the intent cannot be stored as JSON: ${error instanceof Error ? error.message : String(error)}`, 'intent'));
    }
    const held = this.locate.held(id, token);
    const queue = held?.job.queue ?? this.locate.cached(id);
    const item: CompleteItem = { id, token, result: json, want: this.prefetch.want(held?.owner, queue), held, intent: result };
    if (queue === undefined || this.closed) return this.completeSlow(item);
    // The common case, the queue known from the claim: no lookup, one promise.
    return this.completions.call(queuePrefix(this.prefix, queue), item).then((reply) => this.afterComplete(item, reply as CompleteReply), this.rethrowTranslated);
  }

  private afterComplete(item: CompleteItem, reply: CompleteReply): Job | Promise<Job> {
    if (typeof reply.entry !== 'string') return this.completed(item, reply);
    const error = this.translate(new Error(reply.entry));
    if (!(error instanceof JobNotFoundError)) throw error;
    this.locate.forget(item.id); // not in the cached queue (deleted, id reused): look it up
    return this.completeSlow(item);
  }

  private completeSlow(item: CompleteItem): Promise<Job> {
    item.want = null; // the first try may have claimed for it already
    return this.onJob(item.id, (prefix) => this.completions.call(prefix, item)).then((reply) => this.completed(item, reply as CompleteReply));
  }

  private readonly rethrowTranslated = (error: unknown): never => {
    throw this.translate(error);
  };

  /** The job a complete returns: from the held record and what the write changed, else from the reply's hash. */
  private completed({ id, token, held, intent }: CompleteItem, { now, entry }: CompleteReply): Job {
    this.locate.unhold(id, token);
    if (!held || !(entry === 1 || (Array.isArray(entry) && entry.length === 2))) return this.jobReply(id, entry);
    const finished = new Date(now);
    const cancel = entry === 1 ? null : (entry as [string, string]);
    return {
      ...held.job,
      status: 'done',
      result: intent,
      lease: null,
      cancel_requested: cancel ? { at: new Date(Number(cancel[0])), reason: cancel[1] } : null,
      updated_at: finished,
      finished_at: finished,
      callback: held.job.callback_url === null ? null : { ...PENDING_CALLBACK }, // written by complete.lua (lib.lua notify)
      // Its first run (a job with earlier runs comes back whole from complete.lua): the record lib.lua append_run wrote.
      runs: [runRecord(held.job, { status: 'done', result: intent }, 'done', finished)],
    };
  }

  async settle(id: string, token: string, outcome: Outcome): Promise<Job> {
    assertSettle(id, outcome);
    if (outcome.status === 'done') return this.complete(id, token, outcome.result!);
    const runAt = outcome.run_at ? String(outcome.run_at.getTime()) : '';
    const due = outcome.run_at && outcome.run_at.getTime() <= Date.now() ? '1' : '0';
    const error = outcome.error ? JSON.stringify(outcome.error) : '';
    const job = await this.onJob(id, 'settle', token, outcome.status, error, runAt, due, outcome.give_back ? '1' : '', '', outcome.stall ? '1' : '', ...runArgs(outcome)).then(
      (reply) => this.jobReply(id, reply),
      (e: unknown) => {
        if (e instanceof LeaseLostError) this.locate.unhold(id, token); // lost: nobody will settle it under this token
        throw e;
      },
    );
    this.locate.unhold(id, token);
    return job;
  }

  async appendEvents(id: string, token: string, events: NewEvent[], written: number | null): Promise<number> {
    const args = appendArgs(token, events, written, this.eventsMax);
    const [last, usage] = (await this.onJob(id, 'append-events', ...args)) as [number, string | null];
    this.locate.noteEvents(id, token, lastProgress(events), usage);
    return Number(last);
  }

  /**
   * One script call reads the page with the job's status and newest id
   * (read-events.lua). An empty page short of the end, with `wait_ms`,
   * blocks in XREAD on the job's stream (the next append or lifecycle write
   * wakes it: pushed, not polled) in rounds of at most MAX_CLAIM_WAIT_MS,
   * reading again after each; an abort returns what is there.
   */
  async readEvents(id: string, options: ReadEventsOptions): Promise<EventPage> {
    const after = Math.max(0, Math.floor(options.after ?? 0) || 0);
    const limit = Math.min(Math.max(Math.floor(options.limit ?? EVENTS_PAGE_MAX) || 1, 1), EVENTS_PAGE_MAX);
    const deadline = Date.now() + Math.max(0, options.wait_ms ?? 0);
    for (;;) {
      const { page, key } = await this.readPage(id, after, limit, deadline > Date.now());
      const left = deadline - Date.now();
      if (page.events.length > 0 || page.end || left <= 0 || options.signal?.aborted || this.closed) return page;
      try {
        await waitForEvent(this.pool, key, after, Math.min(left, MAX_CLAIM_WAIT_MS), options.signal);
      } catch {
        await pause(Math.min(left, 100)); // the next read reports an outage
      }
    }
  }

  /** `live`: the caller blocks for more when the page is empty (the job's events must reach its stream from then on). */
  private readPage(id: string, after: number, limit: number, live: boolean): Promise<{ page: EventPage; key: string }> {
    return this.op(() =>
      this.locate.withQueue(id, async (queue) => {
        const reply = await this.script('read-events', queuePrefix(this.prefix, queue), id, after, limit, live ? '1' : '0').catch((error: unknown) => Promise.reject(this.translate(error)));
        return { page: eventPage(reply, after, limit), key: eventsKey(this.prefix, queue, id) };
      }),
    );
  }

  async cancel(id: string, reason: string): Promise<Job> {
    return this.jobReply(id, await this.onJob(id, 'cancel', reason));
  }

  async retry(id: string): Promise<Job> {
    const reply = await this.onJob(id, 'retry', ...RETRY_FROM);
    if (Array.isArray(reply) && reply[0] === 'RQ_ILLEGAL') assertTransition({ id, status: reply[1] as JobStatus }, 'retry', 'queued');
    return this.jobReply(id, reply);
  }

  async get(id: string): Promise<Job | null> {
    return this.op(() => this.locate.get(id));
  }

  /**
   * Resolve once the job is terminal. Each round marks the job as waited on
   * (watch.lua) and blocks on its `fin` list, so the ending write wakes us at
   * once; a round lasts MAX_CLAIM_WAIT_MS at most and re-reads the job.
   */
  async wait(id: string, options: WaitOptions): Promise<Job> {
    const deadline = Date.now() + Math.max(0, options.timeout_ms);
    for (;;) {
      const left = deadline - Date.now();
      const job = left > 0 ? this.jobReply(id, await this.onJob(id, 'watch')) : await this.get(id);
      if (!job) throw new JobNotFoundError(id);
      if (isTerminal(job.status) || left <= 0 || options.signal?.aborted || this.closed) return job;
      const fin = finKey(this.prefix, job.queue, id);
      const seconds = Math.min(left, MAX_CLAIM_WAIT_MS) / 1000;
      try {
        await this.pool.run((c) => c.blmove(fin, fin, 'RIGHT', 'LEFT', seconds), options.signal);
      } catch {
        await pause(Math.min(left, 100)); // the next round's read reports an outage
      }
    }
  }

  list(filter: ListFilter): Promise<ListPage> {
    return this.op(() => listJobs(this.ctx(), filter));
  }

  rollups(from: Date, to: Date, step: RollupStep): Promise<Rollup[]> {
    return this.op(() => readRollups(this.ctx(), from, to, step));
  }

  stats(): Promise<Stats> {
    return this.op(() => queueStats(this.ctx()));
  }

  heartbeat(worker: WorkerInfo): Promise<void> {
    return this.op(() => saveWorker(this.ctx(), worker));
  }

  unregisterWorker(id: string): Promise<void> {
    return this.op(() => removeWorker(this.ctx(), id));
  }

  workers(): Promise<WorkerInfo[]> {
    return this.op(() => listWorkers(this.ctx()));
  }

  async sweep(now?: Date): Promise<SweepResult> {
    const { result, deleted } = await this.op(() => sweepQueues(this.ctx(), { now, retentionMs: this.retentionMs, historyLimit: this.historyLimit }));
    for (const id of deleted) this.locate.forget(id);
    return result;
  }

  async claimCallbacks(owner: string, leaseMs: number, max: number): Promise<Job[]> {
    return this.op(async () => {
      const out: Job[] = [];
      const queues = await knownQueues(this.ctx());
      // Start at another queue each time, so that a busy queue cannot starve the others' callbacks.
      const start = queues.length ? this.callbackTurn++ % queues.length : 0;
      for (const queue of [...queues.slice(start), ...queues.slice(0, start)]) {
        if (out.length >= max) break;
        const replies = (await this.script('callbacks', queuePrefix(this.prefix, queue), '#claim', Math.floor(leaseMs), max - out.length)) as unknown[];
        for (const reply of replies) {
          const job = fieldsToJob(reply);
          if (job) out.push(job);
        }
      }
      return out;
    });
  }

  async settleCallback(id: string, finishedAt: Date, log: CallbackLog, nextAt: Date | null): Promise<void> {
    await this.onJob(id, 'callbacks', JSON.stringify(log), nextAt ? String(nextAt.getTime()) : '', String(finishedAt.getTime()));
  }

  async lead(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.op(async () => Number(await this.script('lead', lockKey(this.prefix, name), owner, Math.max(0, Math.floor(ttlMs)))) === 1);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.prefetch.releaseAll().catch(() => {});
    this.closed = true;
    this.pool.close();
    await this.client.quit().catch(() => this.client.disconnect());
  }

  // -- internals ------------------------------------------------------------

  private ctx(): QueryContext {
    return { client: this.client, prefix: this.prefix, workerHorizonMs: this.workerHorizonMs };
  }

  /** Run a store call and translate whatever it throws. */
  private async op<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new TransportError('the redis transport is closed', { retryable: false });
    try {
      return await fn();
    } catch (error) {
      throw this.translate(error);
    }
  }

  private script(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    return runScript(this.client, name, ...args);
  }

  /**
   * Run a per-job script in the job's slot: by name, or through `call` (a
   * batcher) given the queue prefix. The queue comes from the local cache or
   * the id index; a cached queue that no longer holds the job (it was
   * deleted and the id reused) is looked up once more.
   */
  private async onJob(id: string, name: ScriptName | ((prefix: string) => Promise<unknown>), ...args: (string | number)[]): Promise<unknown> {
    return this.op(() =>
      this.locate.withQueue(id, async (queue) => {
        const prefix = queuePrefix(this.prefix, queue);
        const call = typeof name === 'function' ? name(prefix) : this.script(name, prefix, id, ...args);
        const reply = await call.catch((error: unknown) => Promise.reject(this.translate(error)));
        // A batched script reports a job's own failure as a string.
        const own = typeof name === 'function' ? (reply as CompleteReply).entry : reply;
        if (typeof own === 'string') throw this.translate(new Error(own));
        return reply;
      }),
    );
  }

  private translate(error: unknown): ReturnType<typeof fromRedisError> {
    return fromRedisError(error, this.url, this.lastConnectionError);
  }

  private newToken(): string {
    return `${this.tokenBase}.${(this.tokens++).toString(36)}`;
  }

  private jobReply(id: string, reply: unknown): Job {
    const job = fieldsToJob(reply);
    if (!job) throw new JobNotFoundError(id);
    return job;
  }

  /**
   * complete.lua for a batch of one queue's completes. The prefetches they
   * ask for become one claim per owner in the same call; the claimed jobs go
   * to their owners' buffers before any complete of the batch resolves, so
   * the worker's next claim finds them.
   */
  private async completeBatch(prefix: string, items: CompleteItem[]): Promise<CompleteReply[]> {
    const args: (string | number)[] = [prefix, items.length];
    const claims = new Map<string, { owner: string; leaseMs: number; count: number; base: string }>();
    for (const item of items) {
      args.push(item.id, item.token, item.result, item.held ? '1' : '0'); // '1': reply with what the write changed only
      const want = item.want;
      if (!want || queuePrefix(this.prefix, want.queue) !== prefix) continue;
      const key = `${want.owner}\n${want.leaseMs}`;
      const claim = claims.get(key);
      if (claim) claim.count += 1;
      else claims.set(key, { owner: want.owner, leaseMs: want.leaseMs, count: 1, base: this.newToken() });
    }
    args.push(claims.size);
    for (const c of claims.values()) args.push(c.owner, c.leaseMs, c.count, c.base);
    const reply = (await this.script('complete', ...args)) as unknown[];
    const now = Number(reply[0]);
    let at = 1 + items.length;
    const unreadable: UnreadableJob[] = [];
    for (const c of claims.values()) {
      const count = Number(reply[at]);
      const jobs = claimedJobs(reply, at + 1, count, c.owner, c.base, now, c.leaseMs, unreadable);
      at += 1 + count;
      for (const job of jobs) {
        this.locate.hold(job, c.owner);
        this.prefetch.deliver(c.owner, job);
      }
    }
    this.failUnreadable(unreadable);
    return items.map((_, i) => ({ now, entry: reply[1 + i] }));
  }

  /**
   * enqueue.lua for a batch of one queue's jobs; `imported`: they are
   * imported, `imported[i]` the arguments of job i's stream (importedArgs).
   */
  private async enqueueBatch(prefix: string, jobs: Job[], imported?: ImportedArgs[]): Promise<unknown[]> {
    const now = Date.now();
    const keys = this.endpoint.cluster ? [prefix] : [prefix, queuesKey(this.prefix), ...jobs.map((j) => idKey(this.prefix, j.id))];
    const args: (string | number)[] = [keys.length, ...keys, jobs.length, imported ? '1' : ''];
    jobs.forEach((job, i) => {
      const fields = jobToFields(job);
      const runAt = job.run_at.getTime();
      args.push(job.id, job.queue, job.dedupe_key ?? '', runAt <= now ? '1' : '0', job.priority, runAt, job.created_at.getTime(), job.attempts, fields.length, ...fields);
      if (imported) args.push(...imported[i]!);
    });
    return (await this.script('enqueue', ...args)) as unknown[];
  }

  /** An imported job's last arguments to enqueue.lua: its newest event id, its events as they wait in the hash, its callback owed or not. */
  private importedArgs(job: Job, events: JobEvent[]): ImportedArgs {
    const result = job.status === 'done' && job.result !== null ? JSON.stringify(job.result) : null;
    return [events.at(-1)?.id ?? 0, pendingEvents(events, result, this.eventsMax), job.callback?.state === 'pending' ? '1' : ''];
  }

  private registerQueue(queue: string): Promise<void> {
    let pending = this.registered.get(queue);
    if (!pending) {
      pending = this.client.sadd(queuesKey(this.prefix), queue).then(() => undefined);
      pending.catch(() => this.registered.delete(queue)); // try again next time
      this.registered.set(queue, pending);
    }
    return pending;
  }

  private async claimFrom(queues: string[], request: ClaimRequest, max: number): Promise<Claimed> {
    const keys = queues.map((q) => queuePrefix(this.prefix, q));
    const leaseMs = Math.floor(request.lease_ms);
    const base = this.newToken();
    const reply = (await this.op(() => this.script('claim', keys.length, ...keys, request.owner, leaseMs, max, base))) as unknown[];
    return this.claimReply(reply, request.owner, base, leaseMs);
  }

  /** claim.lua's reply: the jobs (held here from now on) and when something may next become claimable. */
  private claimReply(reply: unknown[], owner: string, base: string, leaseMs: number): Claimed {
    const unreadable: UnreadableJob[] = [];
    const jobs = claimedJobs(reply, 3, reply.length - 3, owner, base, Number(reply[1]), leaseMs, unreadable);
    for (const job of jobs) this.locate.hold(job, owner);
    this.failUnreadable(unreadable);
    const nextIn = Number(reply[0]);
    return { jobs, nextAt: nextIn < 0 ? Infinity : Date.now() + nextIn, expired: Number(reply[2]) > 0 };
  }

  /** Settle the expired leases of these queues as src/outcome.ts decides (the sweep's work, done by a claim that found them). True when one was requeued. */
  private async recoverExpired(queues: string[]): Promise<boolean> {
    const { result } = await this.op(() => sweepQueues(this.ctx(), { now: undefined, retentionMs: this.retentionMs, historyLimit: this.historyLimit, queues, leasesOnly: true }));
    return result.requeued > 0;
  }

  /**
   * A claimed record that does not decode would fail the same way on every
   * attempt: end it at once (error, CORRUPT_RECORD, not retried), keeping the
   * record for inspection, instead of letting its lease run out again and again.
   */
  private failUnreadable(jobs: UnreadableJob[]): void {
    for (const { id, token, error } of jobs) {
      this.log.warn({ job_id: id, err: error }, 'claimed a job whose record does not decode; ending it with CORRUPT_RECORD');
      const message = `the stored record of this job could not be read: ${error}`;
      // The script's reply (the job's hash) would not decode either: not read.
      const failure = { code: JobErrorCode.CORRUPT_RECORD, message, retryable: false };
      const stored = JSON.stringify(failure);
      void this.onJob(id, 'settle', token, 'error', stored, '', '0', '', '', '', ...runArgs({ status: 'error', error: failure })).catch((e: unknown) =>
        this.log.warn({ job_id: id, err: e instanceof Error ? e.message : String(e) }, 'could not end a job whose record does not decode'),
      );
    }
  }
}

/** claimIndex's answer. */
interface IndexClaim {
  elsewhere: Job | null;
  indexed: boolean;
}

const UNINDEXED: IndexClaim = { elsewhere: null, indexed: false };

type ImportedArgs = [last: number, pending: string, owed: '1' | ''];

/**
 * Jobs per enqueue.lua call of an enqueueMany. The calls of one batch go
 * out together, so this adds no round trip; it bounds how long one call
 * holds Redis (about 3–4 ms here; the claims of workers wait meanwhile).
 * Batches of 1000 in slices of 250, 500 or 1000 enqueued alike (28–29k
 * jobs/s median, 10 000 jobs), 128 a little slower (25k).
 */
const ENQUEUE_SLICE = 250;

/** What one claim script call gave. */
interface Claimed {
  jobs: ClaimedJob[];
  /** when something may next become claimable (ms since the epoch, this clock); Infinity for nothing known */
  nextAt: number;
  /** leases ran out in these queues: settle them (recoverExpired) and claim again */
  expired: boolean;
}

/** One complete of a batch (completeBatch). */
interface CompleteItem {
  id: string;
  token: string;
  result: string;
  /** claim the next job of this queue for this owner in the same call */
  want: { owner: string; queue: string; leaseMs: number } | null;
  /** the claimed record, when this token is the one handed out here (the reply then carries only what the write changed) */
  held: HeldJob | undefined;
  /** the intent as given */
  intent: Intent;
}

/** A complete's own entry of the batch reply, and the script's clock. */
interface CompleteReply {
  now: number;
  entry: unknown;
}

/**
 * Completes per script call at most. Small enough that a worker's completes
 * go out in several calls, so Redis runs one while the worker still finishes
 * the jobs of the next (one call for all of them would make the two take
 * turns); large enough that the per-call cost is spread thin. 8–25 measured
 * alike at concurrency 50; 50 (one call) was about a third slower.
 */
const COMPLETE_BATCH = 16;

/** Jobs one claim takes at most (bounds the script's argument lists). */
const MAX_CLAIM_BATCH = 500;

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
