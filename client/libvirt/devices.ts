// libvirt <devices> -> the virtq definition's disks, interfaces and emulator. Devices the PC
// board always has (PS/2 input, the root bus, the first IDE or SATA controller, serial port 0 as
// the console) are taken as they are; everything else virtq lacks is left for the report.
import { isAbsolute, resolve } from 'node:path';
import { MAC_PATTERN, NAME_PATTERN, type Definition, type DiskSpec, type InterfaceSpec } from '../../protocol/index.js';
import type { Report } from './report.js';
import type { XmlElement } from './xml-tree.js';

/** What the device conversion needs besides the XML. */
export interface DeviceOptions {
  readonly baseDir: string;
  readonly bridgeNetworks: Readonly<Record<string, string>>;
}

type Mutable = { -readonly [K in keyof Definition]?: Definition[K] };

const TARGET = /^(vd|hd|sd)[a-z]{1,2}$/;
const VOLUME = /^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,254}$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

// What every device may carry: its alias (a running domain's name for it) is not configuration;
// an address or a boot order virtq does not honour.
function common(el: XmlElement, report: Report): void {
  for (const a of el.all('alias')) a.ignore();
  for (const a of el.all('address')) report.drop(a, 'virtq places devices itself (PCI slot, IDE unit from the target name): the guest may see this one at another address');
  for (const b of el.all('boot')) report.drop(b, 'virtq has no per-device boot order: a guest without a kernel boots from its first disk');
}

// libvirt's bus for a target without one: from the name's prefix.
const defaultBus = (dev: string): string => (dev.startsWith('vd') ? 'virtio' : dev.startsWith('hd') ? 'ide' : 'scsi');

function diskSource(el: XmlElement, type: string, report: Report, opts: DeviceOptions): Pick<DiskSpec, 'path' | 'source'> | undefined {
  const source = el.child('source')?.take();
  if (source === undefined) return report.drop(el, 'a disk without a source (an empty drive) is not carried over'), undefined;
  source.attr('index'); // a running domain's numbering of the backing chain
  if (type === 'file' || type === 'block') {
    const path = source.attr(type === 'file' ? 'file' : 'dev');
    if (path === undefined || path === '') return report.drop(el, 'a disk without a source (an empty drive) is not carried over'), undefined;
    return { path: isAbsolute(path) ? path : resolve(opts.baseDir, path) };
  }
  const pool = source.attr('pool');
  const volume = source.attr('volume');
  if (pool === undefined || volume === undefined || !new RegExp(NAME_PATTERN).test(pool) || !VOLUME.test(volume)) {
    return report.drop(el, `"${pool ?? ''}"/"${volume ?? ''}" is not a virtstoraged pool and volume name`), undefined;
  }
  return { source: { pool, volume } };
}

// <encryption format='luks'><secret type='passphrase' uuid='...'/></encryption>, in <source> or in <disk>.
function diskEncryption(el: XmlElement, format: string, report: Report): Pick<DiskSpec, 'encryption'> {
  const enc = el.child('source')?.child('encryption') ?? el.child('encryption');
  if (enc === undefined) return {};
  enc.take();
  const secret = enc.child('secret')?.take();
  const uuid = secret?.attr('uuid');
  if (enc.attr('format') !== 'luks' || format !== 'qcow2') return report.drop(enc, 'virtq encrypts qcow2 images with LUKS only (a qcow2 disk with format=\'luks\')'), {};
  if (secret === undefined || secret.attr('type') !== 'passphrase' || uuid === undefined || !UUID.test(uuid)) return report.drop(enc, 'virtq needs the passphrase as a secret named by UUID (<secret type=\'passphrase\' uuid=\'...\'/>)'), {};
  return { encryption: { secret: uuid.toLowerCase() } };
}

function convertDisk(el: XmlElement, report: Report, opts: DeviceOptions): DiskSpec | undefined {
  el.take();
  common(el, report);
  const type = el.attr('type') ?? 'file';
  const device = el.attr('device') ?? 'disk';
  if (device !== 'disk') return report.drop(el, `virtq's disks are hard disks: a ${device} is not carried over`), undefined;
  if (!['file', 'block', 'volume'].includes(type)) return report.drop(el, `virtq's disks are image files, block devices or virtstoraged volumes, not type '${type}'`), undefined;
  const target = el.child('target')?.take();
  const dev = target?.attr('dev');
  if (target === undefined || dev === undefined || !TARGET.test(dev)) return report.drop(el, `virtq's disk targets are vdX, hdX or sdX, not "${dev ?? ''}"`), undefined;
  const bus = target.attr('bus') ?? defaultBus(dev);
  if (bus !== 'virtio' && bus !== 'ide') return report.drop(el, `virtq's disks are on the virtio or ide bus, not ${bus}`), undefined;
  const driver = el.child('driver')?.take();
  const driverName = driver?.attr('name');
  if (driverName !== undefined && driverName !== 'qemu') report.dropAttr(driver as XmlElement, 'name', `virtq's disks are served by QEMU itself, not ${driverName}`);
  const format = driver?.attr('type') ?? 'raw';
  if (format !== 'raw' && format !== 'qcow2') return report.drop(el, `virtq reads raw and qcow2 images, not ${format}`), undefined;
  if (driver?.attr('discard') === 'unmap') { /* virtq always does */ } else if (driver?.attr('discard') !== undefined) report.dropAttr(driver, 'discard', 'virtq always passes discards to the image (discard=unmap)');
  const where = diskSource(el, type, report, opts);
  if (where === undefined) return undefined;
  const backing = el.child('backingStore');
  if (backing !== undefined && backing.children.length === 0) backing.ignore();
  else if (backing !== undefined) report.drop(backing, 'virtq lets QEMU read the backing chain from the image itself');
  const readonly = el.child('readonly')?.take() !== undefined;
  const shareable = el.child('shareable')?.take() !== undefined;
  return {
    ...where,
    ...(driver?.attr('type') === undefined ? {} : { format: format as 'raw' | 'qcow2' }),
    bus,
    target: dev,
    ...(readonly ? { readonly } : {}),
    ...(shareable ? { shareable } : {}),
    ...diskEncryption(el, format, report),
  };
}

function interfaceKind(el: XmlElement, type: string, report: Report, opts: DeviceOptions): InterfaceSpec | undefined {
  const source = el.child('source')?.take();
  const target = el.child('target');
  if (type === 'user') return { type: 'user' };
  if (type === 'network' || type === 'bridge') {
    target?.ignore(); // the tap libvirt named; virtnetworkd names its own
    const name = type === 'network' ? source?.attr('network') : source?.attr('bridge');
    const network = type === 'network' ? name : opts.bridgeNetworks[name ?? ''];
    if (type === 'bridge' && network === undefined) {
      return report.drop(el, `virtq has no bridge interface: define a virtnetworkd network of mode bridge on ${name ?? 'the bridge'} (virtq net-define) and convert with --bridge-network ${name ?? 'BRIDGE'}=NETWORK`), undefined;
    }
    if (network === undefined || !new RegExp(NAME_PATTERN).test(network)) return report.drop(el, `"${network ?? ''}" is not a virtnetworkd network name`), undefined;
    return { type: 'network', network };
  }
  if (type === 'ethernet') {
    const ifname = target?.take().attr('dev');
    if (ifname === undefined || !/^[A-Za-z0-9_.-]{1,15}$/.test(ifname)) return report.drop(el, 'virtq\'s tap interface needs the tap\'s name (<target dev=\'tap0\'/>, at most 15 characters)'), undefined;
    if (target?.attr('managed') !== 'no') report.note(target as XmlElement, `libvirt makes this tap itself; virtq opens ${ifname} as it finds it (create it with ip tuntap, or let QEMU create it as root)`);
    return { type: 'tap', ifname };
  }
  return report.drop(el, `virtq's interfaces are user, network (virtnetworkd), bridge through a virtnetworkd network, or an existing tap (ethernet), not '${type}'`), undefined;
}

function convertInterface(el: XmlElement, report: Report, opts: DeviceOptions): InterfaceSpec | undefined {
  el.take();
  common(el, report);
  const iface = interfaceKind(el, el.attr('type') ?? '', report, opts);
  if (iface === undefined) return undefined;
  const model = el.child('model')?.take();
  const modelType = model?.attr('type');
  if (model === undefined) report.note(el, 'no <model>: libvirt gives this NIC its default model (rtl8139 or e1000); virtq\'s NICs are virtio-net');
  else if (modelType !== 'virtio') report.dropAttr(model, 'type', `virtq's NICs are virtio-net, not ${modelType ?? '(none)'}`);
  const macEl = el.child('mac')?.take();
  const mac = macEl?.attr('address')?.toLowerCase();
  if (macEl === undefined || mac === undefined) return iface;
  if (!new RegExp(MAC_PATTERN).test(mac) || (parseInt(mac.slice(0, 2), 16) & 1) === 1) {
    report.drop(macEl, `"${mac}" is not a unicast MAC address: virtq would make one`);
    return iface;
  }
  return { ...iface, mac };
}

// Controllers the machine has anyway: the root bus, "no USB", and the board's IDE (pc) or SATA (q35).
function builtIn(el: XmlElement, q35: boolean): boolean {
  const type = el.attr('type');
  const model = el.attr('model');
  const index = el.attr('index') ?? '0';
  if (type === 'pci') return model === (q35 ? 'pcie-root' : 'pci-root');
  if (type === 'usb') return model === 'none';
  return index === '0' && type === (q35 ? 'sata' : 'ide');
}

function controllerReason(el: XmlElement): string {
  const type = el.attr('type');
  if (type === 'usb') return 'virtq gives the guest no USB controller (QEMU runs with -nodefaults)';
  if (el.attr('model') === 'pcie-root-port') return 'virtq adds its own PCIe root ports on q35: one per device, and spares for hot-plug';
  return `virtq adds no ${type ?? ''} controller: only the machine's own`;
}

// Serial port 0 as a pty, or the console that is that port: virtq's console is the same device.
function isSerialZero(el: XmlElement, asConsole: boolean): boolean {
  const target = el.child('target');
  const targetType = target?.attr('type');
  const modelName = target?.child('model')?.attr('name');
  return el.attr('type') === 'pty' && (target?.attr('port') ?? '0') === '0'
    && (asConsole ? (targetType ?? 'serial') === 'serial' : (targetType ?? 'isa-serial') === 'isa-serial')
    && (modelName ?? 'isa-serial') === 'isa-serial'
    && el.children.every((c) => ['target', 'source', 'alias'].includes(c.name));
}

function convertBoardDevices(devices: XmlElement, def: Mutable, report: Report): void {
  const q35 = /q35/.test(def.machine ?? 'pc');
  for (const c of devices.all('controller')) {
    if (builtIn(c, q35)) c.ignore();
    else report.drop(c, controllerReason(c));
  }
  for (const i of devices.all('input')) if (['mouse', 'keyboard'].includes(i.attr('type') ?? '') && (i.attr('bus') ?? 'ps2') === 'ps2') i.ignore();
  for (const [n, s] of devices.all('serial').entries()) if (n === 0 && isSerialZero(s, false)) s.ignore();
  for (const c of devices.all('console')) if (isSerialZero(c, true)) c.ignore();
  for (const m of devices.all('memballoon')) if (m.attr('model') === 'none') m.ignore();
  for (const v of devices.all('video')) if (v.child('model')?.attr('type') === 'none') v.ignore();
}

/** Converts `<devices>` into `def`; what is not carried over goes to `report` or stays untaken. */
export function convertDevices(devices: XmlElement, def: Mutable, report: Report, opts: DeviceOptions): void {
  const emulator = devices.child('emulator');
  if (emulator !== undefined) {
    emulator.take();
    if (isAbsolute(emulator.text())) def.emulator = emulator.text();
    else report.drop(emulator, 'virtq needs the emulator as an absolute path');
  }
  const disks = devices.all('disk').map((d) => convertDisk(d, report, opts)).filter((d): d is DiskSpec => d !== undefined);
  if (disks.length > 0) def.disks = disks;
  const interfaces = devices.all('interface').map((i) => convertInterface(i, report, opts)).filter((i): i is InterfaceSpec => i !== undefined);
  if (interfaces.length > 0) def.interfaces = interfaces;
  convertBoardDevices(devices, def, report);
}
