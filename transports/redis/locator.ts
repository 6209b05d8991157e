/**
 * What this process knows of the jobs it touched, in one bounded map:
 *
 * - a job's queue (its slot), which never changes: a job this process
 *   enqueued, read or claimed is found without asking the shared id index
 *   `rq:~id:<id>`; a cached queue that no longer holds the job (deleted, id
 *   reused elsewhere) is looked up once more;
 * - the jobs it handed out by claim, as handed out and to whom, so that a
 *   complete needs back only what its write changed (finished_at, a cancel
 *   request) instead of the whole record (bench: saves the HGETALL a reply
 *   would carry), and knows whom to claim the next job for (prefetch.ts).
 *   While a job is processing under a token nothing else of it changes —
 *   every other write is fenced on that token and goes through the holder —
 *   except what its events change (progress, usage), kept here too.
 */
import { JobNotFoundError } from '../../src/errors.js';
import type { Job } from '../../src/job.js';
import type { ClaimedJob } from '../../src/transport.js';
import { hashToJob } from './codec.js';
import type { RedisClient } from './connection.js';
import { idKey, jobKey } from './keys.js';

const LIMIT = 100_000;

export interface HeldJob {
  job: ClaimedJob;
  /** the claim's owner (worker id) */
  owner: string;
}

export class JobLocator {
  private readonly known = new Map<string, { queue: string; held: HeldJob | null }>();

  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
  ) {}

  /** Newest last: the oldest entries leave first when the map is full. */
  private set(id: string, queue: string, held: HeldJob | null): void {
    if (!this.known.delete(id) && this.known.size >= LIMIT) this.evictOldest();
    this.known.set(id, { queue, held });
  }

  /**
   * The oldest tenth, in one pass. One at a time, each eviction walked the
   * holes the earlier ones left at the front of V8's table: past LIMIT
   * entries a producer's enqueue went from 18 to 65 µs of CPU a job, and
   * the map alone from 0.5 to 130 µs an entry.
   */
  private evictOldest(): void {
    let n = LIMIT / 10;
    for (const id of this.known.keys()) {
      this.known.delete(id);
      if (--n === 0) break;
    }
  }

  remember(id: string, queue: string): void {
    const entry = this.known.get(id);
    if (entry?.queue !== queue) this.set(id, queue, null);
  }

  forget(id: string): void {
    this.known.delete(id);
  }

  cached(id: string): string | undefined {
    return this.known.get(id)?.queue;
  }

  /** A job this process claimed, held until its settle. */
  hold(job: ClaimedJob, owner: string): void {
    this.set(job.id, job.queue, { job, owner });
  }

  /** The held record, if this lease token is the one handed out. */
  held(id: string, token: string): HeldJob | undefined {
    const held = this.known.get(id)?.held;
    return held?.job.lease.token === token ? held : undefined;
  }

  /** Settled or lost under this token: the queue stays known. */
  unhold(id: string, token: string): void {
    const entry = this.known.get(id);
    if (entry?.held?.job.lease.token === token) entry.held = null;
  }

  /** Appended events changed the held job: its progress (the last progress event's data), its usage total (JSON, from the script). */
  noteEvents(id: string, token: string, progress: { data: unknown } | undefined, usage: string | null): void {
    const held = this.held(id, token);
    if (!held) return;
    if (progress) held.job.progress = structuredClone(progress.data);
    if (usage !== null) held.job.usage = JSON.parse(usage) as Job['usage'];
  }

  /** The job as stored, or null; remembers its queue. */
  async read(queue: string, id: string): Promise<Job | null> {
    const job = hashToJob(await this.client.hgetall(jobKey(this.prefix, queue, id)));
    if (job) this.remember(id, queue);
    return job;
  }

  async get(id: string): Promise<Job | null> {
    const cached = this.cached(id);
    if (cached) {
      const job = await this.read(cached, id);
      if (job) return job;
      this.known.delete(id);
    }
    const queue = await this.client.get(idKey(this.prefix, id));
    return queue ? this.read(queue, id) : null;
  }

  /**
   * Run `op` with the job's queue: the cached one, else the id index. `op`
   * throws JobNotFoundError when the job is not in that queue; with a cached
   * queue that triggers one fresh lookup.
   */
  async withQueue<T>(id: string, op: (queue: string) => Promise<T>): Promise<T> {
    for (const fresh of [false, true]) {
      const queue = fresh ? await this.client.get(idKey(this.prefix, id)) : this.cached(id);
      if (!queue) continue;
      try {
        const result = await op(queue);
        if (fresh) this.remember(id, queue);
        return result;
      } catch (error) {
        if (!(error instanceof JobNotFoundError) || fresh) throw error;
        this.known.delete(id);
      }
    }
    throw new JobNotFoundError(id);
  }
}
