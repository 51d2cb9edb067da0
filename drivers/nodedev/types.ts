// The shapes of the host-device view: a summary row per device for listings, a full record per
// device for lookups, and the change events. Every field read from a sysfs attribute is optional:
// an attribute that is absent or unreadable is left out, never guessed.

/** The kinds of device the view knows (libvirt's capability names). */
export type NodeDeviceCap = 'pci' | 'usb' | 'net' | 'block';

/** Every kind, in the order listings scan them. */
export const NODE_DEVICE_CAPS: readonly NodeDeviceCap[] = ['pci', 'usb', 'net', 'block'];

/** What every row has. */
export interface NodeDeviceBase<C extends NodeDeviceCap> {
  /** The libvirt-style name (`pci_0000_00_1f_2`). */
  name: string;
  cap: C;
  /** The nearest ancestor in sysfs that is itself a device of this view; absent for a root. */
  parent?: string;
}

/** A PCI function in a listing. */
export interface PciDeviceRow extends NodeDeviceBase<'pci'> {
  /** `0000:00:1f.2`. */
  address: string;
  /** `0x8086`. */
  vendorId?: string;
  /** `0x2922`. */
  productId?: string;
  /** The 24-bit class code, `0x010601`. */
  class?: string;
  /** The bound driver (`virtio-pci`, `vfio-pci`). */
  driver?: string;
  iommuGroup?: number;
}

/** A PCI function in full. */
export interface PciDevice extends PciDeviceRow {
  /** The canonical sysfs directory. */
  path: string;
  domain: number;
  bus: number;
  slot: number;
  function: number;
  /** From pci.ids, when that file is installed. */
  vendorName?: string;
  productName?: string;
  subsystemVendorId?: string;
  subsystemProductId?: string;
  revision?: string;
  /** Absent when the kernel reports none (-1). */
  numaNode?: number;
  /** For an SR-IOV virtual function: its physical function's name. */
  physicalFunction?: string;
}

/** A USB device (not an interface) in a listing. */
export interface UsbDeviceRow extends NodeDeviceBase<'usb'> {
  busnum?: number;
  devnum?: number;
  /** `1d6b` (four hex digits, as lsusb prints them). */
  vendorId?: string;
  productId?: string;
  product?: string;
}

/** A USB device in full. */
export interface UsbDevice extends UsbDeviceRow {
  path: string;
  manufacturer?: string;
  serial?: string;
  /** Negotiated speed in Mbit/s (1.5, 12, 480, 5000...). */
  speedMbps?: number;
  /** bDeviceClass, two hex digits; `09` is a hub. */
  deviceClass?: string;
  hub: boolean;
  driver?: string;
}

/** A network interface in a listing. */
export interface NetDeviceRow extends NodeDeviceBase<'net'> {
  /** The interface name (`eth0`). */
  interface: string;
  /** The link-layer address (`52:54:00:12:34:56`). */
  address?: string;
  /** `up`, `down`, `unknown`... */
  operstate?: string;
  /** True for an interface with no device behind it (lo, bridges, taps). */
  virtual: boolean;
}

/** A network interface in full. */
export interface NetDevice extends NetDeviceRow {
  path: string;
  mtu?: number;
  /** Link speed in Mbit/s; absent when the link is down or the driver does not say. */
  speedMbps?: number;
  ifindex?: number;
  /** The ARPHRD type (1 is Ethernet, 772 loopback). */
  linkType?: number;
}

/** A block device or partition in a listing. */
export interface BlockDeviceRow extends NodeDeviceBase<'block'> {
  /** The kernel name (`vda`, `vda1`). */
  device: string;
  sizeBytes?: number;
  /** For a partition, its number; the disk is its parent. */
  partition?: number;
  /** True for a device with no hardware behind it (loop, zram, dm). */
  virtual: boolean;
}

/** A block device in full. */
export interface BlockDevice extends BlockDeviceRow {
  path: string;
  /** `/dev/vda`. */
  devPath: string;
  /** `254:0`. */
  majorMinor?: string;
  removable?: boolean;
  readOnly?: boolean;
  model?: string;
  serial?: string;
  /** A disk's partitions, by name, in order. */
  partitions: string[];
}

/** One row of a listing. */
export type NodeDeviceRow = PciDeviceRow | UsbDeviceRow | NetDeviceRow | BlockDeviceRow;

/** One device in full. */
export type NodeDevice = PciDevice | UsbDevice | NetDevice | BlockDevice;

/** A device that appeared or went. */
export interface NodeDeviceEvent {
  kind: 'added' | 'removed';
  name: string;
  cap: NodeDeviceCap;
}
