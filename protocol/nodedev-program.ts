// The `nodedev` program, served by virtnodedevd: a read-only view of the host's devices as sysfs
// shows them (PCI functions, USB devices, network interfaces, block devices), one record per
// device in full (libvirt's nodedev-dumpxml, as JSON), and events when a device appears or goes.
// Every procedure is read-only: nothing here changes the host. Append only.
import { Type, type Static } from '@sinclair/typebox';
import { defineProgram, event, proc } from './catalogue.js';
import { Empty } from './types.js';

const nodedevd = ['nodedev'] as const;

/** The kinds of device (libvirt's capability names). */
export const NodeDeviceCap = Type.Union([Type.Literal('pci'), Type.Literal('usb'), Type.Literal('net'), Type.Literal('block')], { description: 'device kind' });

/**
 * A device's name, libvirt's form: `pci_0000_00_1f_2`, `usb_usb1` / `usb_1_1_2`,
 * `net_eth0_52_54_00_12_34_56`, `block_vda`. The form is checked by virtnodedevd, whose
 * INVALID_ARG says what the kind expects.
 */
export const NodeDeviceName = Type.String({ minLength: 1, maxLength: 255, description: 'device name, as nodedev-list shows it (pci_0000_00_1f_2, usb_1_1, block_vda)' });

const Int = Type.Integer();
const Opt = Type.Optional;
// What every row has: name, kind, and the nearest ancestor that is itself a listed device.
const base = <C extends 'pci' | 'usb' | 'net' | 'block'>(cap: C) => ({ name: Type.String(), cap: Type.Literal(cap), parent: Opt(Type.String()) });

const pciRow = {
  ...base('pci'),
  /** `0000:00:1f.2`. */
  address: Type.String(),
  vendorId: Opt(Type.String()), productId: Opt(Type.String()),
  /** The 24-bit class code, `0x010601`. */
  class: Opt(Type.String()),
  /** The bound driver (`virtio-pci`, `vfio-pci`). */
  driver: Opt(Type.String()),
  iommuGroup: Opt(Int),
};
const usbRow = {
  ...base('usb'),
  busnum: Opt(Int), devnum: Opt(Int),
  vendorId: Opt(Type.String()), productId: Opt(Type.String()), product: Opt(Type.String()),
};
const netRow = {
  ...base('net'),
  interface: Type.String(),
  /** The link-layer address. */
  address: Opt(Type.String()),
  operstate: Opt(Type.String()),
  /** True for an interface with no device behind it (lo, bridges, taps). */
  virtual: Type.Boolean(),
};
const blockRow = {
  ...base('block'),
  /** The kernel name (`vda`, `vda1`). */
  device: Type.String(),
  sizeBytes: Opt(Int),
  /** A partition's number; its disk is its parent. */
  partition: Opt(Int),
  /** True for a device with no hardware behind it (loop, zram, dm). */
  virtual: Type.Boolean(),
};

export const PciDeviceRow = Type.Object(pciRow);
export const UsbDeviceRow = Type.Object(usbRow);
export const NetDeviceRow = Type.Object(netRow);
export const BlockDeviceRow = Type.Object(blockRow);

/** One device in a listing: the fields that identify it and say what it is. */
export const NodeDeviceRow = Type.Union([PciDeviceRow, UsbDeviceRow, NetDeviceRow, BlockDeviceRow]);

/** A PCI function in full. */
export const PciDevice = Type.Object({
  ...pciRow,
  /** The canonical sysfs directory. */
  path: Type.String(),
  domain: Int, bus: Int, slot: Int, function: Int,
  /** From pci.ids, when it is installed. */
  vendorName: Opt(Type.String()), productName: Opt(Type.String()),
  subsystemVendorId: Opt(Type.String()), subsystemProductId: Opt(Type.String()),
  revision: Opt(Type.String()),
  numaNode: Opt(Int),
  /** For an SR-IOV virtual function: its physical function's name. */
  physicalFunction: Opt(Type.String()),
});

/** A USB device in full. */
export const UsbDevice = Type.Object({
  ...usbRow,
  path: Type.String(),
  manufacturer: Opt(Type.String()), serial: Opt(Type.String()),
  /** Negotiated speed in Mbit/s (1.5, 12, 480, 5000...). */
  speedMbps: Opt(Type.Number()),
  /** bDeviceClass, two hex digits; `09` is a hub. */
  deviceClass: Opt(Type.String()),
  hub: Type.Boolean(),
  driver: Opt(Type.String()),
});

/** A network interface in full. */
export const NetDevice = Type.Object({
  ...netRow,
  path: Type.String(),
  mtu: Opt(Int),
  speedMbps: Opt(Int),
  ifindex: Opt(Int),
  /** The ARPHRD type (1 Ethernet, 772 loopback). */
  linkType: Opt(Int),
});

/** A block device or partition in full. */
export const BlockDevice = Type.Object({
  ...blockRow,
  path: Type.String(),
  /** `/dev/vda`. */
  devPath: Type.String(),
  /** `254:0`. */
  majorMinor: Opt(Type.String()),
  removable: Opt(Type.Boolean()), readOnly: Opt(Type.Boolean()),
  model: Opt(Type.String()), serial: Opt(Type.String()),
  /** A disk's partitions, by name, in number order. */
  partitions: Type.Array(Type.String()),
});

/** One device in full: every attribute sysfs gives for it (absent ones are left out, never guessed). */
export const NodeDevice = Type.Union([PciDevice, UsbDevice, NetDevice, BlockDevice]);

/** A device that appeared or went, pushed to connections that subscribed. */
export const NodeDeviceEvent = Type.Object({
  event: Type.Union([Type.Literal('added'), Type.Literal('removed')]),
  name: Type.String(),
  cap: NodeDeviceCap,
  /** Milliseconds since the epoch, when virtnodedevd noticed the change. */
  timestamp: Type.Number(),
});

export const nodedevProgram = defineProgram('nodedev', 'Host devices (PCI, USB, network interfaces, block devices) as sysfs shows them: read-only.', {
  listDevices: proc({ args: Type.Object({ cap: Opt(NodeDeviceCap) }, { additionalProperties: false }), ret: Type.Object({ devices: Type.Array(NodeDeviceRow) }),
    servers: nodedevd, readonly: true, since: '0.2', cli: 'nodedev-list',
    description: 'Every host device (or every one of a kind), sorted by name.' }),
  getDevice: proc({ args: Type.Object({ name: NodeDeviceName }, { additionalProperties: false }), ret: NodeDevice, servers: nodedevd, readonly: true, since: '0.2', cli: 'nodedev-info',
    description: 'One device in full (libvirt\'s nodedev-dumpxml, as JSON); NO_NODE_DEVICE when it is not present.' }),
  subscribeEvents: proc({ args: Empty, ret: Empty, servers: nodedevd, readonly: true, since: '0.2', cli: 'nodedev-event',
    description: 'Pushes a `device` event to this connection whenever a device appears or goes (sysfs is polled).' }),
}, {
  device: event({ body: NodeDeviceEvent, since: '0.2', description: 'A device appeared or went; sent to connections that called subscribeEvents.' }),
});
export type NodedevProgram = typeof nodedevProgram;

// Each schema above is also the name of the type it validates.
export type NodeDeviceCap = Static<typeof NodeDeviceCap>;
export type NodeDeviceRow = Static<typeof NodeDeviceRow>;
export type NodeDevice = Static<typeof NodeDevice>;
export type NodeDeviceEvent = Static<typeof NodeDeviceEvent>;
