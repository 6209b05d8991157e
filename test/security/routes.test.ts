/**
 * Authorization is decided on the route the router matched: every registered
 * route (taken from the router, not a hand list) × every spelling of its path
 * × every bad credential answers 401; scoped tokens reach only their routes;
 * the public list is exactly the short one we mean.
 */
import assert from 'node:assert/strict';
import { ROUTE_ACCESS, registeredRoutes } from '../../src/server/auth.js';
import { newJob, uniqueQueue } from '../helpers.js';
import { startServer } from '../server-helpers.js';
import { portOf, rawRequest } from './raw.js';

const ADMIN = 'admin-token-0123456789';
const CLIENT = 'client-token-0123456789';
const WORKER = 'worker-token-0123456789';

const PUBLIC = ['GET /', 'GET /healthz', 'GET /readyz', 'GET /openapi.json', 'GET /engine', 'GET /engine/app.js', 'GET /engine/app.css', 'GET /engine/charts.js', 'GET /v1/session', 'POST /v1/session', 'DELETE /v1/session'];

const hex = (c: string, upper: boolean) => `%${c.charCodeAt(0).toString(16)[upper ? 'toUpperCase' : 'toLowerCase']()}`;

/** Spellings of `path` that a router may take for the same route, or for none. */
function variants(path: string, port: number): [string, string][] {
  const segments = path.split('/').slice(1);
  const encodeFirst = '/' + segments.map((s, i) => (i === 0 ? hex(s[0]!, false) + s.slice(1) : s)).join('/');
  const encodeLetters = path.replace(/[a-z]/gi, (c) => hex(c, true));
  return [
    ['plain', path],
    ['first letter encoded', encodeFirst],
    ['every letter encoded', encodeLetters],
    ['absolute-form', `http://127.0.0.1:${port}${path}`],
    ['absolute-form, other authority', `http://x${path}`],
    ['leading double slash', `/${path}`],
    ['inner double slash', path.replace(/^(\/[^/]+)\//, '$1//')],
    ['dot segment', `/x/..${path}`],
    ['encoded dot segment', `/x/%2e%2e${path}`],
    ['single dot', `/.${path}`],
    ['trailing slash', `${path}/`],
    ['semicolon', `${path};x=1`],
    ['upper case', path.toUpperCase()],
    ['old ?token= on the query', `${path}?token=${ADMIN.slice(0, 5)}`],
  ];
}

describe('security: every route needs the token it should (routed-path auth)', () => {
  it('every registered route × every path spelling × no / wrong / malformed credentials answers 401', async function () {
    this.timeout(120_000);
    const { app, store, url } = await startServer({ tokens: { admin: [ADMIN], client: [CLIENT], worker: [WORKER] } });
    const port = portOf(url);
    const { job } = await store.enqueue(newJob(uniqueQueue('sec')));
    const routes = registeredRoutes(app).filter((r) => !PUBLIC.includes(`${r.method === 'HEAD' ? 'GET' : r.method} ${r.url}`));
    assert.ok(routes.length >= 25, `the router lists the API (${routes.length} routes)`);
    const credentials: [string, Record<string, string>][] = [
      ['no token', {}],
      ['wrong token', { authorization: 'Bearer wrong-token-0123456789' }],
      ['token as Basic', { authorization: `Basic ${ADMIN}` }],
      ['lower-case scheme', { authorization: `bearer ${ADMIN}x` }],
      ['token with a suffix', { authorization: `Bearer ${ADMIN}x` }],
      ['cookie that is no session', { cookie: 'reasonq_session=forged' }],
    ];
    const failures: string[] = [];
    let checked = 0;
    for (const route of routes) {
      const path = route.url.replace(':id', job.id);
      const body = route.method === 'GET' || route.method === 'HEAD' ? undefined : '{}';
      for (const [name, target] of variants(path, port)) {
        for (const [who, headers] of credentials) {
          checked += 1;
          // A bypass into a long-poll route hangs: a short deadline makes that a named failure too.
          const res = await rawRequest(port, route.method, target, { headers, ...(body ? { body } : {}) }, 2000).catch((error: Error) => ({ status: 0, body: error.message }));
          if (res.status !== 401) failures.push(`${route.method} ${target} (${name}, ${who}) → ${res.status} ${res.body.slice(0, 80)}`);
        }
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${checked} requests were not refused`);
    assert.ok(checked > 1000);
  });

  it('the admin token reaches every route through the same spellings (the refusals above are not just unroutable paths)', async () => {
    const { url } = await startServer({ token: ADMIN });
    const port = portOf(url);
    for (const [name, target] of variants('/v1/stats', port).filter(([n]) => !['upper case', 'old ?token= on the query', 'trailing slash', 'semicolon'].includes(n))) {
      const res = await rawRequest(port, 'GET', target, { headers: { authorization: `Bearer ${ADMIN}` } });
      assert.ok(res.status === 200 || res.status === 404, `${name}: ${target} → ${res.status}`);
    }
    const plain = await rawRequest(port, 'GET', '/%761/stats', { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(plain.status, 200, 'the router decodes %76: the check must see the route it matched');
  });

  it('scoped tokens: a client token cannot claim or complete, a worker token cannot enqueue or cancel, metrics need admin', async () => {
    const { url, store } = await startServer({ tokens: { admin: [ADMIN], client: [CLIENT], worker: [WORKER] } });
    const port = portOf(url);
    const q = uniqueQueue('scope');
    const { job } = await store.enqueue(newJob(q));
    const as = (token: string, method: string, path: string, body?: unknown) =>
      rawRequest(port, method, path, { headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

    const claim = await as(CLIENT, 'POST', '/v1/claim', { queues: [q], owner: 'thief', lease_ms: 5000 });
    assert.equal(claim.status, 403);
    assert.equal(JSON.parse(claim.body).error.code, 'FORBIDDEN');
    assert.equal((await as(CLIENT, 'POST', `/v1/jobs/${job.id}/settle`, { token: 'x', outcome: { status: 'done', result: { action: 'finish' } } })).status, 403);
    assert.equal((await as(CLIENT, 'POST', '/v1/workers/heartbeat', {})).status, 403);
    assert.equal((await as(CLIENT, 'GET', '/metrics')).status, 403);

    assert.equal((await as(WORKER, 'POST', '/v1/jobs', { payload: { goal: 'x' } })).status, 403);
    assert.equal((await as(WORKER, 'POST', `/v1/jobs/${job.id}/cancel`, {})).status, 403);
    assert.equal((await as(WORKER, 'GET', '/v1/stats')).status, 403);
    assert.equal((await as(WORKER, 'GET', `/v1/jobs/${job.id}`)).status, 200, 'a worker reads the job it delivers a callback for');

    assert.equal((await as(CLIENT, 'GET', '/v1/stats')).status, 200);
    const claimed = await as(WORKER, 'POST', '/v1/claim', { queues: [q], owner: 'w', lease_ms: 5000 });
    assert.equal(claimed.status, 200);
    assert.equal(JSON.parse(claimed.body).jobs[0].id, job.id);
    assert.equal((await as(ADMIN, 'GET', '/metrics')).status, 200);
    assert.equal((await rawRequest(port, 'GET', '/healthz')).status, 200);
  });

  it('the public list is exactly /healthz, /readyz, /openapi.json, the dashboard page and assets and the session routes; every other route defaults to admin', async () => {
    const { app } = await startServer({ token: ADMIN });
    const keys = new Set(registeredRoutes(app).filter((r) => r.method !== 'HEAD').map((r) => `${r.method} ${r.url}`));
    const isPublic = Object.entries(ROUTE_ACCESS).filter(([, a]) => a === 'public').map(([k]) => k);
    assert.deepEqual(isPublic.sort(), [...PUBLIC].sort());
    for (const key of Object.keys(ROUTE_ACCESS)) assert.ok(keys.has(key), `ROUTE_ACCESS names ${key}, which is not a route`);
    for (const key of keys) if (!(key in ROUTE_ACCESS)) assert.fail(`${key} is registered but not in ROUTE_ACCESS (it would need the admin token)`);
  });
});
