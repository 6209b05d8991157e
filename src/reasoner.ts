/**
 * The demo reasoner: deterministic rules that turn a goal into a tool call or
 * a finish. It is the default handler of `reasonq dev` and `reasonq worker`,
 * and the model for a real one (see README, "Writing a handler").
 */
import { sleep } from './backoff.js';
import { DEFAULTS, loadConfig } from './config.js';
import { NonRetryableError } from './errors.js';
import type { Intent, IntentRequest } from './job.js';
import type { HandlerContext } from './worker.js';

/** Steps after which the demo stops calling tools and finishes. */
const MAX_STEPS = 8;

const STOP_WORDS = new Set(['Find', 'Where', 'Search', 'Locate', 'Show', 'Open', 'Read', 'List', 'What', 'How', 'The', 'Is', 'Please', 'Look']);

/** The term a search should look for: a quoted string, else an identifier-looking word. */
export function searchTerm(goal: string): string | null {
  const quoted = /["'`]([^"'`]{1,200})["'`]/.exec(goal);
  if (quoted) return quoted[1]!.trim();
  const words = goal.match(/[A-Za-z_$][\w$.]*/g) ?? [];
  const ident = words.find((w) => !STOP_WORDS.has(w) && (/[A-Z]/.test(w) || /[_$.]/.test(w) || /[a-z][A-Z]/.test(w)));
  if (ident) return ident.replace(/\.$/, '');
  const afterVerb = /\b(?:find|search(?: for)?|locate|look up|grep(?: for)?)\s+(?:for\s+)?(\S+)/i.exec(goal);
  return afterVerb ? afterVerb[1]!.replace(/[.,;:!?]+$/, '') : null;
}

export function reason(payload: IntentRequest): Intent {
  const goal = typeof payload.goal === 'string' ? payload.goal.trim() : '';
  if (!goal) throw new NonRetryableError('payload.goal is empty: the demo reasoner needs a goal', { code: 'EMPTY_GOAL' });
  const step = payload.step ?? 0;
  const context = (payload.context ?? {}) as { observations?: unknown[]; last_result?: unknown };
  const observed = Array.isArray(context.observations) ? context.observations.length : context.last_result !== undefined ? 1 : 0;

  if (step >= MAX_STEPS) {
    return { action: 'finish', finish: true, tool_name: null, args: null, reasoning: `Reached step ${step} of at most ${MAX_STEPS}; finishing with what was found.` };
  }
  if (observed > 0) {
    return { action: 'finish', finish: true, tool_name: null, args: null, reasoning: `The previous tool call answered "${goal}"; finishing.` };
  }

  const path = /\b(?:read|open|show|cat)\s+(?:the\s+)?(?:file\s+)?([\w./-]+\.\w+)/i.exec(goal);
  if (path) {
    return { action: 'tool', tool_name: 'savant-context.read_file', args: { path: path[1] }, finish: false, reasoning: `The goal names the file ${path[1]}; reading it.` };
  }
  if (/\b(?:list|ls)\b.*\b(?:files|directory|folder|dir)\b/i.test(goal)) {
    const dir = /\b(?:in|of|under)\s+([\w./-]+)/i.exec(goal)?.[1] ?? '.';
    return { action: 'tool', tool_name: 'savant-context.list_dir', args: { path: dir }, finish: false, reasoning: `Listing ${dir} to see what is there.` };
  }
  if (/\b(?:find|where|search|locate|look up|grep|defined|definition|usages?|references?)\b/i.test(goal)) {
    const term = searchTerm(goal);
    if (term) {
      return {
        action: 'tool',
        tool_name: 'savant-context.fts_search',
        args: { query: term, limit: 10 },
        finish: false,
        reasoning: `To answer "${goal}", search the code index for "${term}".`,
      };
    }
  }
  return { action: 'finish', finish: true, tool_name: null, args: null, reasoning: `No tool fits "${goal}"; answering directly.` };
}

export interface DemoOptions {
  /** pause between two tokens of the reasoning (ms); default REASONQ_DEMO_TOKEN_MS, else 20 */
  tokenMs?: number;
}

/** The reasoning text as a model would stream it: word by word, each with the space after it. */
export function tokenize(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [];
}

/**
 * The handler form of the demo reasoner. It streams like a model does, so
 * the quick start shows streaming without one: a few `thinking` stages,
 * then its reasoning as `token` events, a short pause between tokens.
 */
export function createDemoHandler(options: DemoOptions = {}): (payload: IntentRequest, ctx: HandlerContext) => Promise<Intent> {
  return async (payload, ctx) => {
    const tokenMs = options.tokenMs ?? envTokenMs();
    ctx.log.debug({ goal: payload.goal }, 'demo reasoner');
    void ctx.emit('thinking', { stage: 'reading the goal' });
    const intent = reason(payload);
    void ctx.emit('thinking', { stage: intent.action === 'tool' ? `choosing a tool: ${intent.tool_name}` : 'writing the answer' });
    for (const text of tokenize(intent.reasoning ?? '')) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      void ctx.emit('token', { text });
      if (tokenMs > 0) await sleep(tokenMs, ctx.signal);
    }
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return intent;
  };
}

function envTokenMs(): number {
  const raw = process.env.REASONQ_DEMO_TOKEN_MS?.trim();
  return raw ? loadConfig({ REASONQ_DEMO_TOKEN_MS: raw }).events.demoTokenMs : DEFAULTS.demoTokenMs;
}

export const demoHandler = createDemoHandler();

export default demoHandler;
