// Builds a miniature sysfs in a temporary directory, laid out as the kernel lays it out: device
// directories under devices/, and bus/ and class/ entries that are relative links to them.
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** Attribute files to write in a device directory; undefined values are skipped. */
export type Attrs = Record<string, string | number | undefined>;

/** A sysfs tree under `root`; every method returns the device directory relative to the root. */
export class SysfsFixture {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
    for (const dir of ['devices/virtual/net', 'devices/virtual/block', 'bus/pci/devices', 'bus/usb/devices', 'class/net', 'class/block']) {
      mkdirSync(join(root, dir), { recursive: true });
    }
  }

  /** A PCI function under `parent` (default the host bridge `devices/pci0000:00`). */
  pci(address: string, attrs: Attrs & { driver?: string; iommuGroup?: number; physfn?: string }, parent = 'devices/pci0000:00'): string {
    const { driver, iommuGroup, physfn, ...files } = attrs;
    const dir = this.device(`${parent}/${address}`, files);
    if (driver !== undefined) this.link(`${dir}/driver`, `bus/pci/drivers/${driver}`);
    if (iommuGroup !== undefined) this.link(`${dir}/iommu_group`, `kernel/iommu_groups/${iommuGroup}`);
    if (physfn !== undefined) this.link(`${dir}/physfn`, `${parent}/${physfn}`);
    this.link(`bus/pci/devices/${address}`, dir);
    return dir;
  }

  /** A USB device or root hub (`usb1`, `1-1`), listed on the USB bus. */
  usb(sysname: string, parent: string, attrs: Attrs): string {
    const dir = this.device(`${parent}/${sysname}`, attrs);
    this.link(`bus/usb/devices/${sysname}`, dir);
    return dir;
  }

  /** A network interface under `parent` (default devices/virtual/net, a virtual one). */
  net(ifname: string, attrs: Attrs, parent?: string): string {
    const dir = this.device(parent === undefined ? `devices/virtual/net/${ifname}` : `${parent}/net/${ifname}`, attrs);
    this.link(`class/net/${ifname}`, dir);
    return dir;
  }

  /** A disk under `parent` (default devices/virtual/block), or a partition when `parent` is a disk. */
  block(name: string, attrs: Attrs, parent?: string): string {
    const inDisk = parent !== undefined && attrs['partition'] !== undefined;
    const path = parent === undefined ? `devices/virtual/block/${name}` : inDisk ? `${parent}/${name}` : `${parent}/block/${name}`;
    const dir = this.device(path, attrs);
    if (parent !== undefined && !inDisk) this.link(`${dir}/device`, parent);
    this.link(`class/block/${name}`, dir);
    return dir;
  }

  /** A plain directory with attribute files (a virtio device, a USB interface, a host bridge). */
  device(dir: string, attrs: Attrs = {}): string {
    mkdirSync(join(this.root, dir), { recursive: true });
    for (const [name, value] of Object.entries(attrs)) {
      if (value !== undefined) this.file(`${dir}/${name}`, `${value}\n`);
    }
    return dir;
  }

  /** Writes one file. */
  file(rel: string, text: string): void {
    mkdirSync(dirname(join(this.root, rel)), { recursive: true });
    writeFileSync(join(this.root, rel), text);
  }

  /** A relative link at `rel` to `target` (both relative to the root), as sysfs makes them. */
  link(rel: string, target: string): void {
    const at = join(this.root, rel);
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(relative(dirname(at), join(this.root, target)), at);
  }

  /** Removes a class or bus entry and the device directory behind it, as a hot-unplug does. */
  unplug(entry: string, dir: string): void {
    rmSync(join(this.root, entry));
    rmSync(join(this.root, dir), { recursive: true, force: true });
  }
}

/**
 * A small host: a bridge with two functions behind it, SATA and USB controllers, a NIC with a
 * virtio layer between it and its PCI function, a USB hub and a USB network adapter, lo and a
 * bridge, a virtio disk with two partitions, a SCSI disk and a loop device.
 */
export function buildHost(fx: SysfsFixture): void {
  fx.pci('0000:00:00.0', { vendor: '0x8086', device: '0x29c0', class: '0x060000', iommuGroup: 0, numa_node: -1, revision: '0x02' });
  fx.pci('0000:00:1c.0', { vendor: '0x8086', device: '0x2940', class: '0x060400', driver: 'pcieport', iommuGroup: 3, numa_node: 0 });
  fx.pci('0000:01:00.0', { vendor: '0x8086', device: '0x10fb', class: '0x020000', driver: 'ixgbe', iommuGroup: 4, numa_node: 0, subsystem_vendor: '0x8086', subsystem_device: '0x000c' }, 'devices/pci0000:00/0000:00:1c.0');
  fx.pci('0000:01:10.0', { vendor: '0x8086', device: '0x10ed', class: '0x020000', driver: 'vfio-pci', iommuGroup: 5, physfn: '0000:01:00.0' }, 'devices/pci0000:00/0000:00:1c.0');
  fx.pci('0000:00:1f.2', { vendor: '0x8086', device: '0x2922', class: '0x010601', driver: 'ahci', iommuGroup: 7 });
  fx.pci('0000:00:1d.0', { vendor: '0x8086', device: '0x2934', class: '0x0c0300', driver: 'uhci_hcd', iommuGroup: 8 });
  fx.pci('0000:00:03.0', { vendor: '0x1af4', device: '0x1041', class: '0x020000', driver: 'virtio-pci', iommuGroup: 9 });
  fx.pci('0000:00:04.0', { vendor: '0x1af4', device: '0x1042', class: '0x010000', driver: 'virtio-pci', iommuGroup: 10 });

  const hub = fx.usb('usb1', 'devices/pci0000:00/0000:00:1d.0', { busnum: 1, devnum: 1, idVendor: '1d6b', idProduct: '0001', manufacturer: 'Linux 6.1.0 uhci_hcd', product: 'UHCI Host Controller', speed: 12, bDeviceClass: '09' });
  fx.device(`${hub}/1-0:1.0`, { bInterfaceClass: '09' });
  fx.link('bus/usb/devices/1-0:1.0', `${hub}/1-0:1.0`);
  const stick = fx.usb('1-1', hub, { busnum: 1, devnum: 2, idVendor: '0B95', idProduct: '1790', manufacturer: 'ASIX', product: 'AX88179', speed: 480, bDeviceClass: '00', serial: '0000249B1C' });
  const intf = fx.device(`${stick}/1-1:1.0`, { bInterfaceClass: 'ff' });
  fx.link('bus/usb/devices/1-1:1.0', intf);

  fx.net('lo', { address: '00:00:00:00:00:00', operstate: 'unknown', mtu: 65536, ifindex: 1, type: 772 });
  fx.net('br-lan', { address: '52:54:00:aa:bb:cc', operstate: 'up', mtu: 1500, ifindex: 5, type: 1 });
  const virtio2 = fx.device('devices/pci0000:00/0000:00:03.0/virtio2');
  fx.net('eth0', { address: '52:54:00:12:34:56', operstate: 'up', mtu: 1500, speed: 1000, ifindex: 2, type: 1 }, virtio2);
  fx.net('enx0011', { address: '00:11:22:33:44:55', operstate: 'down', mtu: 1500, speed: -1, ifindex: 3, type: 1 }, intf);

  const virtio1 = fx.device('devices/pci0000:00/0000:00:04.0/virtio1');
  const vda = fx.block('vda', { size: 20971520, removable: 0, ro: 0, dev: '254:0', serial: 'disk-one' }, virtio1);
  fx.block('vda1', { size: 2048, partition: 1, ro: 0, dev: '254:1' }, vda);
  fx.block('vda10', { size: 4096, partition: 10, ro: 0, dev: '254:10' }, vda);
  fx.block('vda2', { size: 20967424, partition: 2, ro: 0, dev: '254:2' }, vda);
  const scsi = fx.device('devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0', { model: 'WDC WD10EZEX-00B', vendor: 'ATA' });
  fx.block('sda', { size: 1953525168, removable: 1, ro: 1, dev: '8:0' }, scsi);
  fx.block('loop0', { size: 0, removable: 0, ro: 0, dev: '7:0' });
}
