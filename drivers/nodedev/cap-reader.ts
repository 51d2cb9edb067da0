// The contract each device kind's reader fulfils, and the parent rule they share: a device's
// parent is its nearest ancestor in the canonical sysfs path that is itself a device of this
// view (libvirt walks udev parents the same way), so virtio2 between eth0 and its PCI function
// and the interface between a USB device and its network card are skipped.
import type { Sysfs } from './sysfs.js';
import type { PciIds } from './pci-ids.js';
import type { NodeDevice, NodeDeviceCap, NodeDeviceRow } from './types.js';
import { blockDeviceName, PCI_ADDRESS, pciDeviceName, USB_DEVICE, usbDeviceName } from './names.js';

/** What a reader is given. */
export interface ReadContext {
  sysfs: Sysfs;
  /** The PCI name database, read on first use; undefined when not installed. */
  pciIds(): PciIds | undefined;
}

/** One device kind: where its devices are listed, how they are named and read. */
export interface CapReader<R extends NodeDeviceRow = NodeDeviceRow, D extends NodeDevice = NodeDevice> {
  readonly cap: NodeDeviceCap;
  /** The directory (relative to the sysfs root) whose entries are the devices. */
  readonly dir: string;
  /** False for entries of `dir` that are not devices of this kind (USB interfaces). */
  isDevice(entry: string): boolean;
  /** The device's name; reads at most one attribute (a net interface's address). */
  nameOf(sysfs: Sysfs, entry: string): string;
  /** The listing row; undefined when the device went while being read. */
  row(ctx: ReadContext, entry: string): R | undefined;
  /** The full record; undefined when the device went while being read. */
  detail(ctx: ReadContext, entry: string): D | undefined;
}

/** How one kind reads a device that is still there (`real`: its canonical path under the sysfs root). */
export interface KindSpec<R extends NodeDeviceRow, D extends NodeDevice> {
  readonly cap: NodeDeviceCap;
  readonly dir: string;
  isDevice(entry: string): boolean;
  nameOf(sysfs: Sysfs, entry: string): string;
  row(ctx: ReadContext, entry: string, real: string): R;
  detail(ctx: ReadContext, entry: string, real: string): D;
}

/** A reader from a kind's spec: a device whose sysfs entry vanished while being read yields undefined. */
export function capReader<R extends NodeDeviceRow, D extends NodeDevice>(k: KindSpec<R, D>): CapReader<R, D> {
  const real = (ctx: ReadContext, entry: string): string | undefined => ctx.sysfs.real(`${k.dir}/${entry}`);
  return {
    cap: k.cap, dir: k.dir, isDevice: k.isDevice, nameOf: k.nameOf,
    row: (ctx, entry) => { const r = real(ctx, entry); return r === undefined ? undefined : k.row(ctx, entry, r); },
    detail: (ctx, entry) => { const r = real(ctx, entry); return r === undefined ? undefined : k.detail(ctx, entry, r); },
  };
}

/**
 * The parent device's name for a device at canonical path `real` (relative to the sysfs root,
 * `devices/pci0000:00/0000:00:03.0/virtio2/net/eth0` → `pci_0000_00_03_0`).
 */
export function parentName(real: string): string | undefined {
  const parts = real.split('/');
  for (let i = parts.length - 2; i >= 1; i--) {
    const part = parts[i] as string;
    if (PCI_ADDRESS.test(part)) return pciDeviceName(part);
    // `1-1` alone could be an I2C client (`0-0050`); under a root hub it is a USB device.
    if (USB_DEVICE.test(part) && (part.startsWith('usb') || parts.slice(0, i).some((p) => /^usb\d+$/.test(p)))) return usbDeviceName(part);
    if (parts[i - 1] === 'block') return blockDeviceName(part);
  }
  return undefined;
}

/** True when the canonical path is under devices/virtual (no hardware behind it). */
export function isVirtual(real: string): boolean {
  return real.startsWith('devices/virtual/');
}

/** Omits undefined fields, so records compare and serialise without holes. */
export function compact<T extends object>(record: T): T {
  for (const key of Object.keys(record) as (keyof T)[]) {
    if (record[key] === undefined) delete record[key];
  }
  return record;
}
