// Which disks deleting an external snapshot merges, checked before anything changes: the snapshot
// must be the top of every chain it made (the VM's disk uses its overlay now) and have no child in
// the metadata tree. Used by the shim (running VM) and virtqemud (shut-off VM) alike.
import { VirtqError } from '../../../protocol/errors.js';
import type { SnapshotDisk, SnapshotMeta, VolumeRef } from './snapshot-store.js';

/** A disk as the VM has it now: a file, or a volume (a running VM's volume disk has both). */
export interface DiskNow {
  target: string;
  path?: string;
  source?: VolumeRef;
}

/** One disk to merge: its overlay into the image under it (`path`). */
export type CommitDisk = SnapshotDisk & { overlay: string };

const sameVolume = (a: VolumeRef | undefined, b: VolumeRef | undefined): boolean => a !== undefined && b !== undefined && a.pool === b.pool && a.volume === b.volume;

/** True when `disk` uses `s`'s overlay now. */
export function onOverlay(disk: DiskNow, s: CommitDisk): boolean {
  return s.overlaySource !== undefined ? sameVolume(disk.source, s.overlaySource) : disk.source === undefined && disk.path === s.overlay;
}

/**
 * The disks of external snapshot `snap` to merge, or OPERATION_INVALID saying which snapshot to
 * delete first (or why the chain is no longer the snapshot's). `all` is every snapshot of the VM.
 */
export function commitPlan(vm: string, snap: SnapshotMeta, all: readonly SnapshotMeta[], disks: readonly DiskNow[]): CommitDisk[] {
  const refuse = (why: string, details: Record<string, unknown>): VirtqError =>
    new VirtqError('OPERATION_INVALID', `cannot delete disk-only snapshot "${snap.name}" of VM "${vm}": ${why}`, { details: { snapshot: snap.name, ...details } });
  const children = all.filter((s) => s.parent === snap.name).map((s) => s.name);
  const [first] = children;
  if (first !== undefined) {
    throw refuse(`snapshot${children.length > 1 ? 's' : ''} ${children.map((c) => `"${c}"`).join(', ')} ${children.length > 1 ? 'were' : 'was'} taken after it and depend${children.length > 1 ? '' : 's'} on its overlays; delete "${first}" first (or this one with --metadata, which keeps every image)`, { children });
  }
  const plan = snap.disks.filter((s): s is CommitDisk => s.overlay !== undefined);
  for (const s of plan) {
    const now = disks.find((d) => d.target === s.target);
    if (now === undefined) throw refuse(`its disk ${s.target} is no longer attached; delete it with --metadata (its overlay ${s.overlay} stays)`, { target: s.target });
    if (!onOverlay(now, s)) {
      const uses = now.source === undefined ? now.path ?? '?' : `volume ${now.source.pool}/${now.source.volume}`;
      const above = all.find((o) => o.disks.some((d) => d.target === s.target && d.overlay !== undefined && onOverlay(now, d as CommitDisk)));
      const hint = above === undefined ? '' : `; delete snapshot "${above.name}" first`;
      throw refuse(`disk ${s.target} uses ${uses}, not the snapshot's overlay ${s.overlay}, so the overlay is not the top of its chain${hint}`, { target: s.target, uses });
    }
  }
  return plan;
}
