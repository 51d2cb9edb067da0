// Why the libvirt elements virtq has no equivalent for are left out, said as a person needs to
// hear it: what virtq does instead. Looked up for every element the converter did not take;
// anything not listed gets the generic "virtq has no equivalent of <X>".
import type { XmlElement } from './xml-tree.js';

const TOP: Readonly<Record<string, string>> = {
  title: 'a virtq definition has no title, description or metadata',
  description: 'a virtq definition has no title, description or metadata',
  metadata: 'a virtq definition has no title, description or metadata',
  genid: 'virtq gives the guest no VM generation ID device',
  maxMemory: 'virtq has no memory hot-plug: the guest gets <memory> at start and no more',
  memoryBacking: 'virtq backs guest memory with ordinary host memory: no hugepages, locking, sharing or file backing',
  memtune: 'virtq sets no cgroup memory limits',
  blkiotune: 'virtq sets no cgroup block I/O weights or limits',
  cputune: 'virtq does not pin, weight or throttle vCPUs or QEMU threads',
  numatune: 'virtq gives guest memory no NUMA placement: it goes where the host kernel puts it',
  vcpus: 'virtq has no per-vCPU hot-plug settings: all vCPUs are present from the start',
  iothreads: 'virtq runs block I/O in QEMU\'s main loop: no I/O threads',
  iothreadids: 'virtq runs block I/O in QEMU\'s main loop: no I/O threads',
  resource: 'virtq puts VMs in no cgroup partition',
  sysinfo: 'virtq sets no SMBIOS strings',
  idmap: 'user-namespace id maps are for containers, not QEMU guests',
  pm: 'virtq sets no guest suspend-to-memory or suspend-to-disk policy (QEMU\'s default applies)',
  perf: 'virtq records no perf events',
  seclabel: 'virtq applies no SELinux, AppArmor or DAC label of its own to QEMU',
  keywrap: 'virtq starts no guests with s390 key wrapping',
  launchSecurity: 'virtq starts no confidential-computing guests (SEV, TDX, PV)',
  on_lockfailure: 'virtq has no lock-failure action: a disk whose lease is held stops the start (LOCK_CONFLICT)',
  throttlegroups: 'virtq sets no disk I/O limits',
  'qemu:commandline': 'raw QEMU arguments are not carried over: virtq builds the whole command line itself',
  'qemu:capabilities': 'raw QEMU settings are not carried over: virtq builds the whole command line itself',
  'qemu:override': 'raw QEMU settings are not carried over: virtq builds the whole command line itself',
  'qemu:deprecation': 'raw QEMU settings are not carried over: virtq builds the whole command line itself',
};

const DEVICES: Readonly<Record<string, string>> = {
  graphics: 'virtq has no graphical console (VNC, SPICE, SDL): its guests have a serial console only (virtq console)',
  video: 'virtq starts QEMU with no display device (-display none, -nodefaults)',
  audio: 'virtq gives the guest no sound device',
  sound: 'virtq gives the guest no sound device',
  hostdev: 'virtq passes no host device through to a guest (virtnodedevd only lists host devices)',
  redirdev: 'virtq redirects no USB devices to the guest',
  smartcard: 'virtq gives the guest no smartcard reader',
  hub: 'virtq gives the guest no USB',
  input: 'virtq gives the guest no input devices beyond the PS/2 keyboard and mouse of the PC board',
  channel: 'virtq gives the guest no channels (guest agent, SPICE agent)',
  rng: 'virtq gives the guest no virtio-rng device',
  tpm: 'virtq gives the guest no TPM',
  watchdog: 'virtq gives the guest no watchdog device',
  panic: 'virtq gives the guest no panic device: a crash is known when QEMU reports it',
  filesystem: 'virtq shares no host directories with the guest (virtiofs, 9p)',
  shmem: 'virtq gives the guest no shared-memory devices',
  memory: 'virtq has no memory hot-plug (DIMM, NVDIMM, virtio-mem)',
  iommu: 'virtq gives the guest no IOMMU',
  vsock: 'virtq gives the guest no vsock device',
  lease: 'virtq takes disk leases from its lock manager (locking.md), not from the definition',
  parallel: 'virtq gives the guest no parallel port',
  serial: 'virtq gives the guest one serial port, ttyS0, whose other end is its console (virtq console)',
  console: 'virtq gives the guest one console, the serial port ttyS0 (virtq console)',
  memballoon: 'virtq gives the guest no balloon device (QEMU runs with -nodefaults)',
  crypto: 'virtq gives the guest no virtio-crypto device',
  pstore: 'virtq gives the guest no pstore device',
  nvram: 'virtq gives the guest no NVRAM device',
  controller: 'virtq adds no controllers beyond the machine\'s own (and its PCIe root ports on q35)',
  address: 'virtq places devices itself (PCI slot, IDE unit from the target name): the guest may see this one at another address',
  boot: 'virtq has no per-device boot order: a guest without a kernel boots from its first disk',
};

// Inside a device or the CPU: what its own parts mean.
const NESTED: Readonly<Record<string, string>> = {
  serial: 'virtq gives its disks no serial number',
  wwn: 'virtq gives its disks no WWN',
  iotune: 'virtq sets no disk I/O limits',
  blockio: 'virtq sets no block sizes: QEMU\'s defaults apply',
  geometry: 'virtq sets no disk geometry',
  portForward: 'virtq\'s user networking forwards no ports',
  ip: 'virtq sets no addresses on an interface: the guest\'s DHCP does',
  route: 'virtq sets no routes on an interface',
  bandwidth: 'virtq sets no bandwidth limits',
  driver: 'virtq picks the NIC\'s backend itself (vhost-net when the host has it)',
  link: 'virtq\'s NICs are always up',
  mtu: 'virtq sets no MTU: the network\'s applies',
  vlan: 'virtq tags no VLANs on an interface',
  filterref: 'virtq applies no nwfilter rules',
  virtualport: 'virtq attaches to no Open vSwitch or 802.1Qbh port',
  rom: 'virtq loads no option ROM settings',
  coalesce: 'virtq sets no interrupt coalescing',
  numa: 'virtq gives the guest no NUMA cells',
  cache: 'virtq sets no CPU cache topology',
  vendor: 'virtq\'s CPU is a model name only: the vendor is not carried over',
};

const OS: Readonly<Record<string, string>> = {
  loader: 'virtq boots QEMU\'s default firmware (SeaBIOS): UEFI firmware is not carried over',
  nvram: 'virtq keeps no UEFI variable store',
  bootmenu: 'virtq shows no boot menu',
  smbios: 'virtq sets no SMBIOS strings',
  bios: 'virtq sets no BIOS options',
  dtb: 'virtq loads no device tree',
  acpi: 'virtq loads no extra ACPI tables',
  firmware: 'virtq boots QEMU\'s default firmware (SeaBIOS)',
  init: 'an init program is for containers, not QEMU guests',
};

/** Why element `el` (a child of `parent`) is left out. */
export function reasonFor(el: XmlElement, parent: XmlElement): string {
  const table = parent.path === '/domain' ? TOP
    : parent.path === '/domain/devices' ? DEVICES
      : parent.path === '/domain/os' ? OS : NESTED;
  const known = table[el.name] ?? (parent.path.startsWith('/domain/devices/') ? DEVICES[el.name] : undefined);
  if (known !== undefined) return known;
  if (parent.path === '/domain/features') return `virtq sets no <${el.name}> feature: QEMU's default for the machine applies`;
  if (parent.path === '/domain/clock') return 'virtq sets no timer policy: QEMU\'s defaults apply';
  if (parent.path === '/domain/cpu') return `virtq's CPU is a model name only: <${el.name}> is not carried over`;
  return `virtq has no equivalent of <${el.name}>`;
}

const ATTRS: Readonly<Record<string, string>> = {
  'driver@cache': 'virtq sets no cache mode: QEMU\'s default (writeback) applies',
  'driver@io': 'virtq sets no AIO mode: QEMU\'s default (threads) applies',
  'driver@discard': 'virtq always passes discards to the image (discard=unmap)',
  'driver@detect_zeroes': 'virtq does not detect zero writes',
  'driver@iothread': 'virtq runs block I/O in QEMU\'s main loop: no I/O threads',
  'driver@queues': 'virtq sets no queue count: QEMU\'s default applies',
  'driver@error_policy': 'virtq sets no disk error policy: QEMU\'s default (report to the guest) applies',
  'driver@rerror_policy': 'virtq sets no disk error policy: QEMU\'s default (report to the guest) applies',
  'driver@copy_on_read': 'virtq does not copy backing data on read',
  'vcpu@cpuset': 'virtq does not pin vCPUs to host CPUs',
  'vcpu@placement': 'virtq does not place vCPUs: the host scheduler does',
  'vcpu@current': 'virtq has no vCPU hot-plug: all vCPUs are present from the start',
  'memory@dumpCore': 'virtq leaves guest memory in QEMU core dumps as QEMU decides',
  'domain@type': 'virtq runs QEMU guests with KVM or TCG only',
};

/** Why attribute `attr` of `el` is left out. */
export function attrReason(el: XmlElement, attr: string): string {
  return ATTRS[`${el.name}@${attr}`] ?? `virtq has no setting for the ${attr} attribute of <${el.name}>`;
}
