// Disks of a running VM: hot-plug (blockdev-add + device_add, rolled back on failure), unplug
// (device_del, wait for the guest to release it, then blockdev-del) and per-disk I/O counters.
// The JSON objects come from the same driver functions the command line uses.
import { VirtqError, type NormalizedDisk } from '../../protocol/index.js';
import { blockdevNodesFor, deviceFor, diskIds, isQ35 } from '../../drivers/hypervisor/qemu/disk-devices.js';
import { hotplugPortIds } from '../../drivers/hypervisor/qemu/argv.js';
import { checkHostFiles, findHostDevices } from '../../drivers/hypervisor/qemu/host-devices.js';
import { checkOperation } from './states.js';
import type { Vm } from './vm.js';

/** I/O counters of one disk. */
export interface DiskStats {
  target: string;
  rdBytes: number;
  wrBytes: number;
  rdOps: number;
  wrOps: number;
  flushOps: number;
}

/** Hooks around hot-plug, e.g. disk leases from the lock manager. */
export interface DiskHooks {
  beforeAttach?(disk: NormalizedDisk): Promise<void>;
  afterDetach?(disk: NormalizedDisk): Promise<void>;
  /** Called when an attach failed after beforeAttach succeeded. */
  attachFailed?(disk: NormalizedDisk): Promise<void>;
}

/** Attaches `disk` to the running VM; the definition gains it. */
export function attachDisk(vm: Vm, disk: NormalizedDisk, hooks: DiskHooks, onChange: () => void): Promise<void> {
  return vm.jobs.run('attachDisk', async () => {
    checkOperation('attachDisk', vm.def.name, vm.state);
    if (vm.def.disks.some((d) => d.target === disk.target)) {
      throw new VirtqError('INVALID_ARG', `VM "${vm.def.name}" already has a disk ${disk.target}`);
    }
    if (disk.bus === 'ide') throw new VirtqError('NOT_SUPPORTED', 'IDE disks cannot be hot-plugged; use bus virtio');
    const mon = vm.monitor();
    await checkHostFiles([{ path: disk.path, field: '/disk/path', disk: true }], 'arguments of attachDisk');
    const isHost = (await findHostDevices([disk.path])).length > 0;
    const [protocolNode, formatNode] = blockdevNodesFor(disk, { hostDevice: isHost });
    await hooks.beforeAttach?.(disk);
    let added = 0;
    try {
      await mon.blockdevAdd({ ...protocolNode });
      added = 1;
      await mon.blockdevAdd({ ...formatNode });
      added = 2;
      await addDevice(vm, disk);
    } catch (err) {
      if (added === 2) await mon.blockdevDel(formatNode['node-name']).catch(() => undefined);
      if (added >= 1) await mon.blockdevDel(protocolNode['node-name']).catch(() => undefined);
      await hooks.attachFailed?.(disk);
      throw err;
    }
    vm.def = { ...vm.def, disks: [...vm.def.disks, disk] };
    onChange();
  });
}

// On q35 a hot-plugged PCI device needs a free spare root port: try each until one takes it.
async function addDevice(vm: Vm, disk: NormalizedDisk): Promise<void> {
  const mon = vm.monitor();
  if (!isQ35(vm.def.machine)) {
    await mon.deviceAdd({ ...deviceFor(disk, vm.def.machine) });
    return;
  }
  let last: unknown = new VirtqError('OPERATION_FAILED', 'no spare PCIe root port for hot-plug');
  for (const bus of hotplugPortIds(vm.def)) {
    try {
      await mon.deviceAdd({ ...deviceFor(disk, vm.def.machine, { bus }) });
      return;
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/** Unplugs the disk `target` and waits for the guest to release it. */
export function detachDisk(vm: Vm, target: string, timeoutMs: number, hooks: DiskHooks, onChange: () => void): Promise<void> {
  return vm.jobs.run('detachDisk', async () => {
    checkOperation('detachDisk', vm.def.name, vm.state);
    const disk = vm.def.disks.find((d) => d.target === target);
    if (disk === undefined) throw new VirtqError('INVALID_ARG', `VM "${vm.def.name}" has no disk ${target}`);
    const ids = diskIds(target);
    const mon = vm.monitor();
    const deleted = vm.waitDeviceDeleted(ids.device, timeoutMs);
    try {
      await mon.deviceDel(ids.device);
    } catch (err) {
      deleted.cancel();
      throw err;
    }
    await deleted.promise;
    await mon.blockdevDel(ids.formatNode).catch(() => undefined);
    await mon.blockdevDel(ids.protocolNode).catch(() => undefined);
    vm.def = { ...vm.def, disks: vm.def.disks.filter((d) => d.target !== target) };
    onChange();
    await hooks.afterDetach?.(disk);
  });
}

/** Read and write counters per disk, by guest target. */
export async function blockStats(vm: Vm): Promise<DiskStats[]> {
  checkOperation('blockStats', vm.def.name, vm.state);
  const stats = await vm.monitor().queryBlockstats();
  const out: DiskStats[] = [];
  for (const disk of vm.def.disks) {
    const ids = diskIds(disk.target);
    const s = stats.find((e) => e.nodeName === ids.formatNode || (e.qdev ?? '').includes(`/${ids.device}/`) || e.qdev === ids.device);
    if (s === undefined) continue;
    out.push({ target: disk.target, rdBytes: s.rdBytes, wrBytes: s.wrBytes, rdOps: s.rdOperations, wrOps: s.wrOperations, flushOps: s.flushOperations });
  }
  return out;
}
