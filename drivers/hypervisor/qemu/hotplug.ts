// Disks of a running QEMU over QMP: hot-plug (blockdev-add + device_add, rolled back on
// failure), unplug (device_del, wait for DEVICE_DELETED, then blockdev-del) and per-disk I/O
// counters. The JSON objects come from the same functions the command line uses.
import { VirtqError } from '../../../protocol/errors.js';
import type { ResolvedDefinition, ResolvedDisk } from '../../../protocol/definition.js';
import type { DiskStats, WaitDeviceDeleted } from '../types.js';
import { blockdevNodesFor, deviceFor, diskIds, isQ35, secretId } from './disk-devices.js';
import { hotplugPortIds } from './argv.js';
import { checkHostFiles, findHostDevices } from './host-devices.js';
import type { QmpMonitor } from './qmp/monitor.js';

/** Plugs `disk` into the running QEMU behind `mon`. */
export async function plugDisk(mon: QmpMonitor, def: ResolvedDefinition, disk: ResolvedDisk, beforePlug: () => Promise<void>, passphrase?: Uint8Array): Promise<void> {
  if (disk.bus === 'ide') throw new VirtqError('NOT_SUPPORTED', 'IDE disks cannot be hot-plugged; use bus virtio');
  await checkHostFiles([{ path: disk.path, field: '/disk/path', disk: true }], 'arguments of attachDisk');
  const isHost = (await findHostDevices([disk.path])).length > 0;
  const [protocolNode, formatNode] = blockdevNodesFor(disk, { hostDevice: isHost });
  if (disk.encryption !== undefined && passphrase === undefined) throw new VirtqError('INVALID_ARG', `disk ${disk.target} is encrypted but no passphrase was given for it`);
  await beforePlug();
  let added = 0;
  const secret = disk.encryption === undefined ? undefined : secretId(disk.target);
  try {
    // Over QMP the passphrase stays in QEMU's memory: never on a command line or in a file.
    if (secret !== undefined && passphrase !== undefined) await mon.secretAdd(secret, passphrase);
    await mon.blockdevAdd({ ...protocolNode });
    added = 1;
    await mon.blockdevAdd({ ...formatNode });
    added = 2;
    await addDevice(mon, def, disk);
  } catch (err) {
    if (added === 2) await mon.blockdevDel(formatNode['node-name']).catch(() => undefined);
    if (added >= 1) await mon.blockdevDel(protocolNode['node-name']).catch(() => undefined);
    if (secret !== undefined) await mon.objectDel(secret).catch(() => undefined);
    throw err;
  }
}

// On q35 a hot-plugged PCI device needs a free spare root port: try each until one takes it.
async function addDevice(mon: QmpMonitor, def: ResolvedDefinition, disk: ResolvedDisk): Promise<void> {
  if (!isQ35(def.machine)) {
    await mon.deviceAdd({ ...deviceFor(disk, def.machine) });
    return;
  }
  let last: unknown = new VirtqError('OPERATION_FAILED', 'no spare PCIe root port for hot-plug');
  for (const bus of hotplugPortIds(def)) {
    try {
      await mon.deviceAdd({ ...deviceFor(disk, def.machine, { bus }) });
      return;
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/** Unplugs the disk `target` and waits for the guest to release it. */
export async function unplugDisk(mon: QmpMonitor, target: string, waitDeleted: WaitDeviceDeleted): Promise<void> {
  const ids = diskIds(target);
  const deleted = waitDeleted(ids.device);
  try {
    await mon.deviceDel(ids.device);
  } catch (err) {
    deleted.cancel();
    throw err;
  }
  await deleted.promise;
  // External snapshots put overlays (ov-TARGET-N on ovf-TARGET-N) on top: closed newest first.
  const nodes = (await mon.raw({ execute: 'query-named-block-nodes', arguments: { flat: true } }).catch(() => []) as Array<{ 'node-name': string }>)
    .map((n) => /^ov-(.+)-(\d+)$/.exec(n['node-name'])).filter((m): m is RegExpExecArray => m?.[1] === target).map((m) => Number(m[2])).sort((a, b) => b - a);
  for (const n of nodes) {
    await mon.blockdevDel(`ov-${target}-${n}`).catch(() => undefined);
    await mon.blockdevDel(`ovf-${target}-${n}`).catch(() => undefined);
  }
  await mon.blockdevDel(ids.formatNode).catch(() => undefined);
  await mon.blockdevDel(ids.protocolNode).catch(() => undefined);
  // An encrypted disk's secret object goes with it (absent for other disks: the error is expected).
  await mon.objectDel(secretId(target)).catch(() => undefined);
}

/** Read and write counters per disk, by guest target. */
export async function diskStats(mon: QmpMonitor, disks: readonly ResolvedDisk[]): Promise<DiskStats[]> {
  const stats = await mon.queryBlockstats();
  const out: DiskStats[] = [];
  for (const disk of disks) {
    const ids = diskIds(disk.target);
    const s = stats.find((e) => e.nodeName === ids.formatNode || (e.qdev ?? '').includes(`/${ids.device}/`) || e.qdev === ids.device);
    if (s === undefined) continue;
    out.push({ target: disk.target, rdBytes: s.rdBytes, wrBytes: s.wrBytes, rdOps: s.rdOperations, wrOps: s.wrOperations, flushOps: s.flushOperations });
  }
  return out;
}
