// NICs of a running QEMU over QMP: hot-plug (netdev_add of a port's tap, then device_add of a
// virtio-net-pci, the backend removed again when the device fails) and unplug by MAC: the device
// is found through QOM, whether it came from the command line (nicN) or a hot-plug, then
// device_del, DEVICE_DELETED from the guest, netdev_del.
import { VirtqError } from '../../../protocol/errors.js';
import type { ResolvedDefinition } from '../../../protocol/definition.js';
import type { WaitDeviceDeleted } from '../types.js';
import { hotplugPortIds } from './argv.js';
import { isQ35 } from './disk-devices.js';
import type { QmpMonitor } from './qmp/monitor.js';

const PERIPHERALS = '/machine/peripheral';

/** The device and backend ids of a hot-plugged NIC: from its MAC, unique in one VM. */
export function hotNicIds(mac: string): { device: string; netdev: string } {
  const hex = mac.toLowerCase().replaceAll(':', '');
  return { device: `nic-${hex}`, netdev: `net-${hex}` };
}

/** Plugs a virtio NIC with `mac` on the tap `tap` into the running QEMU behind `mon`. */
export async function plugNic(mon: QmpMonitor, def: ResolvedDefinition, nic: { mac: string; tap: string }): Promise<void> {
  const ids = hotNicIds(nic.mac);
  await mon.netdevAdd({ type: 'tap', id: ids.netdev, ifname: nic.tap, script: 'no', downscript: 'no' });
  try {
    const device = { driver: 'virtio-net-pci', id: ids.device, netdev: ids.netdev, mac: nic.mac.toLowerCase() };
    if (!isQ35(def.machine)) {
      await mon.deviceAdd(device);
      return;
    }
    // On q35 a hot-plugged PCI device needs a free spare root port: try each until one takes it.
    let last: unknown = new VirtqError('OPERATION_FAILED', 'no spare PCIe root port for hot-plug');
    for (const bus of hotplugPortIds(def)) {
      try {
        await mon.deviceAdd({ ...device, bus });
        return;
      } catch (err) {
        last = err;
      }
    }
    throw last;
  } catch (err) {
    await mon.netdevDel(ids.netdev).catch(() => undefined);
    throw err;
  }
}

/** The device id and backend of the virtio NIC with `mac`, or undefined when QEMU has none. */
export async function findNic(mon: QmpMonitor, mac: string): Promise<{ device: string; netdev: string | undefined } | undefined> {
  const wanted = mac.toLowerCase();
  for (const child of await mon.qomList(PERIPHERALS)) {
    if (!/^child<virtio-net/.test(child.type)) continue;
    const path = `${PERIPHERALS}/${child.name}`;
    const have = await mon.qomGet(path, 'mac').catch(() => undefined);
    if (typeof have !== 'string' || have.toLowerCase() !== wanted) continue;
    const netdev = await mon.qomGet(path, 'netdev').catch(() => undefined);
    return { device: child.name, netdev: typeof netdev === 'string' && netdev !== '' ? netdev : undefined };
  }
  return undefined;
}

/** Unplugs the NIC with `mac`, waits for the guest to release it, then removes its backend. */
export async function unplugNic(mon: QmpMonitor, mac: string, waitDeleted: WaitDeviceDeleted): Promise<void> {
  const nic = await findNic(mon, mac);
  if (nic === undefined) throw new VirtqError('INVALID_ARG', `QEMU has no NIC with MAC ${mac}`, { details: { mac } });
  const deleted = waitDeleted(nic.device);
  try {
    await mon.deviceDel(nic.device);
  } catch (err) {
    deleted.cancel();
    throw err;
  }
  await deleted.promise;
  if (nic.netdev !== undefined) await mon.netdevDel(nic.netdev).catch(() => undefined);
}
