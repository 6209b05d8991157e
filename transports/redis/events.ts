/**
 * A job's event stream on Redis (src/events.ts), the client's side: what
 * appendEvents sends to lua/append-events.lua, the page made of
 * lua/read-events.lua's reply, the wait for the next event, and an
 * imported stream as it is written (enqueueMany).
 *
 * One Redis Stream per job, `rq:{q}:ev:<id>` (the job's slot), event n as
 * the entry `<n>-0` whose one field `e` is the JSON text {type, at,
 * attempt, data}; the job hash's `ev` is the newest id (lua/lib.lua
 * add_event). Because ids are
 * consecutive, a page that does not start right after `after` lost its head
 * to trimming, and says so with a `trimmed` marker.
 */
import { ValidationError } from '../../src/errors.js';
import { trimmedMarker, type EventPage, type JobEvent, type NewEvent } from '../../src/events.js';
import { isTerminal, type JobStatus } from '../../src/job.js';
import type { BlockingPool } from './connection.js';

/** append-events.lua's arguments after the job id: token, written, keep, then type and data JSON per event. */
export function appendArgs(token: string, events: NewEvent[], written: number | null, keep: number): (string | number)[] {
  const args: (string | number)[] = [token, written === null ? -1 : Math.max(0, Math.floor(written) || 0), keep];
  for (const event of events) {
    let data: string;
    try {
      data = JSON.stringify(event.data ?? null);
    } catch (error) {
      throw new ValidationError(`event data is not JSON: ${error instanceof Error ? error.message : String(error)}`, 'data');
    }
    args.push(event.type, data);
  }
  return args;
}

/**
 * The job's `progress` once a batch is written: the data of its last
 * `progress` event (a repeated try skips only events an earlier try wrote,
 * so that one was written either way); undefined when it has none.
 */
export function lastProgress(events: NewEvent[]): { data: unknown } | undefined {
  for (let i = events.length - 1; i >= 0; i--) if (events[i]!.type === 'progress') return { data: events[i]!.data ?? null };
  return undefined;
}

/** A stream entry as XRANGE gives it, or lib.lua pending_entries: `['<n>-0', ['e', json]]`. */
export type Entry = [string, string[]];

/** One stream entry (`['<n>-0', ['e', json]]`) as an event. */
export function toEvent([entryId, fields]: Entry): JobEvent {
  const e = JSON.parse(fields[1] ?? '{}') as { type?: string; at?: number; attempt?: number; data?: unknown };
  return { id: Number.parseInt(entryId, 10), type: e.type ?? '', at: new Date(e.at ?? 0), attempt: e.attempt ?? 0, data: e.data ?? null };
}

/**
 * lib.lua's RESULT_MARK: the data of a waiting `done` event that is the
 * job's result, which the hash then holds once.
 */
const RESULT_MARK = '@R';

/**
 * An imported job's stream (enqueueMany, imported) as its events wait in
 * the hash: lib.lua's `evp`, a line `<n> <entry JSON>\n` per event, the
 * entry JSON as lib.lua event_entry writes it, ids and times as given. The
 * newest `keep` only, as a stream keeps them (readers before the first get
 * the trimmed marker). `result`: the job's stored result when it is done.
 */
export function pendingEvents(events: JobEvent[], result: string | null, keep: number): string {
  let text = '';
  for (const e of events.length > keep ? events.slice(events.length - keep) : events) {
    let data: string;
    try {
      data = JSON.stringify(e.data ?? null);
    } catch (error) {
      throw new ValidationError(`event ${e.id} data is not JSON: ${error instanceof Error ? error.message : String(error)}`, 'events');
    }
    if (e.type === 'done' && data === result) data = RESULT_MARK;
    text += `${e.id} {"type":${JSON.stringify(e.type)},"at":${e.at.getTime()},"attempt":${e.attempt},"data":${data}}\n`;
  }
  return text;
}

/** read-events.lua's reply as a page of at most `limit` events after `after`. */
export function eventPage(reply: unknown, after: number, limit: number): EventPage {
  const [status, newest, entries] = reply as [string, number | string, Entry[] | null];
  const last = Number(newest);
  const events = (entries ?? []).map(toEvent);
  const first = events[0]?.id ?? last + 1;
  if (after < last && first > after + 1) {
    // The trimmed part: its marker has the id of the last event dropped and the time of the first one kept.
    events.unshift(trimmedMarker(after, first - 1, events[0]?.at ?? new Date()));
    if (events.length > limit) events.length = limit;
  }
  const reached = events.length > 0 ? events[events.length - 1]!.id : after;
  return { events, last, end: isTerminal(status as JobStatus) && reached >= last };
}

/**
 * Block until the stream `key` has an entry after event `after`, at most
 * `ms`, on a dedicated connection (XREAD BLOCK: the write that adds it wakes
 * us, no polling; on a stream not created yet, until it is). An abort drops
 * the connection and returns at once.
 */
export async function waitForEvent(pool: BlockingPool, key: string, after: number, ms: number, signal: AbortSignal | undefined): Promise<void> {
  await pool.run((c) => c.xread('COUNT', 1, 'BLOCK', Math.max(1, Math.ceil(ms)), 'STREAMS', key, `${after}-0`), signal);
}
