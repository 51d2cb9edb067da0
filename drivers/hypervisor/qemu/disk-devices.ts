// One disk → its QEMU block graph (protocol node, format node) and guest device, as the JSON
// objects that both the command line (-blockdev/-device) and QMP hot-plug (blockdev-add/device_add)
// take. Cold-plug and hot-plug go through these functions only, so the two can never drift.
import type { ResolvedDisk } from '../../../protocol/definition.js';
import { VirtqError } from '../../../protocol/errors.js';

/** The protocol (bottom) node: the file or block device itself. */
export interface ProtocolNode {
  driver: 'file' | 'host_device';
  filename: string;
  'node-name': string;
  'read-only': boolean;
  discard?: 'unmap';
}

/** The format node the guest device is attached to. */
export interface FormatNode {
  driver: 'raw' | 'qcow2';
  'node-name': string;
  file: string;
  'read-only': boolean;
  discard?: 'unmap';
  /** A LUKS-encrypted qcow2 image: its passphrase is the QEMU `secret` object `key-secret`. */
  encrypt?: { format: 'luks'; 'key-secret': string };
}

/** The guest-visible device (`device_add` arguments). */
export interface DiskDevice {
  driver: 'virtio-blk-pci' | 'ide-hd';
  drive: string;
  id: string;
  bus?: string;
  unit?: number;
  'share-rw'?: true;
}

/** The QEMU identifiers used for one disk target; stable, derived from the target alone. */
export interface DiskIds {
  protocolNode: string;
  formatNode: string;
  device: string;
}

/** Where a disk's protocol node comes from: `hostDevice` selects QEMU's `host_device` driver. */
export interface BlockdevOptions {
  /** True when the caller found `disk.path` to be a block device (QEMU's `file` driver refuses those). */
  hostDevice?: boolean;
}

/** Where to put the guest device. */
export interface DevicePlacement {
  /** PCI(e) bus for virtio disks; on q35 defaults to the disk's own root port `rp-<target>`. */
  bus?: string;
}

/** True for the q35 machine family (PCIe: devices go behind pcie-root-ports to be hot-pluggable). */
export function isQ35(machine: string): boolean {
  return /q35/.test(machine);
}

/** The node names and device id of the disk with guest name `target`. */
export function diskIds(target: string): DiskIds {
  return { protocolNode: `proto-${target}`, formatNode: `fmt-${target}`, device: `disk-${target}` };
}

/** The id of the QEMU `secret` object holding an encrypted disk's passphrase. */
export function secretId(target: string): string {
  return `sec-${target}`;
}

/** The id of the root port a cold-plugged PCI device with id suffix `name` sits on (q35 only). */
export function rootPortFor(name: string): string {
  return `rp-${name}`;
}

/**
 * The `blockdev-add` arguments for `disk`, in the order they must be added (protocol first;
 * remove in reverse). Image locking stays on; shared access is granted by the device's
 * `share-rw` (see docs/decisions/0003-qemu-argv.md). Throws INVALID_ARG for combinations
 * QEMU cannot serve safely.
 */
export function blockdevNodesFor(disk: ResolvedDisk, opts: BlockdevOptions = {}): readonly [ProtocolNode, FormatNode] {
  checkDisk(disk);
  const ids = diskIds(disk.target);
  const discard = disk.readonly ? {} : { discard: 'unmap' as const };
  const protocol: ProtocolNode = {
    driver: opts.hostDevice === true ? 'host_device' : 'file',
    filename: disk.path,
    'node-name': ids.protocolNode,
    'read-only': disk.readonly,
    ...discard,
  };
  const format: FormatNode = {
    driver: disk.format,
    'node-name': ids.formatNode,
    file: ids.protocolNode,
    'read-only': disk.readonly,
    ...discard,
    ...(disk.encryption === undefined ? {} : { encrypt: { format: 'luks' as const, 'key-secret': secretId(disk.target) } }),
  };
  return [protocol, format];
}

/**
 * The `device_add` arguments for `disk` on a VM of machine type `machine`. IDE disks get a
 * fixed bus and unit from the target letter (`hda` = first) and cannot be hot-plugged.
 * For q35 hot-plug, pass a free spare root port as `placement.bus`.
 */
export function deviceFor(disk: ResolvedDisk, machine: string, placement: DevicePlacement = {}): DiskDevice {
  checkDisk(disk);
  const ids = diskIds(disk.target);
  const share = disk.shareable ? { 'share-rw': true as const } : {};
  if (disk.bus === 'ide') {
    return { driver: 'ide-hd', drive: ids.formatNode, id: ids.device, ...ideAddress(disk.target, machine), ...share };
  }
  const bus = placement.bus ?? (isQ35(machine) ? rootPortFor(disk.target) : undefined);
  return { driver: 'virtio-blk-pci', drive: ids.formatNode, id: ids.device, ...(bus === undefined ? {} : { bus }), ...share };
}

/** 0 for `?da`, 1 for `?db`, 26 for `?daa`: the drive index encoded by a target name. */
export function targetIndex(target: string): number {
  const letters = target.slice(2);
  let index = 0;
  for (const ch of letters) index = index * 26 + (ch.charCodeAt(0) - 96);
  return index - 1;
}

/**
 * pc (PIIX): two IDE buses with master and slave, so hda..hdd; q35 (ICH9 AHCI): six ports
 * ide.0..ide.5, one unit each.
 */
function ideAddress(target: string, machine: string): { bus: string; unit: number } {
  const index = targetIndex(target);
  const q35 = isQ35(machine);
  const max = q35 ? 6 : 4;
  if (index >= max) {
    throw new VirtqError('INVALID_ARG', `disk ${target}: machine ${machine} has ${max} IDE positions; target ${target} is position ${index + 1}`, { details: { target } });
  }
  return q35 ? { bus: `ide.${index}`, unit: 0 } : { bus: `ide.${index >> 1}`, unit: index & 1 };
}

/** Refuses disks QEMU would refuse later or corrupt: checked up front with a clear message. */
function checkDisk(disk: ResolvedDisk): void {
  if (disk.bus === 'ide' && disk.readonly) {
    // QEMU: "ide-hd: Block node is read-only" (only CD-ROMs are read-only on IDE).
    throw new VirtqError('INVALID_ARG', `disk ${disk.target}: read-only IDE disks are not supported; use bus virtio`, { details: { target: disk.target } });
  }
  if (disk.encryption !== undefined && disk.format !== 'qcow2') {
    throw new VirtqError('INVALID_ARG', `disk ${disk.target}: an encrypted disk must be a qcow2 image (LUKS inside qcow2), not ${disk.format}`, { details: { target: disk.target } });
  }
  if (disk.shareable && !disk.readonly && disk.format !== 'raw') {
    // A qcow2 node never shares write access to its file: two writers would corrupt its metadata.
    throw new VirtqError('INVALID_ARG', `disk ${disk.target}: a shareable writable disk must have format raw, not ${disk.format}`, { details: { target: disk.target } });
  }
}
