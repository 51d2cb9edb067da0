// The device view over a fixture sysfs: every kind's rows and records, parents across layers
// that are not devices (virtio, USB interfaces), pci.ids names, and lookups that fail.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NodeDevices } from '../../../../drivers/nodedev/node-devices.js';
import { VirtqError } from '../../../../protocol/errors.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';
import { buildHost, SysfsFixture } from './sysfs-fixture.js';

let tmp: TmpRoot;
let fx: SysfsFixture;
let devices: NodeDevices;

beforeEach(() => {
  tmp = tmpRoot();
  fx = new SysfsFixture(tmp.path('sys'));
  buildHost(fx);
  devices = new NodeDevices({ root: fx.root, pciIdsPaths: [] });
});
afterEach(() => tmp.remove());

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return err instanceof VirtqError ? err.code : 'not a VirtqError';
  }
  return undefined;
}

describe('NodeDevices.list', () => {
  it('lists every device of every kind once, sorted by name, leaving USB interfaces out', async () => {
    const rows = await devices.list();
    expect(rows.map((r) => r.name)).toEqual([
      'block_loop0', 'block_sda', 'block_vda', 'block_vda1', 'block_vda10', 'block_vda2',
      'net_br_lan_52_54_00_aa_bb_cc', 'net_enx0011_00_11_22_33_44_55', 'net_eth0_52_54_00_12_34_56', 'net_lo_00_00_00_00_00_00',
      'pci_0000_00_00_0', 'pci_0000_00_03_0', 'pci_0000_00_04_0', 'pci_0000_00_1c_0', 'pci_0000_00_1d_0', 'pci_0000_00_1f_2',
      'pci_0000_01_00_0', 'pci_0000_01_10_0',
      'usb_1_1', 'usb_usb1',
    ]);
  });

  it('filters by kind', async () => {
    expect((await devices.list({ cap: 'usb' })).map((r) => r.name)).toEqual(['usb_1_1', 'usb_usb1']);
    expect((await devices.list({ cap: 'pci' })).every((r) => r.cap === 'pci')).toBe(true);
  });

  it('refuses an unknown kind with INVALID_ARG', async () => {
    expect(await codeOf(devices.list({ cap: 'scsi' as 'pci' }))).toBe('INVALID_ARG');
  });

  it('gives each row its summary fields and its parent', async () => {
    const rows = new Map((await devices.list()).map((r) => [r.name, r]));
    expect(rows.get('pci_0000_01_00_0')).toEqual({
      name: 'pci_0000_01_00_0', cap: 'pci', parent: 'pci_0000_00_1c_0', address: '0000:01:00.0',
      vendorId: '0x8086', productId: '0x10fb', class: '0x020000', driver: 'ixgbe', iommuGroup: 4,
    });
    expect(rows.get('pci_0000_00_00_0')).toEqual({
      name: 'pci_0000_00_00_0', cap: 'pci', address: '0000:00:00.0', vendorId: '0x8086', productId: '0x29c0', class: '0x060000', iommuGroup: 0,
    });
    expect(rows.get('usb_usb1')).toMatchObject({ parent: 'pci_0000_00_1d_0', busnum: 1, devnum: 1, vendorId: '1d6b', productId: '0001' });
    expect(rows.get('usb_1_1')).toMatchObject({ parent: 'usb_usb1', vendorId: '0b95', product: 'AX88179' });
    expect(rows.get('net_eth0_52_54_00_12_34_56')).toEqual({
      name: 'net_eth0_52_54_00_12_34_56', cap: 'net', parent: 'pci_0000_00_03_0', interface: 'eth0',
      address: '52:54:00:12:34:56', operstate: 'up', virtual: false,
    });
    expect(rows.get('net_enx0011_00_11_22_33_44_55')).toMatchObject({ parent: 'usb_1_1', virtual: false });
    expect(rows.get('net_lo_00_00_00_00_00_00')).not.toHaveProperty('parent');
    expect(rows.get('net_lo_00_00_00_00_00_00')).toMatchObject({ virtual: true });
    expect(rows.get('block_vda')).toEqual({ name: 'block_vda', cap: 'block', parent: 'pci_0000_00_04_0', device: 'vda', sizeBytes: 20971520 * 512, virtual: false });
    expect(rows.get('block_vda2')).toMatchObject({ parent: 'block_vda', partition: 2 });
    expect(rows.get('block_sda')).toMatchObject({ parent: 'pci_0000_00_1f_2' });
    expect(rows.get('block_loop0')).toMatchObject({ sizeBytes: 0, virtual: true });
  });

  it('names only parents that are themselves listed', async () => {
    const rows = await devices.list();
    const names = new Set(rows.map((r) => r.name));
    for (const row of rows) if (row.parent !== undefined) expect(names.has(row.parent), row.name).toBe(true);
  });
});

describe('NodeDevices.get', () => {
  it('reads a PCI function in full', async () => {
    fx.file('devices/pci0000:00/0000:00:1c.0/0000:01:00.0/revision', '0x01\n');
    expect(await devices.get('pci_0000_01_00_0')).toEqual({
      name: 'pci_0000_01_00_0', cap: 'pci', parent: 'pci_0000_00_1c_0', address: '0000:01:00.0',
      path: fx.root + '/devices/pci0000:00/0000:00:1c.0/0000:01:00.0',
      domain: 0, bus: 1, slot: 0, function: 0, vendorId: '0x8086', productId: '0x10fb', class: '0x020000',
      subsystemVendorId: '0x8086', subsystemProductId: '0x000c', revision: '0x01', driver: 'ixgbe', iommuGroup: 4, numaNode: 0,
    });
  });

  it('names an SR-IOV function\'s physical function and leaves out a NUMA node of -1', async () => {
    const vf = await devices.get('pci_0000_01_10_0');
    expect(vf).toMatchObject({ physicalFunction: 'pci_0000_01_00_0', slot: 0x10, driver: 'vfio-pci' });
    expect(await devices.get('pci_0000_00_00_0')).not.toHaveProperty('numaNode');
  });

  it('adds vendor and product names when a pci.ids is installed', async () => {
    fx.file('../pci.ids', '# test\n8086  Intel Corporation\n\t10fb  82599ES 10-Gigabit SFI/SFP+ Network Connection\n\t\t8086 000c  Ethernet Server Adapter X520-2\n1af4  Red Hat, Inc.\nC 02  Network controller\n\t00  Ethernet controller\n');
    const named = new NodeDevices({ root: fx.root, pciIdsPaths: [tmp.path('absent.ids'), tmp.path('pci.ids')] });
    expect(await named.get('pci_0000_01_00_0')).toMatchObject({ vendorName: 'Intel Corporation', productName: '82599ES 10-Gigabit SFI/SFP+ Network Connection' });
    const virtio = await named.get('pci_0000_00_03_0');
    expect(virtio).toMatchObject({ vendorName: 'Red Hat, Inc.' });
    expect(virtio).not.toHaveProperty('productName');
  });

  it('reads a USB device and a hub', async () => {
    expect(await devices.get('usb_1_1')).toEqual({
      name: 'usb_1_1', cap: 'usb', parent: 'usb_usb1', path: fx.root + '/devices/pci0000:00/0000:00:1d.0/usb1/1-1',
      busnum: 1, devnum: 2, vendorId: '0b95', productId: '1790', manufacturer: 'ASIX', product: 'AX88179', serial: '0000249B1C',
      speedMbps: 480, deviceClass: '00', hub: false,
    });
    expect(await devices.get('usb_usb1')).toMatchObject({ hub: true, speedMbps: 12, manufacturer: 'Linux 6.1.0 uhci_hcd' });
  });

  it('reads a network interface, leaving out an unknown speed', async () => {
    expect(await devices.get('net_eth0_52_54_00_12_34_56')).toMatchObject({ interface: 'eth0', mtu: 1500, speedMbps: 1000, ifindex: 2, linkType: 1 });
    expect(await devices.get('net_enx0011_00_11_22_33_44_55')).not.toHaveProperty('speedMbps');
    expect(await devices.get('net_br_lan_52_54_00_aa_bb_cc')).toMatchObject({ interface: 'br-lan', virtual: true });
  });

  it('reads a disk with its partitions in number order, and a partition with its disk', async () => {
    expect(await devices.get('block_vda')).toEqual({
      name: 'block_vda', cap: 'block', parent: 'pci_0000_00_04_0', device: 'vda', path: fx.root + '/devices/pci0000:00/0000:00:04.0/virtio1/block/vda',
      devPath: '/dev/vda', majorMinor: '254:0', sizeBytes: 20971520 * 512, removable: false, readOnly: false, serial: 'disk-one',
      virtual: false, partitions: ['block_vda1', 'block_vda2', 'block_vda10'],
    });
    expect(await devices.get('block_vda10')).toMatchObject({ parent: 'block_vda', partition: 10, sizeBytes: 4096 * 512, partitions: [] });
    expect(await devices.get('block_sda')).toMatchObject({ model: 'WDC WD10EZEX-00B', removable: true, readOnly: true, partitions: [] });
  });

  it('answers NO_NODE_DEVICE for a well-formed name that is not present', async () => {
    for (const name of ['pci_0000_00_1f_3', 'usb_2_1', 'usb_1_1_1', 'net_eth0_52_54_00_12_34_57', 'net_eth1', 'block_vdb']) {
      expect(await codeOf(devices.get(name)), name).toBe('NO_NODE_DEVICE');
    }
  });

  it('answers INVALID_ARG for a malformed name, before reading anything', async () => {
    const broken = new NodeDevices({ root: tmp.path('nowhere') });
    expect(await codeOf(broken.get('pci_0000_00_1f'))).toBe('INVALID_ARG');
    expect(await codeOf(devices.get(42 as unknown as string))).toBe('INVALID_ARG');
  });

  it('fails with OPERATION_FAILED naming the root when there is no sysfs there', async () => {
    const broken = new NodeDevices({ root: tmp.path('nowhere') });
    await expect(broken.list()).rejects.toThrow(/cannot read the sysfs root .*nowhere/);
    expect(await codeOf(broken.get('block_vda'))).toBe('OPERATION_FAILED');
  });
});
