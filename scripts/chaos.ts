/**
 * `npm run chaos`: the long form of the chaos suite (test/chaos/), every
 * scenario on every store, then a table of what the checker counted.
 * Exits 1 when any run lost a job, accepted a late write, left a call
 * unsettled, or left a job not terminal.
 *
 *   npm run chaos                         # everything (≈ 20 min on 2 cores)
 *   npm run chaos -- --store redis        # one store
 *   npm run chaos -- --scenario restart   # scenarios whose name contains this
 *   npm run chaos -- --restart-runs 10    # Redis-restart runs in a row (default 10)
 */
import { runScenario, storeUnavailable, type RunResult, type Scenario, type StoreKind } from '../test/chaos/driver.js';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const stores = (arg('store')?.split(',') ?? ['http', 'http+redis', 'redis', 'mongo']) as StoreKind[];
const only = arg('scenario');
const restartRuns = Number(arg('restart-runs') ?? 10);

/** FerretDB: one worker process (atomic claims only within one connection), and a tenth of the jobs (it scans the collection on every query: ≈15 jobs/s, less as it fills). */
function scenarios(store: StoreKind): Scenario[] {
  const mongo = store === 'mongo';
  const jobs = (n: number) => (mongo ? Math.round(n / 10) : n);
  const workers = mongo ? 1 : 3;
  const base = { store, workers, concurrency: 8, deadlineMs: 600_000 };
  const list: Scenario[] = [
    { ...base, name: 'kill -9 ×30', jobs: jobs(2000), faults: { kill: mongo ? 5 : 30 } },
    { ...base, name: 'SIGSTOP past the lease ×10', jobs: jobs(2000), faults: { stop: mongo ? 3 : 10 } },
    { ...base, name: 'poison pills (20, max_stalls 10)', jobs: jobs(2000), poison: mongo ? 3 : 20, faults: {} },
    { ...base, name: 'SIGTERM then SIGKILL ×10', jobs: jobs(2000), faults: { term: mongo ? 3 : 10 } },
    { ...base, name: 'cancel 50 running jobs from another process', jobs: jobs(1000), hold: mongo ? 8 : 50, concurrency: mongo ? 10 : 20, faults: { cancel: 3 } },
    { ...base, name: 'store frozen ×3 (2 s each)', jobs: jobs(1000), faults: { freeze: 3 } },
    { ...base, name: 'store unreachable at start', jobs: jobs(500), faults: {}, unreachableAtStart: true },
  ];
  if (store === 'http+redis') return [{ ...base, name: 'the http server itself restarted ×3', jobs: 2000, faults: { restart: 3 } }].filter((s) => !only || s.name.includes(only));
  if (store !== 'http') {
    const runs = store === 'redis' ? restartRuns : 1;
    for (let i = 1; i <= runs; i++) list.push({ ...base, name: `store restart ×3 (run ${i}/${runs})`, jobs: jobs(2000), faults: { restart: 3 } });
  }
  return list.filter((s) => !only || s.name.includes(only));
}

const results: RunResult[] = [];
const skipped: string[] = [];
for (const store of stores) {
  const why = storeUnavailable(store);
  if (why) {
    skipped.push(`${store}: skipped (${why})`);
    continue;
  }
  for (const scenario of scenarios(store)) {
    process.stderr.write(`${store.padEnd(6)} ${scenario.name} … `);
    const r = await runScenario(scenario);
    results.push(r);
    process.stderr.write(`${r.seconds} s${r.problems.length ? `  ${r.problems[0]}` : ''}\n`);
  }
}

const cols: [string, (r: RunResult) => string | number][] = [
  ['store', (r) => (r.store === 'http' ? 'memory/http' : r.store === 'http+redis' ? 'http server (redis)' : r.store === 'mongo' ? 'mongo (ferretdb)' : r.store)],
  ['scenario', (r) => r.scenario],
  ['acked', (r) => r.acknowledged],
  ['lost', (r) => r.lost],
  ['not terminal', (r) => r.notTerminal],
  ['unexpected status', (r) => r.unexpectedStatus],
  ['innocent errors', (r) => r.innocentErrors],
  ['attempts charged', (r) => r.attemptsCharged],
  ['ran >1', (r) => r.ranMoreThanOnce],
  ['late writes accepted', (r) => r.lateWritesAccepted],
  ['calls never settled', (r) => r.callsNeverSettled],
  ['event streams wrong', (r) => r.streamFaults],
  ['streams with events lost', (r) => r.eventsLost],
  ['stalls', (r) => r.stalls],
  ['cancel p50/p99 ms', (r) => (r.cancelP50 === null ? '–' : `${r.cancelP50}/${r.cancelP99}`)],
  ['faults', (r) => Object.entries(r.faults).map(([k, v]) => `${k} ${v}`).join(', ') || '–'],
  ['s', (r) => r.seconds],
];
const rows = results.map((r) => cols.map(([, f]) => String(f(r))));
process.stdout.write(`| ${cols.map(([h]) => h).join(' | ')} |\n|${cols.map(() => '---').join('|')}|\n`);
for (const row of rows) process.stdout.write(`| ${row.join(' | ')} |\n`);
for (const line of skipped) process.stdout.write(`${line}\n`);
const bad = results.filter((r) => r.lost || r.notTerminal || r.lateWritesAccepted || r.callsNeverSettled || r.streamFaults);
process.stdout.write(`\n${results.length} runs, ${bad.length} with a loss, a late write, a job not terminal or a call never settled${skipped.length ? `, ${skipped.length} store(s) skipped` : ''}\n`);
process.exit(bad.length ? 1 : 0);
