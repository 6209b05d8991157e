/** Commands that talk to a queue through the client: intent, enqueue, status, cancel, retry, stats, list, workers. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createClient, type Client } from '../client.js';
import { ReasonqError, ReasoningAbortedError, ReasoningJobError, ValidationError } from '../errors.js';
import { JOB_STATUSES, type IntentRequest } from '../job.js';
import { createEventPrinter, formatAnalytics, formatIntent, formatJob, formatStats, formatWorkers, printJson } from './output.js';

interface Common {
  json?: boolean;
}

async function withClient<T>(run: (client: Client) => Promise<T>): Promise<T> {
  const client = await createClient();
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

function parseJsonOption(name: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  const source = text.startsWith('@') ? readFileSync(text.slice(1), 'utf8') : text;
  try {
    return JSON.parse(source);
  } catch (error) {
    throw new ValidationError(`--${name} must be JSON (or @file with JSON): ${(error as Error).message}`, name);
  }
}

interface PayloadFlags {
  goal?: string;
  session?: string;
  step?: string;
  context?: string;
  payload?: string;
}

function buildPayload(flags: PayloadFlags): IntentRequest {
  const base = (parseJsonOption('payload', flags.payload) ?? {}) as Record<string, unknown>;
  if (typeof base !== 'object' || Array.isArray(base)) throw new ValidationError('--payload must be a JSON object', 'payload');
  const payload: IntentRequest = { ...base };
  if (flags.goal !== undefined) payload.goal = flags.goal;
  if (flags.session !== undefined) payload.session_id = flags.session;
  if (flags.step !== undefined) {
    if (!/^\d+$/.test(flags.step)) throw new ValidationError('--step must be a whole number', 'step');
    payload.step = Number(flags.step);
  }
  if (flags.context !== undefined) payload.context = parseJsonOption('context', flags.context);
  if (!payload.goal) throw new ValidationError('give a goal with --goal TEXT (or "goal" in --payload)', 'goal');
  return payload;
}

const positiveInt = (name: string) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new ValidationError(`--${name} must be a positive whole number`, name);
  return Number(v);
};

function payloadOptions(cmd: Command): Command {
  return cmd
    .option('--goal <text>', 'what the agent wants to do next')
    .option('--session <id>', 'session_id of the agent run')
    .option('--step <n>', 'step number within the session')
    .option('--context <json>', 'context object as JSON (or @file.json)')
    .option('--payload <json>', 'the whole intent request as JSON (or @file.json); flags override its keys')
    .option('--queue <name>', 'queue name', 'reasoning')
    .option('--priority <n>', 'higher runs first', (v) => Number(v))
    .option('--id <id>', 'job id (idempotent enqueue)')
    .option('--dedupe-key <key>', 'a second enqueue with the same key returns the first job')
    .option('--callback-url <url>', 'POSTed the finished job')
    .option('--json', 'print JSON');
}

export function registerClientCommands(program: Command): void {
  payloadOptions(program.command('intent'))
    .description('ask for an intent and print it (waits for the result)')
    .option('--wait', 'wait for the intent (the default)')
    .option('--no-wait', 'only enqueue; print the job id')
    .option('--timeout <ms>', 'give up (and cancel the job) after this long', positiveInt('timeout'))
    .option('--follow', "print the job's events as they come (tokens inline; JSON lines with --json), then the intent")
    .action(async (opts: PayloadFlags & Common & { wait?: boolean; follow?: boolean; timeout?: number; queue: string; priority?: number; id?: string; dedupeKey?: string; callbackUrl?: string }) => {
      const payload = buildPayload(opts);
      const enqueueOpts = { queue: opts.queue, priority: opts.priority, id: opts.id, dedupe_key: opts.dedupeKey, callback_url: opts.callbackUrl };
      await withClient(async (client) => {
        if (opts.wait === false) {
          const job = await client.enqueue(payload, enqueueOpts);
          if (opts.json) printJson({ job });
          else process.stdout.write(`enqueued ${job.id} (${job.status})\n`);
          return;
        }
        // Ctrl-C (or a SIGTERM) cancels the job we were waiting for: nobody is left to read its intent.
        const interrupted = new AbortController();
        const onSignal = (signal: NodeJS.Signals) => interrupted.abort(new Error(`interrupted (${signal})`));
        process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
        const printer = opts.follow ? createEventPrinter(Boolean(opts.json)) : null;
        try {
          const intent = await client.agentIntent(payload, {
            ...enqueueOpts,
            ...(opts.timeout ? { timeoutMs: opts.timeout } : {}),
            signal: interrupted.signal,
            ...(printer ? { onEvent: (e) => printer.print(e) } : {}),
          });
          printer?.end();
          if (opts.json) process.stdout.write(`${JSON.stringify(opts.follow ? { intent } : intent, null, opts.follow ? 0 : 2)}\n`);
          else process.stdout.write(`${printer ? '\n' : ''}${formatIntent(intent)}\n`);
        } catch (error) {
          printer?.end();
          if (error instanceof ReasoningAbortedError) {
            process.stderr.write(`interrupted: job ${error.jobId} canceled\n`);
            process.exitCode = 130;
            return;
          }
          if (error instanceof ReasoningJobError) process.exitCode = 1;
          throw error;
        } finally {
          process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
        }
      });
    });

  payloadOptions(program.command('enqueue'))
    .description('enqueue an intent request without waiting; prints the job')
    .option('--delay <ms>', 'not claimable before this many ms from now', positiveInt('delay'))
    .option('--max-attempts <n>', 'attempt limit', positiveInt('max-attempts'))
    .option('--attempt-timeout <ms>', 'per-attempt execution limit', positiveInt('attempt-timeout'))
    .action(async (opts: PayloadFlags & Common & { queue: string; priority?: number; id?: string; dedupeKey?: string; callbackUrl?: string; delay?: number; maxAttempts?: number; attemptTimeout?: number }) => {
      const payload = buildPayload(opts);
      await withClient(async (client) => {
        const job = await client.enqueue(payload, {
          queue: opts.queue,
          priority: opts.priority,
          id: opts.id,
          dedupe_key: opts.dedupeKey,
          callback_url: opts.callbackUrl,
          delay_ms: opts.delay,
          max_attempts: opts.maxAttempts,
          timeout_ms: opts.attemptTimeout,
        });
        if (opts.json) printJson({ job });
        else process.stdout.write(`${formatJob(job)}\n`);
      });
    });

  program
    .command('events <id>')
    .description("print a job's events from the start (or after --after), then follow them live until the job ends")
    .option('--after <n>', 'start after this event id (resume)', (v) => {
      if (!/^\d+$/.test(v)) throw new ValidationError('--after must be an event id (a whole number)', 'after');
      return Number(v);
    })
    .option('--no-follow', 'stop once caught up instead of following live')
    .option('--json', 'print JSON lines, one event each')
    .action(async (id: string, opts: Common & { after?: number; follow: boolean }) => {
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
      const printer = createEventPrinter(Boolean(opts.json));
      try {
        await withClient(async (client) => {
          for await (const event of client.events(id, { after: opts.after ?? 0, follow: opts.follow, signal: stop.signal })) printer.print(event);
        });
      } finally {
        printer.end();
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
        if (stop.signal.aborted) process.exitCode = 130;
      }
    });

  program
    .command('status <id>')
    .description('show a job')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: Common) => {
      await withClient(async (client) => {
        const job = await client.get(id);
        if (!job) {
          process.exitCode = 1;
          if (opts.json) printJson({ error: { code: 'JOB_NOT_FOUND', message: `job ${id} does not exist` } });
          else process.stderr.write(`reasonq: JOB_NOT_FOUND: job ${id} does not exist\n`);
          return;
        }
        if (opts.json) printJson({ job });
        else process.stdout.write(`${formatJob(job)}\n`);
      });
    });

  program
    .command('cancel <id>')
    .description('cancel a job: a queued one at once, a running one within one lease renewal')
    .option('--reason <text>', 'why', 'canceled from the CLI')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: Common & { reason: string }) => {
      await withClient(async (client) => {
        const job = await client.cancel(id, opts.reason);
        if (opts.json) printJson({ job });
        else process.stdout.write(job.status === 'processing' ? `cancel requested for ${id}; its worker will stop it\n` : `${id} is ${job.status}\n`);
      });
    });

  program
    .command('retry <id>')
    .description('put a failed or canceled job back in the queue, attempts reset')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: Common) => {
      await withClient(async (client) => {
        const job = await client.retry(id);
        if (opts.json) printJson({ job });
        else process.stdout.write(`${id} is ${job.status} again\n`);
      });
    });

  program
    .command('stats')
    .description('jobs per queue and status, and what ended in the last hour or day (throughput, failures, wait and run times, tokens)')
    .option('--window <window>', 'the analytics window: 1h or 24h', '1h')
    .option('--json', 'print JSON (the counts, with the window under "analytics")')
    .action(async (opts: Common & { window: string }) => {
      if (opts.window !== '1h' && opts.window !== '24h') throw new ValidationError('--window must be 1h or 24h', 'window');
      const window = opts.window;
      await withClient(async (client) => {
        const stats = await client.stats();
        const analytics = await client.analytics(window).catch((error: unknown) => {
          // A store or server without analytics (an older server: 404) still has its counts.
          if (error instanceof ReasonqError && (error.code === 'UNSUPPORTED' || error.code === 'NOT_FOUND')) return null;
          throw error;
        });
        if (opts.json) printJson({ ...stats, analytics });
        else process.stdout.write(`${formatStats(stats)}\n\n${analytics ? formatAnalytics(analytics) : 'analytics: not available from this store or server'}\n`);
      });
    });

  program
    .command('list')
    .description('list jobs, newest first')
    .option('--status <status>', `one of ${JOB_STATUSES.join(', ')}`)
    .option('--queue <name>', 'queue name')
    .option('--limit <n>', 'how many', positiveInt('limit'), 20)
    .option('--json', 'print JSON')
    .action(async (opts: Common & { status?: (typeof JOB_STATUSES)[number]; queue?: string; limit: number }) => {
      if (opts.status && !JOB_STATUSES.includes(opts.status)) throw new ValidationError(`--status must be one of ${JOB_STATUSES.join(', ')}`, 'status');
      await withClient(async (client) => {
        const page = await client.list({ status: opts.status, queue: opts.queue, limit: opts.limit });
        if (opts.json) printJson(page);
        else process.stdout.write(page.jobs.map((j) => `${j.id}  ${j.queue}  ${j.status.padEnd(10)}  ${String(j.payload.goal ?? '').slice(0, 60)}`).join('\n') + '\n');
      });
    });

  program
    .command('workers')
    .description('workers in the registry, alive or dead')
    .option('--json', 'print JSON')
    .action(async (opts: Common) => {
      await withClient(async (client) => {
        const workers = await client.workers();
        if (opts.json) printJson({ workers });
        else process.stdout.write(`${formatWorkers(workers)}\n`);
      });
    });
}
