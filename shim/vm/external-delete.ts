// Deleting an external snapshot of a running or paused VM, as libvirt 9.0 does: each overlay the
// snapshot made (the top of its disk's chain) is merged into the image under it by an active
// block-commit, the disk pivots onto that image, the overlay's nodes, lease and file (or volume)
// go. Lease order: the image under the overlay becomes exclusive before the commit writes it, and
// the overlay's lease is given back only after the pivot, so the image the guest writes is always
// leased. A failure before the pivot leaves the VM on its overlays with the images' leases shared.
import { rm } from 'node:fs/promises';
import { VirtqError, type Clock, type Logger, type ResolvedDisk } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import type { CommitDisk } from '../../drivers/hypervisor/qemu/commit-plan.js';
import { diskIds } from '../../drivers/hypervisor/qemu/disk-devices.js';
import { ActiveCommit, type CommitNodes } from './block-commit.js';
import { diskRoots, type OverlayVolumes } from './external-snapshot.js';
import type { JobLock } from './jobs.js';

/** The VM as a delete sees it. */
export interface MergingVm {
  readonly def: { name: string; disks: ResolvedDisk[] };
  readonly qemuPid: number | undefined;
  readonly jobs: Pick<JobLock, 'report'>;
  setDevices(change: { disks: ResolvedDisk[] }): void;
}

/** What a delete needs besides the monitor. */
export interface MergeDeps {
  clock: Clock;
  seq: number;
  /** The image under an overlay: its shared lease becomes exclusive (LOCK_CONFLICT: nothing held changed). */
  upgrade(disk: ResolvedDisk, qemuPid: number): Promise<void>;
  /** And back to shared after a failure. */
  downgrade(disk: ResolvedDisk, qemuPid: number): Promise<void>;
  /** Gives the overlay's lease back once no disk uses it. */
  release(disk: ResolvedDisk): Promise<void>;
  volumes: OverlayVolumes | undefined;
  log: Logger;
  /** The merge's copy cap in bytes/s per disk; undefined: unlimited. */
  speed?: number;
}

interface NodeInfo { 'node-name': string; drv: string; file: string }

/** One disk to merge: the overlay as the VM uses it now, the image under it, and QEMU's nodes. */
interface Step { s: CommitDisk; overlay: ResolvedDisk; base: ResolvedDisk; nodes: CommitNodes }

/** Merges the overlays of `plan` (commit-plan.ts checked it is the top) into their images. */
export async function mergeExternal(mon: HypervisorMonitor, vm: MergingVm, d: MergeDeps, snapshot: string, plan: readonly CommitDisk[]): Promise<void> {
  const pid = vm.qemuPid;
  if (pid === undefined) throw new VirtqError('OPERATION_INVALID', `VM "${vm.def.name}" has no QEMU process`);
  const steps = await stepsOf(mon, vm, plan);
  const upgraded: ResolvedDisk[] = [];
  try {
    for (const st of steps) {
      await d.upgrade(st.base, pid);
      upgraded.push(st.base);
    }
  } catch (err) {
    await shareAgain(d, upgraded, pid);
    const e = VirtqError.from(err);
    throw new VirtqError(e.code, `cannot delete snapshot "${snapshot}" of VM "${vm.def.name}": the image under an overlay must be leased exclusively to be merged into: ${e.message}; nothing changed, the VM runs on its overlays`, { cause: err, details: e.details });
  }
  const commit = new ActiveCommit(mon, d.clock, d.seq, steps.map((st) => st.nodes), d.speed);
  vm.jobs.report(commit);
  let pivoted: string[];
  try {
    pivoted = await commit.run();
  } catch (err) {
    pivoted = await failed(vm, d, steps, err, snapshot, pid);
  }
  const done = steps.filter((st) => pivoted.includes(st.s.target));
  vm.setDevices({ disks: vm.def.disks.map((disk) => done.find((st) => st.s.target === disk.target)?.base ?? disk) });
  for (const st of done) await dropOverlay(mon, d, st);
}

// Each disk's overlay and base as QEMU has them open.
async function stepsOf(mon: HypervisorMonitor, vm: MergingVm, plan: readonly CommitDisk[]): Promise<Step[]> {
  const roots = await diskRoots(mon);
  const nodes = (await mon.raw({ execute: 'query-named-block-nodes', arguments: { flat: true } })) as NodeInfo[];
  return plan.map((s) => {
    const overlay = vm.def.disks.find((x) => x.target === s.target);
    const top = roots.get(s.target)?.node;
    if (overlay === undefined || top === undefined) throw new VirtqError('OPERATION_FAILED', `QEMU shows no block device for disk ${s.target}`);
    // The image under the overlay: opened by the snapshot (fmt-TARGET) or from the overlay's header.
    const base = nodes.find((n) => n.file === s.path && n['node-name'] !== top && n.drv !== 'file' && n.drv !== 'host_device');
    if (base === undefined) throw new VirtqError('OPERATION_FAILED', `QEMU has no node for ${s.path} under disk ${s.target}: the overlay's backing file is not the snapshot's image`, { details: { target: s.target } });
    const format = s.format ?? base.drv;
    if (format !== 'raw' && format !== 'qcow2') throw new VirtqError('OPERATION_FAILED', `the image ${s.path} under disk ${s.target} is ${format}, which a disk cannot use`, { details: { target: s.target } });
    const { source: _s, ...rest } = overlay;
    const baseDisk: ResolvedDisk = { ...rest, path: s.path, format, ...(s.source === undefined ? {} : { source: s.source }) };
    return { s, overlay, base: baseDisk, nodes: { target: s.target, top, base: base['node-name'] } };
  });
}

// A commit that failed: before the pivot every disk is on its overlay (leases shared again);
// a failed pivot leaves some disks on their base: those are the ones returned.
async function failed(vm: MergingVm, d: MergeDeps, steps: readonly Step[], err: unknown, snapshot: string, pid: number): Promise<string[]> {
  const e = VirtqError.from(err);
  const overlays = steps.map((st) => `${st.s.target} on ${st.s.overlay}`).join(', ');
  if (e.details?.['stage'] !== 'pivot') {
    await shareAgain(d, steps.map((st) => st.base), pid);
    throw new VirtqError(e.code, `cannot delete snapshot "${snapshot}" of VM "${vm.def.name}": ${e.message}; the VM runs on its overlays (${overlays}) and keeps the snapshot; the images under them may hold part of the overlays' data already, which the guest does not see`, { cause: err, details: { snapshot } });
  }
  const pivoted = Array.isArray(e.details['pivoted']) ? (e.details['pivoted'] as string[]) : [];
  d.log.error({ err, msgId: 'SNAPSHOT_MERGE_PARTIAL', pivoted }, 'some disks pivoted onto their base images, others did not');
  const left = steps.filter((st) => !pivoted.includes(st.s.target));
  await shareAgain(d, left.map((st) => st.base), pid);
  const where = steps.map((st) => `${st.s.target} on ${pivoted.includes(st.s.target) ? st.s.path : st.s.overlay}`).join(', ');
  vm.setDevices({ disks: vm.def.disks.map((disk) => steps.find((st) => st.s.target === disk.target && pivoted.includes(st.s.target))?.base ?? disk) });
  throw new VirtqError('OPERATION_FAILED', `snapshot "${snapshot}" of VM "${vm.def.name}" was merged only in part: ${e.message}; the disks now are ${where}; the snapshot's metadata stays: delete it with --metadata and remove the overlays no disk uses by hand`, { cause: err, details: { snapshot, pivoted } });
}

async function shareAgain(d: MergeDeps, bases: readonly ResolvedDisk[], pid: number): Promise<void> {
  for (const b of bases) {
    await d.downgrade(b, pid).catch((err: unknown) => d.log.warn({ err, msgId: 'LEASE_DOWNGRADE_FAILED', path: b.path }, 'the image under an overlay keeps an exclusive lease'));
  }
}

// The pivoted disk's overlay: its nodes closed, its lease given back, its file or volume removed.
// The merge is done by then: what cannot be removed is logged and left, not an error.
async function dropOverlay(mon: HypervisorMonitor, d: MergeDeps, st: Step): Promise<void> {
  const top = st.nodes.top;
  const m = /^ov-(.+)$/.exec(top);
  const fileNode = m !== null ? `ovf-${m[1] ?? ''}` : top === diskIds(st.s.target).formatNode ? diskIds(st.s.target).protocolNode : undefined;
  for (const node of [top, fileNode]) {
    if (node !== undefined) await mon.raw({ execute: 'blockdev-del', arguments: { 'node-name': node } }).catch(() => undefined);
  }
  await d.release(st.overlay);
  try {
    if (st.s.overlaySource !== undefined) {
      if (d.volumes === undefined) throw new VirtqError('NOT_SUPPORTED', 'this shim was started without virtstoraged');
      await d.volumes.deleteVolume(st.s.overlaySource.pool, st.s.overlaySource.volume);
    } else {
      await rm(st.s.overlay, { force: true });
    }
  } catch (err) {
    d.log.warn({ err, msgId: 'SNAPSHOT_OVERLAY_LEFT', path: st.s.overlay }, 'the merged overlay could not be removed');
  }
}
