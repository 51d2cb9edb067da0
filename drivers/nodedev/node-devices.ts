// The read-only host-device view virtnodedevd serves: listings, lookups by name and change
// events, all read from one sysfs root (default /sys; tests pass a tree they built). Reads are
// synchronous: sysfs attributes live in kernel memory, and a whole scan is a few milliseconds.
import type { Disposable } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import { blockReader } from './block.js';
import type { CapReader, ReadContext } from './cap-reader.js';
import { netReader } from './net.js';
import { parseDeviceName } from './names.js';
import { pciReader } from './pci.js';
import { DEFAULT_PCI_IDS_PATHS, loadPciIds, type PciIds } from './pci-ids.js';
import { nodeSysfsIo, Sysfs, type SysfsIo } from './sysfs.js';
import { NODE_DEVICE_CAPS, type NodeDevice, type NodeDeviceCap, type NodeDeviceEvent, type NodeDeviceRow } from './types.js';
import { usbReader } from './usb.js';
import { watchDevices, type WatchOptions } from './watch.js';

/** Where a NodeDevices reads from. */
export interface NodeDevicesOptions {
  /** The sysfs root; default `/sys`. */
  root?: string;
  /** File operations; default the real filesystem. */
  io?: SysfsIo;
  /** Where to look for pci.ids; default DEFAULT_PCI_IDS_PATHS. Pass [] for ids without names. */
  pciIdsPaths?: readonly string[];
}

/** What a listing includes. */
export interface ListOptions {
  /** Only devices of this kind. */
  cap?: NodeDeviceCap;
}

const READERS: Readonly<Record<NodeDeviceCap, CapReader>> = { pci: pciReader, usb: usbReader, net: netReader, block: blockReader };

/** The host's devices as sysfs shows them. */
export class NodeDevices {
  private readonly sysfs: Sysfs;
  private readonly io: SysfsIo;
  private readonly pciIdsPaths: readonly string[];
  private pciIdsLoaded: { ids: PciIds | undefined } | undefined;

  constructor(options: NodeDevicesOptions = {}) {
    this.io = options.io ?? nodeSysfsIo();
    this.sysfs = new Sysfs(options.root ?? '/sys', this.io);
    this.pciIdsPaths = options.pciIdsPaths ?? DEFAULT_PCI_IDS_PATHS;
  }

  /** Every device (or every device of one kind), sorted by name. */
  async list(options: ListOptions = {}): Promise<NodeDeviceRow[]> {
    const readers = this.readersFor(options.cap);
    this.sysfs.checkRoot();
    const ctx = this.context();
    const rows: NodeDeviceRow[] = [];
    for (const reader of readers) {
      for (const entry of this.sysfs.list(reader.dir)) {
        if (!reader.isDevice(entry)) continue;
        const row = reader.row(ctx, entry);
        if (row !== undefined) rows.push(row);
      }
    }
    return rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** One device in full: INVALID_ARG for a malformed name, NO_NODE_DEVICE for one not present. */
  async get(name: string): Promise<NodeDevice> {
    if (typeof name !== 'string') throw new VirtqError('INVALID_ARG', 'node device name must be a string');
    const parsed = parseDeviceName(name);
    const reader = READERS[parsed.cap];
    this.sysfs.checkRoot();
    const entry = this.findEntry(reader, name);
    const device = entry === undefined ? undefined : reader.detail(this.context(), entry);
    if (device === undefined) {
      throw new VirtqError('NO_NODE_DEVICE', `no host device named "${name}"; nodedev-list shows the present ones`, { details: { name } });
    }
    return device;
  }

  /**
   * Reports devices that appear or go, by polling the device directories every
   * `options.intervalMs`; dispose the result to stop.
   */
  watch(onChange: (ev: NodeDeviceEvent) => void, options: WatchOptions): Disposable {
    this.sysfs.checkRoot();
    return watchDevices(this.sysfs, NODE_DEVICE_CAPS.map((cap) => READERS[cap]), onChange, options);
  }

  private readersFor(cap: NodeDeviceCap | undefined): CapReader[] {
    if (cap === undefined) return NODE_DEVICE_CAPS.map((c) => READERS[c]);
    if (!NODE_DEVICE_CAPS.includes(cap)) {
      throw new VirtqError('INVALID_ARG', `cap "${String(cap)}" is not a device kind; use one of ${NODE_DEVICE_CAPS.join(', ')}`, { details: { cap } });
    }
    return [READERS[cap]];
  }

  // Every kind is found by comparing with each present entry's name: a net or block name's
  // sanitising ('-' → '_') cannot be undone, and one rule keeps get() and list() in agreement.
  private findEntry(reader: CapReader, name: string): string | undefined {
    const entries = this.sysfs.list(reader.dir);
    return entries.find((entry) => reader.isDevice(entry) && reader.nameOf(this.sysfs, entry) === name);
  }

  private context(): ReadContext {
    return {
      sysfs: this.sysfs,
      pciIds: () => {
        this.pciIdsLoaded ??= { ids: loadPciIds(this.io, this.pciIdsPaths) };
        return this.pciIdsLoaded.ids;
      },
    };
  }
}
