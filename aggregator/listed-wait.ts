// virtqemud's side of a start's ready line (issue 15 target 1). A shim started with its start on
// stdin (--start-request) writes its last state updates and then its ready line without waiting
// for the updates' replies, and the line counts them. The start's reply waits here until this
// registry has received that many from the shim, so "the reply comes after the listing says
// running" still holds for virtqemud's callers, one round trip sooner.
import type { Clock } from '../protocol/index.js';
import type { DomainRecord, DomainRegistry } from './registry.js';
import type { ShimStarted } from './spawner.js';

/**
 * The shim wrote the updates before its ready line, so they are normally in virtqemud's socket
 * already and arrive in the same turn of its event loop or the next; this only bounds a
 * connection that stalls. A shim that goes ends the wait at once.
 */
export const LISTED_WAIT_MS = 5_000;

/** True once the registry shows what `up` (the ready line) reported, or nothing more can come from its shim. */
export function caughtUp(r: DomainRecord, up: ShimStarted): boolean {
  if (up.reports === undefined) return true; // the shim waited for its updates' replies itself
  const s = r.shim;
  if (s === undefined || s.pid !== up.shimPid || s.conn === undefined || s.conn.conn.closed) return true;
  return (s.reports ?? 0) >= up.reports;
}

/** Resolves true once `caughtUp`, false after `boundMs` (the reply then shows the listing as it is). */
export function untilListed(registry: DomainRegistry, r: DomainRecord, up: ShimStarted, clock: Clock, boundMs = LISTED_WAIT_MS): Promise<boolean> {
  if (caughtUp(r, up)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => {
      stop();
      resolve(false);
    }, boundMs);
    const stop = registry.watchShim(r, () => {
      if (!caughtUp(r, up)) return;
      stop();
      timer.dispose();
      resolve(true);
    });
  });
}
