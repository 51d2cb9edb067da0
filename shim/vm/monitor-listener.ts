// The QMP listening socket. QEMU's monitor is a client chardev with reconnect=1, so QEMU dials
// this socket at start and redials whoever listens on the path after a shim is replaced.
import { createServer, type Server, type Socket } from 'node:net';
import { listenUnix, unlinkIfOurs, VirtqError, type BoundSocket, type Clock } from '../../protocol/index.js';

/** Accepts QEMU's monitor connections. */
export class MonitorListener {
  private server: Server | undefined;
  private bound: BoundSocket | undefined;
  private waiters: Array<(s: Socket) => void> = [];
  private backlog: Socket[] = [];

  constructor(private readonly path: string) {}

  async listen(): Promise<void> {
    this.server = createServer((socket) => {
      const waiter = this.waiters.shift();
      if (waiter !== undefined) waiter(socket);
      else this.backlog.push(socket);
    });
    this.bound = await listenUnix(this.server, this.path, 0o600);
  }

  /** The next connection from QEMU; rejects with TIMEOUT or when `abort` settles first. */
  next(clock: Clock, timeoutMs: number, abort?: Promise<unknown>): Promise<Socket> {
    const ready = this.backlog.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const take = (s: Socket) => { timer.dispose(); resolve(s); };
      const timer = clock.setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== take);
        reject(new VirtqError('TIMEOUT', `QEMU did not connect to its monitor socket within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(take);
      abort?.then(() => {
        this.waiters = this.waiters.filter((w) => w !== take);
        timer.dispose();
        reject(new VirtqError('OPERATION_FAILED', 'QEMU exited before connecting to its monitor'));
      }, () => undefined);
    });
  }

  async close(): Promise<void> {
    for (const s of this.backlog.splice(0)) s.destroy();
    this.server?.close();
    if (this.bound !== undefined) await unlinkIfOurs(this.bound);
  }
}
