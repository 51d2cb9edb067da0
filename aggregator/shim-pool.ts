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

  /**
   * Opens the connection to `socket` now, for a call that will come at a moment that must not
   * wait for a connect (a migration's lease claim, made while the source's guest is paused). A
   * failure is forgotten here: the call that needs the connection reports it (SHIM_UNAVAILABLE).
   */
  warm(socket: string, vm: string): void {
    this.get(socket, vm).catch(() => undefined);
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
