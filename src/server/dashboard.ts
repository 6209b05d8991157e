/** The dashboard at /engine: one static page that reads the /v1 API. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

const html = readFileSync(fileURLToPath(new URL('./dashboard.html', import.meta.url)), 'utf8');

export function registerDashboard(app: FastifyInstance): void {
  app.get('/engine', async (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html));
  app.get('/', async (_request, reply) => reply.redirect('/engine'));
}
