// virtqemud's side of the per-VM snapshot procedures: they go on to the VM's shim (the proxy), and
// around that virtqemud keeps what only it has. An external (disk-only) snapshot moves the disks
// onto overlays: the persistent definition follows, so a restart boots from the overlays; of a
// shut-off VM it is taken here (offline-snapshot.ts; a volume's overlay through virtstoraged). Deleting one merges the overlays back and
// the persistent definition returns to the images under them; of a shut-off VM here (offline-delete.ts).
// Forgetting a snapshot's metadata (--metadata) needs no QEMU, so it works on a VM that is shut off,
// and reverting a shut-off VM to a disk-only snapshot is refused saying what to do instead.
import { VirtqError, normalizeDefinition, virtqProgram, type CallContext, type Fallback, type Handlers, type Layout, type NormalizedDefinition, type SnapshotInfo, type VirtqProgram } from '../../protocol/index.js';
import { SnapshotStore, externalRevertRefused } from '../../drivers/hypervisor/qemu/snapshot-store.js';
import { isActive, type DomainRegistry } from '../registry.js';
import type { DefinitionStore } from '../definitions.js';
import { offlineExternal, type OverlayMaker } from './offline-snapshot.js';
import { offlineMerge, type OverlayCommitter } from './offline-delete.js';
import type { SnapshotVolumes } from '../storage-volumes.js';
import { onOverlay, type CommitDisk } from '../../drivers/hypervisor/qemu/commit-plan.js';

/** What these handlers need of virtqemud. */
export interface SnapshotHostDeps {
  registry: DomainRegistry;
  store: DefinitionStore;
  layout: Layout;
  /** The proxy to the VM's shim (proxy.ts). */
  forward: Fallback;
  /** Makes a shut-off VM's overlays. */
  makeOverlay: OverlayMaker;
  /** Merges a shut-off VM's overlay into its backing file. */
  commitOverlay: OverlayCommitter;
  /** virtstoraged, for a shut-off VM's volume overlays. */
  volumes: SnapshotVolumes;
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

/**
 * `def` with each disk still on an overlay of `plan` back on the image under it (a volume disk on
 * its volume), in the format recorded with the snapshot (`format` absent: the disk's own).
 */
export function definitionOnBase(def: NormalizedDefinition, plan: readonly CommitDisk[], formats: ReadonlyMap<string, string> = new Map()): NormalizedDefinition {
  return {
    ...def,
    disks: def.disks.map((disk) => {
      const s = plan.find((p) => p.target === disk.target);
      if (s === undefined || !onOverlay(disk, s)) return disk;
      const { path: _p, source: _s, ...rest } = disk;
      const format = s.format ?? formats.get(s.target) ?? rest.format;
      return { ...rest, format: format === 'qcow2' ? 'qcow2' : 'raw', ...(s.source === undefined ? { path: s.path } : { source: s.source }) };
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
      const r = d.registry.require(args.name);
      const store = new SnapshotStore(d.layout.state, r.name);
      const snap = await store.get(args.snapshot);
      if (args.metadata === true) {
        await store.remove(args.snapshot);
        return {};
      }
      if (snap.kind !== 'external') return forward('snapshotDelete', args, ctx);
      if (!isActive(r) && r.starting !== true && r.definition !== undefined) {
        await offlineMerge({ ...d, state: d.layout.state, onBase: definitionOnBase }, r, r.definition, snap, args.bandwidth);
        return {};
      }
      await forward('snapshotDelete', args, ctx);
      await baseAgain(d, args.name, snap, (name) => forward<{ disks?: Array<{ target: string; format?: string }> }>('getDefinition', { name }, ctx));
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

// After a running VM's snapshot was merged, its persistent definition follows it back onto the
// images; a format the snapshot did not record (taken before 0.4) is the running VM's.
async function baseAgain(d: SnapshotHostDeps, name: string, snap: SnapshotInfo, live: (name: string) => Promise<{ disks?: Array<{ target: string; format?: string }> }>): Promise<void> {
  const r = d.registry.get(name);
  if (r?.persistent !== true || r.definition === undefined) return;
  const plan = snap.disks.filter((s): s is CommitDisk => s.overlay !== undefined);
  const formats = plan.some((s) => s.format === undefined)
    ? new Map((await live(name)).disks?.map((x) => [x.target, x.format ?? 'raw']) ?? []) : new Map<string, string>();
  const def = normalizeDefinition(definitionOnBase(r.definition, plan, formats), () => r.uuid);
  try {
    await d.store.save(def);
  } catch (err) {
    throw new VirtqError('OPERATION_FAILED', `snapshot "${snap.name}" was merged and VM "${name}" runs on the images under its overlays, but its persistent definition could not be saved (${VirtqError.from(err).message}); define it again with its disks on ${plan.map((s) => s.path).join(', ')}`, { cause: err });
  }
  d.registry.defined(r, def);
}
