/**
 * A TCP proxy on loopback between a client and a store, to make the faults
 * a network makes: freeze (bytes held in both directions, connections left
 * open, as a stopped or partitioned server looks), thaw, and cut (every
 * connection reset, new ones accepted).
 */
import net from 'node:net';

export interface FaultProxy {
  port: number;
  url(scheme: string): string;
  /** hold every byte from now on, both ways */
  freeze(): void;
  /** pass bytes again, the held ones first */
  thaw(): void;
  /** reset every open connection (new ones are accepted) */
  cut(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  let frozen = false;
  const pairs = new Set<{ a: net.Socket; b: net.Socket }>();
  const held: (() => void)[] = [];
  const pipe = (from: net.Socket, to: net.Socket) =>
    from.on('data', (chunk) => {
      if (frozen) held.push(() => to.write(chunk));
      else to.write(chunk);
    });
  const server = net.createServer((a) => {
    const b = net.connect(targetPort, targetHost);
    const pair = { a, b };
    pairs.add(pair);
    pipe(a, b);
    pipe(b, a);
    const end = () => {
      pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on('error', end).on('close', end);
    b.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
      for (const write of held.splice(0)) write();
    },
    cut: () => {
      held.length = 0;
      for (const { a, b } of pairs) {
        a.resetAndDestroy();
        b.destroy();
      }
      pairs.clear();
    },
    close: async () => {
      for (const { a, b } of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
