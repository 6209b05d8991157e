/**
 * The worker loop: claims jobs from a Transport, runs the handler with an
 * AbortSignal, renews the lease, and writes the outcome back, every write
 * fenced on the lease token. It never imports a store, and it decides
 * nothing about a job's fate itself: outcome.ts does.
 *
 * One claim is outstanding at a time per worker (so N idle workers make N
 * pollers, not N × concurrency); when the transport offers `claimMany`, the
 * free slots are filled in one round trip.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { backoffDelay, sleep, type BackoffOptions } from './backoff.js';
import { bounded } from './bounded.js';
import { createCallbackSender, deliverDue, type CallbackSender } from './callbacks.js';
import { DEFAULTS, loadCallbackConfig } from './config.js';
import { describeReason, JobErrorCode, LeaseLostError, ModelError, NonRetryableError, ReasonqError, TransportError, ValidationError } from './errors.js';
import { DEFAULT_QUEUE, intentSchema, queueNameSchema, toValidationError, type Intent, type IntentRequest, type Job, type JobError } from './job.js';
import { Maintainer } from './maintenance.js';
import { checkEvent, type NewEvent, type Usage } from './events.js';
import { EventWriter } from './event-writer.js';
import { decideOutcome, exponentialBackoff, type RetryPolicy, type RunEnd } from './outcome.js';
import { silentLogger, type Logger } from './logger.js';
import { startProcessSpan, type ProcessTrace } from './tracing.js';
import type { ClaimedJob, Transport, WorkerInfo } from './transport.js';

export interface HandlerContext {
  job_id: string;
  queue: string;
  /** 1 for the first attempt */
  attempt: number;
  max_attempts: number;
  /** earlier runs of this job that lost their lease (their worker died or froze); such a job runs alone */
  stalls: number;
  /** fires on cancel, timeout, lost lease or shutdown; `signal.reason` says which */
  signal: AbortSignal;
  /** pino child logger with job_id, queue and worker_id */
  log: Logger;
  /**
   * Append an event to the job's stream (src/events.ts): a token, a stage,
   * a tool-call draft. Coalesced into few store writes, in order (see
   * src/event-writer.ts). Resolves once written; a caller may ignore it
   * (it never rejects unhandled). Throws ValidationError at once for a
   * reserved or malformed type, or data past REASONQ_EVENT_MAX_BYTES.
   */
  emit(type: string, data?: unknown): Promise<void>;
  /** `emit('progress', data)`: the newest one is also the job's `progress` (get(), the dashboard); a refused one is a rejected promise */
  progress(data: unknown): Promise<void>;
  /** `emit('usage', usage)`: model tokens spent by this call; the job totals them in `usage` */
  usage(usage: Usage): Promise<void>;
}

export type Handler = (payload: IntentRequest, ctx: HandlerContext) => Promise<Intent> | Intent;

export interface WorkerOptions {
  transport: Transport;
  handler: Handler;
  queues?: string[];
  concurrency?: number;
  /** lease length; renewed every third of it */
  leaseMs?: number;
  /** per-attempt limit when the job has no `timeout_ms` */
  timeoutMs?: number;
  /** the default retry policy's backoff; ignored when `retryPolicy` is given */
  backoff?: Partial<BackoffOptions>;
  /** when a failed attempt runs again (default: exponential backoff with jitter up to max_attempts); it sees the job, so it may differ per job */
  retryPolicy?: RetryPolicy;
  /** how long stop() lets running jobs finish before handing their leases back */
  shutdownGraceMs?: number;
  heartbeatMs?: number;
  /** how long one claim may block */
  claimWaitMs?: number;
  /** how often the elected maintainer sweeps (maintenance.ts); every worker takes part in the election */
  maintenanceMs?: number;
  /** every store call settles within this (src/bounded.ts); a transport from createTransport is bounded already */
  storeTimeoutMs?: number;
  id?: string;
  logger?: Logger;
  /** stop on SIGINT/SIGTERM; a second signal exits at once */
  handleSignals?: boolean;
  /** delivers callbacks (signed, address-checked); default from REASONQ_CALLBACK_ALLOW / REASONQ_CALLBACK_SECRET */
  callbacks?: CallbackSender;
  /**
   * Let the store claim this worker's next job ahead where it can
   * (`Transport.prefetchFor`; redis: in the same call as a complete, one
   * round trip per job instead of two). Default on; off when jobs must not
   * wait in this process for a free slot.
   */
  prefetch?: boolean;
  /** a run's events are written at most this often (ms), those emitted meanwhile together; default REASONQ_EMIT_INTERVAL_MS (50) */
  emitIntervalMs?: number;
  /** JSON bytes of one event's data, default REASONQ_EVENT_MAX_BYTES (64 KiB) */
  eventMaxBytes?: number;
}

/** Why a running job's signal fired. */
export type AbortKind = 'canceled' | 'timeout' | 'lease-lost' | 'shutdown';

export class JobAbortError extends ReasonqError {
  readonly kind: AbortKind;
  constructor(kind: AbortKind, message: string) {
    super(kind === 'timeout' ? 'TIMEOUT' : kind === 'canceled' ? 'CANCELED' : kind === 'lease-lost' ? 'LEASE_LOST' : 'SHUTDOWN', message);
    this.kind = kind;
  }
}

export type JobOutcome = 'done' | 'retry' | 'error' | 'canceled' | 'released' | 'lost';

/** A job this worker runs. */
interface Run {
  job: ClaimedJob;
  /** fires on cancel, timeout, lost lease or shutdown; `signal.reason` is a JobAbortError */
  controller: AbortController;
  /** Date.now() when the run began */
  started: number;
  /** the job's child logger, made on first use: a pino child per job is a fifth of the worker's own cost on a no-op job (memory store, c=50: 23.5k → 29k jobs/s with it made lazily) and most jobs never log */
  logger: Logger | null;
  /** job:start went through; job:end pairs with it */
  announced: boolean;
  /** stop waiting for the handler (set while it runs) */
  abandon: ((reason: unknown) => void) | null;
  /** settles when the run is over here (outcome written, or the job lost) */
  done: Promise<void>;
  /** the run's events on their way to the store, made on the first emit */
  events: EventWriter | null;
  /** its outcome is being written (or it was lost): a later emit (a handler abandoned at its timeout) is refused */
  over: boolean;
  /** the run's `process` span (src/tracing.ts), a shared no-op when nothing is traced */
  trace: ProcessTrace;
}

/**
 * Stop a run: its handler's signal fires with `reason`, and the worker stops
 * waiting for the handler (one that ignores its signal is abandoned). Every
 * abort is the worker's own, so it can end the wait directly instead of
 * listening on the signal (memory store, c=50: 27k → 30k jobs/s).
 */
function stop(run: Run, reason: JobAbortError): void {
  run.controller.abort(reason);
  run.abandon?.(reason);
}

export interface WorkerEvents {
  'job:start': [job: ClaimedJob];
  'job:end': [job: ClaimedJob, outcome: JobOutcome, durationMs: number];
  'transport-error': [error: unknown];
}

/** Workers that were started and not yet stopped; tests fail if any is left. */
export const activeWorkers = new Set<Worker>();

export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}

export class Worker extends EventEmitter<WorkerEvents> {
  readonly id: string;
  readonly queues: string[];
  readonly concurrency: number;
  private readonly transport: Transport;
  private readonly handler: Handler;
  private readonly leaseMs: number;
  private readonly timeoutMs: number;
  private readonly retryPolicy: RetryPolicy;
  private readonly graceMs: number;
  private readonly heartbeatMs: number;
  private readonly claimWaitMs: number;
  private readonly maintainer: Maintainer;
  private readonly log: Logger;
  private readonly handleSignals: boolean;
  private readonly callbacks: CallbackSender;
  private readonly ownsCallbacks: boolean;
  private readonly prefetch: boolean;
  private readonly emitIntervalMs: number;
  private readonly storeTimeoutMs: number;
  private readonly eventMaxBytes: number;
  /** keyed by lease token: the same job may come back to this worker after its lease was lost */
  private readonly running = new Map<string, Run>();
  private readonly startedAt = new Date();
  private claimAbort = new AbortController();
  private loop: Promise<void> | null = null;
  private starting: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private slotFreed: (() => void) | null = null;
  /**
   * A claimed job whose earlier runs lost their lease (`stalls` > 0), waiting
   * to run alone: such a job may be what killed a process, and run beside
   * others it would take them down with it again. One at a time (others
   * claimed meanwhile go back at once, uncharged); its lease is renewed
   * while it waits for the running jobs to finish.
   */
  private readonly suspects = new Map<string, ClaimedJob>();
  /** the lease token of the suspect running alone, while it runs */
  private isolated: string | null = null;
  /** aborts the current prefetch registration (paused while a suspect waits or runs) */
  private prefetching: AbortController | null = null;
  private stopping: Promise<void> | null = null;
  private processed = 0;
  private failed = 0;
  private signalHandler: ((signal: NodeJS.Signals) => void) | null = null;

  constructor(options: WorkerOptions) {
    super();
    if (typeof options.handler !== 'function') throw new ValidationError('handler must be a function (payload, ctx) => intent', 'handler');
    this.storeTimeoutMs = positive('storeTimeoutMs', options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs);
    this.transport = bounded(options.transport, { timeoutMs: this.storeTimeoutMs });
    this.handler = options.handler;
    this.queues = options.queues?.length ? options.queues : [DEFAULT_QUEUE];
    for (const q of this.queues) {
      const r = queueNameSchema.safeParse(q);
      if (!r.success) throw toValidationError(r.error, 'queues');
    }
    this.concurrency = positive('concurrency', options.concurrency ?? DEFAULTS.concurrency, 100_000);
    this.leaseMs = positive('leaseMs', options.leaseMs ?? DEFAULTS.leaseMs);
    this.timeoutMs = positive('timeoutMs', options.timeoutMs ?? DEFAULTS.jobTimeoutMs);
    this.retryPolicy = options.retryPolicy ?? exponentialBackoff(options.backoff);
    this.graceMs = options.shutdownGraceMs ?? DEFAULTS.shutdownGraceMs;
    this.heartbeatMs = positive('heartbeatMs', options.heartbeatMs ?? DEFAULTS.heartbeatMs);
    this.claimWaitMs = positive('claimWaitMs', options.claimWaitMs ?? DEFAULTS.claimWaitMs, 60_000);
    const maintenanceMs = positive('maintenanceMs', options.maintenanceMs ?? DEFAULTS.maintenanceMs);
    this.graceMs = Math.min(this.graceMs, MAX_TIMER_MS);
    this.id = options.id ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.log = (options.logger ?? silentLogger).child({ worker_id: this.id });
    this.handleSignals = options.handleSignals ?? false;
    this.ownsCallbacks = !options.callbacks;
    this.prefetch = options.prefetch ?? true;
    this.emitIntervalMs = options.emitIntervalMs ?? DEFAULTS.emitIntervalMs;
    this.eventMaxBytes = options.eventMaxBytes ?? DEFAULTS.eventMaxBytes;
    this.callbacks = options.callbacks ?? createCallbackSender(loadCallbackConfig(), this.log);
    // Maintenance includes the callbacks the store owes (the outbox), whoever's jobs they are.
    const deliver = () => deliverDue(this.transport, this.callbacks, this.id, this.log).then(() => undefined);
    this.maintainer = new Maintainer(this.transport, this.id, maintenanceMs, (error) => this.transportError(error), this.log, deliver);
  }

  /** Jobs running right now. */
  get active(): number {
    return this.running.size;
  }

  get isRunning(): boolean {
    return this.loop !== null && this.stopping === null;
  }

  /** Start claiming. Resolves once the worker is registered. */
  start(): Promise<void> {
    this.starting ??= this.startOnce();
    return this.starting;
  }

  private async startOnce(): Promise<void> {
    activeWorkers.add(this);
    await this.beat().catch((error: unknown) => this.transportError(error));
    if (this.stopping) return; // stop() came while we registered
    this.timers.push(setInterval(() => void this.beat().catch((error: unknown) => this.transportError(error)), this.heartbeatMs));
    this.maintainer.start();
    // One renewal ticker for all running jobs, every third of the lease.
    this.timers.push(setInterval(() => this.renewAll(), Math.max(10, Math.floor(this.leaseMs / 3))));
    for (const t of this.timers) t.unref();
    if (this.handleSignals) this.installSignalHandlers();
    this.resumePrefetch();
    this.loop = this.claimLoop();
    this.log.info({ queues: this.queues, concurrency: this.concurrency, transport: this.transport.name }, 'worker started');
  }

  /**
   * Graceful shutdown: stop claiming, let running jobs finish within
   * `graceMs`, then abort them and hand their leases back uncharged.
   * Safe to call twice; both calls resolve when the worker is down.
   */
  stop(graceMs = this.graceMs): Promise<void> {
    this.stopping ??= this.shutdown(graceMs);
    return this.stopping;
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.log.info({ running: this.running.size, grace_ms: graceMs }, 'worker stopping');
    this.claimAbort.abort(new JobAbortError('shutdown', 'worker is stopping'));
    this.slotFreed?.();
    await this.starting?.catch(() => undefined);
    await this.loop;
    // Suspects still waiting to run alone go back, uncharged.
    await Promise.all(
      [...this.suspects.values()].map((job) => this.transport.settle(job.id, job.lease.token, decideOutcome(job, { kind: 'released' })).catch((error: unknown) => this.transportError(error))),
    );
    this.suspects.clear();
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    if (this.running.size > 0) {
      const graceOver = new AbortController(); // so the grace timer does not hold the process
      const finished = await Promise.race([all().then(() => true), sleep(graceMs, graceOver.signal).then(() => false)]);
      graceOver.abort();
      if (!finished) {
        for (const r of this.running.values()) stop(r, new JobAbortError('shutdown', `worker stopped; grace period of ${graceMs} ms ran out`));
        await all();
      }
    }
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.maintainer.stop();
    this.removeSignalHandlers();
    await this.transport.unregisterWorker(this.id).catch((error: unknown) => this.transportError(error));
    if (this.ownsCallbacks) await this.callbacks.close();
    activeWorkers.delete(this);
    this.log.info({ processed: this.processed, failed: this.failed }, 'worker stopped');
  }

  private async claimLoop(): Promise<void> {
    let failures = 0;
    const signal = this.claimAbort.signal;
    while (!signal.aborted) {
      if (this.isolated !== null || this.suspects.size > 0) {
        // A suspect runs alone: once the others have finished, and nothing is claimed while it runs.
        if (this.isolated !== null && !this.running.has(this.isolated)) this.isolated = null;
        if (this.isolated === null && this.suspects.size === 0) {
          this.resumePrefetch();
          continue;
        }
        if (this.isolated === null && this.running.size === 0) {
          const [token, job] = this.suspects.entries().next().value as [string, ClaimedJob];
          this.suspects.delete(token);
          // Its renewals may have failed while it waited: a lease run out is the sweep's to requeue, not ours to run.
          if (job.lease.until.getTime() <= Date.now()) continue;
          this.isolated = token;
          this.log.info({ job_id: job.id, queue: job.queue, stalls: job.stalls }, 'running alone: earlier runs of this job lost their lease');
          this.run(job);
        }
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        this.slotFreed = null;
        continue;
      }
      const free = this.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        this.slotFreed = null;
        continue;
      }
      try {
        const request = { queues: this.queues, owner: this.id, lease_ms: this.leaseMs, wait_ms: this.claimWaitMs, signal };
        const asked = Date.now();
        const jobs = this.transport.claimMany
          ? await this.transport.claimMany(request, free)
          : await this.transport.claim(request).then((job) => (job ? [job] : []));
        failures = 0;
        // A store that answers "nothing" at once (wait_ms 0, closed) must not spin the event loop.
        if (jobs.length === 0 && Date.now() - asked < 5) await sleep(DEFAULTS.pollMinMs, signal);
        for (const job of jobs) {
          if (signal.aborted) {
            // Claimed during shutdown: give it straight back, uncharged.
            await this.transport.settle(job.id, job.lease.token, decideOutcome(job, { kind: 'released' })).catch((error: unknown) => this.transportError(error));
            continue;
          }
          if (job.stalls === 0) this.run(job);
          else if (this.suspects.size === 0 && this.isolated === null) {
            this.suspects.set(job.lease.token, job);
            this.pausePrefetch(); // nothing may wait in a prefetch buffer, unrenewed, while the suspect waits and runs
          }
          // One suspect at a time here: another one waiting beside it would die with it if it is the poison.
          else await this.transport.settle(job.id, job.lease.token, decideOutcome(job, { kind: 'released' })).catch((error: unknown) => this.transportError(error));
        }
      } catch (error) {
        if (signal.aborted) break;
        failures += 1;
        this.transportError(error);
        await sleep(backoffDelay(failures, { baseMs: 100, maxMs: 5_000 }), signal);
      }
    }
  }

  /**
   * Run one job, top to bottom: start it, run the handler under its signal,
   * turn what happened into a RunEnd, let the outcome policy decide, write
   * the decision (fenced), then report and free the slot.
   */
  private run(job: ClaimedJob): void {
    // An older run of the same job here has lost its lease: stop it.
    for (const other of this.running.values()) {
      if (other.job.id === job.id) stop(other, new JobAbortError('lease-lost', 'the job was claimed again after this lease expired'));
    }
    const run: Run = { job, controller: new AbortController(), started: Date.now(), logger: null, announced: false, abandon: null, done: Promise.resolve(), events: null, over: false, trace: startProcessSpan(job, this.id) };
    this.running.set(job.lease.token, run);
    run.done = this.execute(run).catch((error: unknown) => this.transportError(error));
  }

  private async execute(run: Run): Promise<void> {
    const { job } = run;
    const timeoutMs = job.timeout_ms ?? this.timeoutMs;
    const timer = setTimeout(() => stop(run, new JobAbortError('timeout', `attempt ${job.attempts} ran past its timeout of ${timeoutMs} ms`)), timeoutMs);
    if (job.cancel_requested) stop(run, new JobAbortError('canceled', job.cancel_requested.reason));
    let end: RunEnd | null;
    let thrown: unknown;
    try {
      this.announce(run);
      end = this.returned(await this.handle(run), run);
    } catch (error) {
      end = this.failure(run, error);
      thrown = error;
    } finally {
      clearTimeout(timer);
    }
    if (end?.kind === 'failed') run.trace.failed(end.error, thrown);
    let outcome: JobOutcome = 'lost';
    try {
      // The run's events go before its ending. Bounded: a store that does not answer costs trailing events,
      // never the order (an append that lands late is refused by the fence once the outcome is written).
      run.over = true;
      if (run.events) {
        const flushed = new AbortController();
        await Promise.race([run.events.flush().finally(() => flushed.abort()), sleep(this.storeTimeoutMs, flushed.signal)]);
        run.events.abandon();
      }
      if (end) outcome = await this.settle(run, end);
    } catch (error) {
      this.transportError(error);
    }
    run.trace.end(outcome);
    this.ended(run, outcome);
    this.running.delete(job.lease.token);
    this.slotFreed?.();
  }

  private jobLog(run: Run): Logger {
    return (run.logger ??= this.log.child({ job_id: run.job.id, queue: run.job.queue, attempt: run.job.attempts }));
  }

  /** The handler's value, or the abort's reason as soon as the run is stopped. */
  private handle(run: Run): Promise<unknown> {
    const { signal } = run.controller;
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      run.abandon = reject;
      // The run's span is the active context while the handler runs: a handler's own spans nest under it.
      Promise.resolve(run.trace.active(() => this.handler(run.job.payload, this.context(run)))).then(resolve, reject);
    });
  }

  /** job:start; a listener that throws fails the attempt as WORKER_ERROR (retried like a handler error, so it cannot loop). */
  private announce(run: Run): void {
    try {
      this.emit('job:start', run.job);
      run.announced = true;
    } catch (error) {
      throw new WorkerFailure(`the worker failed around the handler: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** What a handler gets: a plain object (its `log` made on first read). */
  private context(run: Run): HandlerContext {
    const { job, controller } = run;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getter below has its own `this` (the ctx)
    const self = this;
    return {
      job_id: job.id,
      queue: job.queue,
      attempt: job.attempts,
      max_attempts: job.max_attempts,
      stalls: job.stalls,
      signal: controller.signal,
      get log() {
        return self.jobLog(run);
      },
      emit: (type, data) => this.emitFor(run, checkEvent(type, data, this.eventMaxBytes)),
      // These two answer a refusal as a rejected promise, as the first release's progress() did (emit throws at once).
      progress: (data) => this.emitChecked(run, 'progress', data),
      usage: (usage) => this.emitChecked(run, 'usage', usage),
    };
  }

  private emitChecked(run: Run, type: string, data: unknown): Promise<void> {
    try {
      return this.emitFor(run, checkEvent(type, data, this.eventMaxBytes));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Hand an event to the run's writer (made on first use); a lost lease found by a write stops the run. */
  private emitFor(run: Run, event: NewEvent): Promise<void> {
    if (run.over && !run.events) {
      const refused = Promise.reject(new TransportError('the run is over: its events can no longer be written', { code: 'RUN_OVER', retryable: false }));
      refused.catch(() => undefined); // a caller may ignore it, like every emit
      return refused;
    }
    run.events ??= new EventWriter({
      intervalMs: this.emitIntervalMs,
      write: (events, written) =>
        this.transport.appendEvents(run.job.id, run.job.lease.token, events, written).catch((error: unknown) => {
          if (error instanceof LeaseLostError) stop(run, new JobAbortError('lease-lost', 'the lease was lost while writing events'));
          throw error;
        }),
    });
    return run.events.emit(event);
  }

  /** The handler's value: a valid intent, or a failure that no retry would mend. */
  private returned(value: unknown, run: Run): RunEnd {
    const parsed = intentSchema.safeParse(value);
    if (parsed.success) return { kind: 'returned', intent: parsed.data };
    const message = toValidationError(parsed.error, 'intent').message;
    this.jobLog(run).warn({ err: message }, 'handler returned an invalid intent');
    return { kind: 'failed', error: { code: JobErrorCode.INVALID_INTENT, message, retryable: false } };
  }

  /** Why the run stopped, or null when there is nothing left to write (the lease is gone). */
  private failure(run: Run, error: unknown): RunEnd | null {
    const reason: unknown = run.controller.signal.aborted ? run.controller.signal.reason : undefined;
    if (reason instanceof JobAbortError) {
      if (reason.kind === 'lease-lost') return null;
      if (reason.kind === 'canceled') return { kind: 'canceled' };
      if (reason.kind === 'shutdown') return { kind: 'released' };
      return { kind: 'failed', error: { code: JobErrorCode.TIMEOUT, message: reason.message, retryable: true } };
    }
    if (error instanceof NonRetryableError) return { kind: 'failed', error: jobError(error.code, error.message, false) };
    const message = error instanceof Error ? error.message : describeReason(error);
    if (error instanceof WorkerFailure) return { kind: 'failed', error: jobError(JobErrorCode.WORKER_ERROR, message, true) };
    // A model's failure keeps its code (MODEL_RATE_LIMITED, MODEL_STREAM_CUT …): retried like any, readable in job.error.
    if (error instanceof ModelError) {
      this.jobLog(run).warn({ err: { code: error.code, message } }, 'model call failed');
      return { kind: 'failed', error: jobError(error.code, message, true) };
    }
    this.jobLog(run).warn({ err: error instanceof Error ? { message: error.message, stack: error.stack } : message }, 'handler failed');
    return { kind: 'failed', error: jobError(JobErrorCode.HANDLER_ERROR, message, true) };
  }

  /** Decide through the policy, then write the decision, fenced on the lease token. */
  private async settle(run: Run, end: RunEnd): Promise<JobOutcome> {
    const { job } = run;
    const outcome = decideOutcome(job, end, this.retryPolicy);
    let stored: Job | null;
    try {
      stored = await this.write(job, () => this.transport.settle(job.id, job.lease.token, outcome));
    } catch (error) {
      if (end.kind !== 'returned') throw error;
      // The store refused the intent itself (too large, not JSON): running again would not help.
      const message = `the store refused the intent: ${error instanceof Error ? error.message : String(error)}`;
      this.jobLog(run).warn({ err: message }, 'result rejected');
      const rejected = jobError(JobErrorCode.RESULT_REJECTED, message, false);
      run.trace.failed(rejected, error);
      return this.settle(run, { kind: 'failed', error: rejected });
    }
    if (!stored) return 'lost';
    if (stored.status === 'queued') return end.kind === 'released' ? 'released' : 'retry';
    return stored.status as JobOutcome;
  }

  /** Count, log and report an ended run. A throwing job:end listener is a bug of its own, not the job's. */
  private ended(run: Run, outcome: JobOutcome): void {
    if (outcome === 'done') this.processed += 1;
    if (outcome === 'error' || outcome === 'retry') this.failed += 1;
    const ms = Date.now() - run.started;
    if (this.log.isLevelEnabled('info')) this.jobLog(run).info({ outcome, duration_ms: ms }, 'job ended');
    if (!run.announced) return;
    try {
      this.emit('job:end', run.job, outcome, ms);
    } catch (error) {
      this.log.error({ job_id: run.job.id, err: error instanceof Error ? error.message : String(error) }, 'a job:end listener threw');
    }
  }

  /**
   * A fenced write. Losing the lease is not an error of this worker: the job
   * was reclaimed or canceled and its new owner writes the outcome.
   */
  private async write(job: ClaimedJob, op: () => Promise<Job>): Promise<Job | null> {
    const firstTry = Date.now();
    let unknown = false;
    for (let failures = 1; ; failures++) {
      try {
        return await op();
      } catch (error) {
        if (error instanceof LeaseLostError) {
          // An earlier try whose answer was lost may have written it: then the job has left this lease, ended.
          const ours = unknown ? await this.settledByUs(job) : null;
          if (ours) return ours;
          this.log.warn({ job_id: job.id, queue: job.queue }, 'lease lost before the outcome was written; the result is dropped');
          return null;
        }
        unknown ||= error instanceof TransportError;
        // The store refused the write itself: trying again would not help.
        if (error instanceof ReasonqError && error.status < 500) throw error;
        if (error instanceof TransportError && !error.retryable) throw error;
        // Store unavailable: keep trying for a while. Renewals go on meanwhile,
        // so the bound is time since the first try, not the lease; past it the
        // job is left to expire and be reclaimed (at-least-once).
        this.transportError(error);
        if (Date.now() - firstTry > this.leaseMs * 4) return null;
        await sleep(backoffDelay(failures, { baseMs: 100, maxMs: 2_000 }));
      }
    }
  }

  /**
   * After a write whose answer was lost, LEASE_LOST may mean it was written:
   * the job is no longer processing and nobody claimed it since (a claim
   * stamps `started_at`). Null when that cannot be told.
   */
  private async settledByUs(job: ClaimedJob): Promise<Job | null> {
    const stored = await this.transport.get(job.id).catch(() => null);
    // The sweep ending or requeueing it after the lease ran out counts a stall: not ours either.
    if (!stored || stored.status === 'processing' || stored.started_at?.getTime() !== job.started_at?.getTime() || stored.stalls !== job.stalls) return null;
    return stored;
  }

  /** Let the store claim this worker's next jobs ahead (redis prefetch), until paused or the worker stops claiming. */
  private resumePrefetch(): void {
    if (!this.prefetch || !this.transport.prefetchFor || this.prefetching || this.claimAbort.signal.aborted) return;
    const until = new AbortController();
    const stop = () => until.abort();
    this.claimAbort.signal.addEventListener('abort', stop, { once: true });
    until.signal.addEventListener('abort', () => this.claimAbort.signal.removeEventListener('abort', stop), { once: true });
    this.prefetching = until;
    this.transport.prefetchFor(this.id, until.signal);
  }

  /** Stop claiming ahead; jobs claimed ahead go back at once, uncharged. */
  private pausePrefetch(): void {
    this.prefetching?.abort();
    this.prefetching = null;
  }

  private renewAll(): void {
    for (const entry of this.running.values()) void this.renew(entry);
    for (const [token, job] of this.suspects) {
      this.transport.extend(job.id, token, this.leaseMs).then(
        (res) => {
          job.lease.until = res.until;
          if (res.cancel_requested) job.cancel_requested = res.cancel_requested; // it ends canceled when its turn comes
        },
        (error: unknown) => {
          if (error instanceof LeaseLostError) this.suspects.delete(token);
          else this.transportError(error);
        },
      );
    }
  }

  private async renew(run: Run): Promise<void> {
    const { job, controller } = run;
    if (controller.signal.aborted) return;
    try {
      const res = await this.transport.extend(job.id, job.lease.token, this.leaseMs);
      job.lease.until = res.until;
      // The run's copy learns of the cancel too: what the policy decides at the end depends on it.
      if (res.cancel_requested) job.cancel_requested = res.cancel_requested;
      if (res.cancel_requested && !controller.signal.aborted) {
        this.jobLog(run).info({ reason: res.cancel_requested.reason }, 'cancel observed');
        stop(run, new JobAbortError('canceled', res.cancel_requested.reason));
      }
    } catch (error) {
      if (!this.running.has(job.lease.token)) return; // finished while the renewal was in flight
      if (error instanceof LeaseLostError || Date.now() > job.lease.until.getTime()) {
        this.jobLog(run).warn('lease lost; aborting the handler');
        stop(run, new JobAbortError('lease-lost', 'the lease on this job was lost (expired or reclaimed)'));
      } else {
        this.transportError(error);
      }
    }
  }

  private async beat(): Promise<void> {
    const now = new Date();
    const info: WorkerInfo = {
      id: this.id,
      queues: this.queues,
      concurrency: this.concurrency,
      running: this.running.size,
      host: hostname(),
      pid: process.pid,
      started_at: this.startedAt,
      last_seen: now,
      ttl_ms: this.heartbeatMs * 3,
      processed: this.processed,
      failed: this.failed,
    };
    await this.transport.heartbeat(info);
  }

  private transportError(error: unknown): void {
    this.log.error({ err: error instanceof Error ? { message: error.message, code: (error as { code?: unknown }).code } : error }, 'transport error');
    this.emit('transport-error', error);
  }

  private installSignalHandlers(): void {
    let count = 0;
    this.signalHandler = (signal) => {
      count += 1;
      if (count > 1) {
        this.log.warn({ signal }, 'second signal: exiting now; leases will expire as for a crash');
        process.exit(130);
      }
      this.log.info({ signal }, 'signal received: shutting down gracefully');
      void this.stop();
    };
    process.on('SIGINT', this.signalHandler);
    process.on('SIGTERM', this.signalHandler);
  }

  private removeSignalHandlers(): void {
    if (!this.signalHandler) return;
    process.off('SIGINT', this.signalHandler);
    process.off('SIGTERM', this.signalHandler);
    this.signalHandler = null;
  }
}

/** setTimeout fires at once past 2^31−1 ms; no option of ours needs more than a day. */
const MAX_TIMER_MS = 24 * 3600 * 1000;

function positive(name: string, value: number, max = MAX_TIMER_MS): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new ValidationError(`${name} must be a whole number from 1 to ${max} (got ${value})`, name);
  return value;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 20)}… (${text.length - max + 20} more)`;
}

/** A job error within the API's limits, whatever a handler threw. */
function jobError(code: string, message: string, retryable: boolean): JobError {
  return { code: code.slice(0, 128) || JobErrorCode.HANDLER_ERROR, message: truncate(message, 8000), retryable };
}

/** The worker itself failed around the handler (a job:start listener threw). */
class WorkerFailure extends Error {}
