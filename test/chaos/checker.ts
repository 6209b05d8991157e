/**
 * The chaos checker: every acknowledged job, read back by id, against what
 * the worker processes logged (driver.ts, worker-process.ts).
 *
 * - lost: acknowledged, and the store has no such job;
 * - not terminal: still queued or processing at the end;
 * - unexpected status: a work job not `done`, a poison pill not `error` /
 *   WORKER_CRASHED, a held job (canceled by the driver) not `canceled`;
 * - innocent errors: jobs that did nothing wrong and ended `error`;
 * - attempts charged: work jobs (their handler never fails) done with more
 *   than one attempt counted: a crash or a freeze charged them one;
 * - ran more than once: handler starts per job > 1 (a figure: at-least-once);
 * - late writes accepted: a settle the store accepted from a run that was not
 *   the job's last claim, or two runs' settles both accepted;
 * - calls never settled: calls of the driver still pending at the end, and
 *   worker processes whose graceful stop hung;
 * - stream faults: a job's event stream, read back from the start, that is
 *   not one story: ids not 1, 2, 3 …, or not exactly one ending, last, the
 *   same as the job's status; or a handler event after the ending;
 * - events lost: streams with a `lost` marker (Mongo: a lifecycle event
 *   whose process died between the job's write and the event's insert,
 *   README Limits); such a stream may lack its ending if the marker is last;
 * - cancel latency: from the cancel call to the handler's signal, p50/p99.
 */
import { isEnding, type JobEvent } from '../../src/events.js';
import { isTerminal, type Job } from '../../src/job.js';

export interface Figures {
  acknowledged: number;
  lost: number;
  notTerminal: number;
  unexpectedStatus: number;
  innocentErrors: number;
  /** work jobs (whose handler never fails) that ended with more than one attempt charged: a crash charged them */
  attemptsCharged: number;
  poisonCrashed: number;
  ranMoreThanOnce: number;
  lateWritesAccepted: number;
  callsNeverSettled: number;
  /** event streams that do not tell the job's story (see above) */
  streamFaults: number;
  /** streams with events lost with their writer (a `lost` marker in their place) */
  eventsLost: number;
  stalls: number;
  cancelP50: number | null;
  cancelP99: number | null;
  /** a few examples of what went wrong, for the failure message */
  problems: string[];
}

export interface CheckInput {
  acknowledged: Set<string>;
  final: Map<string, Job | null>;
  /** each job's events read back from the start (an Error: the read failed) */
  streams: Map<string, JobEvent[] | Error>;
  kindOf: Map<string, 'work' | 'poison' | 'hold'>;
  logs: string[];
  cancels: Map<string, number>;
  unsettledCalls: number;
}

const percentile = (values: number[], p: number): number | null => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

/** What is wrong with a finished job's stream, or null. */
const isLost = (e: JobEvent) => e.type === 'trimmed' && (e.data as { reason?: string } | null)?.reason === 'lost';

export function streamFault(job: Job, events: JobEvent[] | Error | undefined): string | null {
  if (!events) return 'its events were not read';
  if (events instanceof Error) return `its events could not be read: ${events.message}`;
  // Ids in order, none twice: a marker stands for the ids it covers (its id is the last of them).
  let expected = 1;
  for (const e of events) {
    if (e.type === 'trimmed') {
      if (e.id < expected) return `a marker at ${e.id} after ${expected - 1}`;
    } else if (e.id !== expected) return `event ${e.type} has id ${e.id}, expected ${expected}`;
    expected = e.id + 1;
  }
  const endings = events.filter((e) => isEnding(e));
  if (endings.length === 0 && events.length > 0 && isLost(events.at(-1)!)) return null; // the ending was lost with its writer (counted in eventsLost)
  if (endings.length !== 1) return `${endings.length} endings: ${events.map((e) => e.type).join(',')}`;
  if (events.at(-1) !== endings[0]) return `the ending is not last: ${events.map((e) => e.type).join(',')}`;
  if (endings[0]!.type !== job.status) return `it ends ${endings[0]!.type}, the job ${job.status}`;
  return null;
}

export function check({ acknowledged, final, streams, kindOf, logs, cancels, unsettledCalls }: CheckInput): Figures {
  const starts = new Map<string, number>();
  const ends = new Map<string, { startedAt: number; outcome: string }[]>();
  const aborted = new Map<string, number>();
  for (const text of logs) {
    for (const line of text.split('\n')) {
      const [event, id, a, b] = line.split(' ');
      if (!id) continue;
      if (event === 'start') starts.set(id, (starts.get(id) ?? 0) + 1);
      else if (event === 'end' && (b === 'done' || b === 'error' || b === 'canceled')) (ends.get(id) ?? ends.set(id, []).get(id)!).push({ startedAt: Number(a), outcome: b });
      else if (event === 'abort' && a === 'canceled') aborted.set(id, Number(line.split(' ').pop()));
    }
  }
  const f: Figures = {
    acknowledged: acknowledged.size,
    lost: 0,
    notTerminal: 0,
    unexpectedStatus: 0,
    innocentErrors: 0,
    attemptsCharged: 0,
    poisonCrashed: 0,
    ranMoreThanOnce: 0,
    lateWritesAccepted: 0,
    callsNeverSettled: unsettledCalls,
    streamFaults: 0,
    eventsLost: 0,
    stalls: 0,
    cancelP50: null,
    cancelP99: null,
    problems: [],
  };
  const problem = (text: string) => f.problems.length < 8 && f.problems.push(text);
  for (const id of acknowledged) {
    const job = final.get(id);
    const kind = kindOf.get(id)!;
    if ((starts.get(id) ?? 0) > 1) f.ranMoreThanOnce++;
    if (!job) {
      f.lost++;
      problem(`lost: ${id} (${kind})`);
      continue;
    }
    f.stalls += job.stalls;
    if (!isTerminal(job.status)) {
      f.notTerminal++;
      problem(`not terminal: ${id} (${kind}) ${job.status}, attempts ${job.attempts}, stalls ${job.stalls}`);
      continue;
    }
    const expected = kind === 'work' ? 'done' : kind === 'poison' ? 'error' : 'canceled';
    if (job.status !== expected || (kind === 'poison' && job.error?.code !== 'WORKER_CRASHED')) {
      f.unexpectedStatus++;
      problem(`unexpected: ${id} (${kind}) ended ${job.status}${job.error ? ` ${job.error.code}: ${job.error.message}` : ''}`);
    }
    if (kind === 'poison' && job.error?.code === 'WORKER_CRASHED') f.poisonCrashed++;
    if (kind !== 'poison' && job.status === 'error') f.innocentErrors++;
    if (kind === 'work' && job.status === 'done' && job.attempts !== 1) {
      f.attemptsCharged++;
      problem(`attempts charged: ${id} done after ${job.attempts} attempts, ${job.stalls} stalls`);
    }
    const stream = streams.get(id);
    if (Array.isArray(stream) && stream.some(isLost)) f.eventsLost++;
    const fault = streams.has(id) ? streamFault(job, stream) : null; // not read: a sample was (FerretDB)
    if (fault) {
      f.streamFaults++;
      problem(`stream: ${id} (${kind}): ${fault}`);
    }
    // Settles the store accepted: at most one, and from the job's last claim.
    const accepted = ends.get(id) ?? [];
    const stale = accepted.filter((e) => e.startedAt !== job.started_at?.getTime());
    if (accepted.length > 1 || stale.length > 0) {
      f.lateWritesAccepted++;
      problem(`late write accepted: ${id} ${JSON.stringify(accepted)}, last claim at ${job.started_at?.getTime()}`);
    }
  }
  const latencies = [...cancels].flatMap(([id, at]) => (aborted.has(id) ? [aborted.get(id)! - at] : []));
  f.cancelP50 = percentile(latencies, 50);
  f.cancelP99 = percentile(latencies, 99);
  return f;
}
