// Logging of lasting claim conflicts (a local VM whose name or UUID another host holds). The sync
// finds them again at every run (every 10 s, or every heartbeat after a failed etcd call), and
// logging each finding buried the log under one line per VM every 10 s. A conflict is logged when
// it starts and when it ends, and at most once a minute while it lasts (with how long it has).
import type { Clock, Logger } from '../../protocol/index.js';

/** One conflict a sync found, with the reason the claim was refused. */
export interface FoundConflict {
  name: string;
  uuid: string;
  heldBy: string;
  message: string;
}

/** How often a lasting conflict is logged again. */
export const CONFLICT_RELOG_MS = 60_000;

interface Open { since: number; loggedAt: number }

/** The conflicts of one fleet member, as its syncs find them. */
export class ConflictLog {
  private readonly open = new Map<string, Open>();

  constructor(private readonly clock: Pick<Clock, 'monotonic'>, private readonly log: Logger, private readonly relogMs = CONFLICT_RELOG_MS) {}

  /** The complete set of conflicts one sync found (call only for a sync that ran to its end). */
  found(conflicts: readonly FoundConflict[]): void {
    const now = this.clock.monotonic();
    const seen = new Set<string>();
    for (const c of conflicts) {
      const key = keyOf(c);
      seen.add(key);
      const o = this.open.get(key);
      if (o === undefined) {
        this.open.set(key, { since: now, loggedAt: now });
        this.log.error({ name: c.name, uuid: c.uuid, heldBy: c.heldBy, err: c.message, msgId: 'CLUSTER_CLAIM_CONFLICT' }, 'a local VM\'s name or UUID is held by another host; left as it is');
      } else if (now - o.loggedAt >= this.relogMs) {
        o.loggedAt = now;
        this.log.error({ name: c.name, uuid: c.uuid, heldBy: c.heldBy, err: c.message, lastingMs: now - o.since, msgId: 'CLUSTER_CLAIM_CONFLICT' }, 'a local VM\'s name or UUID is still held by another host; left as it is');
      }
    }
    for (const [key, o] of this.open) {
      if (seen.has(key)) continue;
      this.open.delete(key);
      const [name = '', uuid = '', heldBy = ''] = key.split('\0');
      this.log.info({ name, uuid, heldBy, lastedMs: now - o.since, msgId: 'CLUSTER_CLAIM_CONFLICT_ENDED' }, 'a claim conflict of a local VM has ended');
    }
  }
}

// A conflict is the same while the same host holds the same VM's claim.
const keyOf = (c: Pick<FoundConflict, 'name' | 'uuid' | 'heldBy'>): string => `${c.name}\0${c.uuid}\0${c.heldBy}`;
