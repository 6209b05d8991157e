/**
 * A tripwire under every TCP connect of the test process: only loopback
 * (127.0.0.0/8, ::1, localhost) and local sockets may be dialled. A test whose
 * code under test goes wrong (a broken address guard, a real lookup of a
 * test name) is stopped here before a packet or a DNS query leaves the
 * machine, and fails by name instead of reaching out.
 */
import net from 'node:net';

export const refusedConnects: string[] = [];

/**
 * The one remote host the test set-up may reach: where mongodb-memory-server
 * downloads MongoDB (test/setup/mongo.ts; MONGOMS_DOWNLOAD_MIRROR names
 * another). A download, never a test's target.
 */
const DOWNLOAD_HOSTS = new Set([new URL(process.env.MONGOMS_DOWNLOAD_MIRROR ?? 'https://fastdl.mongodb.org').hostname]);

const isLoopback = (host: string) => {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
};

/** Where a Socket#connect call would go: a path (local socket) or a host. */
function targetOf(args: unknown[]): { path?: string; host: string } {
  const first: unknown = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
  if (typeof first === 'string' && !/^\d+$/.test(first)) return { path: first, host: '' };
  if (first && typeof first === 'object') {
    const o = first as { path?: string; host?: string };
    if (o.path) return { path: o.path, host: '' };
    return { host: o.host ?? 'localhost' };
  }
  return { host: typeof args[1] === 'string' ? args[1] : 'localhost' };
}

const original = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
  const target = targetOf(args);
  if (target.path !== undefined || isLoopback(target.host) || DOWNLOAD_HOSTS.has(target.host)) return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  refusedConnects.push(target.host);
  process.nextTick(() => this.destroy(new Error(`test tripwire: a connect to ${target.host} was stopped (tests talk to loopback only)`)));
  return this;
} as typeof net.Socket.prototype.connect;
