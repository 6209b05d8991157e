/**
 * Commands that talk to a queue through the client: intent, enqueue, events,
 * status, cancel, retry, stats, list, workers. Each takes the server from
 * --url / --token, else from the environment (REASONING_API_URL,
 * REASONQ_CLIENT_TOKEN / REASONQ_API_TOKEN).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createClient, type Client } from '../client.js';
import { DEFAULTS, loadConfig, type Config } from '../config.js';
import { ReasonqError, ReasoningAbortedError, ReasoningJobError, ValidationError } from '../errors.js';
import { JOB_STATUSES, type EnqueueOptions, type IntentRequest } from '../job.js';
import { checkEnqueue, cursor, duration, LIMITS, queueName, maxChars, serverUrl, token, wholeNumber } from './flags.js';
import { createEventPrinter, formatAnalytics, formatIntent, formatJob, formatList, formatStats, formatWorkers, printJson } from './output.js';

interface Common extends ServerFlags {
  json?: boolean;
}

/** --url and --token: the server a client command talks to, over the environment's. */
interface ServerFlags {
  url?: string;
  token?: string;
}

function serverOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', `the reasonq server (default: REASONING_API_URL, else ${DEFAULTS.apiUrl})`, serverUrl)
    .option('--token <token>', 'bearer token for the server (default: REASONQ_CLIENT_TOKEN, else REASONQ_API_TOKEN); visible to `ps`, so prefer the variable on a shared machine', token);
}

/**
 * The configuration the flags ask for: --url means a reasonq server (the
 * http transport) whatever REASONING_TRANSPORT says; --token is presented on
 * every call. A token without a server to give it to is refused.
 */
export function serverOverrides(flags: ServerFlags, env: NodeJS.ProcessEnv = process.env): Partial<Config> {
  if (flags.url === undefined && flags.token === undefined) return {};
  const config = loadConfig(env);
  if (flags.url === undefined && config.transport !== 'http') {
    throw new ValidationError(`--token is for a reasonq server (REASONING_TRANSPORT=http, or --url): with REASONING_TRANSPORT=${config.transport} this command talks to the store itself`, 'token');
  }
  const t = flags.token;
  return {
    transport: 'http',
    // an http client learns of a migration from its server
    migrateFrom: undefined,
    http: { ...config.http, ...(flags.url !== undefined ? { url: flags.url } : {}), ...(t !== undefined ? { token: t, clientToken: t, workerToken: t } : {}) },
  };
}

async function withClient<T>(flags: ServerFlags, run: (client: Client) => Promise<T>): Promise<T> {
  const client = await createClient({ config: serverOverrides(flags) });
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

function parseJsonOption(name: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  let source = text;
  if (text.startsWith('@')) {
    try {
      source = readFileSync(text.slice(1), 'utf8');
    } catch (error) {
      throw new ValidationError(`--${name} ${text}: the file cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, name);
    }
  }
  try {
    return JSON.parse(source);
  } catch (error) {
    throw new ValidationError(`--${name} must be JSON (or @file with JSON): ${(error as Error).message}`, name);
  }
}

interface PayloadFlags {
  goal?: string;
  session?: string;
  step?: number;
  context?: string;
  payload?: string;
}

/** The intent request from the flags, and the fields the flags set (a bad one is named by its flag). */
function buildPayload(flags: PayloadFlags): { payload: IntentRequest; fromFlags: Set<string> } {
  const base = parseJsonOption('payload', flags.payload) ?? {};
  if (typeof base !== 'object' || base === null || Array.isArray(base)) throw new ValidationError('--payload must be a JSON object, like {"goal": "…"}', 'payload');
  const payload: IntentRequest = { ...(base as Record<string, unknown>) };
  const fromFlags = new Set<string>();
  const set = (field: string, value: unknown) => {
    payload[field] = value;
    fromFlags.add(field);
  };
  if (flags.goal !== undefined) set('goal', flags.goal);
  if (flags.session !== undefined) set('session_id', flags.session);
  if (flags.step !== undefined) set('step', flags.step);
  if (flags.context !== undefined) set('context', parseJsonOption('context', flags.context));
  if (!payload.goal) throw new ValidationError('give a goal with --goal TEXT (or "goal" in --payload)', 'goal');
  return { payload, fromFlags };
}

interface EnqueueFlags extends PayloadFlags, Common {
  queue: string;
  priority?: number;
  id?: string;
  dedupeKey?: string;
  callbackUrl?: string;
}

/** The enqueue options the flags give, checked as the API would check them, in our words. */
function enqueueRequest(opts: EnqueueFlags, extra: EnqueueOptions = {}): { payload: IntentRequest; options: EnqueueOptions } {
  const { payload, fromFlags } = buildPayload(opts);
  const options: EnqueueOptions = { queue: opts.queue, priority: opts.priority, id: opts.id, dedupe_key: opts.dedupeKey, callback_url: opts.callbackUrl, ...extra };
  checkEnqueue(payload, options, fromFlags);
  return { payload, options };
}

function payloadOptions(cmd: Command): Command {
  return cmd
    .option('--goal <text>', 'what the agent wants to do next')
    .option('--session <id>', 'session_id of the agent run')
    .option('--step <n>', 'step number within the session (0 or more)', wholeNumber('step', 0))
    .option('--context <json>', 'context object as JSON (or @file.json)')
    .option('--payload <json>', 'the whole intent request as JSON (or @file.json); flags override its keys')
    .option('--queue <name>', 'queue name', queueName('queue'), DEFAULTS.queue)
    .option('--priority <n>', `higher runs first (${LIMITS.priority[0]} to ${LIMITS.priority[1]}, default 0)`, wholeNumber('priority', ...LIMITS.priority))
    .option('--id <id>', 'job id (idempotent enqueue)')
    .option('--dedupe-key <key>', 'a second enqueue with the same key returns the first job')
    .option('--callback-url <url>', 'POSTed the finished job')
    .option('--json', 'print JSON');
}

/** `list` shows this many jobs a page unless told: a screenful. */
const LIST_PAGE = 20;

/** The command that prints the next page: the same filters, the new cursor (never the token). */
function nextPageCommand(opts: { status?: string | undefined; queue?: string | undefined; limit: number; url?: string | undefined }, next: string): string {
  const args = ['reasonq', 'list'];
  if (opts.status) args.push('--status', opts.status);
  if (opts.queue) args.push('--queue', opts.queue);
  if (opts.limit !== LIST_PAGE) args.push('--limit', String(opts.limit));
  if (opts.url) args.push('--url', opts.url);
  args.push('--cursor', next);
  return args.join(' ');
}

export function registerClientCommands(program: Command): void {
  const others = new Set(program.commands);
  payloadOptions(program.command('intent'))
    .description('ask for an intent and print it (waits for the result)')
    .option('--wait', 'wait for the intent (the default)')
    .option('--no-wait', 'only enqueue; print the job id')
    .option('--timeout <duration>', 'give up (and cancel the job) after this long: ms, or 30s, 5m …', duration('timeout', ...LIMITS.intentTimeout))
    .option('--follow', "print the job's events as they come (tokens inline; JSON lines with --json), then the intent")
    .action(async (opts: EnqueueFlags & { wait?: boolean; follow?: boolean; timeout?: number }) => {
      const { payload, options: enqueueOpts } = enqueueRequest(opts);
      await withClient(opts, async (client) => {
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
    .option('--delay <duration>', 'not claimable before this long from now: ms (0 = at once), or 30s, 5m, 2h, 1d', duration('delay', ...LIMITS.delay))
    .option('--max-attempts <n>', `attempt limit (${LIMITS.maxAttempts[0]} to ${LIMITS.maxAttempts[1]}, default ${DEFAULTS.maxAttempts})`, wholeNumber('max-attempts', ...LIMITS.maxAttempts))
    .option('--attempt-timeout <duration>', "per-attempt execution limit: ms, or 30s, 5m … (default: the worker's)", duration('attempt-timeout', ...LIMITS.attemptTimeout))
    .action(async (opts: EnqueueFlags & { delay?: number; maxAttempts?: number; attemptTimeout?: number }) => {
      const { payload, options } = enqueueRequest(opts, { delay_ms: opts.delay, max_attempts: opts.maxAttempts, timeout_ms: opts.attemptTimeout });
      await withClient(opts, async (client) => {
        const job = await client.enqueue(payload, options);
        if (opts.json) printJson({ job });
        else process.stdout.write(`${formatJob(job)}\n`);
      });
    });

  program
    .command('events <id>')
    .description("print a job's events from the start (or after --after), then follow them live until the job ends")
    .option('--after <n>', 'start after this event id (resume)', wholeNumber('after', 0, undefined, ' (an event id)'))
    .option('--no-follow', 'stop once caught up instead of following live')
    .option('--json', 'print JSON lines, one event each')
    .action(async (id: string, opts: Common & { after?: number; follow: boolean }) => {
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
      const printer = createEventPrinter(Boolean(opts.json));
      try {
        await withClient(opts, async (client) => {
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
      await withClient(opts, async (client) => {
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
    .option('--reason <text>', `why (at most ${LIMITS.cancelReason} characters)`, maxChars('reason', LIMITS.cancelReason), 'canceled from the CLI')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: Common & { reason: string }) => {
      await withClient(opts, async (client) => {
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
      await withClient(opts, async (client) => {
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
      await withClient(opts, async (client) => {
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
    .description('list jobs, newest first, a page at a time')
    .option('--status <status>', `one of ${JOB_STATUSES.join(', ')}`)
    .option('--queue <name>', 'queue name', queueName('queue'))
    .option('--limit <n>', `jobs a page (1 to ${DEFAULTS.listMaxLimit})`, wholeNumber('limit', 1, DEFAULTS.listMaxLimit), LIST_PAGE)
    .option('--cursor <cursor>', 'the page after the one that printed it (its last line, "more: …")', cursor)
    .option('--json', 'print JSON: {jobs, next_cursor}')
    .action(async (opts: Common & { status?: (typeof JOB_STATUSES)[number]; queue?: string; limit: number; cursor?: string }) => {
      if (opts.status && !JOB_STATUSES.includes(opts.status)) throw new ValidationError(`--status must be one of ${JOB_STATUSES.join(', ')} (got ${JSON.stringify(opts.status)})`, 'status');
      await withClient(opts, async (client) => {
        const page = await client.list({ status: opts.status, queue: opts.queue, limit: opts.limit, cursor: opts.cursor });
        if (opts.json) return printJson(page);
        process.stdout.write(`${formatList(page.jobs)}\n`);
        if (page.next_cursor) process.stdout.write(`more: ${nextPageCommand(opts, page.next_cursor)}\n`);
      });
    });

  program
    .command('workers')
    .description('workers in the registry, alive or dead')
    .option('--json', 'print JSON')
    .action(async (opts: Common) => {
      await withClient(opts, async (client) => {
        const workers = await client.workers();
        if (opts.json) printJson({ workers });
        else process.stdout.write(`${formatWorkers(workers)}\n`);
      });
    });

  // Last, so that they close each command's help.
  for (const cmd of program.commands) if (!others.has(cmd)) serverOptions(cmd);
}
