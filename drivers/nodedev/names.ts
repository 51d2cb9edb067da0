// Device names in libvirt's style, built from sysfs names and parsed back from a client's
// argument: pci_0000_00_1f_2, usb_usb1 / usb_1_1_2, net_eth0_52_54_00_12_34_56, block_vda.
// Every character outside [A-Za-z0-9_] becomes '_', as libvirt's udev backend does.
import { VirtqError } from '../../protocol/errors.js';
import type { NodeDeviceCap } from './types.js';

/** A PCI address as sysfs names it: `0000:00:1f.2` (the domain may be longer than 4 digits). */
export const PCI_ADDRESS = /^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/;
/** A USB device's sysfs name: a root hub `usb1` or a port chain `1-1.2` (never an interface `1-1:1.0`). */
export const USB_DEVICE = /^(usb\d+|\d+-\d+(\.\d+)*)$/;

const PCI_NAME = /^pci_([0-9a-f]{4,8})_([0-9a-f]{2})_([0-9a-f]{2})_([0-7])$/;
const USB_NAME = /^usb_(usb\d+|\d+_\d+(_\d+)*)$/;
const OTHER_NAME = /^(net|block)_[A-Za-z0-9_]+$/;
const MAX_NAME = 255;

/** `0000:00:1f.2` → `pci_0000_00_1f_2`. */
export function pciDeviceName(address: string): string {
  return `pci_${address.replace(/[:.]/g, '_')}`;
}

/** `usb1` → `usb_usb1`, `1-1.2` → `usb_1_1_2` (libvirt's names for the same devices). */
export function usbDeviceName(sysname: string): string {
  return `usb_${sanitize(sysname)}`;
}

/** `eth0` with `52:54:00:12:34:56` → `net_eth0_52_54_00_12_34_56`; without an address, `net_eth0`. */
export function netDeviceName(ifname: string, address: string | undefined): string {
  return address === undefined ? `net_${sanitize(ifname)}` : `net_${sanitize(ifname)}_${sanitize(address)}`;
}

/** `vda` → `block_vda`, `dm-0` → `block_dm_0`. */
export function blockDeviceName(sysname: string): string {
  return `block_${sanitize(sysname)}`;
}

/** What a well-formed name says before any lookup. */
export type ParsedDeviceName =
  | { cap: 'pci'; address: string }
  | { cap: 'usb'; sysname: string }
  | { cap: 'net' | 'block' };

/**
 * Checks a device name's form and says which kind it names; INVALID_ARG when it cannot be one
 * of ours. PCI and USB names map back to their sysfs name; net and block names are found by
 * comparing with the names of the present devices (their sanitising is not reversible).
 */
export function parseDeviceName(name: string): ParsedDeviceName {
  if (name.length === 0 || name.length > MAX_NAME) throw invalid(name, `a name has 1 to ${MAX_NAME} characters`);
  const pci = PCI_NAME.exec(name);
  if (pci !== null) return { cap: 'pci', address: `${pci[1]}:${pci[2]}:${pci[3]}.${pci[4]}` };
  const usb = USB_NAME.exec(name);
  if (usb !== null) return { cap: 'usb', sysname: usbSysname(usb[1] as string) };
  if (OTHER_NAME.test(name)) return { cap: name.startsWith('net_') ? 'net' : 'block' };
  throw invalid(name, formHint(name));
}

function usbSysname(tail: string): string {
  if (tail.startsWith('usb')) return tail;
  const [bus, ...ports] = tail.split('_');
  return `${bus}-${ports.join('.')}`;
}

function formHint(name: string): string {
  const kind = /^([a-z]+)_/.exec(name)?.[1];
  switch (kind as NodeDeviceCap | undefined) {
    case 'pci': return 'a PCI device name is pci_DDDD_BB_SS_F in lower-case hex (pci_0000_00_1f_2)';
    case 'usb': return 'a USB device name is usb_usbN for a root hub or usb_BUS_PORT[_PORT...] (usb_1_1_2)';
    case 'net':
    case 'block': return 'after the kind prefix a name holds only letters, digits and _';
    default: return 'a device name starts with pci_, usb_, net_ or block_';
  }
}

function invalid(name: string, hint: string): VirtqError {
  return new VirtqError('INVALID_ARG', `node device name "${name.slice(0, 80)}" is malformed: ${hint}`, { details: { name: name.slice(0, MAX_NAME) } });
}

function sanitize(text: string): string {
  return text.replace(/[^A-Za-z0-9_]/g, '_');
}
