// Dialling a resolved unix socket: NO_CONNECT names the socket and says what is probably not
// running. Shared by connect() and the CLI's fast path (cli/fast-main.ts), which must print the
// very same error, and kept free of the library's heavier modules for the latter.
import { RpcClient } from '../protocol/client.js';
import type { Clock } from '../protocol/clock.js';
import { VirtqError } from '../protocol/errors.js';
import type { ResolvedSocket } from './resolve.js';

/** The deadline of a call that sets none, in ms (ConnectOptions.timeoutMs). */
export const DEFAULT_CALL_TIMEOUT_MS = 120_000;

/** Connects to `resolved`'s socket; a NO_CONNECT error gets the resolution's hint appended. */
export async function dialResolved(resolved: ResolvedSocket, clock: Clock, timeoutMs: number): Promise<RpcClient> {
  try {
    return await RpcClient.connect(resolved.socket, { clock, defaultTimeoutMs: timeoutMs });
  } catch (err) {
    const e = VirtqError.from(err);
    if (e.code !== 'NO_CONNECT') throw e;
    throw new VirtqError('NO_CONNECT', `${e.message} (${resolved.hint})`, { details: { socket: resolved.socket }, cause: err });
  }
}
