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

/**
 * What a handler gets as `ctx`. `signal` and `log` are getters (made on first
 * use); `progress` is a bound function, made on first use too, so that
 * destructuring `{ signal, progress }` works as with a plain object.
 */
export class JobContext implements HandlerContext {
  readonly job_id: string;
  readonly queue: string;
  readonly attempt: number;
  readonly max_attempts: number;
  readonly #run: RunningJob;
  readonly #transport: Transport;
  #progress: ((data: unknown) => Promise<void>) | null = null;

  constructor(run: RunningJob, transport: Transport) {
    const { job } = run;
    this.job_id = job.id;
    this.queue = job.queue;
    this.attempt = job.attempts;
    this.max_attempts = job.max_attempts;
    this.#run = run;
    this.#transport = transport;
  }

  get signal(): AbortSignal {
    return this.#run.control.signal;
  }

  get log(): Logger {
    return this.#run.log();
  }

  get progress(): (data: unknown) => Promise<void> {
    return (this.#progress ??= async (data: unknown) => {
      const run = this.#run;
      if (!run.control.aborted) await this.#transport.progress(run.job.id, run.job.lease.token, data);
    });
  }
}
