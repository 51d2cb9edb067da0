// The host procedures only virtqemud serves: the listing, lookups, persistent definitions,
// starting VMs (each in its own detached shim) and autostart.
import { unlink } from 'node:fs/promises';
import { VirtqError, normalizeDefinition, randomUuid, shimStateFile, type Clock, type DomainRow, type Handlers, type IncomingState, type Layout, type NormalizedDefinition, type VirtqProgram } from '../../protocol/index.js';
import { findLiveQemu, isLiveQemu, processStart, ticksSinceBoot } from '../../drivers/host/proc.js';
import { readRuntimeState } from '../../daemon/runtime-state.js';
import type { DefinitionStore } from '../definitions.js';
import type { Events } from '../events.js';
import { eventHistory } from '../../daemon/journal-events.js';
import { isActive, toRow, type DomainRecord, type DomainRegistry } from '../registry.js';
import type { ShimSpawner, ShimStarted } from '../spawner.js';
import { untilListed } from '../listed-wait.js';
import { reapOrphanQemu } from '../reap-orphan.js';
import { adoptLive } from '../discovery.js';
import type { WorkerSlots } from '../../daemon/worker-slots.js';
import { checkSnapshotsOnUndefine, removeManagedSave, startFromManagedSave } from './save-handlers.js';
import type { ClusterGate } from '../cluster/etcd-membership.js';
import type { NameTurns } from '../name-turns.js';

/** What the host handlers work with. */
export interface HostDeps {
  registry: DomainRegistry;
  store: DefinitionStore;
  spawner: ShimSpawner;
  events: Events;
  /** Where the shims' state files are. */
  layout: Layout;
  /** Shim starts run in these slots (the admin limit workerConcurrency); the rest wait, listed as starting. */
  workers: Pick<WorkerSlots, 'run'>;
  /** Bounds the wait for a started shim's last updates (aggregator/listed-wait.ts). */
  clock: Clock;
  /** The etcd fleet this host belongs to (--cluster): names and UUIDs are claimed there too. */
  cluster?: ClusterGate;
  /**
   * define, undefine and setAutostart of one name run one at a time, each on the record and the
   * files as the previous one left them: interleaved at their awaits, an undefine could drop the
   * record a define is about to complete, leaving a definition on disk that is not listed.
   * virtqemud's own undefines (a migration's owed --undefine-source) take the same turns.
   */
  turns: NameTurns;
}

/** `name`'s record and its persistent definition; `was`: the record an earlier check found, which must still be the one listed. */
function definedRecord(registry: DomainRegistry, name: string, was?: DomainRecord): DomainRecord & { definition: NormalizedDefinition } {
  const r = registry.require(name);
  if (was !== undefined && r !== was) throw new VirtqError('NO_DOMAIN', `VM "${name}" was undefined while it was being started`);
  if (r.definition === undefined) throw new VirtqError('OPERATION_INVALID', `VM "${name}" has no persistent definition to start`);
  return r as DomainRecord & { definition: NormalizedDefinition };
}

/** Starts the shim of `record` from `def` (or from `incoming`: a save image, a migration); the record holds the name while it starts. */
export async function startShim(d: HostDeps, record: DomainRecord, def: NormalizedDefinition, paused: boolean, incoming?: IncomingState, started?: (s: ShimStarted) => void): Promise<DomainRow> {
  // A caller that awaited since it found the record (a save image read) may hold one undefined meanwhile: never started unlisted.
  if (d.registry.get(record.name) !== record) throw new VirtqError('NO_DOMAIN', `VM "${record.name}" was undefined while it was being started`);
  if (isActive(record)) throw new VirtqError('OPERATION_INVALID', `VM "${record.name}" is already ${record.starting ? 'starting' : record.state}`);
  d.registry.startBegun(record);
  // No process this start's shim spawns is older than this: the call, or a warm shim's own spawn (its QEMU launcher is forked while it idles).
  let begun = ticksSinceBoot();
  try {
    d.cluster?.requireAvailable(`start VM "${record.name}"`);
    // In a fleet the name is (re)confirmed as this host's right before its QEMU may run.
    await d.cluster?.claim(record.name, record.uuid);
    // The shim reports QEMU's pid (registration and updates, sent before its ready line): its record, not this one.
    const up = await d.workers.run(() => d.spawner.start(def, { paused, ...(incoming === undefined ? {} : { incoming }), spawnedSince: (ticks) => { begun = Math.min(begun, ticks); } }));
    // The ready line may come before the updates it counts are handled here: the reply waits for them.
    await untilListed(d.registry, record, up, d.clock);
    started?.(up);
    return toRow(record);
  } catch (err) {
    const e = VirtqError.from(err);
    const pid = record.qemuPid !== undefined && isLiveQemu(record.qemuPid, record.uuid) ? record.qemuPid : findLiveQemu(record.uuid);
    if (pid !== undefined) {
      // A shim that never registered is gone to this start: a requested start execs QEMU before it
      // registers (decision 0026, session 20). A registered one's close may not have been seen yet
      // when the spawner saw it exit.
      const shim = record.shim;
      const shimGone = shim === undefined || shim.conn === undefined || shim.conn.conn.closed || e.details?.['shimExited'] === true;
      const saved = shimGone ? await readRuntimeState(shimStateFile(d.layout, record.name)) : undefined;
      // A shim that died after spawning QEMU leaves a running VM: when its state file names it,
      // it stays listed with its shim lost (as any VM whose shim died), holding its name.
      if (!shimGone || (saved?.uuid === record.uuid && saved.qemuPid === pid)) {
        if (shim === undefined && saved !== undefined) adoptLive(d.registry, record, saved, false, shimStateFile(d.layout, record.name));
        d.registry.qemuFound(record, pid);
        if (shimGone) d.registry.shimReachable(record, false);
        throw new VirtqError(e.code, `${e.message}; its QEMU (pid ${pid}) runs on: VM "${record.name}" is listed with its shim lost (re-attach with: virtq-shim --attach ${record.name})`, { cause: err });
      }
      // No state file names it: nothing could ever take it over or find it after a restart.
      // Stopped by a shim asked to reap it, if this start spawned it (an older one is not this
      // start's to stop); virtqemud itself never signals a QEMU.
      if ((processStart(pid) ?? 0) >= begun) {
        const how = await reapOrphanQemu(d.spawner, record, pid);
        err = new VirtqError(e.code, `${e.message}; its QEMU (pid ${pid}), which no state file records, ${how}`, { cause: err });
      }
    }
    d.registry.startFailed(record);
    if (!record.persistent && (record.shim === undefined || record.shim.conn === undefined)) d.registry.remove(record);
    throw err;
  } finally {
    d.registry.startEnded(record);
  }
}

/**
 * Undefines `name` (the `undefine` call, run in its name's turn there): a defined VM loses its
 * definition, a stopped one its record. Also run by virtqemud's start, before it serves, for a
 * migration's --undefine-source its shim could not finish (discovery.ts, RecoveryReport.movedAway).
 */
export async function undefineVm(d: HostDeps, name: string, snapshotsMetadata: boolean): Promise<void> {
  const { registry, store, events } = d;
  const r = registry.require(name);
  if (r.persistent) await checkSnapshotsOnUndefine(d, name, snapshotsMetadata);
  if (!r.persistent && isActive(r)) throw new VirtqError('OPERATION_INVALID', `VM "${name}" is transient and ${r.starting ? 'starting' : r.state}: nothing to undefine (destroy it instead)`);
  if (r.persistent) await store.remove(name);
  if (r.persistent) await removeManagedSave(d, name);
  // A stopped VM's state file is the record of its end: undefining forgets it, or a restart
  // would list the VM again. (The name is still claimed, so no new shim writes it meanwhile.)
  if (!isActive(r)) {
    await unlink(shimStateFile(d.layout, name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw new VirtqError('OPERATION_FAILED', `cannot remove the state file of "${name}": ${err.message}`);
    });
  }
  registry.undefined(r);
  events.lifecycle(r, 'undefined');
  if (!isActive(r)) registry.remove(r);
}

/** Builds the host handlers. */
export function hostHandlers(d: HostDeps): Handlers<VirtqProgram> {
  const { registry, store, events } = d;
  const inTurn = <T>(name: string, fn: () => Promise<T>): Promise<T> => d.turns.run(name, fn);
  return {
    listDomains: (filter) => ({ domains: registry.list(filter) }),
    lookupByName: ({ name }) => toRow(registry.require(name)),
    lookupByUUID: ({ uuid }) => {
      const r = registry.getByUuid(uuid);
      if (r === undefined) throw new VirtqError('NO_DOMAIN', `no VM with UUID ${uuid}`);
      return toRow(r);
    },
    define: async ({ definition }) => {
      const def = normalizeDefinition(definition, randomUuid);
      return inTurn(def.name, async () => {
        d.cluster?.requireAvailable(`define VM "${def.name}"`);
        let r = registry.get(def.name);
        const fresh = r === undefined;
        if (r === undefined) {
          const claimed = registry.claim({ name: def.name, uuid: def.uuid, persistent: true, autostart: false, definition: def, state: 'shutoff', reason: 'defined' });
          // The fleet-wide claim completes the local one; losing it undoes the local one.
          await d.cluster?.claim(def.name, def.uuid).catch((err: unknown) => { registry.remove(claimed); throw err; });
          r = claimed;
        } else if (definition.uuid === undefined || r.uuid !== def.uuid) {
          throw new VirtqError('NAME_IN_USE', `VM name "${def.name}" is already taken (uuid ${r.uuid}); give that uuid to replace its definition`);
        }
        const record = r;
        const before = { persistent: record.persistent, definition: record.definition };
        // Persistent before the write: a transient VM whose shim lets go meanwhile keeps its record.
        registry.defined(record, def);
        try {
          await store.save(def);
        } catch (err) {
          if (fresh) registry.remove(record);
          else registry.definitionRestored(record, before);
          throw err;
        }
        events.lifecycle(record, 'defined');
        return toRow(record);
      });
    },
    undefine: ({ name, snapshotsMetadata }) => inTurn(name, async () => {
      await undefineVm(d, name, snapshotsMetadata === true);
      return {};
    }),
    create: async ({ definition, paused }) => {
      const def = normalizeDefinition(definition, randomUuid);
      d.cluster?.requireAvailable(`create VM "${def.name}"`);
      const record = registry.claim({ name: def.name, uuid: def.uuid, persistent: false, autostart: false, definition: undefined, state: 'shutoff', reason: 'created' });
      return startShim(d, record, def, paused === true);
    },
    start: async ({ name, paused }) => {
      const r = definedRecord(registry, name);
      const fromSave = await startFromManagedSave(d, (rec, def, p, f) => startShim(d, rec, def, p, f), r, paused === true);
      // The look for a save image awaited: an undefine that ran meanwhile is seen here (chaos seed
      // 27040 found a start going on with the definition it had just lost).
      return fromSave ?? startShim(d, r, definedRecord(registry, name, r).definition, paused === true);
    },
    setAutostart: ({ name, autostart }) => inTurn(name, async () => {
      const r = registry.require(name);
      if (!r.persistent) throw new VirtqError('OPERATION_INVALID', `VM "${name}" is transient; only defined VMs can autostart`);
      await store.setAutostart(name, autostart);
      registry.autostartSet(r, autostart);
      return {};
    }),
    subscribeEvents: (args, ctx) => {
      // A VM's journal outlives its record (undefined, forgotten): resuming one by name needs only the journal.
      if (args.name !== undefined && args.since === undefined) registry.require(args.name);
      return events.subscribe(ctx.client, args);
    },
    // Answered from the journal on disk: a VM whose shim is gone (stopped, or lost) still has its history.
    getEvents: ({ name, ...since }) => {
      const history = eventHistory(events.journal.dir(name), name, since);
      if (history.last === 0 && registry.get(name) === undefined) throw new VirtqError('NO_DOMAIN', `no VM named "${name}" and no event journal for that name`);
      return history;
    },
  };
}
