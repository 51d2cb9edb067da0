// A loopback TCP proxy in front of one server that a test can cut: every connection through it is
// destroyed and new ones are refused, as a partition between one "host" and its etcd would.
// `restore()` lets connections through again; `close()` stops it.
import { createServer, connect, type Socket } from 'node:net';

/** A running proxy. */
export interface CutProxy {
  /** host:port to connect to instead of the target. */
  readonly address: string;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (a free port) forwarding to `target` (host:port). */
export async function startCutProxy(target: string): Promise<CutProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const open = new Set<Socket>();
  let isCut = false;
  const server = createServer((client) => {
    if (isCut) {
      client.destroy();
      return;
    }
    const up = connect(port, host);
    for (const s of [client, up]) {
      open.add(s);
      s.on('error', () => { client.destroy(); up.destroy(); });
      s.on('close', () => { open.delete(s); client.destroy(); up.destroy(); });
    }
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('the proxy has no TCP address');
  return {
    address: `127.0.0.1:${addr.port}`,
    cut: () => {
      isCut = true;
      for (const s of open) s.destroy();
    },
    restore: () => { isCut = false; },
    close: async () => {
      isCut = true;
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
