/**
 * The worker loop: claims jobs from a Transport, runs the handler with an
 * AbortSignal, renews the lease, and writes the outcome back, every write
 * fenced on the lease token. It never imports a store.
 *
 * One claim is outstanding at a time per worker (so N idle workers make N
 * pollers, not N × concurrency); when the transport offers `claimMany`, the
 * free slots are filled in one round trip.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { backoffDelay, sleep, type BackoffOptions } from './backoff.js';
import { createCallbackSender, type CallbackSender } from './callbacks.js';
import { DEFAULTS, loadCallbackConfig } from './config.js';
import { describeReason, JobErrorCode, LeaseLostError, NonRetryableError, ReasonqError, TransportError, ValidationError } from './errors.js';
import { checkIntent, intentSchema, queueNameSchema, toValidationError, type Intent, type IntentRequest, type Job, type JobError } from './job.js';
import type { JobControl } from './job-control.js';
import { jobContext, RunningJob } from './running-job.js';
import { silentLogger, type Logger } from './logger.js';
import type { ClaimedJob, Transport, WorkerInfo } from './transport.js';

export interface HandlerContext {
  job_id: string;
  queue: string;
  /** 1 for the first attempt */
  attempt: number;
  max_attempts: number;
  /** fires on cancel, timeout, lost lease or shutdown; `signal.reason` says which */
  signal: AbortSignal;
  /** pino child logger with job_id, queue and worker_id */
  log: Logger;
  /** store a progress report on the job (visible in get() and the dashboard) */
  progress(data: unknown): Promise<void>;
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
  backoff?: Partial<BackoffOptions>;
  /** how long stop() lets running jobs finish before handing their leases back */
  shutdownGraceMs?: number;
  heartbeatMs?: number;
  /** how long one claim may block */
  claimWaitMs?: number;
  /** how often the worker asks the store to recover expired leases */
  sweepMs?: number;
  id?: string;
  logger?: Logger;
  /** stop on SIGINT/SIGTERM; a second signal exits at once */
  handleSignals?: boolean;
  /** delivers callbacks (signed, address-checked); default from REASONQ_CALLBACK_ALLOW / REASONQ_CALLBACK_SECRET */
  callbacks?: CallbackSender;
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
  private readonly backoff: BackoffOptions;
  private readonly graceMs: number;
  private readonly heartbeatMs: number;
  private readonly claimWaitMs: number;
  private readonly sweepMs: number;
  private readonly log: Logger;
  private readonly handleSignals: boolean;
  private readonly callbacks: CallbackSender;
  private readonly ownsCallbacks: boolean;
  /** keyed by lease token: the same job may come back to this worker after its lease was lost */
  private readonly running = new Map<string, RunningJob>();
  private readonly startedAt = new Date();
  private claimAbort = new AbortController();
  private loop: Promise<void> | null = null;
  private starting: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private slotFreed: (() => void) | null = null;
  private stopping: Promise<void> | null = null;
  private processed = 0;
  private failed = 0;
  private signalHandler: ((signal: NodeJS.Signals) => void) | null = null;

  constructor(options: WorkerOptions) {
    super();
    if (typeof options.handler !== 'function') throw new ValidationError('handler must be a function (payload, ctx) => intent', 'handler');
    this.transport = options.transport;
    this.handler = options.handler;
    this.queues = options.queues?.length ? options.queues : ['reasoning'];
    for (const q of this.queues) {
      const r = queueNameSchema.safeParse(q);
      if (!r.success) throw toValidationError(r.error, 'queues');
    }
    this.concurrency = positive('concurrency', options.concurrency ?? DEFAULTS.concurrency, 100_000);
    this.leaseMs = positive('leaseMs', options.leaseMs ?? DEFAULTS.leaseMs);
    this.timeoutMs = positive('timeoutMs', options.timeoutMs ?? DEFAULTS.jobTimeoutMs);
    this.backoff = { baseMs: options.backoff?.baseMs ?? DEFAULTS.backoffBaseMs, maxMs: options.backoff?.maxMs ?? DEFAULTS.backoffMaxMs };
    this.graceMs = options.shutdownGraceMs ?? DEFAULTS.shutdownGraceMs;
    this.heartbeatMs = positive('heartbeatMs', options.heartbeatMs ?? DEFAULTS.heartbeatMs);
    this.claimWaitMs = positive('claimWaitMs', options.claimWaitMs ?? 2_000, 60_000);
    this.sweepMs = positive('sweepMs', options.sweepMs ?? 1_000);
    this.graceMs = Math.min(this.graceMs, MAX_TIMER_MS);
    this.id = options.id ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.log = (options.logger ?? silentLogger).child({ worker_id: this.id });
    this.handleSignals = options.handleSignals ?? false;
    this.ownsCallbacks = !options.callbacks;
    this.callbacks = options.callbacks ?? createCallbackSender(loadCallbackConfig(), this.log);
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
    this.timers.push(setInterval(() => void this.transport.sweep().catch((error: unknown) => this.transportError(error)), this.sweepMs));
    // One renewal ticker for all running jobs, every third of the lease.
    this.timers.push(setInterval(() => this.renewAll(), Math.max(10, Math.floor(this.leaseMs / 3))));
    for (const t of this.timers) t.unref();
    if (this.handleSignals) this.installSignalHandlers();
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
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    if (this.running.size > 0) {
      const graceOver = new AbortController(); // so the grace timer does not hold the process
      const finished = await Promise.race([all().then(() => true), sleep(graceMs, graceOver.signal).then(() => false)]);
      graceOver.abort();
      if (!finished) {
        for (const r of this.running.values()) r.control.abort(new JobAbortError('shutdown', `worker stopped; grace period of ${graceMs} ms ran out`));
        await all();
      }
    }
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
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
      const free = this.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        this.slotFreed = null;
        continue;
      }
      try {
        const request = { queues: this.queues, owner: this.id, lease_ms: this.leaseMs, wait_ms: this.claimWaitMs, signal, prefetch: true };
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
            await this.transport.release(job.id, job.lease.token).catch((error: unknown) => this.transportError(error));
            continue;
          }
          this.run(job);
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
   * Run one job. The common path (the handler returns a valid intent, the
   * store takes it) is a short promise chain with no async frames: at tens of
   * thousands of jobs a second the promises per job are most of the worker's
   * own cost. Anything else takes the general path (onResult, onError).
   */
  private run(job: ClaimedJob): void {
    const run = new RunningJob(job, this.log);
    // An older run of the same job here has lost its lease: stop it.
    for (const other of this.running.values()) {
      if (other.job.id === job.id) other.control.abort(new JobAbortError('lease-lost', 'the job was claimed again after this lease expired'));
    }
    this.running.set(job.lease.token, run);
    const { control } = run;
    const timeoutMs = job.timeout_ms ?? this.timeoutMs;
    run.timer = setTimeout(abortOnTimeout, timeoutMs, control, job.attempts, timeoutMs);
    if (job.cancel_requested) control.abort(new JobAbortError('canceled', job.cancel_requested.reason));
    try {
      this.emit('job:start', job);
    } catch (error) {
      run.done = this.crashed(run, error); // a listener threw: as if the run had failed
      return;
    }
    run.done = control
      .race(this.handler, job.payload, jobContext(run, this.transport))
      .then(
        (value) => this.handled(run, value),
        (error: unknown) => {
          clearTimeout(run.timer);
          return this.onError(run, error);
        },
      )
      .then((outcome) => this.ended(run, outcome))
      .catch((error: unknown) => this.crashed(run, error));
  }

  /** The handler returned `value`: store it. Writing is outside the handler's try: a refused write is not a handler failure. */
  private handled(run: RunningJob, value: unknown): Promise<JobOutcome> {
    clearTimeout(run.timer);
    const intent = checkIntent(value);
    if (!intent) return this.onResult(run, value);
    const { job } = run;
    let written: Promise<Job>;
    try {
      written = this.transport.complete(job.id, job.lease.token, intent);
    } catch (error) {
      return this.completeFailed(run, intent, error); // a store that throws instead of rejecting
    }
    return written.then(
      (stored) => (stored.status === 'done' ? 'done' : (stored.status as JobOutcome)),
      (error: unknown) => this.completeFailed(run, intent, error),
    );
  }

  private ended(run: RunningJob, outcome: JobOutcome): void | Promise<void> {
    const { job } = run;
    if (outcome === 'done') this.processed += 1;
    if (outcome === 'error' || outcome === 'retry') this.failed += 1;
    const ms = Date.now() - run.started;
    if (this.log.isLevelEnabled('info')) run.log().info({ outcome, duration_ms: ms }, 'job ended');
    const callback = job.callback_url !== null && (outcome === 'done' || outcome === 'error' || outcome === 'canceled');
    run.ended = true;
    try {
      this.emit('job:end', job, outcome, ms);
    } catch (error) {
      // A listener's bug: the outcome is written; report it and go on (callback, slot).
      this.log.error({ job_id: job.id, err: error instanceof Error ? error.message : String(error) }, 'a job:end listener threw');
    }
    if (!callback) return this.finished(run);
    return this.callback(run);
  }

  /** POST the finished job to its callback_url; the slot stays taken meanwhile, so that stop() waits for the read. */
  private async callback(run: RunningJob): Promise<void> {
    try {
      const final = await this.transport.get(run.job.id).catch(() => null);
      if (final) void this.callbacks.deliver(final, run.log());
    } finally {
      this.finished(run);
    }
  }

  private finished(run: RunningJob): void {
    if (!this.running.delete(run.job.lease.token)) return;
    this.slotFreed?.();
  }

  /**
   * The run failed around the handler (an event listener threw, a store
   * refused an outcome write outright, a bug). The attempt is charged, with
   * backoff, so that a failure that repeats ends the job after max_attempts
   * instead of running it forever; if even that write fails, the job is left
   * to its lease, whose expiry charges the attempt too.
   */
  private async crashed(run: RunningJob, error: unknown): Promise<void> {
    clearTimeout(run.timer);
    try {
      this.transportError(error);
      if (run.ended) return; // the outcome was written already
      const message = `the worker failed around the handler: ${error instanceof Error ? error.message : String(error)}`;
      await this.failWith(run.job, { code: JobErrorCode.WORKER_ERROR, message, retryable: true }).catch(() => undefined);
    } finally {
      this.finished(run);
    }
  }

  /** The general path of a handler's result: checked by the schema (with its message), then written with retries. */
  private async onResult(run: RunningJob, result: unknown): Promise<JobOutcome> {
    const { job } = run;
    const parsed = intentSchema.safeParse(result);
    if (!parsed.success) {
      const why = toValidationError(parsed.error, 'intent').message;
      run.log().warn({ err: why }, 'handler returned an invalid intent');
      return this.write(job, () =>
        this.transport.fail(job.id, job.lease.token, { error: { code: JobErrorCode.INVALID_INTENT, message: why, retryable: false }, retry_at: null }),
      ).then((r) => (r ? 'error' : 'lost'));
    }
    const intent = parsed.data;
    return this.storeIntent(run, () => this.write(job, () => this.transport.complete(job.id, job.lease.token, intent)));
  }

  /** The first complete failed: go on as write() would have after that try. */
  private completeFailed(run: RunningJob, intent: Intent, error: unknown): Promise<JobOutcome> {
    const { job } = run;
    return this.storeIntent(run, () => this.write(job, () => this.transport.complete(job.id, job.lease.token, intent), error));
  }

  private async storeIntent(run: RunningJob, store: () => Promise<Job | null>): Promise<JobOutcome> {
    try {
      const written = await store();
      if (!written) return 'lost';
      return written.status === 'done' ? 'done' : (written.status as JobOutcome);
    } catch (error) {
      // The store refused the intent itself (e.g. larger than the server takes): running again would not help.
      const message = `the store refused the intent: ${error instanceof Error ? error.message : String(error)}`;
      run.log().warn({ err: message }, 'result rejected');
      return this.failWith(run.job, { code: JobErrorCode.RESULT_REJECTED, message, retryable: false });
    }
  }

  private async onError(run: RunningJob, error: unknown): Promise<JobOutcome> {
    const { job, control } = run;
    const token = job.lease.token;
    const reason: unknown = control.aborted ? control.reason : undefined;
    if (reason instanceof JobAbortError) {
      switch (reason.kind) {
        case 'lease-lost':
          return 'lost';
        case 'canceled':
          return (await this.write(job, () => this.transport.acknowledgeCancel(job.id, token))) ? 'canceled' : 'lost';
        case 'shutdown':
          return (await this.write(job, () => this.transport.release(job.id, token))) ? 'released' : 'lost';
        case 'timeout':
          return this.failWith(job, { code: JobErrorCode.TIMEOUT, message: reason.message, retryable: true });
      }
    }
    if (error instanceof NonRetryableError) {
      return this.failWith(job, { code: error.code, message: error.message, retryable: false });
    }
    const message = error instanceof Error ? error.message : describeReason(error);
    run.log().warn({ err: error instanceof Error ? { message: error.message, stack: error.stack } : message }, 'handler failed');
    return this.failWith(job, { code: JobErrorCode.HANDLER_ERROR, message, retryable: true });
  }

  private async failWith(job: ClaimedJob, raw: JobError): Promise<JobOutcome> {
    // Handlers may throw anything; keep what is stored within the API's limits.
    const error: JobError = { code: raw.code.slice(0, 128) || 'HANDLER_ERROR', message: truncate(raw.message, 8000), retryable: raw.retryable };
    const retry = error.retryable && job.attempts < job.max_attempts;
    const retryAt = retry ? new Date(Date.now() + backoffDelay(job.attempts, this.backoff)) : null;
    const written = await this.write(job, () => this.transport.fail(job.id, job.lease.token, { error, retry_at: retryAt }));
    if (!written) return 'lost';
    return written.status === 'queued' ? 'retry' : written.status === 'canceled' ? 'canceled' : 'error';
  }

  /**
   * A fenced write. Losing the lease is not an error of this worker: the job
   * was reclaimed or canceled and its new owner writes the outcome.
   */
  private async write(job: ClaimedJob, op: () => Promise<Job>, failedOnce?: unknown): Promise<Job | null> {
    const firstTry = Date.now();
    for (let failures = 1; ; failures++) {
      try {
        if (failures > 1 || failedOnce === undefined) return await op();
        throw failedOnce; // the caller's first try already failed so
      } catch (error) {
        if (error instanceof LeaseLostError) {
          this.log.warn({ job_id: job.id, queue: job.queue }, 'lease lost before the outcome was written; the result is dropped');
          return null;
        }
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

  private renewAll(): void {
    for (const entry of this.running.values()) void this.renew(entry);
  }

  private async renew(run: RunningJob): Promise<void> {
    const { job, control } = run;
    if (control.aborted) return;
    try {
      const res = await this.transport.extend(job.id, job.lease.token, this.leaseMs);
      job.lease.until = res.until;
      if (res.cancel_requested && !control.aborted) {
        run.log().info({ reason: res.cancel_requested.reason }, 'cancel observed');
        control.abort(new JobAbortError('canceled', res.cancel_requested.reason));
      }
    } catch (error) {
      if (!this.running.has(job.lease.token)) return; // finished while the renewal was in flight
      if (error instanceof LeaseLostError || Date.now() > job.lease.until.getTime()) {
        run.log().warn('lease lost; aborting the handler');
        control.abort(new JobAbortError('lease-lost', 'the lease on this job was lost (expired or reclaimed)'));
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

/** The per-job timeout (a function with arguments, not a closure per job). */
function abortOnTimeout(control: JobControl, attempt: number, timeoutMs: number): void {
  control.abort(new JobAbortError('timeout', `attempt ${attempt} ran past its timeout of ${timeoutMs} ms`));
}
