/**
 * The side of the store a migration leaves (MoveSource, src/migrate.ts), on
 * lua/moves.lua: each step one script call per queue, atomic per job.
 * `take` reads the jobs' events in the same call; `finish` and `release`
 * group their ids by queue (one slot each), found as every by-id call finds
 * them: this process' cache, else the id index.
 */
import { QUEUE_NAME_RE, type JobStatus } from '../../src/job.js';
import type { MoveSource, MovingJob } from '../../src/transport.js';
import { fieldsToJob } from './codec.js';
import type { RedisClient } from './connection.js';
import { toEvent, type Entry } from './events.js';
import { idKey, queuePrefix } from './keys.js';
import type { JobLocator } from './locator.js';
import { runScript } from './scripts.js';

export interface MovesContext {
  client: RedisClient;
  prefix: string;
  locate: JobLocator;
  /** runs a store call, translating what it throws (the transport's `op`) */
  op: <T>(fn: () => Promise<T>) => Promise<T>;
}

export function createMoveSource({ client, prefix, locate, op }: MovesContext): MoveSource {
  /**
   * moves.lua's `step` for these ids, one call per queue; the ids whose
   * cached queue did not hold them are looked up in the id index once more.
   * Returns how many changed.
   */
  async function byQueue(step: string[], ids: string[]): Promise<number> {
    let changed = 0;
    let todo = ids.map((id) => ({ id, cached: locate.cached(id) }));
    for (const fresh of [false, true]) {
      const queues = await Promise.all(todo.map(({ id, cached }) => (!fresh && cached) || client.get(idKey(prefix, id))));
      const groups = new Map<string, typeof todo>();
      todo.forEach((entry, i) => {
        const queue = queues[i];
        if (!queue) return; // no such job
        const group = groups.get(queue);
        if (group) group.push(entry);
        else groups.set(queue, [entry]);
      });
      const missed: typeof todo = [];
      await Promise.all(
        [...groups].map(async ([queue, group]) => {
          const replies = (await runScript(client, 'moves', queuePrefix(prefix, queue), ...step, ...group.map((e) => e.id))) as number[];
          group.forEach((entry, i) => {
            const reply = Number(replies[i]);
            if (reply === 1) changed += 1;
            if (reply >= 0) locate.remember(entry.id, queue);
            else if (!fresh && entry.cached) {
              locate.forget(entry.id);
              missed.push(entry);
            }
          });
        }),
      );
      todo = missed;
      if (todo.length === 0) break;
    }
    return changed;
  }

  return {
    take: (queue, what, max) =>
      op(async () => {
        const limit = Math.floor(max);
        if (!QUEUE_NAME_RE.test(queue) || !(limit > 0)) return [];
        const replies = (await runScript(client, 'moves', queuePrefix(prefix, queue), 'take', what, limit)) as [JobStatus, unknown, Entry[]][];
        const out: MovingJob[] = [];
        for (const [from, hash, entries] of replies) {
          const job = fieldsToJob(hash);
          if (!job) continue;
          locate.remember(job.id, queue);
          out.push({ job: { ...job, status: from }, events: entries.map(toEvent) });
        }
        return out;
      }),
    finish: (ids, to) => op(() => byQueue(['finish', to], ids)),
    release: (ids) => op(() => byQueue(['release'], ids)),
  };
}
