/**
 * The chaos driver: real worker processes (worker-process.ts) on a real
 * store, faults at random instants, then every acknowledged job checked by
 * id (checker.ts), as Jepsen's queue checker does.
 *
 * Stores: `http` (a `reasonq serve` process on the memory store), `redis`
 * (redis-server with AOF, appendfsync always), `mongo` (FerretDB; one worker
 * process, since its claims are atomic only within one connection).
 *
 * Faults: kill -9 of a worker at a random instant (a supervisor starts a new
 * one, as systemd or Kubernetes would); SIGSTOP of a worker past its lease
 * and SIGCONT (its late writes must be refused); SIGTERM with a short grace
 * then SIGKILL; a store restart; the store frozen (SIGSTOP); cancels of
 * running jobs from this process; the store unreachable when the workers
 * start. Poison-pill jobs bring their worker process down themselves.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config.js';
import { buildJob, type Job } from '../../src/job.js';
import type { JobEvent } from '../../src/events.js';
import type { Transport } from '../../src/transport.js';
import { createTransport } from '../../src/transports.js';
import { freePort, redisAvailable, removeRedis, restartRedis, startRedis, type RedisServer } from '../setup/redis.js';
import { ferretBinary, restartFerret, startFerret, type FerretServer } from '../setup/mongo.js';
import { check, type Figures } from './checker.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const pick = <T>(items: T[]): T | undefined => items[Math.floor(Math.random() * items.length)];

/** `http`: `reasonq serve` on the memory store; `http+redis`: `reasonq serve` in front of Redis, so that the server itself can restart. */
export type StoreKind = 'http' | 'http+redis' | 'redis' | 'mongo';
export type Fault = 'kill' | 'stop' | 'term' | 'restart' | 'freeze' | 'cancel';

export interface Scenario {
  name: string;
  store: StoreKind;
  jobs: number;
  /** jobs whose handler brings its process down */
  poison?: number;
  /** jobs that run until canceled (the `cancel` fault cancels them) */
  hold?: number;
  maxStalls?: number;
  workers: number;
  concurrency: number;
  leaseMs?: number;
  faults: Partial<Record<Fault, number>>;
  /** the workers start while the store is down; it comes up 2 s later */
  unreachableAtStart?: boolean;
  /** give up waiting for the jobs after this long */
  deadlineMs?: number;
}

/** Why a store cannot run here (a visible skip), or null. */
export function storeUnavailable(kind: StoreKind): string | null {
  if ((kind === 'redis' || kind === 'http+redis') && !redisAvailable()) return 'redis-server not on PATH (scripts/redis/ensure-redis.sh)';
  if (kind === 'mongo') {
    try {
      ferretBinary();
    } catch (error) {
      return `no FerretDB for the mongo chaos runs: ${(error as Error).message}`;
    }
  }
  return null;
}

interface Store {
  workerEnv: Record<string, string>;
  clientEnv: Record<string, string>;
  start(): Promise<void>;
  restart(): Promise<void>;
  freeze(ms: number): Promise<void>;
  stop(): Promise<void>;
  canRestart: boolean;
}

const TOKENS = { client: 'chaos-client-token-0123456789', worker: 'chaos-worker-token-0123456789', admin: 'chaos-admin-token-01234567890' };

async function openStore(kind: StoreKind): Promise<Store> {
  const port = await freePort();
  const signalled = (child: ChildProcess | undefined, signal: NodeJS.Signals) => {
    if (child?.pid && child.exitCode === null && child.signalCode === null) process.kill(child.pid, signal);
  };
  const freezeChild = async (child: ChildProcess | undefined, ms: number) => {
    signalled(child, 'SIGSTOP');
    await sleep(ms);
    signalled(child, 'SIGCONT');
  };
  if (kind === 'redis') {
    let server: RedisServer | null = null;
    let round = 0;
    const url = `redis://127.0.0.1:${port}`;
    return {
      workerEnv: { REASONING_TRANSPORT: 'redis', REDIS_URL: url },
      clientEnv: { REASONING_TRANSPORT: 'redis', REDIS_URL: url },
      canRestart: true,
      start: async () => {
        server = await startRedis({ aof: true, port });
      },
      restart: async () => {
        // Alternately a clean shutdown (as `redis-cli shutdown`) and a crash: with AOF always, neither loses a write.
        if (round++ % 2 === 0) await server!.stop();
        else await server!.kill();
        server = await restartRedis(server!);
      },
      freeze: (ms) => freezeChild(server?.process, ms),
      stop: async () => {
        await server?.kill();
        if (server) rmSync(server.dir, { recursive: true, force: true });
      },
    };
  }
  if (kind === 'mongo') {
    let server: FerretServer | null = null;
    const db = `chaos_${Date.now()}`;
    const uri = `mongodb://127.0.0.1:${port}`;
    return {
      workerEnv: { REASONING_TRANSPORT: 'mongo', MONGO_URI: uri, MONGO_DB: db },
      clientEnv: { REASONING_TRANSPORT: 'mongo', MONGO_URI: uri, MONGO_DB: db },
      canRestart: true,
      start: async () => {
        server = await startFerret({ port });
      },
      restart: async () => {
        await server!.kill();
        server = await restartFerret(server!);
      },
      freeze: (ms) => freezeChild(server?.process, ms),
      stop: async () => {
        await server?.stop();
        if (server) rmSync(server.stateDir, { recursive: true, force: true });
      },
    };
  }
  // http: `reasonq serve`, its own process, on the memory store (a restart would lose it: not one of its faults) or in front of Redis (the server restarts).
  let child: ChildProcess | undefined;
  let redis: RedisServer | null = null;
  const behind = kind === 'http+redis' ? { REASONING_TRANSPORT: 'redis', REDIS_URL: `redis://127.0.0.1:${await freePort()}` } : { REASONING_TRANSPORT: 'memory' };
  const url = `http://127.0.0.1:${port}`;
  const startServer = async () => {
      child = spawn(process.execPath, [join(repoRoot, 'dist/src/cli/index.js'), 'serve', '--port', String(port)], {
        env: {
          PATH: process.env.PATH,
          ...behind,
          REASONQ_API_TOKEN: TOKENS.admin,
          REASONQ_CLIENT_TOKEN: TOKENS.client,
          REASONQ_WORKER_TOKEN: TOKENS.worker,
          REASONQ_MAINTENANCE_MS: '250',
          REASONQ_MAX_CLAIMS: '100000',
          REASONQ_MEMORY_MAX_JOBS: '1000000',
          REASONQ_LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((ok, fail) => {
        const timer = setTimeout(() => fail(new Error('reasonq serve did not start within 20 s')), 20_000);
        createInterface({ input: child!.stdout! }).on('line', (l) => {
          if (l.includes('API')) {
            clearTimeout(timer);
            ok();
          }
        });
        child!.once('exit', (code) => fail(new Error(`reasonq serve exited with ${code}`)));
      });
  };
  return {
    workerEnv: { REASONING_TRANSPORT: 'http', REASONING_API_URL: url, REASONQ_WORKER_TOKEN: TOKENS.worker },
    clientEnv: { REASONING_TRANSPORT: 'http', REASONING_API_URL: url, REASONQ_CLIENT_TOKEN: TOKENS.client, REASONQ_API_TOKEN: TOKENS.admin },
    canRestart: kind === 'http+redis',
    start: async () => {
      if (kind === 'http+redis') redis = await startRedis({ aof: true, port: Number(new URL(behind.REDIS_URL!).port) });
      await startServer();
    },
    restart: async () => {
      if (kind !== 'http+redis') throw new Error('the memory store behind http does not survive a restart');
      // The server itself crashes and comes back on its port; the store behind it keeps everything.
      const old = child;
      signalled(old, 'SIGKILL');
      await new Promise<void>((r) => (old && old.exitCode === null && old.signalCode === null ? old.once('exit', () => r()) : r()));
      await startServer();
    },
    freeze: (ms) => freezeChild(child, ms),
    stop: async () => {
      signalled(child, 'SIGCONT');
      signalled(child, 'SIGKILL');
      if (redis) await removeRedis(redis);
    },
  };
}

interface WorkerProc {
  child: ChildProcess;
  exited: Promise<void>;
  /** stopped on purpose (SIGTERM at the end, or a `term` fault) */
  stopping: boolean;
  /** killed by a `kill` fault */
  killed: boolean;
  frozen: boolean;
}

export interface RunResult extends Figures {
  scenario: string;
  store: StoreKind;
  seconds: number;
  faults: Partial<Record<Fault | 'poison deaths', number>>;
}

/** Run one scenario end to end and check it. */
export async function runScenario(s: Scenario, log: (line: string) => void = () => undefined): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'reasonq-chaos-'));
  const store = await openStore(s.store);
  const queue = `chaos-${Math.random().toString(36).slice(2, 8)}`;
  const leaseMs = s.leaseMs ?? 1500;
  const workers = new Set<WorkerProc>();
  const done = { value: false };
  const counts: RunResult['faults'] = {};
  const count = (what: keyof RunResult['faults']) => (counts[what] = (counts[what] ?? 0) + 1);
  let stopHung = 0;
  let client: Transport | null = null;
  const started = Date.now();

  const spawnWorker = (): WorkerProc => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test/chaos/worker-process.ts')], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH,
        ...store.workerEnv,
        CHAOS_LOG: join(dir, `w-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.log`),
        CHAOS_QUEUE: queue,
        CHAOS_CONCURRENCY: String(s.concurrency),
        CHAOS_LEASE_MS: String(leaseMs),
        CHAOS_TOKENS: s.store === 'mongo' ? '0' : '3',
        CHAOS_GRACE_MS: '500',
        REASONQ_STORE_TIMEOUT_MS: '3000',
        REASONQ_LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const proc: WorkerProc = { child, exited: new Promise((r) => child.once('exit', () => r())), stopping: false, killed: false, frozen: false };
    workers.add(proc);
    void proc.exited.then(() => {
      workers.delete(proc);
      if (!proc.stopping && !proc.killed && child.signalCode === 'SIGKILL' && !done.value) count('poison deaths');
      // A supervisor starts a new worker in its place.
      if (!done.value) setTimeout(() => !done.value && spawnWorker(), 100);
    });
    return proc;
  };
  const alive = () => [...workers].filter((w) => !w.stopping && !w.frozen);

  try {
    if (!s.unreachableAtStart) await store.start();
    for (let i = 0; i < s.workers; i++) spawnWorker();
    if (s.unreachableAtStart) {
      await sleep(2000);
      await store.start();
    }
    client = await createTransport(loadConfig({ ...store.clientEnv, REASONQ_STORE_TIMEOUT_MS: '3000' } as NodeJS.ProcessEnv));

    // The jobs: poison pills and held ones spread among ordinary work.
    const kinds: ('work' | 'poison' | 'hold')[] = Array.from({ length: s.jobs }, () => 'work');
    const spread = (n: number, kind: 'poison' | 'hold') => {
      for (let placed = 0; placed < n; ) {
        const i = Math.floor(Math.random() * s.jobs);
        if (kinds[i] === 'work') {
          kinds[i] = kind;
          placed++;
        }
      }
    };
    spread(s.poison ?? 0, 'poison');
    spread(s.hold ?? 0, 'hold');
    const jobs = kinds.map((kind) =>
      buildJob({
        queue,
        payload: { goal: `chaos ${kind}`, context: kind === 'work' ? { kind, ms: 1 + Math.floor(Math.random() * 20) } : { kind, ms: 60_000 } },
        max_attempts: 3,
        ...(s.maxStalls ? { max_stalls: s.maxStalls } : {}),
      }),
    );
    const kindOf = new Map(jobs.map((j, i) => [j.id, kinds[i]!]));
    const acknowledged = new Set<string>();
    const calls = { started: 0, settled: 0 };
    /** A driver call, watched: one that has not settled when the run ends counts as never settled. */
    const watched = <T>(p: Promise<T>): Promise<T> => {
      calls.started++;
      return p.finally(() => calls.settled++);
    };
    const enqueueAll = (async () => {
      for (let i = 0; i < jobs.length; i += 50) {
        await Promise.all(
          jobs.slice(i, i + 50).map(async (job) => {
            // As a client would: try again while the store is away (an enqueue keeps its id, so a repeat never duplicates).
            for (let tries = 1; tries <= 20; tries++) {
              const ok = await watched(client!.enqueue(job)).then(
                () => true,
                () => false,
              );
              if (ok) return acknowledged.add(job.id);
              await sleep(250);
            }
            return undefined; // not acknowledged: the caller knows it failed
          }),
        );
        await sleep(20);
      }
    })();

    // Faults at random instants while the jobs run.
    const cancels = new Map<string, number>();
    const faults = (async () => {
      const plan: Fault[] = [];
      for (const [fault, n] of Object.entries(s.faults) as [Fault, number][]) for (let i = 0; i < n; i++) plan.push(fault);
      plan.sort(() => Math.random() - 0.5);
      for (const fault of plan) {
        if (done.value) return;
        await sleep(300 + Math.random() * 700);
        const victim = pick(alive());
        switch (fault) {
          case 'kill':
            if (victim?.child.pid) {
              victim.killed = true;
              process.kill(victim.child.pid, 'SIGKILL');
              count('kill');
            }
            break;
          case 'stop':
            if (victim?.child.pid) {
              victim.frozen = true;
              process.kill(victim.child.pid, 'SIGSTOP');
              count('stop');
              await sleep(leaseMs * 2 + 500);
              if (victim.child.exitCode === null) process.kill(victim.child.pid, 'SIGCONT');
              victim.frozen = false;
            }
            break;
          case 'term':
            if (victim?.child.pid) {
              victim.stopping = true;
              process.kill(victim.child.pid, 'SIGTERM');
              count('term');
              const exited = await Promise.race([victim.exited.then(() => true), sleep(800).then(() => false)]);
              if (!exited && victim.child.exitCode === null) process.kill(victim.child.pid, 'SIGKILL');
            }
            break;
          case 'restart':
            if (store.canRestart) {
              await store.restart();
              count('restart');
            }
            break;
          case 'freeze':
            await store.freeze(2000);
            count('freeze');
            break;
          case 'cancel': {
            // Cancel every held job that is running now, from this process.
            const held = jobs.filter((j) => kindOf.get(j.id) === 'hold' && acknowledged.has(j.id) && !cancels.has(j.id));
            for (const job of held) {
              const now = await watched(client!.get(job.id)).catch(() => null);
              if (now?.status !== 'processing') continue;
              cancels.set(job.id, Date.now());
              await watched(client!.cancel(job.id, 'chaos: canceled from another process')).catch(() => cancels.delete(job.id));
            }
            count('cancel');
            break;
          }
        }
      }
    })();

    // Held jobs the faults did not cancel are canceled once the faults are over (they would run for a minute).
    const deadline = started + (s.deadlineMs ?? 120_000);
    await enqueueAll;
    await faults;
    for (const job of jobs.filter((j) => kindOf.get(j.id) === 'hold' && !cancels.has(j.id) && acknowledged.has(j.id))) {
      cancels.set(job.id, Date.now());
      await watched(client.cancel(job.id, 'chaos: end of run')).catch(() => cancels.delete(job.id));
    }
    let final: Map<string, Job | null> = new Map();
    while (Date.now() < deadline) {
      const stats = await watched(client.stats()).catch(() => null);
      const counts = stats?.queues[queue];
      if (stats && (!counts || counts.queued + counts.delayed + counts.processing === 0)) break;
      await sleep(250);
    }
    // Every acknowledged job, read back by id (a stuck run shows as not terminal).
    await sleep(200);
    final = new Map(await Promise.all([...acknowledged].map(async (id) => [id, await watched(client!.get(id)).catch(() => null)] as const)));
    // And each one's event stream, as a reader that came late would get it.
    // A few at a time (one FerretDB process answers a few hundred queries a second), a read that times out tried again.
    const streamsFrom = Date.now();
    if (process.env.CHAOS_DEBUG) process.stderr.write(`[chaos] jobs settled after ${((Date.now() - started) / 1000).toFixed(1)} s; reading streams\n`);
    const streams = new Map<string, JobEvent[] | Error>();
    // To its end (every job is finished by now): a read may wait (a Mongo reader at a missing id waits for the gap rule's verdict).
    const readStream = async (id: string): Promise<JobEvent[] | Error> => {
      const events: JobEvent[] = [];
      let failures = 0;
      let seen = '';
      // On FerretDB eight readers share one connection, and every lost id costs its reader the gap rule's 2 s: a stream
      // with ten lost ids took 25-35 s there in CI (a Redis or memory stream is read in well under a second).
      const budgetMs = s.store === 'mongo' ? 90_000 : 30_000;
      const until = Date.now() + budgetMs;
      for (let after = 0; Date.now() < until; ) {
        try {
          const page = await watched(client!.readEvents(id, { after, wait_ms: 2000 }));
          seen = `last ${page.last}, end ${page.end}, ${page.events.length} events (${page.events.map((e) => `${e.id}:${e.type}`).join(' ')})`;
          events.push(...page.events);
          if (page.end) return events;
          if (page.events.length > 0) after = page.events.at(-1)!.id;
        } catch (error) {
          if (++failures >= 3) return error instanceof Error ? error : new Error(String(error));
        }
      }
      return new Error(`no end to its stream after ${budgetMs / 1000} s (read up to ${events.at(-1)?.id ?? 0}; the last page: ${seen}; ${failures} failed reads)`);
    };
    // FerretDB scans a collection per query: there the streams of a sample are read (every poison pill and held job, 40 others).
    const ids = s.store === 'mongo' ? [...acknowledged].filter((id, i) => kindOf.get(id) !== 'work' || i % 5 === 0).slice(0, 60) : [...acknowledged];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let id = ids.pop(); id !== undefined; id = ids.pop()) streams.set(id, await readStream(id));
      }),
    );

    if (process.env.CHAOS_DEBUG) process.stderr.write(`[chaos] streams read in ${((Date.now() - streamsFrom) / 1000).toFixed(1)} s\n`);
    // Graceful stop of every worker: it must not hang.
    done.value = true;
    await Promise.all(
      [...workers].map(async (w) => {
        w.stopping = true;
        if (w.child.pid && w.child.exitCode === null) {
          process.kill(w.child.pid, 'SIGCONT');
          process.kill(w.child.pid, 'SIGTERM');
        }
        const exited = await Promise.race([w.exited.then(() => true), sleep(10_000).then(() => false)]);
        if (!exited) {
          stopHung++;
          w.child.kill('SIGKILL');
        }
      }),
    );
    const logs = readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8'));
    const figures = check({ acknowledged, final, streams, kindOf, logs, cancels, unsettledCalls: calls.started - calls.settled + stopHung });
    const result: RunResult = { scenario: s.name, store: s.store, seconds: Math.round((Date.now() - started) / 100) / 10, faults: counts, ...figures };
    log(JSON.stringify(result));
    return result;
  } finally {
    done.value = true;
    for (const w of workers) w.child.kill('SIGKILL');
    await client?.close().catch(() => undefined);
    await store.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

