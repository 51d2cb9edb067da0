// Dialling a host daemon's local unix socket, and the NO_CONNECT error that names the daemon and
// the URI when nobody answers. Its own module (no catalogue, no ssh or TLS) so the CLI's lean entry
// for vol-upload/vol-download (cli/transfer-main.ts) fails with connectDaemon's own words.
import { RpcClient, type RpcClientOptions } from '../protocol/client.js';
import { VirtqError } from '../protocol/errors.js';

/** Connects to the daemon `daemon` on `socket` (the local socket `uri` names); waitMs > 0 retries while nothing answers. */
export async function dialDaemonSocket(socket: string, daemon: string, uri: string, opts: RpcClientOptions & { waitMs?: number }): Promise<RpcClient> {
  const waitMs = opts.waitMs ?? 0;
  try {
    return waitMs > 0 ? await RpcClient.connectWithRetry(socket, { ...opts, deadlineMs: waitMs }) : await RpcClient.connect(socket, opts);
  } catch (err) {
    const e = VirtqError.from(err);
    if (e.code !== 'NO_CONNECT') throw e;
    const waited = waitMs > 0 ? ` within ${Math.round(waitMs / 1000)} s` : '';
    throw new VirtqError('NO_CONNECT', `${e.message}${waited} (is ${daemon} running for ${uri}?)`, { details: { socket, daemon }, cause: err });
  }
}
