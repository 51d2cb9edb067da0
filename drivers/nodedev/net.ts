// Network interfaces from /sys/class/net: name, link-layer address, state, MTU, speed, and the
// device behind the interface (a PCI function, a USB device) as its parent.
import type { CapReader, ReadContext } from './cap-reader.js';
import { capReader, compact, isVirtual, parentName } from './cap-reader.js';
import { netDeviceName } from './names.js';
import type { Sysfs } from './sysfs.js';
import type { NetDevice, NetDeviceRow } from './types.js';

const DIR = 'class/net';
// The kernel reports an unknown speed as -1, which some drivers print as an unsigned 32-bit value.
const UNKNOWN_SPEEDS = new Set([-1, 0xffffffff]);

/** The network interface reader. */
export const netReader: CapReader<NetDeviceRow, NetDevice> = capReader({
  cap: 'net',
  dir: DIR,
  // bonding_masters is a file beside the interfaces when the bonding module is loaded.
  isDevice: (entry) => entry !== 'bonding_masters',
  nameOf: (sysfs, entry) => netDeviceName(entry, linkAddress(sysfs, entry)),
  row: netRow,
  detail: netDetail,
});

function linkAddress(sysfs: Sysfs, ifname: string): string | undefined {
  return sysfs.attr(`${DIR}/${ifname}/address`)?.toLowerCase();
}

function netRow(ctx: ReadContext, ifname: string, real: string): NetDeviceRow {
  const { sysfs } = ctx;
  const address = linkAddress(sysfs, ifname);
  return compact<NetDeviceRow>({
    name: netDeviceName(ifname, address),
    cap: 'net',
    parent: parentName(real),
    interface: ifname,
    address,
    operstate: sysfs.attr(`${DIR}/${ifname}/operstate`),
    virtual: isVirtual(real),
  });
}

function netDetail(ctx: ReadContext, ifname: string, real: string): NetDevice {
  const { sysfs } = ctx;
  const at = (attr: string): string => `${DIR}/${ifname}/${attr}`;
  const speed = sysfs.int(at('speed'));
  return compact<NetDevice>({
    ...netRow(ctx, ifname, real),
    path: sysfs.abs(real),
    mtu: sysfs.int(at('mtu')),
    speedMbps: speed === undefined || UNKNOWN_SPEEDS.has(speed) ? undefined : speed,
    ifindex: sysfs.int(at('ifindex')),
    linkType: sysfs.int(at('type')),
  });
}
