/**
 * The API contract at /openapi.json: a valid OpenAPI 3.1 document, naming
 * exactly the routes the server has (taken from the router, so a route added
 * without a route-table entry fails here), with who may call each. The fuzz
 * run against a live server is test/openapi-fuzz.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { ROUTE_ACCESS, registeredRoutes } from '../src/server/auth.js';
import { LAST_INSTANT_MS } from '../src/job.js';
import { openApiPath } from '../src/server/openapi.js';
import { startServer } from './server-helpers.js';

const TOKEN = 'admin-token-0123456789';

type Doc = {
  openapi: string;
  info: { version: string };
  paths: Record<string, Record<string, { security: Record<string, string[]>[]; responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }>; requestBody?: unknown }>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { type: string; in?: string; name?: string }> };
};

async function served(): Promise<{ doc: Doc; url: string; app: Awaited<ReturnType<typeof startServer>>['app'] }> {
  const { app, url } = await startServer({ tokens: { admin: [TOKEN] } });
  // Public: a generator fetches it without a token.
  const res = await fetch(`${url}/openapi.json`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return { doc: (await res.json()) as Doc, url, app };
}

describe('OpenAPI contract (/openapi.json)', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const { doc } = await served();
    const validator = new Validator();
    const result = await validator.validate(doc as unknown as Parameters<Validator['validate']>[0]);
    assert.deepEqual(result.errors ?? [], [], JSON.stringify(result.errors, null, 2));
    assert.equal(result.valid, true);
    assert.equal(validator.version, '3.1');
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(doc.info.version, pkg.version);
  });

  it('names every registered route and no other, with the path as clients call it', async () => {
    const { doc, app } = await served();
    const registered = new Set(registeredRoutes(app).filter((r) => r.method !== 'HEAD').map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`));
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)));
    assert.deepEqual([...registered].filter((r) => !documented.has(r)).sort(), [], 'registered but not in the document (add it to API_ROUTES, src/server/routes.ts)');
    assert.deepEqual([...documented].filter((r) => !registered.has(r)).sort(), [], 'in the document but not registered');
    assert.ok(doc.paths['/v1/jobs:batch']?.post, 'the batch path with its literal colon');
    assert.ok(doc.paths['/v1/jobs/{id}']?.get);
  });

  it("documents each operation's security from ROUTE_ACCESS, and the bearer and session schemes", async () => {
    const { doc, app } = await served();
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, { ...doc.components.securitySchemes.bearerAuth, type: 'http' });
    assert.deepEqual([doc.components.securitySchemes.sessionCookie?.in, doc.components.securitySchemes.sessionCookie?.name], ['cookie', 'reasonq_session']);
    assert.deepEqual([doc.components.securitySchemes.csrfHeader?.in, doc.components.securitySchemes.csrfHeader?.name], ['header', 'x-reasonq-csrf']);
    for (const { method, url } of registeredRoutes(app).filter((r) => r.method !== 'HEAD')) {
      const key = `${method} ${url}`;
      const op = doc.paths[openApiPath(url)]![method.toLowerCase()]!;
      const access = ROUTE_ACCESS[key] ?? ['admin'];
      if (access === 'public') {
        assert.deepEqual(op.security, [], key);
      } else {
        assert.deepEqual(op.security, [{ bearerAuth: access }, { sessionCookie: access, csrfHeader: access }], key);
        assert.ok(op.responses['401'] && op.responses['403'], `${key} documents 401 and 403`);
      }
    }
  });

  it('describes every error answer with the one error shape, and the answers the server really sends match it', async () => {
    const { doc, url } = await served();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const [status, answer] of Object.entries(op.responses)) {
          if (Number(status) >= 400) assert.equal(answer.content?.['application/json']?.schema.$ref, '#/components/schemas/Error', `${method} ${path} ${status}`);
        }
      }
    }
    const error = doc.components.schemas.Error as { properties: { error: { required: string[] } }; required: string[] };
    assert.deepEqual(error.required, ['error']);
    assert.deepEqual(error.properties.error.required, ['code', 'message']);
    // The SSE route says what it streams.
    assert.ok(doc.paths['/v1/jobs/{id}/events']!.get!.responses['200']!.content!['text/event-stream']);
    // A real 401 and a real 400 have the documented shape.
    const denied = (await (await fetch(`${url}/v1/stats`)).json()) as { error: { code: string; message: string } };
    assert.equal(denied.error.code, 'UNAUTHORIZED');
    const bad = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{"payload": 1}' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'VALIDATION_ERROR');
  });

  it('documents the request schemas the handlers parse with (zod → JSON Schema), dates as date-time text', async () => {
    const { doc } = await served();
    const enqueue = doc.paths['/v1/jobs']!.post!.requestBody as { required: boolean; content: Record<string, { schema: { properties: Record<string, { type?: string; format?: string; pattern?: string; anyOf?: unknown[] }>; required: string[] } }> };
    const schema = enqueue.content['application/json']!.schema;
    assert.equal(enqueue.required, true);
    assert.deepEqual(schema.required, ['payload']);
    assert.deepEqual((schema.properties.run_at as { anyOf: unknown[] }).anyOf, [{ type: 'string', format: 'date-time' }, { type: 'number', minimum: 0, maximum: LAST_INSTANT_MS, description: 'milliseconds since 1970' }]);
    assert.deepEqual([schema.properties.callback_url!.format, schema.properties.callback_url!.pattern], ['uri', '^[Hh][Tt][Tt][Pp][Ss]?://']);
    assert.equal(schema.properties.queue!.pattern, '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$');
    const wait = (doc.paths['/v1/jobs/{id}/wait']!.get as unknown as { parameters: { name: string; in: string; schema: unknown }[] }).parameters;
    assert.deepEqual(wait.find((p) => p.name === 'timeout_ms'), { name: 'timeout_ms', in: 'query', required: false, schema: { type: 'integer', minimum: 0, maximum: 3_600_000 } });
    assert.equal((doc.paths['/v1/jobs/{id}/cancel']!.post!.requestBody as { required: boolean }).required, false);
    // The enqueue routes read the caller's trace context from headers when the body has none.
    for (const path of ['/v1/jobs', '/v1/jobs:batch', '/v1/intents']) {
      const params = ((doc.paths[path]!.post as unknown as { parameters?: { name: string; in: string }[] }).parameters ?? []).filter((p) => p.in === 'header').map((p) => p.name);
      assert.deepEqual(params.sort(), ['traceparent', 'tracestate'], path);
    }
  });
});
