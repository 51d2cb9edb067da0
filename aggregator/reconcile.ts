// A cheap periodic relist, as containerd does: catches what events missed. For each VM whose
// shim is not connected it reads /proc (is QEMU alive?) and the shim's state file (did a
// successor or the shim itself record a newer state?). O(VMs) file reads, no RPC.
import { ACTIVE_STATES, isLive, type Clock, type Logger } from '../protocol/index.js';
import { isLiveQemu, processStands } from '../drivers/host/proc.js';
import { readRuntimeState, type RuntimeState } from '../daemon/runtime-state.js';
import { writeVmEnd } from './discovery.js';
import type { Events } from './events.js';
import { isActive, type DomainRecord, type DomainRegistry } from './registry.js';

/** What a reconciliation pass is given besides the registry and the events; the callbacks are awaited. */
export interface ReconcileHooks {
  clock: Pick<Clock, 'now'>;
  /** Told of each VM it finds stopped, with its shim's state file as read (virtqemud settles a migration's owed --undefine-source there). */
  ended?: (r: DomainRecord, saved: RuntimeState | undefined) => Promise<void>;
  /** Told of a stopped VM whose shim, adopted at recovery, has gone since without registering: as when a shim's registry connection closes. */
  shimGone?: (r: DomainRecord) => Promise<void>;
}

/** One reconciliation pass. */
export async function reconcile(registry: DomainRegistry, events: Events, log: Logger, hooks: ReconcileHooks): Promise<void> {
  const { clock, ended } = hooks;
  for (const r of [...registry.all()]) {
    if (r.starting || r.shim === undefined || (r.shim.conn !== undefined && !r.shim.conn.conn.closed)) continue;
    const stateFile = r.shim.stateFile;
    const saved = await readRuntimeState(stateFile);
    const qemuLive = r.qemuPid !== undefined && isLiveQemu(r.qemuPid, r.uuid);
    if (isActive(r) && !qemuLive) {
      // The state file has the final word when the shim lived to record the end; else it was lost.
      const recorded = saved !== undefined && !ACTIVE_STATES.has(saved.state) ? saved : undefined;
      // A stop the shim journaled before it died is the VM's real end: told as journaled, not again.
      const journaled = events.journal.recordedStop(r.name, r.uuid, r.shim.info?.qemuStartedAt ?? 0);
      registry.stopped(r, journaled?.state ?? recorded?.state ?? 'crashed', journaled?.reason ?? recorded?.reason ?? 'lost');
      registry.shimReachable(r, false);
      log.warn({ name: r.name, state: r.state, reason: r.reason, msgId: 'RECONCILED' }, 'VM found stopped by reconciliation');
      if (journaled !== undefined) events.replayed(journaled);
      else events.lifecycle(r, r.state === 'crashed' ? 'crashed' : 'stopped');
      registry.released(r);
      // A transient VM goes, as when its shim lets go, if its end is known: recorded in the state
      // file, or journaled (a shim whose VM migrated away removes its state file, and may end before
      // it re-registered with a restarted virtqemud). If not, the listing is the only record: it
      // stays listed (as after a restart) until undefined.
      if (!r.persistent && (recorded !== undefined || (journaled !== undefined && (await endInStateFile(r, stateFile, saved, clock, log))))) registry.remove(r);
      await ended?.(r, saved);
      continue;
    }
    // A shim found at recovery that has not re-registered: is it still there?
    const shim = r.shim;
    const up = await isLive(shim.socket, 500);
    if (up !== r.shimUp) {
      registry.shimReachable(r, up);
      if (!up) events.lifecycle(r, 'shim-lost');
    }
    // Its VM had stopped already (a migration's source, adopted as it finished: cluster chaos seed
    // 32508), and the shim has ended without registering, so no registry connection closes to say
    // so: gone for good, as if one had. Else a transient VM that left stayed listed, shim lost.
    // (Not if another shim took the record over while the probe waited.)
    if (!up && r.shim === shim && !isActive(r) && !processStands(shim.pid)) await hooks.shimGone?.(r);
  }
}

/**
 * Puts a journaled end in the VM's state file when its shim could not before it went (a full disk:
 * chaos seed 32209). That file is a transient VM's record once it is no longer listed, and a stale
 * "running" in it would have the next virtqemud list the VM again, as lost while it was down. True
 * when the file now says how the VM ended, or there is no file of this VM to say otherwise (a shim
 * whose VM migrated away removes its own); false when the write failed, and the listing stays the
 * record.
 */
async function endInStateFile(r: DomainRecord, file: string, saved: RuntimeState | undefined, clock: Pick<Clock, 'now'>, log: Logger): Promise<boolean> {
  if (saved === undefined || saved.uuid !== r.uuid) return true;
  try {
    await writeVmEnd(file, { ...saved, qemuPid: undefined, state: r.state, reason: r.reason, updatedAt: clock.now() }, log);
    return true;
  } catch (err) {
    log.error({ err, name: r.name, msgId: 'VM_END_NOT_RECORDED' }, 'cannot record a VM\'s end in its state file; it stays listed until undefined');
    return false;
  }
}
