/**
 * The OpenAPI 3.1 document served at /openapi.json, built once at startup from
 * the route table (routes.ts), who may call what (ROUTE_ACCESS, auth.ts) and
 * zod 4's own JSON Schema output of the schemas the handlers parse with. No
 * line of it is written by hand, so it cannot drift from the server; clients
 * in other languages are generated from it (README, "API contract").
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { LAST_INSTANT_MS } from '../job.js';
import { ROUTE_ACCESS, SESSION_COOKIE } from './auth.js';
import { API_ROUTES, type ApiRoute, type RouteAnswer } from './routes.js';
import { errorResponseSchema } from './wire.js';

type Json = Record<string, unknown>;

/** `/v1/jobs/:id` → `/v1/jobs/{id}`; `::` (the router's literal colon) → `:`, so `/v1/jobs:batch` reads as clients call it. */
export function openApiPath(url: string): string {
  return url
    .split('::')
    .map((part) => part.replace(/:([A-Za-z_]\w*)/g, '{$1}'))
    .join(':');
}

const pathParams = (url: string) => [...url.replace(/::/g, '').matchAll(/:([A-Za-z_]\w*)/g)].map((m) => m[1]!);

/** The package's version: package.json two levels up from src/server, three from dist/src/server. */
function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    const file = fileURLToPath(new URL(up, import.meta.url));
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'reasonq' && pkg.version) return pkg.version;
  }
  return '0.0.0';
}

/**
 * JSON Schema of one zod schema: named schemas (`.meta({id})`) are hoisted
 * into `components`, and what JSON Schema cannot say is said for the wire:
 * a date the server coerces is ISO 8601 text; a whole number in a query
 * string is an integer with its range (query schemas read text and check it).
 */
function toSchema(schema: z.ZodType, io: 'input' | 'output', components: Json): Json {
  const out = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
    override: (ctx) => {
      const def = (ctx.zodSchema as unknown as { _zod: { def: { type: string } } })._zod.def;
      if (def.type === 'date') Object.assign(ctx.jsonSchema, { type: 'string', format: 'date-time' });
      if (ctx.jsonSchema['x-instant']) {
        const description = ctx.jsonSchema.description;
        for (const k of Object.keys(ctx.jsonSchema)) delete ctx.jsonSchema[k];
        Object.assign(ctx.jsonSchema, { anyOf: [{ type: 'string', format: 'date-time' }, { type: 'number', minimum: 0, maximum: LAST_INSTANT_MS, description: 'milliseconds since 1970' }] }, description ? { description } : {});
      }
      const int = ctx.jsonSchema['x-query-int'] as [number, number] | undefined;
      if (int) {
        for (const k of Object.keys(ctx.jsonSchema)) delete ctx.jsonSchema[k];
        Object.assign(ctx.jsonSchema, { type: 'integer', minimum: int[0], maximum: int[1] });
      }
    },
  }) as Json;
  delete out.$schema;
  const rewritten = JSON.parse(JSON.stringify(out).replaceAll('"#/$defs/', '"#/components/schemas/')) as Json;
  Object.assign(components, rewritten.$defs ?? {});
  delete rewritten.$defs;
  return rewritten;
}

/** Errors every route may answer, by what it is (public or not, takes a body, holds the request open). */
function commonErrors(key: string, route: ApiRoute): Record<number, string> {
  const access = ROUTE_ACCESS[key] ?? ['admin'];
  const errors: Record<number, string> = { 400: 'the request does not match this contract (VALIDATION_ERROR; details.field names what)' };
  if (access !== 'public') {
    errors[401] = 'no valid credentials (UNAUTHORIZED)';
    errors[403] = `the credentials lack the scope (FORBIDDEN), or a browser sent the request from another site (CROSS_SITE_REFUSED)`;
  } else if (key.endsWith(' /v1/session')) {
    errors[403] = 'a browser sent the request from another site (CROSS_SITE_REFUSED)';
  }
  if (route.body) {
    errors[408] = 'the body was not received in time (REQUEST_TIMEOUT)';
    errors[413] = 'the body is larger than the server takes (PAYLOAD_TOO_LARGE)';
  }
  if (key !== 'GET /healthz' && key !== 'GET /readyz') errors[421] = 'the Host header names a host this server does not answer for (HOST_NOT_ALLOWED)';
  if (route.longPoll) errors[429] = 'too many requests of this kind are open (RATE_LIMITED); see Retry-After';
  errors[503] = 'the store does not answer (TRANSPORT_UNAVAILABLE), or the server is closing';
  return errors;
}

function answer(a: RouteAnswer, components: Json): Json {
  const out: Json = { description: a.description };
  const content: Json = {};
  if (a.schema) content['application/json'] = { schema: toSchema(a.schema, 'output', components) };
  if (a.contentType) content[a.contentType] = { schema: a.contentSchema ? toSchema(a.contentSchema, 'output', components) : { type: 'string' } };
  if (Object.keys(content).length > 0) out.content = content;
  if (a.headers) out.headers = Object.fromEntries(Object.entries(a.headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }]));
  return out;
}

function operation(key: string, route: ApiRoute, components: Json): Json {
  const [method, url] = key.split(' ') as [string, string];
  const access = ROUTE_ACCESS[key] ?? ['admin'];
  const parameters: Json[] = pathParams(url).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string', minLength: 1 } }));
  if (route.query) {
    const q = toSchema(route.query, 'input', components) as { properties?: Json; required?: string[] };
    for (const [name, schema] of Object.entries(q.properties ?? {})) parameters.push({ name, in: 'query', required: q.required?.includes(name) ?? false, schema });
  }
  for (const [name, h] of Object.entries(route.headers ?? {})) parameters.push({ name, in: 'header', required: false, description: h.description, schema: h.schema });

  const responses: Json = {};
  for (const [status, a] of Object.entries(route.ok)) responses[status] = answer(a, components);
  const errors = { ...commonErrors(key, route), ...route.errors };
  for (const [status, description] of Object.entries(errors)) {
    responses[status] = { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  }
  const op: Json = {
    operationId: operationId(method, url),
    summary: route.summary,
    tags: [route.tag],
    security: access === 'public' ? [] : [{ bearerAuth: access }, { sessionCookie: access, csrfHeader: access }],
    'x-reasonq-scopes': access === 'public' ? [] : access,
    responses,
  };
  if (route.description) op.description = route.description;
  if (parameters.length > 0) op.parameters = parameters;
  if (route.body) {
    op.requestBody = {
      required: !route.bodyOptional,
      content: { 'application/json': { schema: toSchema(route.body, 'input', components) } },
    };
  }
  return op;
}

/** `POST /v1/jobs/:id/cancel` → `postJobsIdCancel`: stable names for generated clients. */
function operationId(method: string, url: string): string {
  const words = url
    .replace(/^\/v1\//, '/')
    .split(/[/:.]+/)
    .filter(Boolean)
    .map((w) => w.replace(/[^A-Za-z0-9]/g, ''));
  return [method.toLowerCase(), ...words.map((w) => w[0]!.toUpperCase() + w.slice(1))].join('') || method.toLowerCase();
}

/** The document, for the routes of `API_ROUTES`. */
export function buildOpenApi(): Json {
  const components: Json = {};
  toSchema(errorResponseSchema, 'output', components);
  const paths: Record<string, Json> = {};
  for (const [key, route] of Object.entries(API_ROUTES) as [string, ApiRoute][]) {
    const [method, url] = key.split(' ') as [string, string];
    const path = openApiPath(url);
    paths[path] ??= {};
    paths[path][method.toLowerCase()] = operation(key, route, components);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'reasonq',
      version: packageVersion(),
      description:
        'A job queue for agent runtimes. Errors are always `{error: {code, message, details?}}`. Every operation but the public ones takes a bearer token whose scope (client, worker, admin: every scope) the operation names in its security requirement and `x-reasonq-scopes`; a server started without tokens takes any caller. The dashboard signs in with POST /v1/session instead: the session cookie plus its secret in `x-reasonq-csrf`.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/' }],
    tags: [
      { name: 'jobs', description: 'enqueue, read, wait for, cancel and retry jobs (scope client)' },
      { name: 'workers', description: 'what a remote worker calls (scope worker)' },
      { name: 'dashboard', description: 'the dashboard at /engine and its session' },
      { name: 'operations', description: 'health, readiness, metrics, this document' },
    ],
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: '`Authorization: Bearer <token>`; a token has the scope client, worker or admin (admin: every scope)' },
        sessionCookie: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE, description: 'the dashboard session (POST /v1/session); only with csrfHeader' },
        csrfHeader: { type: 'apiKey', in: 'header', name: 'x-reasonq-csrf', description: "the session's secret, from the answer of POST /v1/session" },
      },
    },
  };
}
