// QEMU's MIGRATION events as wake-ups for the migration's polls. A poll of query-migrate sees a
// new status up to one interval late (the switchover's pause waited on average half of the 20 ms
// bulk interval before the lease handover began), and every poll is a round trip through this shim
// and QEMU's main loop on cores the two QEMUs need while memory moves. With the events in, a
// status change wakes the waiting poll at once and the polls themselves become a slow fallback.
// An event that names the status a wait is for ends it (the destination's `completed` since session
// 23, the source's `pre-switchover` and `completed` since 24: QEMU is in that state when it sends
// it); any other asks query-migrate again now, or (a state on the way, at the source) nothing.
import type { Clock } from '../../protocol/index.js';

/** Fans MIGRATION events out to the one poll (source or destination side) waiting in this shim. */
export class MigrationWakeups {
  private waiters = new Set<() => void>();
  /** Counts MIGRATION events: a poll remembers it before its query, so an event that arrived while the answer was in flight still wakes it. */
  private seq = 0;
  /** The `status` of the last MIGRATION event (undefined before the first). */
  private status: string | undefined;

  /** Every monitor event of the VM's QEMU (the shim's event tap); only MIGRATION counts. */
  onEvent(event: Record<string, unknown>): void {
    if (event['event'] !== 'MIGRATION') return;
    this.seq++;
    const data = event['data'];
    const status = typeof data === 'object' && data !== null ? (data as Record<string, unknown>)['status'] : undefined;
    this.status = typeof status === 'string' ? status : undefined;
    const woken = [...this.waiters];
    this.waiters.clear();
    for (const wake of woken) wake();
  }

  /** A mark to pass to `nap`, taken before the query whose answer decides to wait. */
  mark(): number {
    return this.seq;
  }

  /** Whether QEMU has sent any MIGRATION event since `since` (the tap is wired and events flow). */
  seenSince(since: number): boolean {
    return this.seq > since;
  }

  /** The status the last MIGRATION event named. */
  lastStatus(): string | undefined {
    return this.status;
  }

  /** Resolves after `ms`, or at once when an event came after `since`, or at the next event. */
  nap(clock: Clock, ms: number, since: number): Promise<void> {
    if (this.seq !== since) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: { dispose(): void } | undefined;
      const done = (): void => {
        timer?.dispose();
        this.waiters.delete(done);
        resolve();
      };
      timer = clock.setTimeout(done, ms);
      this.waiters.add(done);
    });
  }
}
