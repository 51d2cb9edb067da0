// The typed client of virtnetworkd: every `network` procedure as a method, and the network
// events (ports created and deleted, networks started and stopped) as an async iterable.
import { NetworkEvent, lazyValidator, networkProgram, type NetworkProgram, type TypedClient } from '../protocol/index.js';
import { connectDaemon, uriForProgram, type DaemonConnectOptions, type DaemonConnection } from './daemon-connection.js';
import { resolveDefaultUri } from './default-uri.js';

const isNetworkEvent = lazyValidator(NetworkEvent, 'network-event');

/** A connection to virtnetworkd. */
export class NetworkClient {
  /** Every procedure of the `network` program as a typed method. */
  readonly api: TypedClient<NetworkProgram>;

  constructor(readonly conn: DaemonConnection<NetworkProgram>) {
    this.api = conn.api;
  }

  /** Subscribes this connection and yields each network event until it closes. One consumer only. */
  async *events(): AsyncIterable<NetworkEvent> {
    await this.api.subscribeEvents({});
    for await (const ev of this.conn.events()) {
      if (ev.prog === networkProgram.name && ev.name === 'event' && isNetworkEvent.check(ev.body)) yield ev.body;
    }
  }

  close(): void {
    this.conn.close();
  }
}

/** Connects to virtnetworkd: `network:///system`, `network:///system?root=DIR`, or the host of any virtq URI. */
export async function connectNetwork(uri?: string, opts: DaemonConnectOptions & { uid?: number } = {}): Promise<NetworkClient> {
  const env = opts.env ?? process.env;
  const chosen = uriForProgram(networkProgram.name, uri ?? resolveDefaultUri({ env, ...(opts.uid === undefined ? {} : { uid: opts.uid }) }), env);
  return new NetworkClient(await connectDaemon(networkProgram, chosen, opts));
}
