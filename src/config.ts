/**
 * Configuration: one zod schema for the environment of DESIGN, with the
 * defaults, and one for the options of each role. Every message names the
 * variable and what it accepts. Defaults live here and nowhere else.
 */
import { z } from 'zod';
import { ConfigError } from './errors.js';

export const TRANSPORT_NAMES = ['mongo', 'redis', 'http', 'memory'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

export const DEFAULTS = {
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

const flag = (name: string) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => ['1', '0', 'true', 'false', 'yes', 'no', ''].includes(v), `${name} must be 1 or 0`)
    .transform((v) => v === '1' || v === 'true' || v === 'yes');

/** The environment variables of DESIGN, plus a few of our own (REASONQ_*). */
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
  REASONQ_API_TOKEN: z.string().min(1, 'REASONQ_API_TOKEN must not be empty when set').optional(),
  REASONING_API_TIMEOUT_MS: intFrom('REASONING_API_TIMEOUT_MS', 1, 3_600_000).optional(),
  REASONING_API_RETRIES: intFrom('REASONING_API_RETRIES', 0, 20).optional(),
  REASONING_QUEUE_WORKER: flag('REASONING_QUEUE_WORKER').optional(),
  REASONQ_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: () => 'REASONQ_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent' }).optional(),
  REASONQ_RETENTION_MS: intFrom('REASONQ_RETENTION_MS', 1000, 365 * 24 * 3600 * 1000).optional(),
});

export interface Config {
  transport: TransportName;
  mongo: { uri: string; db: string; writeConcern: 'majority' | number };
  redis: { url: string };
  http: { url: string; token: string | undefined; timeoutMs: number; retries: number };
  queueWorker: boolean;
  logLevel: string;
  retentionMs: number;
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
    throw new ConfigError(`${issue.message} (got ${JSON.stringify(variable.includes('TOKEN') ? '***' : got)})`, variable);
  }
  const e = parsed.data;
  const mongoUri = e.MONGO_URI ?? (e.MONGO_HOST ? `mongodb://${e.MONGO_HOST}` : DEFAULTS.mongoUri);
  const wc = e.MONGO_WRITE_CONCERN ?? DEFAULTS.mongoWriteConcern;
  const config: Config = {
    transport: e.REASONING_TRANSPORT ?? DEFAULTS.transport,
    mongo: { uri: mongoUri, db: e.MONGO_DB ?? DEFAULTS.mongoDb, writeConcern: wc === 'majority' ? 'majority' : Number(wc) },
    redis: { url: e.REDIS_URL ?? DEFAULTS.redisUrl },
    http: {
      url: e.REASONING_API_URL ?? DEFAULTS.apiUrl,
      token: e.REASONQ_API_TOKEN,
      timeoutMs: e.REASONING_API_TIMEOUT_MS ?? DEFAULTS.apiTimeoutMs,
      retries: e.REASONING_API_RETRIES ?? DEFAULTS.apiRetries,
    },
    queueWorker: e.REASONING_QUEUE_WORKER ?? false,
    logLevel: e.REASONQ_LOG_LEVEL ?? 'info',
    retentionMs: e.REASONQ_RETENTION_MS ?? DEFAULTS.retentionMs,
  };
  return { ...config, ...overrides };
}

/** A URI with its credentials masked, for error messages and logs. */
export function redactUri(uri: string): string {
  return uri.replace(/\/\/([^@/]*)@/, (_m, cred: string) => (cred.includes(':') ? `//${cred.split(':')[0]}:***@` : '//***@'));
}
