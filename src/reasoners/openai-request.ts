/**
 * An intent request → the body of a chat-completions request: the messages
 * (a short system prompt, then the goal with its step and context, or the
 * payload's own `messages`), and its `tools` in OpenAI's form.
 */
import { z } from 'zod';
import { NonRetryableError } from '../errors.js';
import type { IntentRequest } from '../job.js';

export const SYSTEM_PROMPT = [
  'You are the reasoning step of an agent.',
  'Given the goal and what has happened so far, decide the next step:',
  'call exactly one of the tools offered when it would make progress,',
  'or, when the goal is met or no tool helps, reply with the final answer as plain text.',
  'Only call tools that are offered.',
].join(' ');

/** One message of a chat-completions request; fields other than these pass through (tool_calls, tool_call_id, name …). */
const messageSchema = z
  .object({
    role: z.string().min(1).max(64),
    content: z.union([z.string(), z.array(z.unknown()), z.null()]).optional(),
  })
  .passthrough();
export type ChatMessage = z.infer<typeof messageSchema>;

const jsonSchemaObject = z.record(z.string(), z.unknown());
const toolFields = {
  name: z.string().min(1).max(256),
  description: z.string().max(10_000).optional(),
  parameters: jsonSchemaObject.optional(),
};
/** `{name, description?, parameters?}` (or MCP's `inputSchema`) or OpenAI's `{type: 'function', function: {…}}`, as the former. */
const toolSchema = z.union([
  z.object({ type: z.literal('function'), function: z.object({ ...toolFields, strict: z.boolean().optional() }) }).transform((t) => t.function),
  // MCP's tools/list gives the schema as `inputSchema`: taken as `parameters`.
  z.object({ ...toolFields, inputSchema: jsonSchemaObject.optional(), strict: z.boolean().optional() }).transform(({ inputSchema, ...t }) => ({ ...t, parameters: t.parameters ?? inputSchema })),
]);

export interface OpenAITool {
  type: 'function';
  function: { name: string; description?: string; parameters: Record<string, unknown>; strict?: boolean };
}

/** The request's tools, and the way back from the names sent to the names the payload used. */
export interface ToolSet {
  tools: OpenAITool[];
  /** name sent → name in the payload */
  byWireName: Map<string, string>;
}

/**
 * The payload's tools in OpenAI's form. OpenAI accepts only `[A-Za-z0-9_-]`,
 * 64 at most, in a function name, and agent tools are often namespaced
 * (`savant-context.fts_search`): such a name is sent with `_` in place of
 * what it may not carry, and mapped back when the model calls it.
 * Throws NonRetryableError when `tools` is not a list of tools (no retry
 * mends a payload).
 */
export function toolsOf(payload: IntentRequest): ToolSet {
  const raw = payload.tools;
  const byWireName = new Map<string, string>();
  if (raw === undefined || raw === null) return { tools: [], byWireName };
  const parsed = z.array(toolSchema).max(512, 'at most 512 tools').safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = ['payload.tools', ...issue.path.map(String)].join('.');
    throw new NonRetryableError(`${where}: ${issue.message} (a tool is {name, description?, parameters?} or {type: "function", function: {name, …}})`, { code: 'INVALID_TOOLS' });
  }
  const tools = parsed.data.map((fn): OpenAITool => {
    const wire = wireName(fn.name, byWireName);
    byWireName.set(wire, fn.name);
    return {
      type: 'function',
      function: {
        name: wire,
        ...(fn.description ? { description: fn.description } : {}),
        // A tool without a schema takes no arguments: servers refuse a function without `parameters` or with a non-object one.
        parameters: fn.parameters ?? { type: 'object', properties: {} },
        ...(fn.strict !== undefined ? { strict: fn.strict } : {}),
      },
    };
  });
  return { tools, byWireName };
}

function wireName(name: string, taken: Map<string, string>): string {
  const base = name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'tool';
  if (taken.get(base) === name || !taken.has(base)) return base;
  for (let n = 2; ; n++) {
    const candidate = `${base.slice(0, 64 - String(n).length - 1)}_${n}`;
    if (!taken.has(candidate)) return candidate;
  }
}

/** `context` as JSON for the prompt, cut past `maxChars` with a note (a long history must not blow the model's window or our bill). */
export function contextText(context: unknown, maxChars: number): string {
  const text = typeof context === 'string' ? context : JSON.stringify(context, null, 1);
  if (text.length <= maxChars) return text;
  return `${text.slice(0, maxChars)}\n… (${text.length - maxChars} more characters cut)`;
}

/**
 * The request's messages: the payload's own `messages` when it carries
 * them (the system prompt first unless they bring one), else the system
 * prompt and one user message built from `goal`, `step` and `context`.
 */
export function messagesOf(payload: IntentRequest, options: { systemPrompt: string; contextMaxChars: number }): ChatMessage[] {
  if (payload.messages !== undefined) {
    const parsed = z.array(messageSchema).min(1).max(10_000).safeParse(payload.messages);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new NonRetryableError(`${['payload.messages', ...issue.path.map(String)].join('.')}: ${issue.message} (OpenAI-style [{role, content}, …])`, { code: 'INVALID_MESSAGES' });
    }
    const own = parsed.data;
    return own.some((m) => m.role === 'system' || m.role === 'developer') ? own : [{ role: 'system', content: options.systemPrompt }, ...own];
  }
  const goal = typeof payload.goal === 'string' ? payload.goal.trim() : '';
  if (!goal) throw new NonRetryableError('payload.goal is empty (and there are no payload.messages): the model has nothing to reason about', { code: 'EMPTY_GOAL' });
  const parts = [`Goal: ${goal}`];
  if (payload.step !== undefined) parts.push(`Step: ${payload.step}`);
  if (payload.context !== undefined && payload.context !== null) parts.push(`Context (JSON):\n${contextText(payload.context, options.contextMaxChars)}`);
  return [
    { role: 'system', content: options.systemPrompt },
    { role: 'user', content: parts.join('\n\n') },
  ];
}
