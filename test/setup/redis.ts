/**
 * Real `redis-server` processes for the redis tests: standalone servers and
 * a 3-master Cluster on free ports, each in its own temp dir, killed in
 * after(). scripts/redis/ensure-redis.sh installs Redis when it is missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface RedisServerOptions {
  /** AOF with appendfsync always (durability tests) */
  aof?: boolean;
  /** extra `--name value` arguments */
  args?: string[];
  /** reuse a data dir (restart) */
  dir?: string;
  /** reuse a port (restart) */
  port?: number;
}

export interface RedisServer {
  port: number;
  url: string;
  dir: string;
  process: ChildProcess;
  options: RedisServerOptions;
  /** kill -9, as for a crash */
  kill(): Promise<void>;
  /** SIGTERM (Redis writes its AOF) and wait for exit */
  stop(): Promise<void>;
}

export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-cli', ['--version']).status === 0;
}

/** A free TCP port; with `bus`, port + 10000 (the Cluster bus) is free too. */
export async function freePort(bus = false): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = bus ? 20_000 + Math.floor(Math.random() * 20_000) : await listenPort(0);
    if (!bus) return port;
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
  throw new Error('no free port found');
}

function listenPort(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address ? address.port : port));
    });
  });
}

const portIsFree = (port: number) => listenPort(port).then(() => true, () => false);

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // No ready check: a server with a password answers it NOAUTH, yet is up.
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch (error) {
      if (/NOAUTH/.test(String(error))) return; // up, with a password
    } finally {
      client.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start a redis-server on a free port and wait until it answers PING. */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'reasonq-redis-'));
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', options.aof ? 'yes' : 'no', '--appendfsync', 'always',
    '--protected-mode', 'no', '--daemonize', 'no', '--loglevel', 'warning',
    ...(options.args ?? []),
  ];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([waitForPing(port), exited.then(() => Promise.reject(new Error(`redis-server exited at start: ${stderr.trim()}`)))]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const ended = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return { port, url: `redis://127.0.0.1:${port}`, dir, process: child, options, kill: () => ended('SIGKILL'), stop: () => ended('SIGTERM') };
}

/** Start again on the same port and data dir (after kill/stop). */
export function restartRedis(server: RedisServer): Promise<RedisServer> {
  return startRedis({ ...server.options, dir: server.dir, port: server.port });
}

export async function removeRedis(server: RedisServer): Promise<void> {
  await server.kill();
  rmSync(server.dir, { recursive: true, force: true });
}

export interface RedisCluster {
  nodes: RedisServer[];
  /** `redis+cluster://127.0.0.1:port` of the first node */
  url: string;
  /** comma-separated list of all nodes */
  listUrl: string;
  stop(): Promise<void>;
}

/** Three masters, no replicas, slots spread by `redis-cli --cluster create`. */
export async function startCluster(count = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort(true);
      nodes.push(await startRedis({ port, args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '3000'] }));
    }
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stderr || create.stdout}`);
    await waitForClusterOk(nodes);
  } catch (error) {
    await Promise.all(nodes.map(removeRedis));
    throw error;
  }
  return {
    nodes,
    url: `redis+cluster://127.0.0.1:${nodes[0]!.port}`,
    listUrl: nodes.map((n) => `redis://127.0.0.1:${n.port}`).join(','),
    stop: async () => {
      await Promise.all(nodes.map(removeRedis));
    },
  };
}

async function waitForClusterOk(nodes: RedisServer[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = nodes.map((n) => spawnSync('redis-cli', ['-p', String(n.port), 'cluster', 'info'], { encoding: 'utf8' }).stdout);
    if (states.every((s) => /cluster_state:ok/.test(s) && /cluster_known_nodes:(\d+)/.exec(s)?.[1] === String(nodes.length))) return;
    if (Date.now() > deadline) throw new Error(`cluster not ok within ${timeoutMs} ms: ${states.join(' | ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
