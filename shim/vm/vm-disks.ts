// Disks of a running VM: hot-plug and unplug through the hypervisor's monitor, with the disk
// leases around them, and per-disk I/O counters. The VM owns one of these, given its lease
// hooks once; it knows the VM only through the narrow DiskHost below (no import of vm.ts).
import { VirtqError, type Clock, type DomainState, type ResolvedDefinition, type ResolvedDisk } from '../../protocol/index.js';
import type { DiskStats, HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import { checkOperation } from './states.js';
import type { JobLock } from './jobs.js';
import { DeviceWaiters } from './device-waiters.js';

export type { DiskStats } from '../../drivers/hypervisor/types.js';

/** Hooks around hot-plug, e.g. disk leases from the lock manager. */
export interface DiskHooks {
  beforeAttach?(disk: ResolvedDisk): Promise<void>;
  afterDetach?(disk: ResolvedDisk): Promise<void>;
  /** Called when an attach failed after beforeAttach succeeded. */
  attachFailed?(disk: ResolvedDisk): Promise<void>;
}

/** What the disks see of their VM. */
export interface DiskHost {
  readonly def: ResolvedDefinition;
  readonly state: DomainState;
  readonly jobs: JobLock;
  monitor(): HypervisorMonitor;
  /** The definition's disk list changed (the VM keeps the definition and reports the change). */
  setDevices(change: { disks: ResolvedDisk[] }): void;
}

/** Where an encrypted disk's passphrase comes from (virtsecretd, through the disk resolver). */
export type PassphraseSource = (disk: ResolvedDisk) => Promise<Uint8Array>;

/** One VM's hot-pluggable disks. */
export class VmDisks {
  private readonly unplugs: DeviceWaiters;

  constructor(private readonly vm: DiskHost, private readonly hooks: DiskHooks, clock: Clock, private readonly passphrase: PassphraseSource) {
    this.unplugs = new DeviceWaiters(clock);
  }

  /** The hypervisor reported a device deleted: an unplug waiting for it goes on. */
  deviceDeleted(id: string): void {
    this.unplugs.deleted(id);
  }

  /** Attaches `disk` to the running VM; the definition gains it. */
  attach(disk: ResolvedDisk): Promise<void> {
    const { vm, hooks } = this;
    return vm.jobs.run('attachDisk', async () => {
      checkOperation('attachDisk', vm.def.name, vm.state);
      if (vm.def.disks.some((d) => d.target === disk.target)) {
        throw new VirtqError('INVALID_ARG', `VM "${vm.def.name}" already has a disk ${disk.target}`);
      }
      const mon = vm.monitor();
      let leased = false;
      const passphrase = disk.encryption === undefined ? undefined : await this.passphrase(disk);
      try {
        await mon.plugDisk(vm.def, disk, async () => { await hooks.beforeAttach?.(disk); leased = true; }, passphrase);
      } catch (err) {
        if (leased) await hooks.attachFailed?.(disk);
        throw err;
      }
      vm.setDevices({ disks: [...vm.def.disks, disk] });
    });
  }

  /** Unplugs the disk `target` and waits for the guest to release it. */
  detach(target: string, timeoutMs: number): Promise<void> {
    const { vm, hooks } = this;
    return vm.jobs.run('detachDisk', async () => {
      checkOperation('detachDisk', vm.def.name, vm.state);
      const disk = vm.def.disks.find((d) => d.target === target);
      if (disk === undefined) throw new VirtqError('INVALID_ARG', `VM "${vm.def.name}" has no disk ${target}`);
      await vm.monitor().unplugDisk(target, (id) => this.unplugs.wait(id, timeoutMs));
      vm.setDevices({ disks: vm.def.disks.filter((d) => d.target !== target) });
      await hooks.afterDetach?.(disk);
    });
  }

  /** Read and write counters per disk, by guest target. */
  stats(): Promise<DiskStats[]> {
    checkOperation('blockStats', this.vm.def.name, this.vm.state);
    return this.vm.monitor().diskStats(this.vm.def.disks);
  }
}
