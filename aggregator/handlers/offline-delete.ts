// Deleting a disk-only external snapshot of a shut-off defined VM: no QEMU runs, so each overlay
// is merged into the image under it with qemu-img commit (the function virtqemud is given), then
// the persistent definition moves back onto those images, the metadata goes and so do the
// overlays (a volume's through virtstoraged). Until the definition is saved the VM stays on its overlays, which still read the same
// (a commit copies, it does not move), so a crash part-way loses nothing.
import { access, rm } from 'node:fs/promises';
import { runBound } from '../../drivers/host/dies-with-starter.js';
import { VirtqError, normalizeDefinition, type NormalizedDefinition } from '../../protocol/index.js';
import { SnapshotStore, type SnapshotMeta } from '../../drivers/hypervisor/qemu/snapshot-store.js';
import { commitPlan, type CommitDisk } from '../../drivers/hypervisor/qemu/commit-plan.js';
import { managedSaveFile } from '../../drivers/hypervisor/qemu/save-image-header.js';
import type { DomainRecord, DomainRegistry } from '../registry.js';
import type { DefinitionStore } from '../definitions.js';
import type { SnapshotVolumes } from '../storage-volumes.js';

/** Merges the qcow2 `overlay` into its backing file (at most `bytesPerSec` when given); answers that file's format. */
export type OverlayCommitter = (overlay: string, bytesPerSec?: number) => Promise<{ backingFormat: string }>;

/** An OverlayCommitter running `qemuImg info` and `qemuImg commit -d` (the overlay is removed after). */
export function qemuImgCommit(qemuImg: string): OverlayCommitter {
  return async (overlay, bytesPerSec) => {
    try {
      const info = JSON.parse(await runBound(qemuImg, ['info', '--output=json', overlay])) as { 'backing-filename-format'?: string };
      await runBound(qemuImg, ['commit', '-q', '-d', '-f', 'qcow2', ...(bytesPerSec === undefined ? [] : ['-r', String(bytesPerSec)]), overlay]);
      return { backingFormat: info['backing-filename-format'] ?? 'raw' };
    } catch (err) {
      throw new VirtqError('OPERATION_FAILED', `cannot merge overlay ${overlay} into its backing file: ${(err as Error).message}`, { cause: err });
    }
  };
}

/** What an offline delete needs of virtqemud. */
export interface OfflineDeleteDeps {
  registry: DomainRegistry;
  store: DefinitionStore;
  state: string;
  commitOverlay: OverlayCommitter;
  /** virtstoraged, which deletes a volume disk's overlay. */
  volumes: Pick<SnapshotVolumes, 'deleteVolume'>;
  /** `def` with the merged disks back on their images (snapshot-handlers.ts). */
  onBase(def: NormalizedDefinition, plan: readonly CommitDisk[]): NormalizedDefinition;
}

/** Deletes external snapshot `snap` of the shut-off persistent VM `r`, whose definition is `current`; `bandwidthMiB` caps each commit. */
export async function offlineMerge(d: OfflineDeleteDeps, r: DomainRecord, current: NormalizedDefinition, snap: SnapshotMeta, bandwidthMiB?: number): Promise<void> {
  const snaps = new SnapshotStore(d.state, r.name);
  const plan = commitPlan(r.name, snap, await snaps.list(), current.disks);
  if (await access(managedSaveFile(d.state, r.name)).then(() => true, () => false)) {
    throw new VirtqError('OPERATION_INVALID', `cannot delete disk-only snapshot "${snap.name}" of VM "${r.name}": it has a managed save image, whose memory expects its disks as they are; start it first, or remove the image (virtq managedsave-remove ${r.name})`);
  }
  const merged: CommitDisk[] = [];
  for (const s of plan) {
    try {
      const { backingFormat } = await d.commitOverlay(s.overlay, bandwidthMiB === undefined ? undefined : bandwidthMiB * 1024 * 1024);
      merged.push({ ...s, format: s.format ?? backingFormat });
    } catch (err) {
      const e = VirtqError.from(err);
      const done = merged.length === 0 ? '' : `; already merged (the guest sees no difference): ${merged.map((m) => m.overlay).join(', ')}`;
      throw new VirtqError(e.code, `cannot delete snapshot "${snap.name}" of VM "${r.name}": ${e.message}; the VM stays defined on its overlays and keeps the snapshot${done}`, { cause: err, details: { snapshot: snap.name } });
    }
  }
  const def = normalizeDefinition(d.onBase(current, merged), () => r.uuid);
  await d.store.save(def);
  d.registry.defined(r, def);
  await snaps.remove(snap.name);
  const left: string[] = [];
  for (const s of merged) {
    if (s.overlaySource === undefined) await rm(s.overlay, { force: true });
    else await d.volumes.deleteVolume(s.overlaySource.pool, s.overlaySource.volume).catch(() => left.push(`${s.overlaySource?.pool ?? ''}/${s.overlaySource?.volume ?? ''}`));
  }
  if (left.length > 0) {
    throw new VirtqError('OPERATION_FAILED', `snapshot "${snap.name}" of VM "${r.name}" was merged and deleted and the VM is defined on its images again, but virtstoraged did not delete the overlay volume${left.length > 1 ? 's' : ''} ${left.join(', ')}, which no disk uses: delete ${left.length > 1 ? 'them' : 'it'} with virtq vol-delete`, { details: { snapshot: snap.name, left } });
  }
}
