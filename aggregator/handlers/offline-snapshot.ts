// A disk-only external snapshot of a shut-off defined VM: no QEMU runs, so it is only files and
// the definition: a qcow2 overlay beside each writable disk's image (made with qemu-img by the
// function virtqemud is given), the persistent definition moved onto them, the metadata written.
// A volume disk is refused here (start the VM: its shim asks virtstoraged), as is a VM with a
// managed save image (its memory expects the disks as they are).
import { execFile } from 'node:child_process';
import { access, rm } from 'node:fs/promises';
import { VirtqError, normalizeDefinition, type NormalizedDefinition, type SnapshotInfo } from '../../protocol/index.js';
import { SnapshotStore } from '../../drivers/hypervisor/qemu/snapshot-store.js';
import { externalDisks, overlayFile } from '../../drivers/hypervisor/qemu/overlay-plan.js';
import { managedSaveFile } from '../../drivers/hypervisor/qemu/save-image-header.js';
import type { DomainRecord, DomainRegistry } from '../registry.js';
import type { DefinitionStore } from '../definitions.js';

/** Makes `overlay`, a qcow2 image on `backing` (of format `format`), refusing one that exists. */
export type OverlayMaker = (backing: string, format: string, overlay: string) => Promise<void>;

/** An OverlayMaker running `qemuImg create` (the existence check is externalDisks', just before). */
export function qemuImgOverlays(qemuImg: string): OverlayMaker {
  return (backing, format, overlay) => new Promise((resolve, reject) => {
    execFile(qemuImg, ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', format, overlay], (err, _out, stderr) => {
      if (err === null) resolve();
      else reject(new VirtqError('OPERATION_FAILED', `cannot make overlay ${overlay} on ${backing}: ${String(stderr).trim() || err.message}`));
    });
  });
}

/** What an offline snapshot needs of virtqemud. */
export interface OfflineDeps {
  registry: DomainRegistry;
  store: DefinitionStore;
  state: string;
  makeOverlay: OverlayMaker;
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
  const volume = current.disks.find((x) => !x.readonly && x.path === undefined);
  if (volume !== undefined) {
    throw new VirtqError('OPERATION_INVALID', `cannot take disk-only snapshot "${name}" of shut-off VM "${r.name}": disk ${volume.target} is a volume, whose overlay virtstoraged makes for a running VM; start the VM (it may stay paused) and take the snapshot then`, { details: { target: volume.target } });
  }
  const disks = await externalDisks(r.name, name, current.disks.map((x) => ({ ...x, path: x.path ?? '' })), false);
  const made: string[] = [];
  const entries: SnapshotInfo['disks'] = [];
  try {
    for (const disk of disks) {
      const overlay = overlayFile(disk.path, name);
      await d.makeOverlay(disk.path, disk.format, overlay);
      made.push(overlay);
      entries.push({ target: disk.target, path: disk.path, overlay, format: disk.format });
    }
  } catch (err) {
    for (const f of made) await rm(f, { force: true });
    throw err;
  }
  const def = normalizeDefinition(d.onOverlays(current, { disks: entries }), () => r.uuid);
  await d.store.save(def);
  d.registry.defined(r, def);
  const parent = await snaps.current();
  const meta = { name, vm: r.name, ...(parent === undefined ? {} : { parent }), createdAt: d.now(), state: 'shutoff', memory: false, kind: 'external' as const, disks: entries };
  await snaps.put(meta);
  await snaps.setCurrent(name);
  return { ...meta, current: true };
}
