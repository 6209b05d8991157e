/**
 * Job record ⇄ Redis hash. Scalars are plain fields (the Lua scripts read and
 * write them); payload, result, error and progress are JSON strings that the
 * scripts never decode, so user data round-trips exactly (Lua's cjson would
 * turn `[]` into `{}` and round long numbers). Absent field = null.
 */
import { reviveJob, type IntentRequest, type Job, type JobError } from '../../src/job.js';
import type { ClaimedJob } from '../../src/transport.js';

const ms = (d: Date): string => String(d.getTime());

/** Field/value pairs of a job, as HSET takes them. */
export function jobToFields(job: Job): string[] {
  const f: string[] = [
    'id', job.id,
    'queue', job.queue,
    'status', job.status,
    'payload', JSON.stringify(job.payload),
    'priority', String(job.priority),
    'run_at', ms(job.run_at),
    'attempts', String(job.attempts),
    'max_attempts', String(job.max_attempts),
    'created_at', ms(job.created_at),
    'updated_at', ms(job.updated_at),
  ];
  const optional: [string, string | null][] = [
    ['timeout_ms', job.timeout_ms === null ? null : String(job.timeout_ms)],
    ['dedupe_key', job.dedupe_key],
    ['callback_url', job.callback_url],
    ['started_at', job.started_at && ms(job.started_at)],
    ['finished_at', job.finished_at && ms(job.finished_at)],
    ['result', job.result === null ? null : JSON.stringify(job.result)],
    ['error', job.error === null ? null : JSON.stringify(job.error)],
    ['progress', job.progress === null || job.progress === undefined ? null : JSON.stringify(job.progress)],
    ['lease_owner', job.lease?.owner ?? null],
    ['lease_token', job.lease?.token ?? null],
    ['lease_until', job.lease ? ms(job.lease.until) : null],
    ['cancel_at', job.cancel_requested ? ms(job.cancel_requested.at) : null],
    ['cancel_reason', job.cancel_requested?.reason ?? null],
  ];
  for (const [k, v] of optional) if (v !== null) f.push(k, v);
  return f;
}

const num = (v: string | undefined): number | null => (v === undefined ? null : Number(v));
const json = (v: string | undefined): unknown => (v === undefined ? null : JSON.parse(v));

/** A job from HGETALL's flat reply; null for an empty reply (no such key). */
export function fieldsToJob(reply: unknown): Job | null {
  if (!Array.isArray(reply) || reply.length === 0) return null;
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < reply.length; i += 2) h[String(reply[i])] = String(reply[i + 1]);
  return hashToJob(h);
}

/** A job from HGETALL's object reply (ioredis' hgetall); null when empty. */
export function hashToJob(h: Record<string, string>): Job | null {
  if (h.id === undefined) return null;
  return reviveJob({
    id: h.id,
    queue: h.queue,
    status: h.status,
    payload: json(h.payload) ?? {},
    result: json(h.result),
    error: json(h.error),
    priority: Number(h.priority),
    run_at: num(h.run_at),
    attempts: Number(h.attempts),
    max_attempts: Number(h.max_attempts),
    timeout_ms: num(h.timeout_ms),
    // Lease fields outlive the lease (lua/lib.lua): only a processing job has one.
    lease: h.status !== 'processing' || h.lease_token === undefined ? null : { owner: h.lease_owner, token: h.lease_token, until: Number(h.lease_until) },
    cancel_requested: h.cancel_at === undefined ? null : { at: Number(h.cancel_at), reason: h.cancel_reason ?? '' },
    dedupe_key: h.dedupe_key ?? null,
    callback_url: h.callback_url ?? null,
    progress: json(h.progress),
    created_at: num(h.created_at),
    updated_at: num(h.updated_at),
    started_at: num(h.started_at),
    finished_at: num(h.finished_at),
  });
}

/** A job as claim scripts send it (job_json in lua/lib.lua): absent fields are left out. */
interface ClaimJson {
  id: string;
  queue: string;
  payload: IntentRequest;
  priority: number;
  run_at: number;
  attempts: number;
  max_attempts: number;
  created_at: number;
  timeout_ms?: number;
  dedupe_key?: string;
  callback_url?: string;
  error?: JobError;
  progress?: unknown;
  cancel_at?: number;
  cancel_reason?: string;
}

/**
 * A job of a claim reply, as claimed by `owner` under `token` at the server
 * time `now` (the script's clock) for `leaseMs`.
 */
export function claimedJob(text: string, owner: string, token: string, now: number, leaseMs: number): ClaimedJob {
  const j = JSON.parse(text) as ClaimJson;
  return {
    id: j.id,
    queue: j.queue,
    status: 'processing',
    payload: j.payload,
    result: null,
    error: j.error ?? null,
    priority: j.priority,
    run_at: new Date(j.run_at),
    attempts: j.attempts,
    max_attempts: j.max_attempts,
    timeout_ms: j.timeout_ms ?? null,
    lease: { owner, token, until: new Date(now + leaseMs) },
    cancel_requested: j.cancel_at === undefined ? null : { at: new Date(j.cancel_at), reason: j.cancel_reason ?? '' },
    dedupe_key: j.dedupe_key ?? null,
    callback_url: j.callback_url ?? null,
    progress: j.progress ?? null,
    created_at: new Date(j.created_at),
    updated_at: new Date(now),
    started_at: new Date(now),
    finished_at: null,
  };
}

/** A claimed job whose record did not decode: its id (always first, see job_json) and lease token. */
export interface UnreadableJob {
  id: string;
  token: string;
  error: string;
}

/**
 * The `count` jobs claimed for one request, from `at` of `reply`; their
 * tokens are `<tokenBase>.<k>` for k from 1 (lua/lib.lua). A record that
 * does not decode goes to `unreadable` instead of failing the whole batch.
 */
export function claimedJobs(reply: unknown[], at: number, count: number, owner: string, tokenBase: string, now: number, leaseMs: number, unreadable: UnreadableJob[]): ClaimedJob[] {
  const jobs: ClaimedJob[] = [];
  for (let k = 0; k < count; k++) {
    const text = String(reply[at + k]);
    const token = `${tokenBase}.${k + 1}`;
    try {
      jobs.push(claimedJob(text, owner, token, now, leaseMs));
    } catch (error) {
      const id = /^\{"id":"([A-Za-z0-9_.:-]+)"/.exec(text)?.[1];
      if (id) unreadable.push({ id, token, error: error instanceof Error ? error.message : String(error) });
    }
  }
  return jobs;
}
