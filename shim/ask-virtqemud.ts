// The calls a source shim makes after a migration has happened (the destination's define for
// --persistent, this host's undefine for --undefine-source) must not be lost to a moment's outage:
// a virtqemud killed and restarting, or, in a fleet, a host whose etcd lease lapsed while one member
// was away (cluster chaos seed 31511: the destination's define refused CLUSTER_UNAVAILABLE 50 ms
// before that host joined again, and the VM was then listed on two hosts). They are asked again,
// on a fresh connection each time, within a bound.
import { RpcClient, VirtqError, delay, typedClient, virtqProgram, type Clock, type TypedClient, type VirtqProgram } from '../protocol/index.js';

/**
 * Errors that pass: a virtqemud that is down, restarting or stopped (NO_CONNECT, CONNECTION_CLOSED,
 * TIMEOUT), or a fleet host without its etcd lease for the moment (CLUSTER_UNAVAILABLE).
 */
const PASSING: ReadonlySet<string> = new Set(['NO_CONNECT', 'CONNECTION_CLOSED', 'TIMEOUT', 'CLUSTER_UNAVAILABLE']);

/** How long one try may wait for its answer. */
const CALL_TIMEOUT_MS = 10_000;

/**
 * Runs `call` on the virtqemud at `socket` until it answers, fails with an error that does not
 * pass (PASSING), or `waitMs` has gone by; the answer, or the last error, is the result. `call` is
 * asked again after a lost answer, so it must be idempotent (a define of the same UUID, an undefine).
 */
export async function askVirtqemud<T>(socket: string, clock: Clock, waitMs: number, call: (api: TypedClient<VirtqProgram>) => Promise<T>): Promise<T> {
  const deadline = clock.monotonic() + waitMs;
  for (;;) {
    try {
      const rpc = await RpcClient.connectWithRetry(socket, { clock, deadlineMs: Math.max(0, deadline - clock.monotonic()), defaultTimeoutMs: CALL_TIMEOUT_MS });
      try {
        return await call(typedClient(virtqProgram, rpc));
      } finally {
        rpc.close();
      }
    } catch (err) {
      const e = VirtqError.from(err);
      if (!PASSING.has(e.code) || clock.monotonic() >= deadline) throw e;
      // connectWithRetry backs off within a try; this spaces out tries that reached a daemon.
      await delay(clock, 200);
    }
  }
}
