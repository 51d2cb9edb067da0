// When a fleet member runs its sync (claim every local VM, release every claim of this host that
// no local VM holds) besides at a join (docs/decisions/0024, "Stale claims"). An etcd call that
// failed may still land later — a Txn the etcd3 client retried on another member after a
// DEADLINE_EXCEEDED, or one a paused member proposes when it resumes — after the release that
// should have undone it, so a claim can appear (or vanish) with nothing on this host left to
// notice. Hence: at every heartbeat for a while after any failed etcd call, and in any case
// every period, because a paused member may resume long after that window.
import type { Clock } from '../../protocol/index.js';

/** How often the sync runs without cause, and how long it repeats after a failed etcd call. */
export interface SyncTiming {
  periodMs: number;
  afterFailureMs: number;
}

/** The fleet default: every 10 s (half the 20 s a fleet tool may wait for claims to settle), and for 10 s after a failure. */
export const SYNC_TIMING: SyncTiming = { periodMs: 10_000, afterFailureMs: 10_000 };

/** One member's sync schedule. */
export class SyncSchedule {
  private repeatUntil = 0;
  private nextAt: number;

  constructor(private readonly clock: Pick<Clock, 'monotonic'>, private readonly timing: SyncTiming = SYNC_TIMING) {
    this.nextAt = clock.monotonic() + timing.periodMs;
  }

  /** An etcd call's outcome is unknown (it failed): sync at each heartbeat for the window from now. */
  uncertain(): void {
    this.repeatUntil = this.clock.monotonic() + this.timing.afterFailureMs;
  }

  /** Whether the heartbeat now due should sync. */
  due(): boolean {
    const now = this.clock.monotonic();
    return now < this.repeatUntil || now >= this.nextAt;
  }

  /** A sync completed: the next one without cause is a period from now. */
  synced(): void {
    this.nextAt = this.clock.monotonic() + this.timing.periodMs;
  }
}
