/**
 * The server the Mongo suites (and scripts/bench/mongo.ts) run against, in
 * this order:
 * 1. `MONGO_URL` when set (any MongoDB or compatible server);
 * 2. mongodb-memory-server: a one-node replica set (change streams), from a
 *    cached binary or `MONGOMS_SYSTEM_BINARY`, else downloaded — when the
 *    download host cannot be reached we say why and move on at once;
 * 3. FerretDB 1.x (SQLite) built from scripts/ferretdb/, on a free port with a
 *    temp state dir, killed when the last user releases it.
 * `acquireMongo()` / `releaseMongo()` share one server between test files.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export type MongoKind = 'external' | 'mongodb-memory-server' | 'ferretdb';

export interface MongoTestServer {
  kind: MongoKind;
  /** connection string without a database */
  uri: string;
  /** one line saying what this is, printed by the suites */
  description: string;
  stop(): Promise<void>;
}

const log = (message: string) => console.log(`  [mongo setup] ${message}`);

// -- FerretDB ------------------------------------------------------------------

export interface FerretServer extends MongoTestServer {
  kind: 'ferretdb';
  port: number;
  stateDir: string;
  process: ChildProcess;
  /** SIGKILL, as for a crash; the state dir stays */
  kill(): Promise<void>;
}

/** Build (when stale) and locate the FerretDB binary; throws with the build's reason. */
export function ferretBinary(): string {
  const build = spawnSync('bash', [join(repoRoot, 'scripts/ferretdb/build.sh')], { encoding: 'utf8', timeout: 600_000 });
  if (build.status !== 0) throw new Error(`FerretDB could not be built: ${build.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return build.stdout.trim().split('\n').pop()!;
}

/** Start FerretDB; `port` and `stateDir` given = a restart on the same data. */
export async function startFerret(options: { port?: number; stateDir?: string } = {}): Promise<FerretServer> {
  const binary = ferretBinary();
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'reasonq-ferret-'));
  const child = spawn(binary, ['-listen-addr', `127.0.0.1:${options.port ?? 0}`, '-state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const uri = await new Promise<string>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`FerretDB did not print "ready" within 20 s: ${stderr.trim()}`)), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^ready (mongodb:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolvePromise(m[1]!.replace(/\/$/, ''));
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`FerretDB exited at start: ${stderr.trim()}`));
    });
  }).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  const port = Number(new URL(uri).port);
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return {
    kind: 'ferretdb',
    uri,
    port,
    stateDir,
    process: child,
    description: `FerretDB 1.x (SQLite) at ${uri}, state dir ${stateDir}`,
    kill: () => end('SIGKILL'),
    stop: async () => {
      await end('SIGKILL');
      if (!options.stateDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Start again on the same port and state dir after kill(). */
export function restartFerret(server: FerretServer): Promise<FerretServer> {
  return startFerret({ port: server.port, stateDir: server.stateDir });
}

// -- mongodb-memory-server ---------------------------------------------------

async function downloadReachable(timeoutMs: number): Promise<string | null> {
  const url = process.env.MONGOMS_DOWNLOAD_MIRROR ?? 'https://fastdl.mongodb.org';
  try {
    await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs) });
    return null;
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return `${url} is not reachable (${cause?.code ?? cause?.message ?? (error as Error).message})`;
  }
}

/** Why mongodb-memory-server cannot start here, or null when it can try. */
async function memoryServerUnavailable(): Promise<string | null> {
  const mms = await import('mongodb-memory-server');
  const haveBinary = process.env.MONGOMS_SYSTEM_BINARY || (await mms.DryMongoBinary.generateOptions().then((o) => mms.DryMongoBinary.locateBinary(o)).catch(() => undefined));
  if (haveBinary) return null;
  const unreachable = await downloadReachable(3_000);
  return unreachable ? `no cached MongoDB binary and ${unreachable}` : null;
}

async function startMemoryServer(): Promise<MongoTestServer | null> {
  const mms = await import('mongodb-memory-server');
  let timer: NodeJS.Timeout | undefined;
  try {
    const replSet = await Promise.race([
      mms.MongoMemoryReplSet.create({ replSet: { count: 1, storageEngine: 'wiredTiger' } }),
      new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error('no replica set within 180 s')), 180_000))),
    ]);
    const uri = replSet.getUri();
    return {
      kind: 'mongodb-memory-server',
      uri,
      description: `MongoDB (mongodb-memory-server, one-node replica set) at ${uri}`,
      stop: () => replSet.stop().then(() => undefined),
    };
  } catch (error) {
    log(`mongodb-memory-server failed: ${(error as Error).message.split('\n')[0]}`);
    return null;
  } finally {
    clearTimeout(timer);
  }
}

// -- choice and sharing ----------------------------------------------------------

let planned: Promise<MongoKind> | null = null;

/**
 * Which server the suites will use, decided before any starts (mocha needs
 * to know at collection time whether to skip the claim race): MONGO_URL is
 * asked whether it is FerretDB (`buildInfo.ferretdbVersion`).
 */
export function planMongo(): Promise<MongoKind | 'external-ferretdb'> {
  planned ??= (async (): Promise<MongoKind> => {
    if (process.env.MONGO_URL?.trim()) return 'external';
    const why = await memoryServerUnavailable();
    if (why) log(`mongodb-memory-server skipped: ${why}`);
    return why ? 'ferretdb' : 'mongodb-memory-server';
  })();
  return planned.then(async (kind) => (kind === 'external' && (await isFerret(process.env.MONGO_URL!.trim())) ? 'external-ferretdb' : kind));
}

async function isFerret(uri: string): Promise<boolean> {
  const { MongoClient } = await import('mongodb');
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 });
  try {
    const build = await client.db('admin').command({ buildInfo: 1 });
    return typeof build.ferretdbVersion === 'string';
  } finally {
    await client.close();
  }
}

/** Start (or point at) a server, in the order of the header. */
export async function startMongoServer(): Promise<MongoTestServer> {
  const external = process.env.MONGO_URL?.trim();
  if (external) return { kind: 'external', uri: external, description: `MONGO_URL ${external.replace(/\/\/[^@/]*@/, '//***@')}`, stop: async () => {} };
  if ((await planMongo()) === 'mongodb-memory-server') {
    const memory = await startMemoryServer();
    if (memory) return memory;
  }
  log('falling back to FerretDB (scripts/ferretdb/)');
  return startFerret();
}

let shared: Promise<MongoTestServer> | null = null;
let users = 0;

/** The shared server, started on first use; printed once. */
export async function acquireMongo(): Promise<MongoTestServer> {
  users += 1;
  if (!shared) {
    shared = startMongoServer();
    shared.then((s) => log(`Mongo suites run against ${s.description}`)).catch(() => undefined);
  }
  try {
    return await shared;
  } catch (error) {
    users -= 1;
    shared = null;
    throw error;
  }
}

/** Stop the shared server once its last user is done (close your clients first). */
export async function releaseMongo(): Promise<void> {
  users -= 1;
  if (users > 0 || !shared) return;
  const server = await shared.catch(() => null);
  shared = null;
  await server?.stop();
}

/** A fresh database name, so suites do not see each other's jobs. */
export function freshDb(prefix = 'reasonq_test'): string {
  return `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
}
