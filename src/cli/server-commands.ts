/** Long-running commands: dev (server + worker on the embedded store), serve, worker. */
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Option, type Command } from 'commander';
import { createCallbackSender, type CallbackSender } from '../callbacks.js';
import { isLoopbackHost } from '../net-guard.js';
import { DEFAULTS, loadConfig, loadLlmConfig, redactUri, type Config } from '../config.js';
import { ConfigError, ValidationError } from '../errors.js';
import { queueList } from './flags.js';
import { createLogger, LOG_FORMATS, type LogFormat, type Logger } from '../logger.js';
import { demoHandler } from '../reasoner.js';
import { createOpenAIHandler } from '../reasoners/openai.js';
import { createServer } from '../server/app.js';
import type { Transport } from '../transport.js';
import { createTransport } from '../transports.js';
import { createWorker, type Handler, type Worker } from '../worker.js';

interface ServeFlags {
  logFormat?: LogFormat;
  port: number;
  host: string;
  handler?: string;
  reasoner: Reasoner;
  queues: string[];
  concurrency: number;
  grace: number;
}

const intOpt = (name: string, min: number, max: number) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new ValidationError(`--${name} must be a whole number from ${min} to ${max}`, name);
  return Number(v);
};

const REASONERS = ['demo', 'openai'] as const;
type Reasoner = (typeof REASONERS)[number];

/** The worker's handler: a --handler module, or a built-in reasoner (--reasoner, default demo). */
export async function resolveHandler(flags: { handler?: string | undefined; reasoner?: Reasoner | undefined }, log?: Logger): Promise<Handler> {
  if (flags.reasoner === 'openai') {
    if (flags.handler) throw new ConfigError('--handler and --reasoner openai both name the handler: give one of them', 'reasoner');
    const llm = loadLlmConfig(process.env);
    log?.info({ model: llm.model, base_url: redactUri(llm.baseUrl), timeout_ms: llm.timeoutMs }, 'openai reasoner');
    return createOpenAIHandler(llm);
  }
  return loadHandler(flags.handler);
}

/** Load a handler module: its default export, or a named `handler`. */
export async function loadHandler(spec: string | undefined): Promise<Handler> {
  if (!spec) return demoHandler;
  let mod: { default?: unknown; handler?: unknown };
  try {
    mod = (await import(pathToFileURL(resolve(spec)).href)) as typeof mod;
  } catch (error) {
    throw new ConfigError(`--handler ${spec} could not be loaded: ${(error as Error).message}`, 'handler');
  }
  const fn = typeof mod.default === 'function' ? mod.default : typeof mod.handler === 'function' ? mod.handler : (mod.default as { handler?: unknown } | undefined)?.handler;
  if (typeof fn !== 'function') throw new ConfigError(`--handler ${spec} must export a function as default or as "handler": async (payload, ctx) => intent`, 'handler');
  return fn as Handler;
}

function runOptions(cmd: Command, withServer: boolean): Command {
  if (withServer) {
    cmd.option('--port <port>', 'port to listen on', intOpt('port', 0, 65535), DEFAULTS.port).option('--host <host>', 'address to bind (127.0.0.1 unless told otherwise)', DEFAULTS.host);
  }
  return cmd
    .option('--handler <module>', 'handler module (default: the reasoner of --reasoner)')
    .addOption(new Option('--reasoner <name>', 'built-in reasoner: demo (rules) or openai (an OpenAI-compatible server: REASONING_LLM_*)').choices(REASONERS).default('demo'))
    .addOption(new Option('--queues <names>', 'comma-separated queues to work on').argParser(queueList('queues')).default([DEFAULTS.queue], DEFAULTS.queue))
    .option('--concurrency <n>', 'jobs at once', intOpt('concurrency', 1, 10_000), DEFAULTS.concurrency)
    .option('--grace <ms>', 'on SIGINT/SIGTERM, how long running jobs may finish', intOpt('grace', 0, 3_600_000), DEFAULTS.shutdownGraceMs)
    .addOption(new Option('--log-format <format>', 'pretty (one readable line an event) or json (pino lines) (default: REASONQ_LOG_FORMAT, else pretty on a terminal and json otherwise)').choices(LOG_FORMATS));
}

/** The log format: the flag, else REASONQ_LOG_FORMAT, else by whether stderr is a terminal (createLogger decides). */
const logFormat = (flags: ServeFlags, config: Config): LogFormat | undefined => flags.logFormat ?? config.logFormat;

/**
 * The address a client on this machine dials to reach the server: the bound
 * one, except that a wildcard bind is reached on loopback (and `[::]` is no
 * host a client may send: the Host check would refuse it).
 */
export function clientUrl(host: string, port: number): string {
  const dial = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${dial.includes(':') ? `[${dial}]` : dial}:${port}`;
}

type JobEndListener = (job: { id: string; payload: { goal?: unknown } }, outcome: string, ms: number) => void;

function buildWorker(transport: Transport, handler: Handler, flags: ServeFlags, log: Logger, callbacks: CallbackSender, maintenanceMs: number, events: Config['events'], onEnd?: JobEndListener): Worker {
  const worker = createWorker({
    callbacks,
    maintenanceMs,
    emitIntervalMs: events.emitIntervalMs,
    eventMaxBytes: events.maxBytes,
    transport,
    handler,
    queues: flags.queues,
    concurrency: flags.concurrency,
    shutdownGraceMs: flags.grace,
    logger: log,
  });
  if (onEnd) worker.on('job:end', onEnd);
  return worker;
}

/**
 * SIGINT/SIGTERM: stop claiming, let running jobs finish within the grace
 * period, hand the rest back, close the server. A second signal exits at once.
 */
function onSignals(log: Logger, shutdown: () => Promise<void>): void {
  let signals = 0;
  const handle = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    process.stderr.write(`reasonq: ${signal} received, shutting down (again to force)\n`);
    shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: (error as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
}

async function serve(config: Config, flags: ServeFlags, options: { worker: boolean; dev: boolean }): Promise<void> {
  const { tokens } = config.server;
  const open = tokens.admin.length + tokens.client.length + tokens.worker.length === 0;
  if (open && config.server.allowedHosts.includes('*')) {
    throw new ConfigError('REASONQ_ALLOWED_HOSTS=* without a token lets any web page drive this server through DNS rebinding: set REASONQ_API_TOKEN or list the hosts', 'REASONQ_ALLOWED_HOSTS');
  }
  if (!isLoopbackHost(flags.host) && open) {
    throw new ConfigError(
      `--host ${flags.host} would open the API to the network without a token: set REASONQ_API_TOKEN (and REASONQ_CLIENT_TOKEN / REASONQ_WORKER_TOKEN for scoped callers), or bind to 127.0.0.1`,
      'REASONQ_API_TOKEN',
    );
  }
  const log = createLogger({ level: options.dev && !process.env.REASONQ_LOG_LEVEL ? 'warn' : config.logLevel, format: logFormat(flags, config) });
  // Before anything opens: a handler that cannot be had is a usage error, not a half-started server.
  const handler = options.worker ? await resolveHandler(flags, log) : null;
  const transport = await createTransport(config, log);
  const callbacks = createCallbackSender(config.callbacks, log);
  const worker = handler ? buildWorker(transport, handler, flags, log, callbacks, config.maintenanceMs, config.events, options.dev ? devJobLine : undefined) : null;
  // The address we bind is one we answer for, unless it is a wildcard.
  const wildcard = flags.host === '0.0.0.0' || flags.host === '::';
  const allowedHosts = wildcard ? config.server.allowedHosts : [...config.server.allowedHosts, flags.host];
  const app = await createServer({ ...config.server, allowedHosts, transport, callbacks, maintenanceMs: config.maintenanceMs, eventMaxBytes: config.events.maxBytes, logger: log, ...(worker ? { worker } : {}) });
  await app.listen({ host: flags.host, port: flags.port });
  // The port bound (--port 0 picks one) and the host a client would dial, in every URL printed below.
  const url = clientUrl(flags.host, (app.server.address() as AddressInfo).port);
  await worker?.start();
  onSignals(log, async () => {
    await worker?.stop();
    await app.close();
    await callbacks.close();
    await transport.close();
  });
  const reasoner = flags.handler ? `handler ${flags.handler}` : `${flags.reasoner} reasoner`;
  const what = options.dev ? `reasonq dev: server + ${flags.concurrency} worker slot(s) + ${reasoner} on the memory store` : `reasonq serve on the ${transport.name} store${worker ? ' with a worker' : ''}`;
  process.stdout.write(`${what}\n  API        ${url}/v1\n  dashboard  ${url}/engine\n  metrics    ${url}/metrics\n`);
  if (options.dev) process.stdout.write(`try: ${tryCommand(url, config, open)}\n`);
}

/** The dev hint: a command that reaches this server as it runs (its URL unless a client finds it by default; a token if one is needed). */
function tryCommand(url: string, config: Config, open: boolean): string {
  // dev's own config says memory; a client in this shell reads REASONING_TRANSPORT (blank is unset)
  const clientTransport = process.env.REASONING_TRANSPORT?.trim() || DEFAULTS.transport;
  const clientDefault = clientTransport === 'http' ? config.http.url : null;
  const args = ['npx reasonq intent'];
  if (url !== clientDefault) args.push(`--url ${url}`);
  args.push('--goal "Find where Framework is defined"');
  const hint = open ? '' : '   (with REASONQ_CLIENT_TOKEN or REASONQ_API_TOKEN set, or --token)';
  return `${args.join(' ')}${hint}`;
}

function devJobLine(job: { id: string; payload: { goal?: unknown } }, outcome: string, ms: number): void {
  process.stdout.write(`${new Date().toISOString()}  ${outcome.padEnd(8)} ${job.id}  ${ms} ms  ${String(job.payload.goal ?? '').slice(0, 60)}\n`);
}

export function registerServerCommands(program: Command): void {
  runOptions(program.command('dev'), true)
    .description('server + worker + dashboard on the embedded memory store (the quick start)')
    .action(async (flags: ServeFlags) => {
      const config = loadConfig(process.env, { transport: 'memory' });
      await serve(config, flags, { worker: true, dev: true });
    });

  runOptions(program.command('serve'), true)
    .description('HTTP API, dashboard and metrics in front of the configured store (REASONING_QUEUE_WORKER=1 adds a worker)')
    .action(async (flags: ServeFlags) => {
      const config = loadConfig();
      if (config.transport === 'http') {
        throw new ConfigError('reasonq serve needs a store: set REASONING_TRANSPORT to memory, mongo or redis (http would point the server at itself)', 'REASONING_TRANSPORT');
      }
      await serve(config, flags, { worker: config.queueWorker, dev: false });
    });

  runOptions(program.command('worker'), false)
    .description('run a worker on the configured transport')
    .action(async (flags: ServeFlags) => {
      const config = loadConfig();
      if (config.transport === 'memory') {
        throw new ConfigError('a standalone worker cannot share a memory store with anyone: use REASONING_TRANSPORT=http, mongo or redis (or reasonq dev)', 'REASONING_TRANSPORT');
      }
      const log = createLogger({ level: config.logLevel, format: logFormat(flags, config) });
      const handler = await resolveHandler(flags, log);
      const transport = await createTransport(config, log);
      const callbacks = createCallbackSender(config.callbacks, log);
      const worker = buildWorker(transport, handler, flags, log, callbacks, config.maintenanceMs, config.events);
      await worker.start();
      onSignals(log, async () => {
        await worker.stop();
        await callbacks.close();
        await transport.close();
      });
      const where = config.transport === 'http' ? ` (${redactUri(config.http.url)})` : '';
      process.stderr.write(`reasonq worker ${worker.id} on ${transport.name}${where}, queues ${worker.queues.join(',')}, concurrency ${worker.concurrency}\n`);
    });
}
