/**
 * Connections of the redis transport: REDIS_URL parsing (standalone or
 * Cluster), the shared command client, and a pool of dedicated connections
 * for blocking commands (BLPOP / BLMOVE), which must never share a socket
 * with ordinary commands.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { ConfigError } from '../../src/errors.js';

export type RedisClient = Redis | Cluster;

export interface RedisEndpoint {
  /** true for `redis+cluster://` or a list of several nodes */
  cluster: boolean;
  nodes: { host: string; port: number }[];
  username: string | undefined;
  password: string | undefined;
  db: number;
  tls: boolean;
}

/**
 * `redis://[user:pass@]host[:port][/db]`, `rediss://…` (TLS),
 * `redis+cluster://host:port`, or a comma-separated list of nodes (Cluster).
 */
export function parseRedisUrl(url: string): RedisEndpoint {
  const parts = url.split(',').map((p) => p.trim()).filter(Boolean);
  if (parts.length === 0) throw new ConfigError('REDIS_URL must not be empty', 'REDIS_URL');
  const parsed = parts.map((part) => {
    let u: URL;
    try {
      u = new URL(part);
    } catch {
      throw new ConfigError('REDIS_URL must be redis://, rediss:// or redis+cluster:// (or a comma-separated list of cluster nodes)', 'REDIS_URL');
    }
    if (!['redis:', 'rediss:', 'redis+cluster:'].includes(u.protocol)) {
      throw new ConfigError(`REDIS_URL must be redis://, rediss:// or redis+cluster:// (got ${u.protocol}//)`, 'REDIS_URL');
    }
    return u;
  });
  const first = parsed[0]!;
  const db = first.pathname.length > 1 ? Number(first.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new ConfigError('REDIS_URL database must be a whole number, as in redis://host:6379/0', 'REDIS_URL');
  const cluster = parts.length > 1 || parsed.some((u) => u.protocol === 'redis+cluster:');
  return {
    cluster,
    nodes: parsed.map((u) => ({ host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(u.port || 6379) })),
    username: first.username ? decodeURIComponent(first.username) : undefined,
    password: first.password ? decodeURIComponent(first.password) : undefined,
    db,
    tls: parsed.some((u) => u.protocol === 'rediss:'),
  };
}

/** Reconnect quickly, but not in a hot loop, while Redis is away. */
const reconnectDelay = (times: number): number => Math.min(times * 100, 1000);

/**
 * The command client: auto-pipelining (concurrent commands share round
 * trips), commands fail after two reconnect attempts instead of hanging, so
 * callers get a TransportError while Redis is down; ioredis keeps
 * reconnecting in the background and the next command works once it is back.
 * Blocking clients fail at once. No client resends a command whose reply
 * was lost in a dropped connection: a script may have run already (a claim
 * would then claim twice), so the caller gets a TransportError and decides —
 * enqueue is idempotent by id, a claim's lost jobs come back when their
 * lease expires, fenced writes answer LEASE_LOST or succeed once.
 */
export function createClient(endpoint: RedisEndpoint, role: 'command' | 'blocking'): RedisClient {
  const blocking = role === 'blocking';
  const common: RedisOptions = {
    username: endpoint.username,
    password: endpoint.password,
    connectTimeout: 3_000,
    maxRetriesPerRequest: blocking ? 0 : 2,
    autoResendUnfulfilledCommands: false,
    enableAutoPipelining: !blocking,
    // Claims, enqueues and completes go out at once: each call is already a
    // batch (claimMany; concurrent enqueues and completes share one call,
    // batch.ts), and one more event-loop turn would only add latency.
    autoPipeliningIgnoredCommands: ['rq_claim', 'rq_enqueue', 'rq_complete'],
    lazyConnect: !blocking,
    ...(endpoint.tls ? { tls: {} } : {}),
  };
  if (!endpoint.cluster) {
    const node = endpoint.nodes[0]!;
    const client = new Redis({ ...common, host: node.host, port: node.port, db: endpoint.db, retryStrategy: reconnectDelay });
    client.on('reconnecting', () => rejectStranded(client));
    return client;
  }
  const options: ClusterOptions = {
    lazyConnect: common.lazyConnect,
    enableAutoPipelining: common.enableAutoPipelining,
    // Also needed for correctness here: auto-pipelining groups a command by
    // its first string argument, and these scripts' first is numkeys.
    autoPipeliningIgnoredCommands: ['rq_claim', 'rq_enqueue', 'rq_complete'],
    maxRedirections: 16,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    clusterRetryStrategy: reconnectDelay,
    redisOptions: { ...common, lazyConnect: false, enableAutoPipelining: false },
  };
  return new Cluster(endpoint.nodes, options);
}

interface Stranded {
  command: { reject(error: Error): void };
}

/**
 * The commands that were in flight when the connection dropped. ioredis (5.x
 * and 6.0.0) keeps them aside to resend after the reconnect; with
 * `autoResendUnfulfilledCommands: false` it then drops them without settling
 * their promises (ioredis issue 2193, fixed by pull request 2194, not in a
 * release yet). Those calls never settled, and an auto-pipeline waiting on
 * one of them held every later command behind it: after a Redis restart the
 * transport stopped answering. Here they are rejected when the reconnect
 * starts, as a connection error whose outcome is unknown.
 */
function rejectStranded(client: Redis): void {
  const internal = client as unknown as { prevCommandQueue?: { length: number; shift(): Stranded | undefined } | null };
  const stranded = internal.prevCommandQueue;
  if (!stranded) return;
  internal.prevCommandQueue = null;
  for (let item = stranded.shift(); item; item = stranded.shift()) {
    item.command.reject(new Error('Connection is closed: the connection dropped with this command in flight; its outcome is unknown'));
  }
}

/**
 * Dedicated connections for blocking commands, one per blocked call, kept
 * for reuse. An aborted call disconnects its connection: that unblocks the
 * server side at once (prompt shutdown) and the pool opens a fresh one later.
 */
/** How BlockingPool.run ends a blocked command early on abort. */
export interface Unblocker {
  /** send CLIENT UNBLOCK for this client id from another connection: true when it ended a blocked command; rejects when refused */
  send(clientId: number): Promise<boolean>;
  /** how long the blocking command may last, ms */
  blockMs: number;
}

export class BlockingPool {
  private readonly idle: RedisClient[] = [];
  private readonly busy = new Set<RedisClient>();
  private readonly ids = new WeakMap<RedisClient, number>();
  private closed = false;

  constructor(
    private readonly make: () => RedisClient,
    private readonly maxIdle = 32,
  ) {}

  /**
   * Run one blocking command (and whatever `op` sends after it on the same
   * connection); undefined when aborted or closed meanwhile. An abort drops
   * the connection, unless `unblock` is given: then it asks Redis to end the
   * blocking command early (CLIENT UNBLOCK, see unblockQueued) so that the
   * commands queued behind it still run and answer — a claim sent behind a
   * BLPOP must not take jobs whose reply is then lost. Throws when the
   * connection's CLIENT ID cannot be had (CLIENT refused by an ACL).
   */
  async run<T>(op: (client: RedisClient) => Promise<T>, signal?: AbortSignal, unblock?: Unblocker): Promise<T | undefined> {
    if (this.closed || signal?.aborted) return undefined;
    const client = this.idle.pop() ?? this.spawn();
    this.busy.add(client);
    let reusable = true;
    let settled = false;
    const drop = () => {
      reusable = false;
      client.disconnect();
    };
    let onAbort = drop;
    try {
      if (unblock) {
        const id = await this.idOf(client);
        onAbort = () => void this.unblockQueued(client, id, unblock, () => settled, drop);
      }
      if (signal?.aborted) return undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      return await op(client);
    } catch (error) {
      reusable = false;
      client.disconnect();
      if (signal?.aborted || this.closed) return undefined;
      throw error;
    } finally {
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      this.busy.delete(client);
      if (reusable && !this.closed && this.idle.length < this.maxIdle) this.idle.push(client);
      else if (reusable) client.disconnect();
    }
  }

  /**
   * End the blocked command of `client` early. UNBLOCK answers 0 both before
   * the command has reached Redis and after it has returned; in both cases
   * waiting is safe (the command ends by its own timeout at the latest) while
   * dropping the connection could lose a reply already on its way. So try
   * again until it works or the run settles, stop when UNBLOCK is refused or
   * the connection closed (its commands then fail), and drop the connection
   * only well past the block time (Redis unreachable).
   */
  private async unblockQueued(client: RedisClient, id: number, unblock: Unblocker, settled: () => boolean, drop: () => void): Promise<void> {
    const giveUp = Date.now() + unblock.blockMs + 1_000;
    while (!settled() && Date.now() < giveUp) {
      if (this.ids.get(client) !== id) return; // closed: the id may now be another client's
      try {
        const ended = await Promise.race([unblock.send(id), new Promise<false>((resolve) => setTimeout(resolve, 200, false))]);
        if (ended) return;
      } catch {
        return; // refused: the block ends by its timeout
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (!settled()) drop();
  }

  /** The connection's CLIENT ID (asked once per connection, before it blocks). */
  private async idOf(client: RedisClient): Promise<number> {
    let id = this.ids.get(client);
    if (id === undefined) {
      id = Number(await (client as Redis).client('ID'));
      this.ids.set(client, id);
    }
    return id;
  }

  close(): void {
    this.closed = true;
    for (const client of [...this.idle, ...this.busy]) client.disconnect();
    this.idle.length = 0;
    this.busy.clear();
  }

  private spawn(): RedisClient {
    const client = this.make();
    // Errors surface through the command that fails; this only keeps Node
    // from treating an 'error' event without listener as fatal.
    client.on('error', () => {});
    client.on('close', () => this.ids.delete(client)); // a new connection has a new id
    return client;
  }
}

/** CRC16/XMODEM, the hash of Redis Cluster slots. */
function crc16(data: Buffer): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The Cluster slot of a key, honouring `{hash tags}`. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key, 'utf8')) % 16384;
}
