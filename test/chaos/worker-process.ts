/**
 * One worker process of the chaos suite: a real worker on the transport the
 * environment names (REASONING_TRANSPORT and its settings), with a handler
 * whose behaviour the job's payload picks (`context.kind`):
 *
 * - `work`: think for `context.ms`, return an intent;
 * - `poison`: bring this process down (SIGKILL to itself) mid-handler;
 * - `hold`: run until its signal fires (a cancel) or `context.ms` passes.
 *
 * It appends what happened to CHAOS_LOG, one line per event, written
 * synchronously so that a kill loses nothing it wrote:
 *   start <job> <started_at ms> <attempts> <stalls> <t>
 *   end <job> <started_at ms> <outcome> <t>        (the store's answer to the settle)
 *   abort <job> <reason kind> <t>                  (the handler's signal fired)
 * SIGTERM stops the worker gracefully (CHAOS_GRACE_MS), as `reasonq worker` does.
 */
import { appendFileSync } from 'node:fs';
import { loadConfig } from '../../src/config.js';
import { createWorker, JobAbortError } from '../../src/worker.js';
import { createTransport } from '../../src/transports.js';

const env = process.env;
const logFile = env.CHAOS_LOG!;
const line = (text: string) => appendFileSync(logFile, `${text} ${Date.now()}\n`);

const config = loadConfig();
// A store not up yet is waited for, as a supervised worker would (CLI commands, by contrast, exit 1 at once).
let transport: Awaited<ReturnType<typeof createTransport>> | null = null;
while (!transport) {
  transport = await createTransport(config).catch(() => null);
  if (!transport) await new Promise((resolve) => setTimeout(resolve, 250));
}
const worker = createWorker({
  transport,
  queues: [env.CHAOS_QUEUE ?? 'chaos'],
  concurrency: Number(env.CHAOS_CONCURRENCY ?? 8),
  leaseMs: Number(env.CHAOS_LEASE_MS ?? 1500),
  claimWaitMs: 500,
  heartbeatMs: 500,
  maintenanceMs: Number(env.CHAOS_MAINTENANCE_MS ?? 250),
  shutdownGraceMs: Number(env.CHAOS_GRACE_MS ?? 2000),
  backoff: { baseMs: 50, maxMs: 500 },
  handler: async (payload, ctx) => {
    const context = (payload.context ?? {}) as { kind?: string; ms?: number };
    if (context.kind === 'poison') process.kill(process.pid, 'SIGKILL');
    const ms = context.ms ?? 5;
    // A few events per run, so that fenced appends meet every fault too (the checker reads each job's stream back).
    // CHAOS_TOKENS=0 on FerretDB: an append is two more of its slow queries per run (its lifecycle events are still checked).
    for (const text of ['thinking ', 'about ', 'it'].slice(0, Number(env.CHAOS_TOKENS ?? 3))) void ctx.emit('token', { text });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        const reason = ctx.signal.reason as unknown;
        line(`abort ${ctx.job_id} ${reason instanceof JobAbortError ? reason.kind : 'unknown'}`);
        reject(reason);
      });
    });
    return { action: 'finish', finish: true, reasoning: `done by ${process.pid}` };
  },
});
worker.on('job:start', (job) => line(`start ${job.id} ${job.started_at?.getTime() ?? 0} ${job.attempts} ${job.stalls}`));
worker.on('job:end', (job, outcome) => line(`end ${job.id} ${job.started_at?.getTime() ?? 0} ${outcome}`));
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void worker.stop().then(
    () => transport.close().finally(() => process.exit(0)),
    () => process.exit(1),
  );
});
await worker.start();
process.stdout.write(`ready ${process.pid}\n`);
