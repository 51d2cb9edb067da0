// Dialling a resolved unix socket: NO_CONNECT names the socket and says what is probably not
// running. The CLI's fast path gives the very same error without this module (cli/fast-call.ts's
// connectError, held equal to it by test/unit/cli/fast-call.test.ts).
import { RpcClient } from '../protocol/client.js';
import type { Clock } from '../protocol/clock.js';
import { VirtqError } from '../protocol/errors.js';
import type { ResolvedSocket } from './resolve.js';

export { DEFAULT_CALL_TIMEOUT_MS } from './call-timeout.js';

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
