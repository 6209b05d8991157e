/** `reasonq migrate`: move queues between MongoDB and Redis under live traffic (src/migrate.ts). */
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { loadConfig, type Config } from '../config.js';
import { ConfigError, ValidationError } from '../errors.js';
import { QUEUE_NAME_RE } from '../job.js';
import { createLogger } from '../logger.js';
import { migrate, verifyMigration, type MigrateProgress, type MigrateSummary, type VerifyReport } from '../migrate.js';
import type { Transport } from '../transport.js';
import { createTransport } from '../transports.js';
import { printJson } from './output.js';

const STORES = ['mongo', 'redis'] as const;
type Store = (typeof STORES)[number];

interface MigrateFlags {
  from: string;
  to: string;
  fromUri?: string;
  toUri?: string;
  queue: string[];
  includeFinished?: boolean;
  dryRun?: boolean;
  verify?: boolean;
  batch?: number;
  sample: number;
  wait: boolean;
  json?: boolean;
}

/** Non-TTY progress: a line this often at most. */
const QUIET_LINE_MS = 5_000;

const positiveInt = (name: string, max: number) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new ValidationError(`--${name} must be a whole number from 1 to ${max}`, name);
  return Number(v);
};
const nonNegativeInt = (name: string, max: number) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) > max) throw new ValidationError(`--${name} must be a whole number from 0 to ${max}`, name);
  return Number(v);
};

function store(name: string, flag: string): Store {
  if (!(STORES as readonly string[]).includes(name)) throw new ValidationError(`--${flag} must be mongo or redis (got ${JSON.stringify(name)})`, flag);
  return name as Store;
}

/** A store's transport from the environment, its address overridden by the flag (validated as the variable would be). */
async function open(kind: Store, uri: string | undefined, flag: string): Promise<Transport> {
  const env: NodeJS.ProcessEnv = { ...process.env, REASONING_MIGRATE_FROM: undefined, REASONING_TRANSPORT: kind };
  if (uri !== undefined) env[kind === 'mongo' ? 'MONGO_URI' : 'REDIS_URL'] = uri;
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    // The flag's value, checked as its variable would be: the message names the flag.
    if (uri !== undefined && error instanceof ConfigError && error.variable === (kind === 'mongo' ? 'MONGO_URI' : 'REDIS_URL')) throw new ValidationError(`--${flag}: ${error.message}`, flag);
    throw error;
  }
  return createTransport(config, createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel }));
}

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('move queued (and, with --include-finished, finished) jobs between stores while workers and clients run; safe to stop and run again')
    .requiredOption('--from <store>', 'the store the jobs leave: mongo or redis')
    .requiredOption('--to <store>', 'the store they go to: redis or mongo')
    .option('--from-uri <uri>', "the source's address (default: MONGO_URI / REDIS_URL)")
    .option('--from-url <uri>', 'same as --from-uri')
    .option('--to-uri <uri>', "the target's address (default: MONGO_URI / REDIS_URL)")
    .option('--to-url <uri>', 'same as --to-uri')
    .option('--queue <name>', 'a queue to move (repeatable; default every queue)', (v: string, all: string[]) => {
      if (!QUEUE_NAME_RE.test(v)) throw new ValidationError(`--queue ${JSON.stringify(v)} is not a queue name`, 'queue');
      return [...all, v];
    }, [])
    .option('--include-finished', 'move finished jobs too (history and events; retention kept)')
    .option('--dry-run', 'count what would move; change nothing')
    .option('--verify', 'only compare both sides (counts per queue and status, a sample field by field)')
    .option('--batch <n>', 'jobs per step (1-1000; default 500, 100 on FerretDB)', positiveInt('batch', 1000))
    .option('--sample <n>', 'jobs compared field by field at the end', nonNegativeInt('sample', 100_000), 100)
    .option('--no-wait', 'one pass: do not wait for jobs running in the source (their retries stay there)')
    .option('--json', 'print a JSON summary')
    .action(async (raw: MigrateFlags & { fromUrl?: string; toUrl?: string }) => {
      const from = store(raw.from, 'from');
      const to = store(raw.to, 'to');
      if (raw.fromUri !== undefined && raw.fromUrl !== undefined) throw new ValidationError('give --from-uri or --from-url, not both', 'from-uri');
      if (raw.toUri !== undefined && raw.toUrl !== undefined) throw new ValidationError('give --to-uri or --to-url, not both', 'to-uri');
      const fromUri = raw.fromUri ?? raw.fromUrl;
      const toUri = raw.toUri ?? raw.toUrl;
      if (from === to && (fromUri ?? '') === (toUri ?? '')) throw new ConfigError(`--from and --to are the same ${from} store: give --from-uri or --to-uri`, 'to');
      const source = await open(from, fromUri, raw.fromUri !== undefined ? 'from-uri' : 'from-url');
      let target: Transport | null = null;
      try {
        target = await open(to, toUri, raw.toUri !== undefined ? 'to-uri' : 'to-url');
        const queues = raw.queue.length > 0 ? raw.queue : undefined;
        if (raw.verify) {
          const report = await verifyMigration({ from: source, to: target, queues, sample: raw.sample });
          if (raw.json) printJson({ verify: report });
          else process.stdout.write(formatVerify(report));
          process.exitCode = report.ok ? 0 : 1;
          return;
        }
        const controller = new AbortController();
        const stop = () => controller.abort(new Error('interrupted'));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        const progress = progressPrinter(Boolean(process.stderr.isTTY) && !raw.json);
        try {
          const summary = await migrate({
            from: source,
            to: target,
            toName: to,
            queues,
            includeFinished: raw.includeFinished,
            dryRun: raw.dryRun,
            batch: raw.batch,
            verifySample: raw.sample,
            waitRunning: raw.wait,
            signal: controller.signal,
            onProgress: raw.dryRun ? undefined : progress.update,
            logger: createLogger({ level: 'warn' }), // the run's own lines are the progress; warnings (conflicts) still show
          });
          progress.stop();
          if (raw.json) printJson(summary);
          else process.stdout.write(formatSummary(summary));
          process.exitCode = summary.totals.conflicts > 0 || (summary.verify && !summary.verify.ok) ? 1 : 0;
        } finally {
          progress.stop();
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      } finally {
        await Promise.all([source.close(), target?.close()]);
      }
    });
}

/** A bar on a terminal (cli-progress), a line every few seconds otherwise. */
function progressPrinter(tty: boolean): { update: (p: MigrateProgress) => void; stop: () => void } {
  if (tty) {
    const bar = new SingleBar({ format: 'migrate [{bar}] {value}/{total} jobs · {phase}{running}', hideCursor: true, clearOnComplete: false, stream: process.stderr });
    let started = false;
    return {
      update: (p) => {
        const total = p.moved + p.remaining;
        const payload = { phase: p.phase, running: p.running > 0 ? ` · ${p.running} running in the source` : '' };
        if (!started) {
          bar.start(total, p.moved, payload);
          started = true;
        } else {
          bar.setTotal(total);
          bar.update(p.moved, payload);
        }
      },
      stop: () => {
        if (started) bar.stop();
        started = false;
      },
    };
  }
  let last = 0;
  let lastPhase = '';
  return {
    update: (p) => {
      if (Date.now() - last < QUIET_LINE_MS && p.phase === lastPhase) return;
      last = Date.now();
      lastPhase = p.phase;
      process.stderr.write(`migrate: ${p.phase}, ${p.moved} moved, ${p.remaining} left${p.running > 0 ? `, ${p.running} running in the source` : ''}\n`);
    },
    stop: () => undefined,
  };
}

function formatSummary(s: MigrateSummary): string {
  const lines: string[] = [];
  if (s.dry_run) {
    lines.push(`dry run: nothing changed. Would move from ${s.from} to ${s.to}:`);
    lines.push(`${'queue'.padEnd(24)} ${'queued'.padStart(9)} ${'moving'.padStart(9)} ${'finished'.padStart(9)} ${'running'.padStart(9)}`);
    for (const [q, c] of Object.entries(s.would_move ?? {})) lines.push(`${q.padEnd(24)} ${String(c.queued).padStart(9)} ${String(c.moving).padStart(9)} ${String(c.finished).padStart(9)} ${String(c.running).padStart(9)}`);
  } else {
    lines.push(`moved ${s.totals.moved} jobs from ${s.from} to ${s.to} in ${(s.elapsed_ms / 1000).toFixed(1)} s (${s.rate} jobs/s)`);
    lines.push(`${'queue'.padEnd(24)} ${'moved'.padStart(9)} ${'recovered'.padStart(9)} ${'already'.padStart(9)} ${'conflicts'.padStart(9)}`);
    for (const [q, c] of Object.entries(s.queues)) lines.push(`${q.padEnd(24)} ${String(c.moved).padStart(9)} ${String(c.recovered).padStart(9)} ${String(c.already).padStart(9)} ${String(c.conflicts).padStart(9)}`);
    if (s.conflict_ids.length > 0) lines.push(`conflicts (the target holds another job under the id; left in the source): ${s.conflict_ids.join(', ')}`);
  }
  const text = `${lines.join('\n')}\n`;
  return s.verify ? text + formatVerify(s.verify) : text;
}

function formatVerify(r: VerifyReport): string {
  const cols = ['queued', 'processing', 'done', 'error', 'canceled', 'moving', 'moved'] as const;
  const lines = [`verify: ${r.ok ? 'both sides agree' : 'DIFFERENCES'} (${r.checked} jobs compared field by field)`];
  lines.push(`${'queue'.padEnd(24)} ${'side'.padEnd(6)} ${cols.map((c) => c.padStart(10)).join(' ')}`);
  for (const [q, { source, target }] of Object.entries(r.queues)) {
    lines.push(`${q.padEnd(24)} ${'source'.padEnd(6)} ${cols.map((c) => String(source[c]).padStart(10)).join(' ')}`);
    lines.push(`${''.padEnd(24)} ${'target'.padEnd(6)} ${cols.map((c) => String(target[c]).padStart(10)).join(' ')}`);
  }
  for (const p of r.problems) lines.push(`  ✗ ${p}`);
  return `${lines.join('\n')}\n`;
}
