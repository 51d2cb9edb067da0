// External disk-only snapshots of a running or paused VM, as libvirt takes them: each writable
// disk gets a new qcow2 overlay whose backing file is the disk's current image. A path disk's
// overlay is made next to its image by QEMU (blockdev-create); a volume disk's is a new volume of
// its pool, made by virtstoraged (through the VolumeLookup the shim already has). The overlays
// are leased like the disks, opened with blockdev-add (backing: null, the image under them is
// already open) and switched in together by one transaction of blockdev-snapshot; the image under
// each becomes read-only in the chain, so its lease becomes shared.
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { overlayName } from '../../drivers/hypervisor/qemu/overlay-plan.js';
export { externalDisks, overlayName } from '../../drivers/hypervisor/qemu/overlay-plan.js';
import { VirtqError, type ResolvedDisk } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import type { DiskHooks } from './vm-disks.js';

/** What virtstoraged is asked for a volume disk's overlay. */
export interface OverlayVolumes {
  /** Creates `name` in `pool`: a qcow2 volume on the backing volume `backing`, as large as it. */
  createOverlay(pool: string, backing: string, name: string): Promise<{ path: string }>;
  /** Deletes a volume this snapshot made and could not use. */
  deleteVolume(pool: string, name: string): Promise<void>;
}

/** One disk's overlay, once made. */
export interface Overlay {
  disk: ResolvedDisk;
  /** The overlay's file. */
  path: string;
  /** Its volume when the disk is a volume disk. */
  source?: { pool: string; volume: string };
  /** QEMU's node names for it. */
  node: string;
  fileNode?: string;
}

/** What an external snapshot needs besides the monitor. */
export interface ExternalDeps {
  /** Runs a QEMU job (blockdev-create) to its end. */
  runJob(mon: HypervisorMonitor, execute: string, args: Record<string, unknown>): Promise<void>;
  /** Leases an overlay for the running QEMU / gives it back after a failure. */
  hooks: Pick<DiskHooks, 'beforeAttach' | 'attachFailed'>;
  /** Turns the lease of the image under an overlay into a shared one (it is read-only now). */
  downgrade(disk: ResolvedDisk): Promise<void>;
  /** virtstoraged; undefined when the shim runs without it (a volume disk is then refused). */
  volumes: OverlayVolumes | undefined;
}

interface BlockInfo { qdev?: string; device?: string; inserted?: { 'node-name'?: string; image?: { 'virtual-size'?: number } } }

/** The node each disk's guest device reads now (the top of its chain) and its size. */
export async function diskRoots(mon: HypervisorMonitor): Promise<Map<string, { node: string; size: number }>> {
  const blocks = (await mon.raw({ execute: 'query-block' })) as BlockInfo[];
  const out = new Map<string, { node: string; size: number }>();
  for (const b of blocks) {
    const m = /(?:^|\/)disk-([^/]+)(?:\/|$)/.exec(b.qdev ?? '');
    const node = b.inserted?.['node-name'];
    if (m?.[1] !== undefined && node !== undefined) out.set(m[1], { node, size: b.inserted?.image?.['virtual-size'] ?? 0 });
  }
  return out;
}

/**
 * Makes every overlay and switches the disks onto them in one transaction; all or nothing: on a
 * failure, what was made is removed and the VM keeps its disks. Returns the overlays in disk order.
 */
export async function takeExternal(mon: HypervisorMonitor, d: ExternalDeps, snapshot: string, disks: readonly ResolvedDisk[]): Promise<Overlay[]> {
  const roots = await diskRoots(mon);
  const made: Array<Overlay & { leased: boolean }> = [];
  try {
    for (const disk of disks) {
      const root = roots.get(disk.target);
      if (root === undefined) throw new VirtqError('OPERATION_FAILED', `QEMU shows no block device for disk ${disk.target}`);
      await makeOverlay(mon, d, snapshot, disk, root.size, made);
    }
    await mon.raw({ execute: 'transaction', arguments: { actions: made.map((o) => ({ type: 'blockdev-snapshot', data: { node: roots.get(o.disk.target)?.node, overlay: o.node } })) } });
  } catch (err) {
    await undo(mon, d, made);
    throw err;
  }
  for (const o of made) await d.downgrade(o.disk);
  return made.map(({ leased: _l, ...o }) => o);
}

// QEMU's node names for the n-th overlay of a target (unique while this QEMU runs).
async function nodeNames(mon: HypervisorMonitor, target: string): Promise<{ node: string; fileNode: string }> {
  const nodes = (await mon.raw({ execute: 'query-named-block-nodes', arguments: { flat: true } })) as Array<{ 'node-name': string }>;
  const n = nodes.filter((x) => x['node-name'].startsWith(`ov-${target}-`)).length + 1;
  return { node: `ov-${target}-${n}`, fileNode: `ovf-${target}-${n}` };
}

// Makes one overlay, in `made` from its first step so that a failure undoes what was done.
async function makeOverlay(mon: HypervisorMonitor, d: ExternalDeps, snapshot: string, disk: ResolvedDisk, size: number, made: Array<Overlay & { leased: boolean }>): Promise<void> {
  const { node, fileNode } = await nodeNames(mon, disk.target);
  const ov: Overlay & { leased: boolean } = { disk, path: '', node, leased: false };
  if (disk.source !== undefined && d.volumes !== undefined) {
    const volume = overlayName(disk.source.volume, snapshot);
    ov.path = (await d.volumes.createOverlay(disk.source.pool, disk.source.volume, volume)).path;
    ov.source = { pool: disk.source.pool, volume };
    made.push(ov);
    await lease(d, ov);
    await mon.raw({ execute: 'blockdev-add', arguments: { driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: ov.path }, backing: null } });
  } else {
    ov.path = join(dirname(disk.path), overlayName(disk.path, snapshot));
    made.push(ov);
    await d.runJob(mon, 'blockdev-create', { options: { driver: 'file', filename: ov.path, size: 0 } });
    await lease(d, ov);
    await mon.raw({ execute: 'blockdev-add', arguments: { driver: 'file', 'node-name': fileNode, filename: ov.path } });
    ov.fileNode = fileNode;
    await d.runJob(mon, 'blockdev-create', { options: { driver: 'qcow2', file: fileNode, size, 'backing-file': disk.path, 'backing-fmt': disk.format } });
    await mon.raw({ execute: 'blockdev-add', arguments: { driver: 'qcow2', 'node-name': node, file: fileNode, backing: null } });
  }
}

async function lease(d: ExternalDeps, ov: Overlay & { leased: boolean }): Promise<void> {
  await d.hooks.beforeAttach?.({ ...ov.disk, path: ov.path, format: 'qcow2' });
  ov.leased = true;
}

// A failed snapshot leaves nothing: nodes closed, leases given back, files and volumes removed.
async function undo(mon: HypervisorMonitor, d: ExternalDeps, made: ReadonlyArray<Overlay & { leased: boolean }>): Promise<void> {
  for (const o of made) {
    await mon.raw({ execute: 'blockdev-del', arguments: { 'node-name': o.node } }).catch(() => undefined);
    if (o.fileNode !== undefined) await mon.raw({ execute: 'blockdev-del', arguments: { 'node-name': o.fileNode } }).catch(() => undefined);
    if (o.leased) await d.hooks.attachFailed?.({ ...o.disk, path: o.path, format: 'qcow2' }).catch(() => undefined);
    if (o.source !== undefined) await d.volumes?.deleteVolume(o.source.pool, o.source.volume).catch(() => undefined);
    else if (o.path !== '') await rm(o.path, { force: true }).catch(() => undefined);
  }
}
