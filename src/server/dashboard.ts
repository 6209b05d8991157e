/**
 * The dashboard at /engine: one static page, its script and its style (no
 * inline script or style, so the CSP can forbid both), and the session
 * routes it signs in with.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { parseOrThrow } from '../job.js';
import type { ServerContext } from './app.js';
import { sessionBodySchema } from './schemas.js';

const asset = (name: string) => readFileSync(fileURLToPath(new URL(`./${name}`, import.meta.url)), 'utf8');
const page = asset('dashboard.html');
const script = asset('dashboard-app.js');
const style = asset('dashboard.css');

const send = (reply: FastifyReply, type: string, body: string) => reply.type(type).header('cache-control', 'no-store').send(body);

export function registerDashboard(app: FastifyInstance, { auth }: ServerContext): void {
  app.get('/engine', async (_request, reply) => send(reply, 'text/html; charset=utf-8', page));
  app.get('/engine/app.js', async (_request, reply) => send(reply, 'text/javascript; charset=utf-8', script));
  app.get('/engine/app.css', async (_request, reply) => send(reply, 'text/css; charset=utf-8', style));
  app.get('/', async (_request, reply) => reply.redirect('/engine'));

  /** Whether this server wants a token and whether the caller's cookie is a live session. */
  app.get('/v1/session', async (request) => ({ auth_required: auth.enabled, signed_in: auth.enabled && auth.hasSession(request) }));
  /** Trade a token for an HttpOnly, SameSite=Strict session cookie and the session's secret: the page never keeps the token. */
  app.post('/v1/session', async (request, reply) => {
    const { token } = parseOrThrow(sessionBodySchema, request.body ?? {});
    const { scopes, csrf } = auth.openSession(token, reply, request.protocol === 'https');
    return { signed_in: true, scopes: [...scopes], csrf };
  });
  /** A ticket for one job's event stream (EventSource sends the cookie, not headers). */
  app.post<{ Params: { id: string } }>('/v1/jobs/:id/events/ticket', async (request) => ({ ticket: auth.ticket(request, request.params.id) }));
  app.delete('/v1/session', async (request, reply) => {
    auth.closeSession(request, reply);
    return { signed_in: false };
  });
}
