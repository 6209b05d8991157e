/**
 * Configuration: one zod schema for the environment (docs/architecture.md, README), with the
 * defaults, and one for the options of each role. Every message names the
 * variable and what it accepts. Defaults live here and nowhere else.
 */
import { z } from 'zod';
import type { CallbackConfig } from './callbacks.js';
import { ConfigError } from './errors.js';
import { LOG_FORMATS, type LogFormat } from './logger.js';
import { parseAllowList } from './net-guard.js';
import { assertSecret } from './webhooks.js';

export const TRANSPORT_NAMES = ['mongo', 'redis', 'http', 'memory'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

export const DEFAULTS = {
  /** the queue of a job enqueued without one, and of a worker given none */
  queue: 'reasoning',
  maxAttempts: 3,
  /** a list page: this many jobs unless asked, at most the max */
  listLimit: 50,
  listMaxLimit: 500,
  /** redis key prefix */
  redisPrefix: 'rq',
  /** the http transport's connections to its server */
  httpConnections: 64,
  transport: 'http' as TransportName,
  mongoUri: 'mongodb://127.0.0.1:27017',
  mongoDb: 'reasoning_queue',
  mongoWriteConcern: 'majority',
  redisUrl: 'redis://127.0.0.1:6379/0',
  apiUrl: 'http://127.0.0.1:8080',
  apiTimeoutMs: 30_000,
  apiRetries: 2,
  port: 8080,
  host: '127.0.0.1',
  bodyLimitBytes: 1024 * 1024,
  leaseMs: 30_000,
  concurrency: 4,
  retentionMs: 7 * 24 * 3600 * 1000,
  heartbeatMs: 5_000,
  shutdownGraceMs: 10_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 60_000,
  jobTimeoutMs: 120_000,
  pollMinMs: 50,
  pollMaxMs: 2_000,
  /** mongo: a polled wait() asks again at most this far apart */
  waitPollMaxMs: 1_000,
  /** mongo: how long the driver looks for a server before an operation fails */
  serverSelectionTimeoutMs: 5_000,
  /** redis: finished jobs kept per queue and status at most (besides the retention) */
  historyLimit: 100_000,
  /** how long one claim of a worker may block */
  claimWaitMs: 2_000,
  /** the HTTP API's long-polls (wait, enqueue-and-wait) answer after this long at most */
  maxWaitMs: 60_000,
  /** GET /v1/jobs/:id/wait without timeout_ms */
  waitDefaultMs: 30_000,
  /** hosts the server answers for when REASONQ_ALLOWED_HOSTS is unset (plus the address it binds) */
  allowedHosts: ['localhost', '127.0.0.1', '::1'],
  /** receiving a whole request (headers and body) */
  requestTimeoutMs: 30_000,
  /** open long-polls of each kind before 429 */
  maxWaits: 2_000,
  maxStreams: 500,
  maxClaims: 2_000,
  /** open connections the server takes at once (idle keep-alive ones included); past it, new ones are closed at once */
  maxConnections: 10_000,
  /** an SSE stream is closed after this long; EventSource reconnects */
  sseMaxMs: 10 * 60_000,
  /** memory store: jobs and payload bytes held */
  memoryMaxJobs: 100_000,
  memoryMaxBytes: 256 * 1024 * 1024,
  callbackTimeoutMs: 5_000,
  /** a callback that fails is tried again after 1 s, 2 s, 4 s … (at most 10 min apart) until this long after the job ended */
  callbackPeriodMs: 24 * 3600 * 1000,
  callbackBackoffMs: 1_000,
  callbackBackoffMaxMs: 10 * 60_000,
  /** retries of one job that callback deliveries may ask for (a callback aimed at our own retry route) */
  callbackRetryLimit: 3,
  /** dashboard sessions (cookie) last this long */
  sessionTtlMs: 12 * 3600 * 1000,
  /** how often the elected maintainer recovers expired leases and applies retention (maintenance.ts) */
  maintenanceMs: 1_000,
  /** one store operation (beyond a claim's or wait's own wait) settles within this, else STORE_TIMEOUT (src/bounded.ts) */
  storeTimeoutMs: 10_000,
  /** runs of one job that may lose their lease (its worker died or froze) before it ends WORKER_CRASHED */
  maxStalls: 10,
  /** a worker not seen for this long leaves the registry (a dead one shows as dead, its counts stale, until then) */
  workerHorizonMs: 10 * 60_000,
  /** events kept per job (the oldest are trimmed past it, and a reader told) */
  eventsMax: 10_000,
  /** JSON bytes of one event's data */
  eventMaxBytes: 64 * 1024,
  /** a worker writes a job's events at most this often (ms): the ones emitted meanwhile go in one write */
  emitIntervalMs: 50,
  /** an event read that finds nothing new waits this long at most (the HTTP API, the library's follow loop) */
  eventsWaitMs: 15_000,
  /** SSE keep-alive comment every this many ms */
  sseKeepAliveMs: 15_000,
  /** while a dashboard is open, the server reads stats and workers this often, once for all open dashboards (ms) */
  dashboardFeedMs: 1_000,
  /** the demo reasoner's pause between two tokens of its reasoning (ms; 0 in tests) */
  demoTokenMs: 20,
  /** the OpenAI-compatible reasoner's server: Ollama's address on this machine, so nothing leaves it unless told */
  llmBaseUrl: 'http://127.0.0.1:11434/v1',
  /** one chat-completions request, connect to last token (the job's own timeout bounds it too) */
  llmTimeoutMs: 120_000,
  /** characters of a payload's `context` (as JSON) put in the prompt; the rest is cut, with a note saying so */
  llmContextMaxChars: 16_000,
} as const;

const intFrom = (name: string, min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `${name} must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name} must be a whole number from ${min} to ${max}`);

const urlWith = (name: string, protocols: string[]) =>
  z
    .string()
    .trim()
    .refine((value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    }, `${name} must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);

/** A comma-separated list, each entry checked by `check` (which throws with the reason). */
const listOf = (name: string, check: (entry: string) => void) =>
  z
    .string()
    .transform((v) => v.split(',').map((e) => e.trim()).filter(Boolean))
    .superRefine((entries, ctx) => {
      for (const entry of entries) {
        try {
          check(entry);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `${name}: ${(error as Error).message}` });
          return;
        }
      }
    });

const tokenList = (name: string) =>
  listOf(name, (t) => {
    if (t.length < 16) throw new Error('each token must be at least 16 characters (openssl rand -hex 32)');
    if (!/^[\x21-\x7e]+$/.test(t)) throw new Error('tokens are printable ASCII without spaces');
  });

const flag = (name: string) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => ['1', '0', 'true', 'false', 'yes', 'no', ''].includes(v), `${name} must be 1 or 0`)
    .transform((v) => v === '1' || v === 'true' || v === 'yes');

/** The environment variables: the first release's (REASONING_*, MONGO_*, REDIS_URL) and ours (REASONQ_*). */
export const envSchema = z.object({
  REASONING_TRANSPORT: z.enum(TRANSPORT_NAMES, { error: () => `REASONING_TRANSPORT must be one of ${TRANSPORT_NAMES.join(', ')}` }).optional(),
  MONGO_URI: urlWith('MONGO_URI', ['mongodb:', 'mongodb+srv:']).optional(),
  MONGO_HOST: z.string().trim().regex(/^[A-Za-z0-9_.:\-[\],]+$/, 'MONGO_HOST must be host[:port] (or a comma-separated list)').optional(),
  MONGO_DB: z.string().trim().regex(/^[A-Za-z0-9_-]{1,63}$/, 'MONGO_DB must be 1-63 letters, digits, _ or -').optional(),
  MONGO_WRITE_CONCERN: z.string().trim().regex(/^(majority|\d+)$/, 'MONGO_WRITE_CONCERN must be "majority" or a number of nodes').optional(),
  REDIS_URL: z
    .string()
    .trim()
    .refine(
      (v) => v.split(',').every((part) => /^(rediss?|redis\+cluster):\/\/[^\s]+$/.test(part.trim())),
      'REDIS_URL must be redis://, rediss:// or redis+cluster:// (or a comma-separated list of cluster nodes)',
    )
    .optional(),
  REASONING_API_URL: urlWith('REASONING_API_URL', ['http:', 'https:']).optional(),
  REASONING_MIGRATE_FROM: z.enum(['mongo', 'redis'], { error: () => 'REASONING_MIGRATE_FROM must be mongo or redis (the store a migration leaves)' }).optional(),
  REASONQ_API_TOKEN: tokenList('REASONQ_API_TOKEN').optional(),
  REASONQ_CLIENT_TOKEN: tokenList('REASONQ_CLIENT_TOKEN').optional(),
  REASONQ_WORKER_TOKEN: tokenList('REASONQ_WORKER_TOKEN').optional(),
  REASONQ_ALLOWED_HOSTS: listOf('REASONQ_ALLOWED_HOSTS', (h) => {
    if (h !== '*' && !/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+|[0-9a-f:]+)$/i.test(h)) throw new Error(`"${h}" is not a host name or address without a port (or * for any)`);
    if (/^[a-z0-9.-]+:\d+$/i.test(h)) throw new Error(`"${h}": give the host without its port (the port is not compared)`);
  }).optional(),
  REASONQ_CALLBACK_ALLOW: listOf('REASONQ_CALLBACK_ALLOW', (e) => void parseAllowList([e])).optional(),
  REASONQ_CALLBACK_SECRET: listOf('REASONQ_CALLBACK_SECRET', assertSecret).optional(),
  REASONQ_REQUEST_TIMEOUT_MS: intFrom('REASONQ_REQUEST_TIMEOUT_MS', 1000, 600_000).optional(),
  REASONQ_MAX_WAITS: intFrom('REASONQ_MAX_WAITS', 1, 1_000_000).optional(),
  REASONQ_MAX_STREAMS: intFrom('REASONQ_MAX_STREAMS', 1, 1_000_000).optional(),
  REASONQ_MAX_CLAIMS: intFrom('REASONQ_MAX_CLAIMS', 1, 1_000_000).optional(),
  REASONQ_SSE_MAX_MS: intFrom('REASONQ_SSE_MAX_MS', 1000, 24 * 3600 * 1000).optional(),
  REASONQ_MEMORY_MAX_JOBS: intFrom('REASONQ_MEMORY_MAX_JOBS', 1, 100_000_000).optional(),
  REASONQ_MEMORY_MAX_BYTES: intFrom('REASONQ_MEMORY_MAX_BYTES', 1024, 64 * 1024 ** 3).optional(),
  REASONING_API_TIMEOUT_MS: intFrom('REASONING_API_TIMEOUT_MS', 1, 3_600_000).optional(),
  REASONING_API_RETRIES: intFrom('REASONING_API_RETRIES', 0, 20).optional(),
  REASONING_QUEUE_WORKER: flag('REASONING_QUEUE_WORKER').optional(),
  REASONQ_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: () => 'REASONQ_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent' }).optional(),
  REASONQ_LOG_FORMAT: z.enum(LOG_FORMATS, { error: () => 'REASONQ_LOG_FORMAT must be pretty (one readable line an event) or json (pino lines); unset, pretty on a terminal and json otherwise' }).optional(),
  REASONQ_RETENTION_MS: intFrom('REASONQ_RETENTION_MS', 1000, 365 * 24 * 3600 * 1000).optional(),
  REASONQ_MAINTENANCE_MS: intFrom('REASONQ_MAINTENANCE_MS', 10, 3_600_000).optional(),
  REASONQ_STORE_TIMEOUT_MS: intFrom('REASONQ_STORE_TIMEOUT_MS', 100, 600_000).optional(),
  REASONQ_CALLBACK_PERIOD_MS: intFrom('REASONQ_CALLBACK_PERIOD_MS', 1000, 30 * 24 * 3600 * 1000).optional(),
  REASONQ_WORKER_HORIZON_MS: intFrom('REASONQ_WORKER_HORIZON_MS', 10_000, 7 * 24 * 3600 * 1000).optional(),
  REASONQ_EVENTS_MAX: intFrom('REASONQ_EVENTS_MAX', 10, 1_000_000).optional(),
  REASONQ_EVENT_MAX_BYTES: intFrom('REASONQ_EVENT_MAX_BYTES', 256, 512 * 1024).optional(),
  REASONQ_EMIT_INTERVAL_MS: intFrom('REASONQ_EMIT_INTERVAL_MS', 0, 10_000).optional(),
  REASONQ_DEMO_TOKEN_MS: intFrom('REASONQ_DEMO_TOKEN_MS', 0, 10_000).optional(),
  REASONING_LLM_BASE_URL: urlWith('REASONING_LLM_BASE_URL', ['http:', 'https:']).optional(),
  REASONING_LLM_MODEL: z.string().trim().max(256, 'REASONING_LLM_MODEL must be at most 256 characters').optional(),
  REASONING_LLM_API_KEY: z.string().trim().regex(/^[\x21-\x7e]+$/, 'REASONING_LLM_API_KEY must be printable ASCII without spaces').optional(),
  REASONING_LLM_TIMEOUT_MS: intFrom('REASONING_LLM_TIMEOUT_MS', 1000, 3_600_000).optional(),
});

/** Bearer tokens by scope; the admin token may do everything. Several per scope, for rotation. */
export interface Tokens {
  admin: string[];
  client: string[];
  worker: string[];
}

export interface ServerConfig {
  tokens: Tokens;
  /** Host header values answered (port ignored); `*` answers any */
  allowedHosts: string[];
  requestTimeoutMs: number;
  maxWaits: number;
  maxStreams: number;
  maxClaims: number;
  sseMaxMs: number;
}

export interface Config {
  transport: TransportName;
  /**
   * REASONING_MIGRATE_FROM: the store a queue is moving away from (src/fallback.ts):
   * jobs the transport's store lacks are looked up there. Its connection comes
   * from the same variables (MONGO_URI, REDIS_URL).
   */
  migrateFrom?: 'mongo' | 'redis' | undefined;
  mongo: { uri: string; db: string; writeConcern: 'majority' | number };
  redis: { url: string };
  /**
   * The http transport's server and the token it presents: `token` (REASONQ_API_TOKEN)
   * unless a scoped one is set, `clientToken` on client calls, `workerToken` on worker calls.
   */
  http: { url: string; token: string | undefined; clientToken?: string | undefined; workerToken?: string | undefined; timeoutMs: number };
  /** the client on every transport: agentIntent's and wait's default limit, retries of transport failures */
  client: { timeoutMs: number; retries: number };
  server: ServerConfig;
  callbacks: CallbackConfig;
  memory: { maxJobs: number; maxBytes: number };
  queueWorker: boolean;
  logLevel: string;
  /** REASONQ_LOG_FORMAT; undefined: pretty when the log goes to a terminal, JSON otherwise (src/logger.ts) */
  logFormat: LogFormat | undefined;
  retentionMs: number;
  /** how often the elected maintainer sweeps */
  maintenanceMs: number;
  /** every store operation settles within this (beyond its own wait) */
  storeTimeoutMs: number;
  /** a worker not seen for this long leaves the registry */
  workerHorizonMs: number;
  /** events: kept per job, JSON bytes per event, the worker's write interval, the demo reasoner's token pause */
  events: { max: number; maxBytes: number; emitIntervalMs: number; demoTokenMs: number };
  /** the OpenAI-compatible reasoner (`--reasoner openai`); `model` is checked only when it is chosen (loadLlmConfig) */
  llm: { baseUrl: string; model: string | undefined; apiKey: string | undefined; timeoutMs: number };
}

/** What the OpenAI-compatible reasoner needs from the environment. */
export interface LlmConfig {
  /** REASONING_LLM_BASE_URL: the `/v1` root; `/chat/completions` is added */
  baseUrl: string;
  /** REASONING_LLM_MODEL */
  model: string;
  /** REASONING_LLM_API_KEY, sent as a Bearer token; never logged */
  apiKey: string | undefined;
  /** REASONING_LLM_TIMEOUT_MS: one request, start to last token */
  timeoutMs: number;
}

/** Blank values count as unset, like most twelve-factor tools do. */
function present(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') out[key] = value;
  }
  return out;
}

/** Read and validate the environment; throws ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const parsed = envSchema.safeParse(present(env));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? '');
    const got = env[variable];
    const secret = variable.includes('TOKEN') || variable.includes('SECRET') || variable.includes('KEY');
    throw new ConfigError(`${issue.message} (got ${JSON.stringify(secret ? '***' : got)})`, variable);
  }
  const e = parsed.data;
  const mongoUri = e.MONGO_URI ?? (e.MONGO_HOST ? `mongodb://${e.MONGO_HOST}` : DEFAULTS.mongoUri);
  const wc = e.MONGO_WRITE_CONCERN ?? DEFAULTS.mongoWriteConcern;
  const config: Config = {
    transport: e.REASONING_TRANSPORT ?? DEFAULTS.transport,
    migrateFrom: e.REASONING_MIGRATE_FROM,
    mongo: { uri: mongoUri, db: e.MONGO_DB ?? DEFAULTS.mongoDb, writeConcern: wc === 'majority' ? 'majority' : Number(wc) },
    redis: { url: e.REDIS_URL ?? DEFAULTS.redisUrl },
    http: {
      url: e.REASONING_API_URL ?? DEFAULTS.apiUrl,
      token: e.REASONQ_API_TOKEN?.[0],
      clientToken: e.REASONQ_CLIENT_TOKEN?.[0],
      workerToken: e.REASONQ_WORKER_TOKEN?.[0],
      timeoutMs: e.REASONING_API_TIMEOUT_MS ?? DEFAULTS.apiTimeoutMs,
    },
    client: { timeoutMs: e.REASONING_API_TIMEOUT_MS ?? DEFAULTS.apiTimeoutMs, retries: e.REASONING_API_RETRIES ?? DEFAULTS.apiRetries },
    server: {
      tokens: { admin: e.REASONQ_API_TOKEN ?? [], client: e.REASONQ_CLIENT_TOKEN ?? [], worker: e.REASONQ_WORKER_TOKEN ?? [] },
      allowedHosts: e.REASONQ_ALLOWED_HOSTS ?? [...DEFAULTS.allowedHosts],
      requestTimeoutMs: e.REASONQ_REQUEST_TIMEOUT_MS ?? DEFAULTS.requestTimeoutMs,
      maxWaits: e.REASONQ_MAX_WAITS ?? DEFAULTS.maxWaits,
      maxStreams: e.REASONQ_MAX_STREAMS ?? DEFAULTS.maxStreams,
      maxClaims: e.REASONQ_MAX_CLAIMS ?? DEFAULTS.maxClaims,
      sseMaxMs: e.REASONQ_SSE_MAX_MS ?? DEFAULTS.sseMaxMs,
    },
    callbacks: { allow: e.REASONQ_CALLBACK_ALLOW ?? [], secrets: e.REASONQ_CALLBACK_SECRET ?? [], periodMs: e.REASONQ_CALLBACK_PERIOD_MS ?? DEFAULTS.callbackPeriodMs },
    memory: { maxJobs: e.REASONQ_MEMORY_MAX_JOBS ?? DEFAULTS.memoryMaxJobs, maxBytes: e.REASONQ_MEMORY_MAX_BYTES ?? DEFAULTS.memoryMaxBytes },
    queueWorker: e.REASONING_QUEUE_WORKER ?? false,
    logLevel: e.REASONQ_LOG_LEVEL ?? 'info',
    logFormat: e.REASONQ_LOG_FORMAT,
    retentionMs: e.REASONQ_RETENTION_MS ?? DEFAULTS.retentionMs,
    maintenanceMs: e.REASONQ_MAINTENANCE_MS ?? DEFAULTS.maintenanceMs,
    storeTimeoutMs: e.REASONQ_STORE_TIMEOUT_MS ?? DEFAULTS.storeTimeoutMs,
    workerHorizonMs: e.REASONQ_WORKER_HORIZON_MS ?? DEFAULTS.workerHorizonMs,
    events: {
      max: e.REASONQ_EVENTS_MAX ?? DEFAULTS.eventsMax,
      maxBytes: e.REASONQ_EVENT_MAX_BYTES ?? DEFAULTS.eventMaxBytes,
      emitIntervalMs: e.REASONQ_EMIT_INTERVAL_MS ?? DEFAULTS.emitIntervalMs,
      demoTokenMs: e.REASONQ_DEMO_TOKEN_MS ?? DEFAULTS.demoTokenMs,
    },
    llm: {
      baseUrl: e.REASONING_LLM_BASE_URL ?? DEFAULTS.llmBaseUrl,
      model: e.REASONING_LLM_MODEL || undefined,
      apiKey: e.REASONING_LLM_API_KEY,
      timeoutMs: e.REASONING_LLM_TIMEOUT_MS ?? DEFAULTS.llmTimeoutMs,
    },
  };
  const result = { ...config, ...overrides };
  if (result.migrateFrom && (result.migrateFrom === result.transport || (result.transport !== 'mongo' && result.transport !== 'redis'))) {
    throw new ConfigError(
      `REASONING_MIGRATE_FROM=${result.migrateFrom} needs REASONING_TRANSPORT set to the other store (got ${result.transport}): it is read by the clients and servers of the store a queue moves to (an http client gets it from its server)`,
      'REASONING_MIGRATE_FROM',
    );
  }
  return result;
}

/** The callback settings alone (allow-list, secrets), for a worker or client built in code. */
export function loadCallbackConfig(env: NodeJS.ProcessEnv = process.env): CallbackConfig {
  return loadConfig({ REASONQ_CALLBACK_ALLOW: env.REASONQ_CALLBACK_ALLOW, REASONQ_CALLBACK_SECRET: env.REASONQ_CALLBACK_SECRET, REASONQ_CALLBACK_PERIOD_MS: env.REASONQ_CALLBACK_PERIOD_MS }).callbacks;
}

/**
 * The OpenAI-compatible reasoner's settings (REASONING_LLM_*) alone, for
 * `--reasoner openai` or a handler built in code. Throws ConfigError naming
 * the variable; REASONING_LLM_MODEL is required here.
 */
export function loadLlmConfig(env: NodeJS.ProcessEnv = process.env): LlmConfig {
  const { llm } = loadConfig({
    REASONING_LLM_BASE_URL: env.REASONING_LLM_BASE_URL,
    REASONING_LLM_MODEL: env.REASONING_LLM_MODEL,
    REASONING_LLM_API_KEY: env.REASONING_LLM_API_KEY,
    REASONING_LLM_TIMEOUT_MS: env.REASONING_LLM_TIMEOUT_MS,
  });
  if (!llm.model) {
    throw new ConfigError('REASONING_LLM_MODEL must name the model the server should run (e.g. llama3.1 for Ollama) to use the openai reasoner', 'REASONING_LLM_MODEL');
  }
  return { ...llm, model: llm.model };
}

/** A URI with its credentials masked, for error messages and logs. */
export function redactUri(uri: string): string {
  return uri.replace(/\/\/([^@/]*)@/, (_m, cred: string) => (cred.includes(':') ? `//${cred.split(':')[0]}:***@` : '//***@'));
}
