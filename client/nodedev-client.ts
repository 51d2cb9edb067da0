// The typed client of virtnodedevd: every `nodedev` procedure as a method, and device events as
// an async iterator (subscribe, then read them as they come).
import {
  NodeDeviceEvent, lazyValidator, nodedevProgram,
  type NodedevProgram, type TypedClient,
} from '../protocol/index.js';
import { connectDaemon, uriForProgram, type DaemonConnectOptions, type DaemonConnection } from './daemon-connection.js';
import { resolveDefaultUri } from './default-uri.js';

const isDeviceEvent = lazyValidator(NodeDeviceEvent, 'nodedev-event');

/** A connection to virtnodedevd. */
export class NodeDevClient {
  /** Every procedure of the `nodedev` program as a typed method. */
  readonly api: TypedClient<NodedevProgram>;

  constructor(readonly conn: DaemonConnection<NodedevProgram>) {
    this.api = conn.api;
  }

  /**
   * Subscribes this connection to device events and yields each one as it arrives, until the
   * connection closes or the caller stops iterating. One reader per connection.
   */
  async events(): Promise<AsyncIterableIterator<NodeDeviceEvent>> {
    await this.api.subscribeEvents({});
    const source = this.conn.events()[Symbol.asyncIterator]();
    const iter: AsyncIterableIterator<NodeDeviceEvent> = {
      next: async () => {
        for (;;) {
          const r = await source.next();
          if (r.done === true) return { value: undefined, done: true };
          if (r.value.prog === nodedevProgram.name && r.value.name === 'device' && isDeviceEvent.check(r.value.body)) return { value: r.value.body, done: false };
        }
      },
      return: async () => {
        await source.return?.();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iter,
    };
    return iter;
  }

  close(): void {
    this.conn.close();
  }
}

/** Connects to virtnodedevd: `nodedev:///system`, `nodedev:///system?root=DIR`, or the host of any virtq URI. */
export async function connectNodeDev(uri?: string, opts: DaemonConnectOptions & { uid?: number } = {}): Promise<NodeDevClient> {
  const env = opts.env ?? process.env;
  const chosen = uriForProgram(nodedevProgram.name, uri ?? resolveDefaultUri({ env, ...(opts.uid === undefined ? {} : { uid: opts.uid }) }), env);
  return new NodeDevClient(await connectDaemon(nodedevProgram, chosen, opts));
}
