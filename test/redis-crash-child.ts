/**
 * Child process of the crash test (test/redis-faults.redis.test.ts): claims
 * one job, prints it, then hangs until the parent kills it with SIGKILL —
 * a worker dying between claim and complete.
 */
import { createRedisTransport } from '../transports/redis/index.js';

const [url = '', queue = '', leaseMs = '1000'] = process.argv.slice(2);
const transport = createRedisTransport({ url });
await transport.init();
const job = await transport.claim({ queues: [queue], owner: 'doomed-worker', lease_ms: Number(leaseMs), wait_ms: 3000 });
process.stdout.write(`${JSON.stringify({ id: job?.id ?? null, token: job?.lease.token ?? null })}\n`);
setInterval(() => {}, 1000); // stay alive until killed
