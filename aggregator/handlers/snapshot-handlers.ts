// virtqemud's side of the per-VM snapshot procedures: they go on to the VM's shim (the proxy), and
// around that virtqemud keeps what only it has. An external (disk-only) snapshot moves the disks
// onto overlays: the persistent definition follows, so a restart boots from the overlays; of a
// shut-off VM it is taken here (offline-snapshot.ts).
// Forgetting a snapshot's metadata (--metadata) needs no QEMU, so it works on a VM that is shut off,
// and reverting a shut-off VM to a disk-only snapshot is refused saying what to do instead.
import { VirtqError, normalizeDefinition, virtqProgram, type CallContext, type Fallback, type Handlers, type Layout, type NormalizedDefinition, type SnapshotInfo, type VirtqProgram } from '../../protocol/index.js';
import { SnapshotStore, externalRevertRefused } from '../../drivers/hypervisor/qemu/snapshot-store.js';
import { isActive, type DomainRegistry } from '../registry.js';
import type { DefinitionStore } from '../definitions.js';
import { offlineExternal, type OverlayMaker } from './offline-snapshot.js';

/** What these handlers need of virtqemud. */
export interface SnapshotHostDeps {
  registry: DomainRegistry;
  store: DefinitionStore;
  layout: Layout;
  /** The proxy to the VM's shim (proxy.ts). */
  forward: Fallback;
  /** Makes a shut-off VM's overlays. */
  makeOverlay: OverlayMaker;
  now(): number;
}

/** `def` with the disks of external snapshot `snap` on their overlays (a volume disk on its new volume). */
export function definitionOnOverlays(def: NormalizedDefinition, snap: Pick<SnapshotInfo, 'disks'>): NormalizedDefinition {
  const byTarget = new Map(snap.disks.map((d) => [d.target, d]));
  return {
    ...def,
    disks: def.disks.map((disk) => {
      const s = byTarget.get(disk.target);
      if (s?.overlay === undefined) return disk;
      const { path: _p, source: _s, ...rest } = disk;
      return { ...rest, format: 'qcow2', ...(s.overlaySource === undefined ? { path: s.overlay } : { source: s.overlaySource }) };
    }),
  };
}

/** The snapshot procedures virtqemud wraps around the proxy. */
export function snapshotHostHandlers(d: SnapshotHostDeps): Handlers<VirtqProgram> {
  const forward = <T>(proc: string, args: unknown, ctx: CallContext): Promise<T> => d.forward(virtqProgram, proc, args, ctx) as Promise<T>;
  return {
    snapshotCreate: async (args, ctx) => {
      const off = d.registry.require(args.name);
      if (args.diskOnly === true && !isActive(off) && off.starting !== true && off.definition !== undefined) {
        return offlineExternal({ ...d, state: d.layout.state, onOverlays: definitionOnOverlays }, off, off.definition, args.snapshot);
      }
      const info = await forward<SnapshotInfo>('snapshotCreate', args, ctx);
      const r = d.registry.get(args.name);
      if (info.kind !== 'external' || r?.persistent !== true || r.definition === undefined) return info;
      const def = normalizeDefinition(definitionOnOverlays(r.definition, info), () => r.uuid);
      try {
        await d.store.save(def);
      } catch (err) {
        throw new VirtqError('OPERATION_FAILED', `snapshot "${info.name}" was taken and VM "${r.name}" runs on its overlays, but its persistent definition could not be saved (${VirtqError.from(err).message}); define it again with its disks on the overlays (virtq snapshot-info ${r.name} ${info.name} lists them)`, { cause: err });
      }
      d.registry.defined(r, def);
      return info;
    },
    snapshotDelete: async (args, ctx) => {
      if (args.metadata !== true) return forward('snapshotDelete', args, ctx);
      const r = d.registry.require(args.name);
      const store = new SnapshotStore(d.layout.state, r.name);
      await store.get(args.snapshot);
      await store.remove(args.snapshot);
      return {};
    },
    snapshotRevert: async (args, ctx) => {
      const r = d.registry.require(args.name);
      if (!isActive(r)) {
        const snap = await new SnapshotStore(d.layout.state, r.name).get(args.snapshot);
        if (snap.kind === 'external') throw externalRevertRefused(r.name, snap, r.state);
      }
      return forward('snapshotRevert', args, ctx);
    },
  };
}
