/**
 * Finding a job's queue (its slot) from its id: a bounded local cache of the
 * jobs this process touched (the queue of a job never changes), else the
 * shared id index `rq:~id:<id>`. A cached queue that no longer holds the job
 * (deleted, id reused elsewhere) is looked up once more.
 */
import { JobNotFoundError } from '../../src/errors.js';
import type { Job } from '../../src/job.js';
import { hashToJob } from './codec.js';
import type { RedisClient } from './connection.js';
import { idKey, jobKey } from './keys.js';

const CACHE_LIMIT = 100_000;

export class JobLocator {
  private readonly queues = new Map<string, string>();

  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
  ) {}

  remember(id: string, queue: string): void {
    if (this.queues.size >= CACHE_LIMIT) this.queues.delete(this.queues.keys().next().value as string);
    this.queues.set(id, queue);
  }

  forget(id: string): void {
    this.queues.delete(id);
  }

  cached(id: string): string | undefined {
    return this.queues.get(id);
  }

  /** The job as stored, or null; remembers its queue. */
  async read(queue: string, id: string): Promise<Job | null> {
    const job = hashToJob(await this.client.hgetall(jobKey(this.prefix, queue, id)));
    if (job) this.remember(id, queue);
    return job;
  }

  async get(id: string): Promise<Job | null> {
    const cached = this.queues.get(id);
    if (cached) {
      const job = await this.read(cached, id);
      if (job) return job;
      this.queues.delete(id);
    }
    const queue = await this.client.get(idKey(this.prefix, id));
    return queue ? this.read(queue, id) : null;
  }

  /**
   * Run `op` with the job's queue: `hint` (a queue known otherwise), else the
   * cached one, else the id index. `op` throws JobNotFoundError when the job
   * is not in that queue; with a hinted or cached queue that triggers one
   * fresh lookup.
   */
  async withQueue<T>(id: string, hint: string | undefined, op: (queue: string) => Promise<T>): Promise<T> {
    for (const fresh of [false, true]) {
      const queue = fresh ? await this.client.get(idKey(this.prefix, id)) : (hint ?? this.queues.get(id));
      if (!queue) continue;
      try {
        const result = await op(queue);
        if (fresh) this.remember(id, queue);
        return result;
      } catch (error) {
        if (!(error instanceof JobNotFoundError) || fresh) throw error;
        this.queues.delete(id);
      }
    }
    throw new JobNotFoundError(id);
  }
}
