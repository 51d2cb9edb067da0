// The web view reaches virtqemud as any client does: through the daemon's own read-only socket for
// what everyone may see, and its read-write socket for what changes a VM, so the rules of those
// sockets (ACL, limits, metrics, the admin client list) hold for the web view unchanged. One
// connection of each kind, dialled on first use and again once it has closed.
import { RpcClient, typedClient, virtqProgram, type Clock, type TypedClient, type VirtqProgram } from '../../protocol/index.js';

/** One connection to virtqemud's own socket. */
export interface HostConnection {
  readonly rpc: RpcClient;
  readonly api: TypedClient<VirtqProgram>;
}

/** Calls to virtqemud that wait this long are given up (a VM's shutdown answers well before). */
const CALL_TIMEOUT_MS = 120_000;

/** Dials `socket` as a client of this daemon. */
export async function dialHost(socket: string, clock: Clock): Promise<HostConnection> {
  const rpc = await RpcClient.connect(socket, { clock, defaultTimeoutMs: CALL_TIMEOUT_MS, maxQueuedEvents: 1000 });
  return { rpc, api: typedClient(virtqProgram, rpc) };
}

/** The read-only and read-write connections the web view shares between its requests. */
export class HostLink {
  private readonly conns = new Map<string, Promise<HostConnection>>();
  private closed = false;

  constructor(private readonly sockets: { readonly rw: string; readonly ro: string }, private readonly clock: Clock) {}

  /** A connection to the read-only socket. */
  reader(): Promise<HostConnection> {
    return this.get(this.sockets.ro);
  }

  /** A connection to the read-write socket: only for requests that showed the write token. */
  writer(): Promise<HostConnection> {
    return this.get(this.sockets.rw);
  }

  /** A connection of its own to the read-only socket (an event subscription has one queue). */
  dialReader(): Promise<HostConnection> {
    return dialHost(this.sockets.ro, this.clock);
  }

  /** Closes both connections. */
  close(): void {
    this.closed = true;
    for (const p of this.conns.values()) void p.then((c) => c.rpc.close(), () => undefined);
    this.conns.clear();
  }

  private get(socket: string): Promise<HostConnection> {
    let p = this.conns.get(socket);
    if (p === undefined) {
      p = dialHost(socket, this.clock);
      const mine = p;
      this.conns.set(socket, mine);
      mine.then((c) => {
        if (this.closed) c.rpc.close();
        c.rpc.onClose(() => { if (this.conns.get(socket) === mine) this.conns.delete(socket); });
      }, () => { if (this.conns.get(socket) === mine) this.conns.delete(socket); });
    }
    return p;
  }
}
