/**
 * Connecting, finding out what the server can do, and creating the indexes.
 * FerretDB is told apart by the `ferretdbVersion` field of `buildInfo`; change
 * streams need a replica set (or mongos) and are not FerretDB's; TTL indexes
 * are detected by creating one (FerretDB answers NotImplemented).
 */
import { MongoClient, type Db, type Document } from 'mongodb';
import type { Logger } from '../../src/logger.js';
import { isNotImplemented } from './errors.js';
import { INDEXES, type IndexSpec } from './queries.js';

/** What init() found out about the server. */
export interface ServerInfo {
  /** `ferretdb` when buildInfo has `ferretdbVersion` */
  kind: 'mongodb' | 'ferretdb';
  /** as reported by buildInfo (FerretDB reports the MongoDB version it mimics) */
  version: string;
  ferretdbVersion: string | null;
  /** a replica set member or mongos: change streams are available */
  changeStreams: boolean;
  /** TTL indexes were created: the server deletes finished jobs by itself */
  ttlIndexes: boolean;
  /** concurrent findOneAndUpdate calls are atomic (FerretDB: only on one connection) */
  atomicWrites: boolean;
}

export interface ConnectOptions {
  writeConcern: 'majority' | number;
  maxPoolSize?: number | undefined;
  serverSelectionTimeoutMS: number;
  commandListener?: ((commandName: string) => void) | undefined;
}

function openClient(uri: string, options: ConnectOptions): MongoClient {
  const client = new MongoClient(uri, {
    appName: 'reasonq',
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMS,
    connectTimeoutMS: options.serverSelectionTimeoutMS,
    writeConcern: { w: options.writeConcern },
    // undefined keys of an intent or payload stay absent instead of becoming null
    ignoreUndefined: true,
    ...(options.maxPoolSize ? { maxPoolSize: options.maxPoolSize } : {}),
    ...(options.commandListener ? { monitorCommands: true } : {}),
  });
  const listener = options.commandListener;
  if (listener) client.on('commandStarted', (event) => listener(event.commandName));
  return client;
}

/**
 * Connect, find out what the server is, and create the indexes. On FerretDB,
 * whose findAndModify is not atomic across connections, reconnect with one
 * connection: that serialises this process's claims (other processes still race).
 */
export async function connectServer(uri: string, dbName: string, settings: ConnectOptions, log: Logger, clock: ServerClock, onClient: (client: MongoClient) => void): Promise<{ client: MongoClient; db: Db; info: ServerInfo }> {
  let client = openClient(uri, settings);
  onClient(client);
  try {
    await client.connect();
    const probe = await probeServer(client, clock);
    if (probe.kind === 'ferretdb' && settings.maxPoolSize !== 1) {
      await client.close();
      client = openClient(uri, { ...settings, maxPoolSize: 1 });
      onClient(client);
      await client.connect();
      log.warn({ ferretdb_version: probe.ferretdbVersion }, 'mongo: FerretDB detected: using one connection (maxPoolSize 1) so that claims of this process are atomic; claims from several processes are not');
    }
    const db = client.db(dbName);
    const { ttlIndexes } = await ensureIndexes(db, log);
    const info = { ...probe, ttlIndexes };
    log.info({ server: info.kind, version: info.version, change_streams: info.changeStreams, ttl_indexes: ttlIndexes, db: dbName }, 'mongo transport ready');
    return { client, db, info };
  } catch (error) {
    // A failed start must not leave its connections behind (a retried init would pile them up).
    await client.close().catch(() => undefined);
    throw error;
  }
}

/**
 * The server's clock as this process estimates it. Leases, the maintainer's
 * lock and retention compare deadlines that many processes write, so they
 * all read this clock rather than their own: the offset comes from `hello`'s
 * localTime (ms) at connect, and again each time the maintainer takes or
 * renews its lock (once per maintenance interval); its error is at most half
 * a round trip. A server that reports no localTime leaves the offset at 0.
 */
export class ServerClock {
  private offsetMs = 0;

  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }

  get offset(): number {
    return this.offsetMs;
  }

  private syncedAt = 0;

  /** Measure again when the last measure is older than `maxAgeMs`. */
  async sync(client: MongoClient, maxAgeMs = 0): Promise<void> {
    if (Date.now() - this.syncedAt < maxAgeMs) return;
    const admin = client.db('admin');
    const sent = Date.now();
    const hello = await admin.command({ hello: 1 }).catch(() => admin.command({ isMaster: 1 }));
    this.measured(hello, sent, Date.now());
  }

  measured(hello: Document, sent: number, received: number): void {
    this.syncedAt = received;
    if (hello.localTime instanceof Date) this.offsetMs = hello.localTime.getTime() - Math.round((sent + received) / 2);
  }
}

/** Ask the server what it is (and set `clock` from its answer). */
async function probeServer(client: MongoClient, clock: ServerClock): Promise<Omit<ServerInfo, 'ttlIndexes'>> {
  const admin = client.db('admin');
  const sent = Date.now();
  const hello = await admin.command({ hello: 1 }).catch(() => admin.command({ isMaster: 1 }));
  clock.measured(hello, sent, Date.now());
  const build = await admin.command({ buildInfo: 1 });
  const ferretdb = typeof build.ferretdbVersion === 'string';
  const replicated = typeof hello.setName === 'string' || hello.msg === 'isdbgrid';
  return {
    kind: ferretdb ? 'ferretdb' : 'mongodb',
    version: String(build.version ?? 'unknown'),
    ferretdbVersion: ferretdb ? String(build.ferretdbVersion) : null,
    changeStreams: replicated && !ferretdb,
    atomicWrites: !ferretdb,
  };
}

/**
 * Create every declared index that is missing; idempotent. One index per
 * command: FerretDB 1.x panics on a multi-index createIndexes when some of
 * them exist. TTL indexes are optional: a server that refuses them gets
 * `ttlIndexes: false` and retention is left to sweep().
 */
async function ensureIndexes(db: Db, logger: Logger): Promise<{ ttlIndexes: boolean }> {
  let ttlIndexes = true;
  for (const collection of new Set(INDEXES.map((s) => s.collection))) {
    const existing = new Set(
      (await db.collection(collection).listIndexes().toArray().catch((error: unknown) => {
        if ((error as { code?: unknown }).code === 26) return []; // NamespaceNotFound: no collection yet
        throw error;
      })).map((ix) => String(ix.name)),
    );
    for (const spec of INDEXES.filter((s) => s.collection === collection && !existing.has(s.name))) {
      try {
        await db.collection(collection).createIndexes([toModel(spec)]);
      } catch (error) {
        if (!spec.ttl || !isNotImplemented(error)) throw error;
        ttlIndexes = false;
        logger.info({ index: spec.name }, 'mongo: the server has no TTL indexes; sweep() applies retention');
      }
    }
  }
  return { ttlIndexes };
}

function toModel(spec: IndexSpec) {
  return {
    key: spec.key,
    name: spec.name,
    ...(spec.unique ? { unique: true } : {}),
    ...(spec.sparse ? { sparse: true } : {}),
    ...(spec.ttl ? { expireAfterSeconds: 0 } : {}),
  };
}
