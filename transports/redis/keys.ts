/**
 * Key names of the redis transport. Every key of a queue carries the hash
 * tag `{queue}`, so one queue lives in one Cluster slot and its Lua scripts
 * may touch all of its keys. Queue names cannot contain braces (QUEUE_NAME_RE),
 * and the tags of the two shared groups below start with `~`, which a queue
 * name cannot, so they never collide with a queue.
 */

/** `rq:{queue}:` — every per-queue key is this prefix plus a suffix (see lua/lib.lua). */
export function queuePrefix(prefix: string, queue: string): string {
  return `${prefix}:{${queue}}:`;
}

/** The job hash inside its queue's slot. */
export function jobKey(prefix: string, queue: string, id: string): string {
  return `${queuePrefix(prefix, queue)}j:${id}`;
}

/** The list a `wait` caller blocks on until the job ends. */
export function finKey(prefix: string, queue: string, id: string): string {
  return `${queuePrefix(prefix, queue)}fin:${id}`;
}

/** A job's event stream (lua/lib.lua add_event), deleted with the job. */
export function eventsKey(prefix: string, queue: string, id: string): string {
  return `${queuePrefix(prefix, queue)}ev:${id}`;
}

/** Blocked claimers BLPOP this list; the scripts push a token per job made ready. */
export function wakeKey(prefix: string, queue: string): string {
  return `${queuePrefix(prefix, queue)}wake`;
}

/**
 * id → queue, so that get/cancel/wait by id find the job's slot. Not tagged:
 * these spread over the cluster. Written before the job, cleaned after it.
 */
export function idKey(prefix: string, id: string): string {
  return `${prefix}:~id:${id}`;
}

/** The set of queue names ever used (for stats, list and sweep). */
export function queuesKey(prefix: string): string {
  return `${prefix}:{~meta}:queues`;
}

/** Sorted set worker id → last heartbeat (ms). */
export function workersSeenKey(prefix: string): string {
  return `${prefix}:{~workers}:seen`;
}

/** One worker's record (JSON), expiring an hour after its last heartbeat. */
export function workerKey(prefix: string, id: string): string {
  return `${prefix}:{~workers}:w:${id}`;
}

/** A named lock (the elected maintainer): holder's id, expiring unless renewed. */
export function lockKey(prefix: string, name: string): string {
  return `${prefix}:{~meta}:lock:${name}`;
}
