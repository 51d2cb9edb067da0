// PCI functions from /sys/bus/pci/devices: address, ids, class, bound driver, IOMMU group,
// NUMA node, and names from pci.ids when it is installed.
import type { CapReader, ReadContext } from './cap-reader.js';
import { capReader, compact, parentName } from './cap-reader.js';
import { PCI_ADDRESS, pciDeviceName } from './names.js';
import type { PciDevice, PciDeviceRow } from './types.js';

const DIR = 'bus/pci/devices';

/** The PCI reader. */
export const pciReader: CapReader<PciDeviceRow, PciDevice> = capReader({
  cap: 'pci',
  dir: DIR,
  isDevice: (entry) => PCI_ADDRESS.test(entry),
  nameOf: (_sysfs, entry) => pciDeviceName(entry),
  row: pciRow,
  detail: pciDetail,
});

function pciRow(ctx: ReadContext, address: string, real: string): PciDeviceRow {
  const { sysfs } = ctx;
  const at = (attr: string): string => `${DIR}/${address}/${attr}`;
  return compact<PciDeviceRow>({
    name: pciDeviceName(address),
    cap: 'pci',
    parent: parentName(real),
    address,
    vendorId: hexId(sysfs.attr(at('vendor'))),
    productId: hexId(sysfs.attr(at('device'))),
    class: hexId(sysfs.attr(at('class'))),
    driver: sysfs.linkName(at('driver')),
    iommuGroup: decimal(sysfs.linkName(at('iommu_group'))),
  });
}

function pciDetail(ctx: ReadContext, address: string, real: string): PciDevice {
  const { sysfs } = ctx;
  const at = (attr: string): string => `${DIR}/${address}/${attr}`;
  const row = pciRow(ctx, address, real);
  const [, domain, bus, slot, fn] = PCI_ADDRESS.exec(address) as RegExpExecArray;
  const ids = row.vendorId === undefined ? undefined : ctx.pciIds();
  const numaNode = sysfs.int(at('numa_node'));
  const physfn = sysfs.linkName(at('physfn'));
  return compact<PciDevice>({
    ...row,
    path: sysfs.abs(real),
    domain: parseInt(domain as string, 16),
    bus: parseInt(bus as string, 16),
    slot: parseInt(slot as string, 16),
    function: Number(fn),
    vendorName: row.vendorId === undefined ? undefined : ids?.vendor(row.vendorId),
    productName: row.vendorId === undefined || row.productId === undefined ? undefined : ids?.product(row.vendorId, row.productId),
    subsystemVendorId: hexId(sysfs.attr(at('subsystem_vendor'))),
    subsystemProductId: hexId(sysfs.attr(at('subsystem_device'))),
    revision: hexId(sysfs.attr(at('revision'))),
    numaNode: numaNode === undefined || numaNode < 0 ? undefined : numaNode,
    physicalFunction: physfn !== undefined && PCI_ADDRESS.test(physfn) ? pciDeviceName(physfn) : undefined,
  });
}

/** `0x8086` as sysfs writes it; anything else is not an id. */
function hexId(text: string | undefined): string | undefined {
  return text !== undefined && /^0x[0-9a-fA-F]+$/.test(text) ? text.toLowerCase() : undefined;
}

function decimal(text: string | undefined): number | undefined {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}
