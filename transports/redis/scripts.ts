/**
 * The Lua scripts of the redis transport: read once from `lua/`, each with
 * `lib.lua` prepended, and registered with ioredis `defineCommand`, which
 * calls them by SHA (EVALSHA) and falls back to EVAL when the server answers
 * NOSCRIPT (after a restart, a failover or SCRIPT FLUSH) — in pipelines too.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis } from 'ioredis';
import { RUNS_MAX } from '../../src/runs.js';
import { DURATION_BOUNDS_MS, ROLLUP_KEEP_MS, ROLLUP_STEPS_MS } from '../../src/analytics.js';

/**
 * Command → [Lua file, number of KEYS]. Undefined: the caller passes numkeys
 * first. A file may back several commands that differ in their key count.
 */
const SCRIPTS = {
  enqueue: ['enqueue', undefined],
  claim: ['claim', undefined],
  extend: ['extend', 1],
  complete: ['complete', 1],
  settle: ['settle', 1],
  'append-events': ['append-events', 1],
  'read-events': ['read-events', 1],
  cancel: ['cancel', 1],
  retry: ['retry', 1],
  watch: ['watch', 1],
  sweep: ['sweep', 1],
  stats: ['stats', 1],
  list: ['list', 1],
  lead: ['lead', 1],
  upgrade: ['upgrade', 1],
  callbacks: ['callbacks', 1],
  moves: ['moves', 1],
  rollups: ['rollups', 1],
} as const;

export type ScriptName = keyof typeof SCRIPTS;

/** The source ships as transports/redis/lua; a build may run from dist/. */
function luaDir(): string {
  const candidates = [new URL('./lua/', import.meta.url), new URL('../../../transports/redis/lua/', import.meta.url)];
  for (const url of candidates) {
    const dir = fileURLToPath(url);
    if (existsSync(`${dir}lib.lua`)) return dir;
  }
  throw new Error(`redis transport: Lua scripts not found next to ${fileURLToPath(import.meta.url)}`);
}

let sources: Map<ScriptName, string> | null = null;

/** Script sources with lib.lua prepended, read from disk once per process. */
export function scriptSources(): Map<ScriptName, string> {
  if (sources) return sources;
  const dir = luaDir();
  // Constants of src/ the scripts share (lib.lua append_run, rollup), given to them rather than written twice.
  const generated = `local RUNS_MAX = ${RUNS_MAX}\nlocal ROLLUP_BOUNDS = { ${DURATION_BOUNDS_MS.join(', ')} }\nlocal ROLLUP_STEPS = { ${ROLLUP_STEPS_MS.join(', ')} }\nlocal ROLLUP_KEEP_MS = ${ROLLUP_KEEP_MS}\n`;
  const lib = generated + readFileSync(`${dir}lib.lua`, 'utf8');
  sources = new Map();
  for (const [name, [file]] of Object.entries(SCRIPTS) as [ScriptName, (typeof SCRIPTS)[ScriptName]][]) {
    sources.set(name, `${lib}\n-- ${file}.lua\n${readFileSync(`${dir}${file}.lua`, 'utf8')}`);
  }
  return sources;
}

const commandName = (name: ScriptName): string => `rq_${name.replace(/-/g, '_')}`;

/** Register every script on a client (local: defineCommand sends nothing). */
export function defineScripts(client: Redis | Cluster): void {
  for (const [name, lua] of scriptSources()) {
    const numberOfKeys = SCRIPTS[name][1];
    client.defineCommand(commandName(name), numberOfKeys === undefined ? { lua } : { numberOfKeys, lua });
  }
}

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

/** Call a script defined by `defineScripts`: keys first, then arguments. */
export function runScript(client: Redis | Cluster, name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
  const fn = (client as unknown as Record<string, ScriptFn>)[commandName(name)];
  if (!fn) throw new Error(`redis transport: script ${name} is not defined on this client`);
  return fn.apply(client, args);
}
