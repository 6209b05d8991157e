/**
 * The dashboard at /engine: one static page, its scripts and its style (no
 * inline script or style, so the CSP can forbid both), and the session
 * routes it signs in with.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { parseOrThrow } from '../job.js';
import type { ServerContext } from './app.js';
import { DASHBOARD_TICKET, jobTicket, SECURITY_HEADERS } from './auth.js';
import type { FeedUpdate } from './dashboard-feed.js';
import { dashboardEventsQuerySchema, sessionBodySchema } from './schemas.js';

const asset = (name: string) => readFileSync(fileURLToPath(new URL(`./${name}`, import.meta.url)), 'utf8');
const page = asset('dashboard.html');
const script = asset('dashboard-app.js');
const charts = asset('dashboard-charts.js');
const style = asset('dashboard.css');

const send = (reply: FastifyReply, type: string, body: string) => reply.type(type).header('cache-control', 'no-store').send(body);

/** A viewer that does not read what it is sent is cut off past this many unsent bytes (its page reconnects and starts over). */
const FEED_BACKLOG_MAX = 1 << 20;

export function registerDashboard(app: FastifyInstance, { auth, feed, longPoll, sseMaxMs, sseKeepAliveMs }: ServerContext): void {
  app.get('/engine', async (_request, reply) => send(reply, 'text/html; charset=utf-8', page));
  app.get('/engine/app.js', async (_request, reply) => send(reply, 'text/javascript; charset=utf-8', script));
  app.get('/engine/charts.js', async (_request, reply) => send(reply, 'text/javascript; charset=utf-8', charts));
  app.get('/engine/app.css', async (_request, reply) => send(reply, 'text/css; charset=utf-8', style));
  app.get('/', async (_request, reply) => reply.redirect('/engine'));

  /**
   * The dashboard's push: `stats` and `workers` events when they change (from
   * the one shared feed, dashboard-feed.ts), a keep-alive comment when quiet,
   * and an end after the stream's lifetime; `retry:` makes the page
   * reconnect. Each viewer holds one `stream` slot.
   */
  app.get('/v1/dashboard/events', async (request, reply) => {
    parseOrThrow(dashboardEventsQuerySchema, request.query);
    await longPoll('stream', request, async (signal) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write('retry: 2000\n\n');
      await new Promise<void>((resolve) => {
        const send = (text: string) => {
          if (res.destroyed) return;
          res.write(text);
          if (res.writableLength > FEED_BACKLOG_MAX) res.destroy();
        };
        const push = (update: FeedUpdate) => {
          let text = '';
          for (const kind of ['stats', 'workers', 'feed_error'] as const) if (update[kind]) text += `event: ${kind}\ndata: ${JSON.stringify(update[kind])}\n\n`;
          send(text);
        };
        const unsubscribe = feed.subscribe(push);
        const keepAlive = setInterval(() => send(': keep-alive\n\n'), sseKeepAliveMs);
        const finish = () => {
          clearInterval(keepAlive);
          clearTimeout(lifetime);
          unsubscribe();
          signal.removeEventListener('abort', finish);
          res.off('close', finish);
          resolve();
        };
        const lifetime = setTimeout(finish, sseMaxMs);
        signal.addEventListener('abort', finish, { once: true });
        res.once('close', finish);
      });
      res.end();
    });
  });
  /** A ticket for the dashboard's push stream (EventSource sends the cookie, not headers). */
  app.post('/v1/dashboard/events/ticket', async (request) => ({ ticket: auth.ticket(request, DASHBOARD_TICKET) }));

  /** Whether this server wants a token and whether the caller's cookie is a live session. */
  app.get('/v1/session', async (request) => ({ auth_required: auth.enabled, signed_in: auth.enabled && auth.hasSession(request) }));
  /** Trade a token for an HttpOnly, SameSite=Strict session cookie and the session's secret: the page never keeps the token. */
  app.post('/v1/session', async (request, reply) => {
    const { token } = parseOrThrow(sessionBodySchema, request.body ?? {});
    const { scopes, csrf } = auth.openSession(token, reply, request.protocol === 'https');
    return { signed_in: true, scopes: [...scopes], csrf };
  });
  /** A ticket for one job's event stream (EventSource sends the cookie, not headers). */
  app.post<{ Params: { id: string } }>('/v1/jobs/:id/events/ticket', async (request) => ({ ticket: auth.ticket(request, jobTicket(request.params.id)) }));
  app.delete('/v1/session', async (request, reply) => {
    auth.closeSession(request, reply);
    return { signed_in: false };
  });
}
