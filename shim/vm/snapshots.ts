// Snapshots of a running or paused VM, each run as the VM's one job, with the metadata in
// SnapshotStore: internal ones through QEMU's snapshot jobs (snapshot-save, snapshot-load,
// snapshot-delete; a transaction of blockdev-snapshot-internal-sync without the memory state),
// external disk-only ones as new overlays (external-snapshot.ts), deleted by merging them back
// (external-delete.ts).
import { VirtqError, type Clock, type ResolvedDefinition, type ResolvedDisk, type SnapshotInfo } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import { externalRevertRefused, type SnapshotMeta, type SnapshotStore } from '../../drivers/hypervisor/qemu/snapshot-store.js';
import { commitPlan } from '../../drivers/hypervisor/qemu/commit-plan.js';
import { diskRoots, externalDisks, takeExternal, type ExternalDeps, type Overlay } from './external-snapshot.js';
import { mergeExternal, type MergeDeps } from './external-delete.js';
import type { Vm } from './vm.js';

const POLL_MS = 20;

/**
 * Runs a QEMU job command and waits for it to conclude; OPERATION_FAILED with QEMU's error.
 * `seq` makes the job id unique within the VM (one snapshot job runs at a time).
 */
async function runJob(mon: HypervisorMonitor, clock: Clock, seq: number, execute: string, args: Record<string, unknown>): Promise<void> {
  const id = `virtq-${execute}-${seq}`;
  await mon.raw({ execute, arguments: { 'job-id': id, ...args } });
  for (;;) {
    const jobs = (await mon.raw({ execute: 'query-jobs' })) as Array<{ id: string; status: string; error?: string }>;
    const job = jobs.find((j) => j.id === id);
    if (job === undefined || job.status === 'concluded' || job.status === 'null') {
      if (job !== undefined) await mon.raw({ execute: 'job-dismiss', arguments: { id } });
      if (job?.error !== undefined) throw new VirtqError('OPERATION_FAILED', `QEMU's ${execute} failed: ${job.error}`);
      return;
    }
    await new Promise<void>((resolve) => clock.setTimeout(resolve, POLL_MS));
  }
}

/** The writable disks; refused unless every one is qcow2 and there is one. */
function snapshotDisks(def: ResolvedDefinition): Array<{ target: string; path: string }> {
  const writable = def.disks.filter((d) => !d.readonly);
  const raw = writable.filter((d) => d.format !== 'qcow2');
  if (raw.length > 0) {
    throw new VirtqError('OPERATION_INVALID', `cannot snapshot VM "${def.name}": ${raw.map((d) => `disk ${d.target} is ${d.format}`).join(', ')}; internal snapshots need every writable disk to be qcow2`, { details: { disks: raw.map((d) => d.target) } });
  }
  if (writable.length === 0) throw new VirtqError('OPERATION_INVALID', `cannot snapshot VM "${def.name}": it has no writable qcow2 disk to hold the snapshot`);
  return writable.map((d) => ({ target: d.target, path: d.path }));
}

// The node each of `targets` reads now: the top of its chain (an overlay after an external snapshot).
async function topNodes(mon: HypervisorMonitor, targets: readonly string[]): Promise<string[]> {
  const roots = await diskRoots(mon);
  return targets.map((t) => {
    const node = roots.get(t)?.node;
    if (node === undefined) throw new VirtqError('OPERATION_FAILED', `QEMU shows no block device for disk ${t}`);
    return node;
  });
}

/** What external snapshots need of the shim (leases, virtstoraged). */
export type ExternalParts = Pick<ExternalDeps, 'hooks' | 'volumes'> & Pick<MergeDeps, 'upgrade' | 'downgrade' | 'release' | 'log'>;

/** A disk of the definition moved onto its overlay. */
function onOverlay(d: ResolvedDisk, o: Overlay | undefined): ResolvedDisk {
  if (o === undefined) return d;
  return { ...d, path: o.path, format: 'qcow2', ...(o.source === undefined ? {} : { source: o.source }) };
}

/** Snapshot operations of one VM. */
export class VmSnapshots {
  private jobSeq = 0;

  constructor(private readonly vm: Vm, private readonly store: SnapshotStore, private readonly clock: Clock, private readonly external: ExternalParts) {}

  async create(name: string, opts: { noMemory: boolean; diskOnly: boolean }): Promise<SnapshotInfo> {
    if (opts.diskOnly) return this.createExternal(name);
    return this.vm.withMonitor('snapshotCreate', async (mon) => {
      const disks = snapshotDisks(this.vm.def);
      await this.refuseTaken(name);
      const state = this.vm.state;
      const nodes = await topNodes(mon, disks.map((d) => d.target));
      const [first] = nodes;
      if (first === undefined) throw new VirtqError('INTERNAL', 'no disk');
      if (opts.noMemory) {
        await mon.raw({ execute: 'transaction', arguments: { actions: nodes.map((node) => ({ type: 'blockdev-snapshot-internal-sync', data: { device: node, name } })) } });
      } else {
        await runJob(mon, this.clock, ++this.jobSeq, 'snapshot-save', { tag: name, vmstate: first, devices: nodes });
      }
      const parent = await this.store.current();
      const meta = {
        name, vm: this.vm.def.name, ...(parent === undefined ? {} : { parent }), createdAt: this.clock.now(), state, memory: !opts.noMemory,
        kind: 'internal' as const, disks: disks.map(({ target, path }) => ({ target, path })),
      };
      return this.record(meta);
    });
  }

  /** A disk-only external snapshot: every writable disk onto a new qcow2 overlay; the definition follows. */
  private createExternal(name: string): Promise<SnapshotInfo> {
    return this.vm.withMonitor('snapshotCreate', async (mon) => {
      await this.refuseTaken(name);
      const disks = await externalDisks(this.vm.def.name, name, this.vm.def.disks, this.external.volumes !== undefined);
      const pid = this.vm.qemuPid;
      if (pid === undefined) throw new VirtqError('OPERATION_INVALID', `VM "${this.vm.def.name}" has no QEMU process`);
      const overlays = await takeExternal(mon, {
        ...this.external, runJob: (m, execute, args) => runJob(m, this.clock, ++this.jobSeq, execute, args), downgrade: (disk) => this.external.downgrade(disk, pid),
      }, name, disks);
      const byTarget = new Map(overlays.map((o) => [o.disk.target, o]));
      this.vm.setDevices({ disks: this.vm.def.disks.map((d) => onOverlay(d, byTarget.get(d.target))) });
      const parent = await this.store.current();
      return this.record({
        name, vm: this.vm.def.name, ...(parent === undefined ? {} : { parent }), createdAt: this.clock.now(), state: 'disk-snapshot', memory: false, kind: 'external',
        disks: overlays.map((o) => ({
          target: o.disk.target, path: o.disk.path, overlay: o.path, ...(o.source === undefined ? {} : { overlaySource: o.source }),
          format: o.disk.format, ...(o.disk.source === undefined ? {} : { source: o.disk.source }),
        })),
      });
    });
  }

  private async refuseTaken(name: string): Promise<void> {
    if ((await this.store.list()).some((s) => s.name === name)) throw new VirtqError('ALREADY_EXISTS', `VM "${this.vm.def.name}" already has a snapshot "${name}"`);
  }

  private async record(meta: SnapshotMeta): Promise<SnapshotInfo> {
    await this.store.put(meta);
    await this.store.setCurrent(meta.name);
    return { ...meta, current: true };
  }

  async revert(name: string): Promise<void> {
    const snap = await this.store.get(name);
    if (snap.kind === 'external') throw externalRevertRefused(this.vm.def.name, snap, this.vm.state);
    if (!snap.memory) {
      throw new VirtqError('OPERATION_INVALID', `cannot revert VM "${this.vm.def.name}" to snapshot "${name}": it holds no memory state, and reverting the disks of a ${this.vm.state} VM under it is refused (as libvirt does)`, { details: { state: this.vm.state } });
    }
    await this.vm.withMonitor('snapshotRevert', async (mon) => {
      const nodes = await this.nodesOf(mon, snap);
      const [vmstate] = nodes;
      if (vmstate === undefined) throw new VirtqError('OPERATION_INVALID', `snapshot "${name}" names no disk VM "${this.vm.def.name}" still has`);
      await runJob(mon, this.clock, ++this.jobSeq, 'snapshot-load', { tag: name, vmstate, devices: nodes });
      // QEMU keeps the run state it had; the snapshot's is the one to resume in.
      const status = await mon.queryStatus();
      if (snap.state === 'running' && !status.running) await mon.cont();
      if (snap.state === 'paused' && status.running) await mon.stop();
      await this.store.setCurrent(name);
    });
  }

  /** `bandwidthMiB` caps an external snapshot's merge (an internal one has no copy to cap). */
  async delete(name: string, metadataOnly: boolean, bandwidthMiB?: number): Promise<void> {
    const snap = await this.store.get(name);
    if (metadataOnly) return this.store.remove(name);
    if (snap.kind === 'external') return this.deleteExternal(name, bandwidthMiB === undefined ? undefined : bandwidthMiB * 1024 * 1024);
    await this.vm.withMonitor('snapshotDelete', async (mon) => {
      const nodes = await this.nodesOf(mon, snap);
      if (nodes.length > 0) await runJob(mon, this.clock, ++this.jobSeq, 'snapshot-delete', { tag: name, devices: nodes });
      await this.store.remove(name);
    });
  }

  /** Merges an external snapshot's overlays into the images under them (it must be the top); the definition follows. */
  private deleteExternal(name: string, speed: number | undefined): Promise<void> {
    return this.vm.withMonitor('snapshotDelete', async (mon) => {
      const snap = await this.store.get(name);
      const plan = commitPlan(this.vm.def.name, snap, await this.store.list(), this.vm.def.disks);
      await mergeExternal(mon, this.vm, { ...this.external, clock: this.clock, seq: ++this.jobSeq, ...(speed === undefined ? {} : { speed }) }, name, plan);
      await this.store.remove(name);
    });
  }

  // The top nodes of the snapshot's disks that the VM still has.
  private nodesOf(mon: HypervisorMonitor, snap: SnapshotInfo): Promise<string[]> {
    const have = new Set(this.vm.def.disks.map((d) => d.target));
    return topNodes(mon, snap.disks.filter((d) => have.has(d.target)).map((d) => d.target));
  }
}
