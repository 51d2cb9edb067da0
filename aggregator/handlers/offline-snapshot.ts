// A disk-only external snapshot of a shut-off defined VM: no QEMU runs, so it is only files and
// the definition: a qcow2 overlay beside each writable disk's image (made with qemu-img by the
// function virtqemud is given), or for a volume disk a new qcow2 volume of its pool made by
// virtstoraged (named as for a running VM); then the persistent definition moves onto them and the
// metadata is written. All or nothing: a failure part-way removes the overlays made so far and
// puts the definition back. A VM with a managed save image is refused (its memory expects the
// disks as they are).
import { runBound } from '../../drivers/host/dies-with-starter.js';
import { access, rm } from 'node:fs/promises';
import { VirtqError, normalizeDefinition, type NormalizedDefinition, type ResolvedDisk, type SnapshotInfo } from '../../protocol/index.js';
import { SnapshotStore, type SnapshotDisk } from '../../drivers/hypervisor/qemu/snapshot-store.js';
import { externalDisks, overlayFile, overlayName } from '../../drivers/hypervisor/qemu/overlay-plan.js';
import { managedSaveFile } from '../../drivers/hypervisor/qemu/save-image-header.js';
import type { DomainRecord, DomainRegistry } from '../registry.js';
import type { DefinitionStore } from '../definitions.js';
import type { SnapshotVolumes } from '../storage-volumes.js';

/** Makes `overlay`, a qcow2 image on `backing` (of format `format`), refusing one that exists. */
export type OverlayMaker = (backing: string, format: string, overlay: string) => Promise<void>;

/** An OverlayMaker running `qemuImg create` (the existence check is externalDisks', just before). */
export function qemuImgOverlays(qemuImg: string): OverlayMaker {
  return async (backing, format, overlay) => {
    try {
      await runBound(qemuImg, ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', format, overlay]);
    } catch (err) {
      throw new VirtqError('OPERATION_FAILED', `cannot make overlay ${overlay} on ${backing}: ${(err as Error).message}`, { cause: err });
    }
  };
}

/** What an offline snapshot needs of virtqemud. */
export interface OfflineDeps {
  registry: DomainRegistry;
  store: DefinitionStore;
  state: string;
  makeOverlay: OverlayMaker;
  /** virtstoraged, for a volume disk's overlay. */
  volumes: SnapshotVolumes;
  now(): number;
  /** `def` with the snapshot's disks on their overlays (snapshot-handlers.ts). */
  onOverlays(def: NormalizedDefinition, snap: Pick<SnapshotInfo, 'disks'>): NormalizedDefinition;
}

/** Takes snapshot `name` of the shut-off persistent VM `r`, whose definition is `current`. */
export async function offlineExternal(d: OfflineDeps, r: DomainRecord, current: NormalizedDefinition, name: string): Promise<SnapshotInfo> {
  const snaps = new SnapshotStore(d.state, r.name);
  if ((await snaps.list()).some((s) => s.name === name)) throw new VirtqError('ALREADY_EXISTS', `VM "${r.name}" already has a snapshot "${name}"`);
  if (await access(managedSaveFile(d.state, r.name)).then(() => true, () => false)) {
    throw new VirtqError('OPERATION_INVALID', `cannot take disk-only snapshot "${name}" of VM "${r.name}": it has a managed save image, whose memory expects its disks as they are; start it first, or remove the image (virtq managedsave-remove ${r.name})`);
  }
  const disks = await externalDisks(r.name, name, current.disks.map((x) => ({ ...x, path: x.path ?? '' })), true);
  const made: Array<Made> = [];
  const entries: SnapshotInfo['disks'] = [];
  try {
    for (const disk of disks) entries.push(await overlayOf(d, disk, name, made));
  } catch (err) {
    await undo(d, made);
    throw err;
  }
  const parent = await snaps.current();
  const meta = { name, vm: r.name, ...(parent === undefined ? {} : { parent }), createdAt: d.now(), state: 'shutoff', memory: false, kind: 'external' as const, disks: entries };
  const def = normalizeDefinition(d.onOverlays(current, { disks: entries }), () => r.uuid);
  try {
    await d.store.save(def);
    await snaps.put(meta);
  } catch (err) {
    // Back as it was: the old definition (rewritten whole, atomically), no metadata, no overlay;
    // an overlay stays only if the definition that may name it could not be put back.
    const back = await d.store.save(current).then(() => true, () => false);
    await snaps.remove(name).catch(() => undefined);
    if (back) await undo(d, made);
    throw err;
  }
  d.registry.defined(r, def);
  await snaps.setCurrent(name);
  return { ...meta, current: true };
}

/** An overlay made so far: a file, or a volume of virtstoraged. */
type Made = { file: string } | { pool: string; volume: string };

// Makes `disk`'s overlay (recorded in `made` once it exists) and answers its metadata entry.
async function overlayOf(d: OfflineDeps, disk: ResolvedDisk, snapshot: string, made: Made[]): Promise<SnapshotDisk> {
  if (disk.source === undefined) {
    const overlay = overlayFile(disk.path, snapshot);
    await d.makeOverlay(disk.path, disk.format, overlay);
    made.push({ file: overlay });
    return { target: disk.target, path: disk.path, overlay, format: disk.format };
  }
  const { pool, volume } = disk.source;
  const path = await d.volumes.pathOf(pool, volume);
  const name = overlayName(volume, snapshot);
  const overlay = (await d.volumes.createOverlay(pool, volume, name)).path;
  made.push({ pool, volume: name });
  return { target: disk.target, path, overlay, format: disk.format, source: disk.source, overlaySource: { pool, volume: name } };
}

// A failed snapshot leaves nothing: each overlay made is removed (best effort: the error reported
// is the one that stopped the snapshot).
async function undo(d: OfflineDeps, made: readonly Made[]): Promise<void> {
  for (const m of made) {
    if ('file' in m) await rm(m.file, { force: true }).catch(() => undefined);
    else await d.volumes.deleteVolume(m.pool, m.volume).catch(() => undefined);
  }
}
