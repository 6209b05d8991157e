/**
 * Job record ⇄ Redis hash.
 *
 * What never changes after enqueue (id, queue, payload, priority,
 * max_attempts, timeout_ms, dedupe_key, callback_url, created_at) is one JSON
 * text, the `spec` field, which claims hand back as is (lua/lib.lua
 * claim_json): a claim reads a few fields instead of a dozen, and the client
 * parses one JSON text per job. What changes, and what the scripts need to
 * read (status, attempts, run_at, the lease, times, priority, max_attempts,
 * dedupe_key), are plain fields. result, error and progress are JSON strings
 * that the scripts never decode, so user data round-trips exactly (Lua's
 * cjson would turn `[]` into `{}` and round long numbers). Absent field = null.
 */
import { reviveJob, type IntentRequest, type Job, type JobError } from '../../src/job.js';
import type { ClaimedJob } from '../../src/transport.js';

const ms = (d: Date): string => String(d.getTime());

/** The immutable part of a job, as stored in `spec`. `id` first: claimedJobs finds it there in a record that does not parse. */
interface Spec {
  id: string;
  queue: string;
  payload: IntentRequest;
  priority: number;
  max_attempts: number;
  created_at: number;
  timeout_ms?: number;
  dedupe_key?: string;
  callback_url?: string;
}

function specOf(job: Job): string {
  const spec: Spec = { id: job.id, queue: job.queue, payload: job.payload, priority: job.priority, max_attempts: job.max_attempts, created_at: job.created_at.getTime() };
  if (job.timeout_ms !== null) spec.timeout_ms = job.timeout_ms;
  if (job.dedupe_key !== null) spec.dedupe_key = job.dedupe_key;
  if (job.callback_url !== null) spec.callback_url = job.callback_url;
  return JSON.stringify(spec);
}

/** Field/value pairs of a job, as HSET takes them. */
export function jobToFields(job: Job): string[] {
  const f: string[] = [
    'spec', specOf(job),
    'status', job.status,
    'priority', String(job.priority),
    'run_at', ms(job.run_at),
    'attempts', String(job.attempts),
    'max_attempts', String(job.max_attempts),
    'created_at', ms(job.created_at),
    'updated_at', ms(job.updated_at),
  ];
  const optional: [string, string | null][] = [
    ['dedupe_key', job.dedupe_key],
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
  const spec = h.spec !== undefined ? (JSON.parse(h.spec) as Spec) : legacySpec(h);
  if (!spec) return null;
  return reviveJob({
    id: spec.id,
    queue: spec.queue,
    status: h.status,
    payload: spec.payload,
    result: json(h.result),
    error: json(h.error),
    priority: spec.priority,
    run_at: num(h.run_at),
    attempts: Number(h.attempts),
    max_attempts: spec.max_attempts,
    timeout_ms: spec.timeout_ms ?? null,
    // Lease fields outlive the lease (lua/lib.lua): only a processing job has one.
    lease: h.status !== 'processing' || h.lease_token === undefined ? null : { owner: h.lease_owner, token: h.lease_token, until: Number(h.lease_until) },
    cancel_requested: h.cancel_at === undefined ? null : { at: Number(h.cancel_at), reason: h.cancel_reason ?? '' },
    dedupe_key: spec.dedupe_key ?? null,
    callback_url: spec.callback_url ?? null,
    progress: json(h.progress),
    created_at: spec.created_at,
    updated_at: num(h.updated_at),
    started_at: num(h.started_at),
    finished_at: num(h.finished_at),
  });
}

/**
 * The spec of a record written before `spec` existed (the first release kept
 * these as separate fields; the claim script upgrades such a record in place,
 * lua/lib.lua upgrade_spec). Null when there is no record.
 */
function legacySpec(h: Record<string, string>): Spec | null {
  if (h.id === undefined || h.queue === undefined) return null;
  const spec: Spec = {
    id: h.id,
    queue: h.queue,
    payload: (json(h.payload) ?? {}) as IntentRequest,
    priority: Number(h.priority),
    max_attempts: Number(h.max_attempts),
    created_at: Number(h.created_at),
  };
  if (h.timeout_ms !== undefined) spec.timeout_ms = Number(h.timeout_ms);
  if (h.dedupe_key !== undefined) spec.dedupe_key = h.dedupe_key;
  if (h.callback_url !== undefined) spec.callback_url = h.callback_url;
  return spec;
}

/**
 * A claimed job as the claim scripts send it (claim_json in lua/lib.lua):
 * `[spec, attempts, run_at]`, followed by error, progress, cancel_at and
 * cancel_reason (null when absent) when any of them is set.
 */
type ClaimTuple = [Spec, number, number, (JobError | null)?, unknown?, (number | null)?, string?];

/**
 * A job of a claim reply, as claimed by `owner` under `token` at the server
 * time `now` (the script's clock) for `leaseMs`.
 */
export function claimedJob(text: string, owner: string, token: string, now: number, leaseMs: number): ClaimedJob {
  const [spec, attempts, runAt, error, progress, cancelAt, cancelReason] = JSON.parse(text) as ClaimTuple;
  return {
    id: spec.id,
    queue: spec.queue,
    status: 'processing',
    payload: spec.payload,
    result: null,
    error: error ?? null,
    priority: spec.priority,
    run_at: new Date(runAt),
    attempts,
    max_attempts: spec.max_attempts,
    timeout_ms: spec.timeout_ms ?? null,
    lease: { owner, token, until: new Date(now + leaseMs) },
    cancel_requested: cancelAt === null || cancelAt === undefined ? null : { at: new Date(cancelAt), reason: cancelReason ?? '' },
    dedupe_key: spec.dedupe_key ?? null,
    callback_url: spec.callback_url ?? null,
    progress: progress ?? null,
    created_at: new Date(spec.created_at),
    updated_at: new Date(now),
    started_at: new Date(now),
    finished_at: null,
  };
}

/** A claimed job whose record did not decode: its id (first in `spec`) and lease token. */
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
      const id = /^\[\{"id":"([A-Za-z0-9_.:-]+)"/.exec(text)?.[1];
      if (id) unreadable.push({ id, token, error: error instanceof Error ? error.message : String(error) });
    }
  }
  return jobs;
}
