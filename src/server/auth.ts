/**
 * Who may call what, decided on the route Fastify matched (never on the raw
 * URL, which the router decodes differently: `/%761/stats`, absolute-form
 * targets, `//v1`, dot segments all reach the same route and the same check).
 *
 * Deny by default: a route not in ROUTE_SCOPES needs the admin token, and a
 * request that matches no route needs a valid token before it learns so.
 * Before the token, two checks a browser makes necessary:
 * - Host allow-list, against DNS rebinding (a page on evil.example whose
 *   name later resolves to 127.0.0.1 sends `Host: evil.example`);
 * - cross-site refusal: a request a browser marks as coming from another
 *   site (`Sec-Fetch-Site`, else an `Origin` that is not ours) is refused,
 *   so no page can drive a local server whose API has no token.
 * The dashboard signs in once (POST /v1/session): an HttpOnly,
 * SameSite=Strict cookie plus a per-session secret that only the sign-in
 * answer carries, which the page keeps in sessionStorage (per origin, so per
 * port) and sends as `x-reasonq-csrf`. Browsers send a cookie of localhost
 * to every port of localhost, so the cookie alone is worth nothing: whoever
 * receives it lacks the secret. EventSource cannot send a header; it gets a
 * ticket for one stream (one job's events, or the dashboard's push), valid a
 * minute and only with the cookie.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULTS, type Tokens } from '../config.js';
import { ForbiddenError, HostNotAllowedError, UnauthorizedError } from '../errors.js';

/** Sent on every response: no framing, no sniffing, no referrer, scripts only from this origin. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export type Scope = 'client' | 'worker' | 'admin';
type Access = 'public' | Scope[];

/**
 * Every route and who may call it, keyed `METHOD /pattern` as registered.
 * The public list is this short on purpose. Anything else: admin only.
 */
export const ROUTE_ACCESS: Readonly<Record<string, Access>> = {
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'GET /openapi.json': 'public',
  'GET /': 'public',
  'GET /engine': 'public',
  'GET /engine/app.js': 'public',
  'GET /engine/app.css': 'public',
  'GET /engine/charts.js': 'public',
  'GET /v1/session': 'public',
  'POST /v1/session': 'public',
  'DELETE /v1/session': 'public',

  'POST /v1/jobs': ['client'],
  'POST /v1/jobs::batch': ['client'], // as registered: the path is /v1/jobs:batch (`::` is the router's literal colon)
  'POST /v1/intents': ['client'],
  'GET /v1/jobs': ['client'],
  'GET /v1/jobs/:id': ['client', 'worker'],
  'GET /v1/jobs/:id/wait': ['client'],
  'GET /v1/jobs/:id/events': ['client'],
  'POST /v1/jobs/:id/events/ticket': ['client'],
  'POST /v1/jobs/:id/cancel': ['client'],
  'POST /v1/jobs/:id/retry': ['client'],
  'POST /v1/jobs::retry': ['client'], // /v1/jobs:retry, bulk (src/retry-many.ts)
  'GET /v1/stats': ['client'],
  'GET /v1/analytics': ['client'],
  'GET /v1/workers': ['client'],
  'GET /v1/dashboard/events': ['client'],
  'POST /v1/dashboard/events/ticket': ['client'],

  'POST /v1/claim': ['worker'],
  'POST /v1/jobs/:id/lease': ['worker'],
  'POST /v1/jobs/:id/settle': ['worker'],
  'POST /v1/jobs/:id/events': ['worker'],
  'POST /v1/jobs/:id/progress': ['worker'],
  'POST /v1/workers/heartbeat': ['worker'],
  'DELETE /v1/workers/:id': ['worker'],
  'POST /v1/sweep': ['worker'],

  'GET /metrics': ['admin'],
};

/** Health checks come from load balancers and orchestrators that use the pod's address as Host. */
const NO_HOST_CHECK = new Set(['GET /healthz', 'GET /readyz']);

export const SESSION_COOKIE = 'reasonq_session';
const MAX_SESSIONS = 1000;

const routeLists = new WeakMap<FastifyInstance, { method: string; url: string }[]>();

/** Record every route as the router registers it (HEAD twins included), for audits and the route-walking tests. */
export function collectRoutes(app: FastifyInstance): void {
  const list: { method: string; url: string }[] = [];
  routeLists.set(app, list);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) list.push({ method, url: route.url ?? route.path });
  });
}

/** Every route the router has, as registered. */
export function registeredRoutes(app: FastifyInstance): readonly { method: string; url: string }[] {
  return routeLists.get(app) ?? [];
}

function accessOf(method: string, url: string | undefined): Access | 'unrouted' {
  if (url === undefined) return 'unrouted';
  return ROUTE_ACCESS[`${method === 'HEAD' ? 'GET' : method} ${url}`] ?? ['admin'];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

interface Session {
  scopes: Set<Scope>;
  expires: number;
  /** sent back by the page as x-reasonq-csrf; never obtainable with the cookie alone */
  csrf: string;
}

/** How long an SSE ticket is good for. */
const TICKET_MS = 60_000;

/** What a ticket opens: one job's event stream. */
export const jobTicket = (jobId: string) => `events\n${jobId}`;
/** What a ticket opens: the dashboard's push stream. */
export const DASHBOARD_TICKET = 'dashboard';
/** The SSE routes a ticket may open, each with the subject its ticket must name. */
const TICKET_ROUTES: Readonly<Record<string, (params: unknown) => string | null>> = {
  '/v1/jobs/:id/events': (params) => {
    const id = (params as { id?: unknown } | undefined)?.id;
    return typeof id === 'string' ? jobTicket(id) : null;
  },
  '/v1/dashboard/events': () => DASHBOARD_TICKET,
};

export interface AuthOptions {
  tokens: Tokens;
  sessionTtlMs?: number;
}

export interface Auth {
  /** true when at least one token is configured */
  readonly enabled: boolean;
  /** Sign the dashboard in: a session cookie for the token's scopes, and the session's secret for the page. */
  openSession(token: string, reply: FastifyReply, secure: boolean): { scopes: Set<Scope>; csrf: string };
  closeSession(request: FastifyRequest, reply: FastifyReply): void;
  /** The scopes of the request's credentials (a bearer token, or the session cookie with its secret or a ticket), or null. */
  credentials(request: FastifyRequest): Set<Scope> | null;
  /** Whether the request's cookie names a live session (the secret not checked: for GET /v1/session only). */
  hasSession(request: FastifyRequest): boolean;
  /** A ticket for one stream (`jobTicket(id)` or `DASHBOARD_TICKET`), for the session of this (authenticated) request. */
  ticket(request: FastifyRequest, subject: string): string | null;
}

export function createAuth(options: AuthOptions): Auth {
  const table: [Buffer, Scope][] = [];
  for (const scope of ['admin', 'client', 'worker'] as const) for (const t of options.tokens[scope]) table.push([digest(t), scope]);
  const sessions = new Map<string, Session>();
  const ttl = options.sessionTtlMs ?? DEFAULTS.sessionTtlMs;

  const scopesOf = (token: string): Set<Scope> | null => {
    const given = digest(token);
    const scopes = new Set<Scope>();
    // Compare against every token (fixed-length digests, constant time) so timing says nothing about which matched.
    for (const [d, scope] of table) if (timingSafeEqual(d, given)) scopes.add(scope);
    if (scopes.has('admin')) return new Set(['admin', 'client', 'worker']);
    return scopes.size > 0 ? scopes : null;
  };

  /** The session cookie's value; none when absent or sent twice (a page on another port may have set a second one to shadow ours). */
  const cookieOf = (request: FastifyRequest): string | undefined => {
    const header = request.headers.cookie;
    if (!header) return undefined;
    const found = header
      .split(';')
      .map((part) => [part.slice(0, part.indexOf('=')).trim(), part.slice(part.indexOf('=') + 1).trim()] as const)
      .filter(([name]) => name === SESSION_COOKIE);
    return found.length === 1 ? found[0]![1] : undefined;
  };

  const liveSession = (request: FastifyRequest): [string, Session] | null => {
    const id = cookieOf(request);
    const session = id ? sessions.get(id) : undefined;
    if (!id || !session) return null;
    if (session.expires <= Date.now()) {
      sessions.delete(id);
      return null;
    }
    return [id, session];
  };

  const sameText = (a: string, b: string) => timingSafeEqual(digest(a), digest(b));
  const sign = (session: Session, subject: string, exp: number) => createHmac('sha256', session.csrf).update(`${subject}\n${exp}`).digest('base64url');

  return {
    enabled: table.length > 0,
    openSession(token, reply, secure) {
      const scopes = scopesOf(token);
      if (!scopes) throw new UnauthorizedError('that token is not one this server accepts');
      if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
      const id = randomBytes(32).toString('base64url');
      const csrf = randomBytes(32).toString('base64url');
      sessions.set(id, { scopes, expires: Date.now() + ttl, csrf });
      const attrs = ['Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${Math.floor(ttl / 1000)}`, ...(secure ? ['Secure'] : [])];
      void reply.header('set-cookie', `${SESSION_COOKIE}=${id}; ${attrs.join('; ')}`);
      return { scopes, csrf };
    },
    closeSession(request, reply) {
      const id = cookieOf(request);
      if (id) sessions.delete(id);
      void reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
    },
    credentials(request) {
      const header = request.headers.authorization;
      if (header !== undefined) return header.startsWith('Bearer ') ? scopesOf(header.slice(7)) : null;
      const live = liveSession(request);
      if (!live) return null;
      const [, session] = live;
      const csrf = request.headers['x-reasonq-csrf'];
      if (typeof csrf === 'string' && sameText(csrf, session.csrf)) return session.scopes;
      // EventSource: a ticket for this stream, in the query.
      const ticket = (request.query as { ticket?: unknown } | undefined)?.ticket;
      const subjectOf = TICKET_ROUTES[request.routeOptions.url ?? ''];
      const subject = subjectOf ? subjectOf(request.params) : null;
      if (request.method !== 'GET' || typeof ticket !== 'string' || subject === null) return null;
      const [exp = '', mac = ''] = ticket.split('.');
      if (!/^\d+$/.test(exp) || Number(exp) < Date.now() || !sameText(mac, sign(session, subject, Number(exp)))) return null;
      return session.scopes;
    },
    hasSession(request) {
      return liveSession(request) !== null;
    },
    ticket(request, subject) {
      const live = liveSession(request);
      if (!live) return null;
      const exp = Date.now() + TICKET_MS;
      return `${exp}.${sign(live[1], subject, exp)}`;
    },
  };
}

/** The host part of a Host header, lower case, without port or trailing dot; '' when it is not `host[:port]` (e.g. `[::1]evil`). */
function hostOf(header: string): string {
  const h = header.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]*)(:\d*)?$/.exec(h);
  return m ? m[1]!.replace(/\.$/, '') : '';
}

const normalHost = (h: string) => hostOf(h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);

/** Refuse requests a browser made from another site; non-browser callers send neither header. */
function assertSameSite(request: FastifyRequest): void {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) {
    if (site === 'same-origin' || site === 'none') return;
    throw new ForbiddenError(`cross-site request refused (Sec-Fetch-Site: ${String(site).slice(0, 40)})`, 'CROSS_SITE_REFUSED');
  }
  const origin = request.headers.origin;
  if (origin === undefined) return;
  let originHost = '';
  try {
    originHost = new URL(origin).host.toLowerCase();
  } catch {
    /* "null" and other opaque origins are never ours */
  }
  if (originHost !== (request.headers.host ?? '').toLowerCase()) throw new ForbiddenError(`cross-origin request refused (Origin: ${origin.slice(0, 100)})`, 'CROSS_SITE_REFUSED');
}

/** The onRequest checks, in order: Host, same site, credentials for the route's scope. */
export function registerAuth(app: FastifyInstance, auth: Auth, allowedHosts: readonly string[]): void {
  const anyHost = allowedHosts.includes('*');
  const hosts = new Set(allowedHosts.map(normalHost));
  app.addHook('onRequest', async (request) => {
    const url = request.routeOptions.url;
    const key = `${request.method === 'HEAD' ? 'GET' : request.method} ${url}`;
    if (!anyHost && !NO_HOST_CHECK.has(key)) {
      const host = request.headers.host ?? '';
      // Node keeps the first of several Host headers; a proxy may route on another: refuse the ambiguity.
      const given = request.raw.rawHeaders.filter((_, i) => i % 2 === 0 && request.raw.rawHeaders[i]!.toLowerCase() === 'host').length;
      if (given > 1 || !hosts.has(hostOf(host))) throw new HostNotAllowedError(host);
    }
    const access = accessOf(request.method, url);
    // Public pages may be opened from anywhere (a link); the session routes are checked like the API (login CSRF).
    if (access === 'public' && !key.endsWith(' /v1/session')) return;
    assertSameSite(request);
    if (access === 'public' || !auth.enabled) return;
    const scopes = auth.credentials(request);
    if (!scopes) throw new UnauthorizedError();
    if (access === 'unrouted') return; // a valid caller may learn that a route does not exist
    if (!access.some((s) => scopes.has(s))) {
      throw new ForbiddenError(`this token may not call ${request.method} ${url} (needs the ${access.join(' or ')} scope)`);
    }
  });
}
