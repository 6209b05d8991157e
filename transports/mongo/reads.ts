/** The read-only queries of the dashboard and the API: list and stats. */
import { DEFAULTS } from '../../src/config.js';
import type { Collection } from 'mongodb';
import type { JobStatus } from '../../src/job.js';
import { buildStats, EMPTY_COUNTS, queueTable, type ListFilter, type ListPage, type Stats } from '../../src/transport.js';
import { encodeCursor, listKey, listOrder } from '../../src/transport-helpers.js';
import { docToJob, type JobDoc } from './codec.js';
import { delayedFilter, listFilter, listSort, STATS_PIPELINE } from './queries.js';

/** Newest first, keyset-paginated on (created_at, _id), or (finished_at, _id) for a finished status (listOrder). */
export async function listJobs(jobs: Collection<JobDoc>, filter: ListFilter): Promise<ListPage> {
  const limit = Math.min(Math.max(filter.limit ?? DEFAULTS.listLimit, 1), DEFAULTS.listMaxLimit);
  const order = listOrder(filter);
  const docs = await jobs.find(listFilter(filter)).sort(listSort(order)).limit(limit + 1).toArray();
  const page = docs.slice(0, limit).map(docToJob);
  const last = page[page.length - 1];
  return { jobs: page, next_cursor: docs.length > limit && last ? encodeCursor(new Date(listKey(last, order)), last.id) : null };
}

/** Counts per queue and status, then the delayed ones (a find: no $expr or $gt in aggregate on FerretDB). */
export async function countJobs(jobs: Collection<JobDoc>): Promise<Stats> {
  const queues = queueTable();
  const rows = await jobs.aggregate<{ _id: { queue: string; status: JobStatus }; n: number }>(STATS_PIPELINE).toArray();
  for (const row of rows) (queues[row._id.queue] ??= { ...EMPTY_COUNTS })[row._id.status] += row.n;
  const delayed = await jobs.find(delayedFilter(new Date()), { projection: { _id: 0, queue: 1 } }).toArray();
  // queued = due now, delayed = not yet: the aggregate counted both as queued.
  for (const doc of delayed) {
    const counts = (queues[doc.queue] ??= { ...EMPTY_COUNTS });
    counts.delayed += 1;
    counts.queued = Math.max(0, counts.queued - 1); // two reads: a job enqueued delayed between them was not in the first
  }
  return buildStats(queues);
}
