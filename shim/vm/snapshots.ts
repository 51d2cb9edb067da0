// Internal snapshots of a running or paused VM through QEMU's snapshot jobs (snapshot-save,
// snapshot-load, snapshot-delete; a transaction of blockdev-snapshot-internal-sync without the
// memory state), each run as the VM's one job, with the metadata in SnapshotStore.
import { VirtqError, type Clock, type ResolvedDefinition, type SnapshotInfo } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import { diskIds } from '../../drivers/hypervisor/qemu/disk-devices.js';
import type { SnapshotStore } from '../../drivers/hypervisor/qemu/snapshot-store.js';
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

/** The writable disks' format nodes; refused unless every one is qcow2 and there is one. */
function snapshotDisks(def: ResolvedDefinition): Array<{ target: string; path: string; node: string }> {
  const writable = def.disks.filter((d) => !d.readonly);
  const raw = writable.filter((d) => d.format !== 'qcow2');
  if (raw.length > 0) {
    throw new VirtqError('OPERATION_INVALID', `cannot snapshot VM "${def.name}": ${raw.map((d) => `disk ${d.target} is ${d.format}`).join(', ')}; internal snapshots need every writable disk to be qcow2`, { details: { disks: raw.map((d) => d.target) } });
  }
  if (writable.length === 0) throw new VirtqError('OPERATION_INVALID', `cannot snapshot VM "${def.name}": it has no writable qcow2 disk to hold the snapshot`);
  return writable.map((d) => ({ target: d.target, path: d.path, node: diskIds(d.target).formatNode }));
}

/** Snapshot operations of one VM. */
export class VmSnapshots {
  private jobSeq = 0;

  constructor(private readonly vm: Vm, private readonly store: SnapshotStore, private readonly clock: Clock) {}

  async create(name: string, opts: { noMemory: boolean; diskOnly: boolean }): Promise<SnapshotInfo> {
    if (opts.diskOnly) throw new VirtqError('NOT_SUPPORTED', 'external disk-only snapshots (--disk-only) are not implemented in this version; --no-memory takes an internal snapshot of the disks without the memory state');
    return this.vm.withMonitor('snapshotCreate', async (mon) => {
      const disks = snapshotDisks(this.vm.def);
      if ((await this.store.list()).some((s) => s.name === name)) throw new VirtqError('ALREADY_EXISTS', `VM "${this.vm.def.name}" already has a snapshot "${name}"`);
      const state = this.vm.state;
      const [first] = disks;
      if (first === undefined) throw new VirtqError('INTERNAL', 'no disk');
      if (opts.noMemory) {
        await mon.raw({ execute: 'transaction', arguments: { actions: disks.map((d) => ({ type: 'blockdev-snapshot-internal-sync', data: { device: d.node, name } })) } });
      } else {
        await runJob(mon, this.clock, ++this.jobSeq, 'snapshot-save', { tag: name, vmstate: first.node, devices: disks.map((d) => d.node) });
      }
      const parent = await this.store.current();
      const meta = {
        name, vm: this.vm.def.name, ...(parent === undefined ? {} : { parent }), createdAt: this.clock.now(), state, memory: !opts.noMemory,
        kind: 'internal' as const, disks: disks.map(({ target, path }) => ({ target, path })),
      };
      await this.store.put(meta);
      await this.store.setCurrent(name);
      return { ...meta, current: true };
    });
  }

  async revert(name: string): Promise<void> {
    const snap = await this.store.get(name);
    if (!snap.memory) {
      throw new VirtqError('OPERATION_INVALID', `cannot revert VM "${this.vm.def.name}" to snapshot "${name}": it holds no memory state, and reverting the disks of a ${this.vm.state} VM under it is refused (as libvirt does)`, { details: { state: this.vm.state } });
    }
    await this.vm.withMonitor('snapshotRevert', async (mon) => {
      const nodes = this.nodesOf(snap);
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

  async delete(name: string): Promise<void> {
    const snap = await this.store.get(name);
    await this.vm.withMonitor('snapshotDelete', async (mon) => {
      const nodes = this.nodesOf(snap);
      if (nodes.length > 0) await runJob(mon, this.clock, ++this.jobSeq, 'snapshot-delete', { tag: name, devices: nodes });
      await this.store.remove(name);
    });
  }

  // The format nodes of the snapshot's disks that the VM still has.
  private nodesOf(snap: SnapshotInfo): string[] {
    const have = new Set(this.vm.def.disks.map((d) => d.target));
    return snap.disks.filter((d) => have.has(d.target)).map((d) => diskIds(d.target).formatNode);
  }
}
