/**
 * Per-job state of the worker loop, kept to two small objects per job: the
 * worker runs tens of thousands of jobs a second, and closures and accessor
 * literals made per job are most of what its garbage collector sees.
 */
import type { Logger } from './logger.js';
import { JobControl } from './job-control.js';
import type { ClaimedJob, Transport } from './transport.js';
import type { HandlerContext } from './worker.js';

/** A job this worker runs: its abort switch, its lazily made logger, and the promise of its end. */
export class RunningJob {
  readonly control = new JobControl();
  /** settles when the job has ended here (outcome written or handed back) */
  done: Promise<void> = Promise.resolve();
  /** Date.now() when the run began */
  readonly started = Date.now();
  /** the per-attempt timeout */
  timer: NodeJS.Timeout | undefined;
  /** the outcome is written (or the job lost): nothing more to write for it */
  ended = false;
  private child: Logger | null = null;

  constructor(
    readonly job: ClaimedJob,
    private readonly parentLog: Logger,
  ) {}

  /** The job's child logger, made on first use (most jobs never log). */
  log(): Logger {
    return (this.child ??= this.parentLog.child({ job_id: this.job.id, queue: this.job.queue, attempt: this.job.attempts }));
  }
}

const RUN = Symbol('reasonq.run');

interface ContextInternals {
  [RUN]: RunningJob;
}

function signalOf(this: ContextInternals): AbortSignal {
  return this[RUN].control.signal;
}

function logOf(this: ContextInternals): Logger {
  return this[RUN].log();
}

/** Shared getters: no function is made per job for them. */
const ACCESSORS: PropertyDescriptorMap = {
  signal: { get: signalOf, enumerable: true, configurable: true },
  log: { get: logOf, enumerable: true, configurable: true },
};

/**
 * What a handler gets as `ctx`: a plain object whose `signal` and `log` are
 * own enumerable getters, made on first use (an AbortController per job is
 * costly and most handlers never look), so that destructuring, spreading,
 * Object.assign, a Proxy or Object.create(ctx) all behave as with the plain
 * object of values it stands for.
 */
export function jobContext(run: RunningJob, transport: Transport): HandlerContext {
  const { job } = run;
  const ctx = {
    job_id: job.id,
    queue: job.queue,
    attempt: job.attempts,
    max_attempts: job.max_attempts,
    progress: (data: unknown): Promise<void> => (run.control.aborted ? Promise.resolve() : transport.progress(job.id, job.lease.token, data)),
  };
  Object.defineProperty(ctx, RUN, { value: run });
  Object.defineProperties(ctx, ACCESSORS);
  return ctx as unknown as HandlerContext;
}
