// The QMP listening socket. QEMU's monitor is a client chardev with reconnect=1, so QEMU dials
// this socket at start and redials whoever listens on the path after a shim is replaced.
import { createServer, type Server, type Socket } from 'node:net';
import { listenUnix, unlinkIfOurs, VirtqError, type BoundSocket, type Clock } from '../../protocol/index.js';
import { listenInherited } from '../../protocol/unix-listener.js';
import { fdOf } from '../../drivers/host/fd-handover.js';

/** Accepts QEMU's monitor connections. */
export class MonitorListener {
  private server: Server | undefined;
  private bound: BoundSocket | undefined;
  private waiters: Array<(s: Socket) => void> = [];
  private backlog: Socket[] = [];
  private readonly resumes = new WeakMap<Socket, { leftover: Buffer; session: unknown }>();

  constructor(private readonly path: string) {}

  /** Listens; on `fd` when a predecessor handed its listener over. */
  async listen(fd?: number): Promise<void> {
    this.server = createServer((socket) => this.offer(socket));
    this.bound = fd === undefined ? await listenUnix(this.server, this.path, 0o600) : await listenInherited(this.server, fd, this.path, true);
  }

  /** A connection from QEMU that did not come through accept: handed over by a predecessor, already negotiated. */
  offer(socket: Socket, resume?: { leftover: Buffer; session: unknown }): void {
    if (resume !== undefined) this.resumes.set(socket, resume);
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter(socket);
    else this.backlog.push(socket);
  }

  /** `socket` (this process's own, after a rolled-back upgrade) continues without a handshake. */
  markResumed(socket: Socket, resume: { leftover: Buffer; session: unknown }): void {
    this.resumes.set(socket, resume);
  }

  /** How to continue `socket` when it was handed over (undefined: a fresh connection, with a handshake). */
  resumeOf(socket: Socket): { leftover: Buffer; session: unknown } | undefined {
    return this.resumes.get(socket);
  }

  /** The listener's fd, for a shim upgrade. */
  listenerFd(): number {
    if (this.server === undefined) throw new VirtqError('INTERNAL', 'monitor listener is not listening');
    return fdOf(this.server, 'the monitor listener');
  }

  /** The successor took over: closes this process's copy, removing nothing. */
  release(): void {
    this.server?.close();
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
