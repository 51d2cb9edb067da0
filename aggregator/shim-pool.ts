// One pooled connection per shim for the calls virtqemud forwards, opened on first use and
// dropped when it closes; a shim that does not answer shows up as SHIM_UNAVAILABLE.
import { RpcClient, VirtqError, type Clock } from '../protocol/index.js';

/** Connections to shims, by socket path. */
export class ShimPool {
  private readonly clients = new Map<string, Promise<RpcClient>>();

  constructor(private readonly clock: Clock) {}

  /** A connected client for `socket`. */
  get(socket: string, vm: string): Promise<RpcClient> {
    let p = this.clients.get(socket);
    if (p === undefined) {
      p = RpcClient.connect(socket, { clock: this.clock, defaultTimeoutMs: 300_000 }).then(
        (client) => {
          client.onClose(() => { if (this.clients.get(socket) === p) this.clients.delete(socket); });
          return client;
        },
        (err: unknown) => {
          this.clients.delete(socket);
          throw new VirtqError('SHIM_UNAVAILABLE', `the shim of VM "${vm}" does not answer at ${socket}`, { cause: err });
        },
      );
      this.clients.set(socket, p);
    }
    return p;
  }

  /** Closes the connection to `socket`, if any. */
  drop(socket: string): void {
    const p = this.clients.get(socket);
    this.clients.delete(socket);
    void p?.then((c) => c.close(), () => undefined);
  }

  closeAll(): void {
    for (const socket of [...this.clients.keys()]) this.drop(socket);
  }
}
