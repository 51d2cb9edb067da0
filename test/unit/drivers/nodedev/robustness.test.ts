// Sysfs oddities never make a scan throw: unreadable attributes (EACCES, EINVAL), devices that
// vanish between listing and reading (ENOENT races), missing optional files and whole missing
// buses. Failures that are not sysfs behaviour (EMFILE) are reported, typed.
import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NodeDevices } from '../../../../drivers/nodedev/node-devices.js';
import { nodeSysfsIo, type SysfsIo } from '../../../../drivers/nodedev/sysfs.js';
import { VirtqError } from '../../../../protocol/errors.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';
import { buildHost, SysfsFixture } from './sysfs-fixture.js';

let tmp: TmpRoot;
let fx: SysfsFixture;

beforeEach(() => {
  tmp = tmpRoot();
  fx = new SysfsFixture(tmp.path('sys'));
  buildHost(fx);
});
afterEach(() => tmp.remove());

function errno(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: simulated, ${path}`), { code });
}

/** The real filesystem, except that reads of paths ending in one of `failing` fail with their errno. */
function failingIo(failing: Record<string, string>): SysfsIo {
  const real = nodeSysfsIo();
  const check = (path: string): void => {
    for (const [suffix, code] of Object.entries(failing)) if (path.endsWith(suffix)) throw errno(code, path);
  };
  return {
    readFile: (path) => (check(path), real.readFile(path)),
    readDir: (path) => (check(path), real.readDir(path)),
    readLink: (path) => (check(path), real.readLink(path)),
    realPath: (path) => (check(path), real.realPath(path)),
  };
}

describe('NodeDevices on an odd sysfs', () => {
  it('leaves out attributes that fail with EACCES or EINVAL and keeps the device', async () => {
    const devices = new NodeDevices({
      root: fx.root,
      pciIdsPaths: [],
      io: failingIo({ '0000:01:00.0/vendor': 'EACCES', 'eth0/speed': 'EINVAL', 'usb1/product': 'EIO', 'vda/size': 'EACCES', '0000:00:1f.2/driver': 'EPERM' }),
    });
    const rows = new Map((await devices.list()).map((r) => [r.name, r]));
    expect(rows.get('pci_0000_01_00_0')).not.toHaveProperty('vendorId');
    expect(rows.get('pci_0000_01_00_0')).toHaveProperty('productId', '0x10fb');
    expect(rows.get('pci_0000_00_1f_2')).not.toHaveProperty('driver');
    expect(rows.get('usb_usb1')).not.toHaveProperty('product');
    expect(rows.get('block_vda')).not.toHaveProperty('sizeBytes');
    const eth0 = await devices.get('net_eth0_52_54_00_12_34_56');
    expect(eth0).not.toHaveProperty('speedMbps');
    expect(eth0).toHaveProperty('mtu', 1500);
  });

  it('names an interface whose address cannot be read by its name alone', async () => {
    const devices = new NodeDevices({ root: fx.root, io: failingIo({ 'lo/address': 'EACCES' }) });
    expect((await devices.list({ cap: 'net' })).map((r) => r.name)).toContain('net_lo');
    expect(await devices.get('net_lo')).toMatchObject({ interface: 'lo' });
  });

  it('drops a device that vanishes between the listing and its reading', async () => {
    const real = nodeSysfsIo();
    const racing: SysfsIo = {
      ...real,
      readDir: (path) => {
        const names = real.readDir(path);
        if (path.endsWith('class/net')) fx.unplug('class/net/eth0', 'devices/pci0000:00/0000:00:03.0/virtio2/net/eth0');
        if (path.endsWith('bus/pci/devices')) fx.unplug('bus/pci/devices/0000:00:00.0', 'devices/pci0000:00/0000:00:00.0');
        return names;
      },
    };
    const devices = new NodeDevices({ root: fx.root, io: racing });
    const names = (await devices.list()).map((r) => r.name);
    expect(names).not.toContain('net_eth0_52_54_00_12_34_56');
    expect(names).not.toContain('pci_0000_00_00_0');
    expect(names).toContain('net_lo_00_00_00_00_00_00');
  });

  it('answers NO_NODE_DEVICE for a device that vanishes between its lookup and its reading', async () => {
    const real = nodeSysfsIo();
    const racing: SysfsIo = {
      ...real,
      readDir: (path) => {
        const names = real.readDir(path);
        if (path.endsWith('class/block')) fx.unplug('class/block/loop0', 'devices/virtual/block/loop0');
        return names;
      },
    };
    const devices = new NodeDevices({ root: fx.root, io: racing });
    await expect(devices.get('block_loop0')).rejects.toMatchObject({ code: 'NO_NODE_DEVICE' });
  });

  it('keeps a device whose attribute files are all missing, with what its directory name says', async () => {
    fx.pci('0000:00:05.0', {});
    fx.block('ram0', {});
    const devices = new NodeDevices({ root: fx.root, pciIdsPaths: [] });
    expect(await devices.get('pci_0000_00_05_0')).toEqual({
      name: 'pci_0000_00_05_0', cap: 'pci', address: '0000:00:05.0', path: fx.root + '/devices/pci0000:00/0000:00:05.0',
      domain: 0, bus: 0, slot: 5, function: 0,
    });
    expect(await devices.get('block_ram0')).toEqual({
      name: 'block_ram0', cap: 'block', device: 'ram0', path: fx.root + '/devices/virtual/block/ram0', devPath: '/dev/ram0', virtual: true, partitions: [],
    });
  });

  it('ignores malformed attribute values instead of passing them on', async () => {
    fx.pci('0000:00:06.0', { vendor: 'garbage', device: '0x12zz', numa_node: 'x', class: '' });
    fx.file('class/net/lo/mtu', 'lots\n');
    const devices = new NodeDevices({ root: fx.root, pciIdsPaths: [] });
    const pci = await devices.get('pci_0000_00_06_0');
    for (const field of ['vendorId', 'productId', 'numaNode', 'class']) expect(pci).not.toHaveProperty(field);
    expect(await devices.get('net_lo_00_00_00_00_00_00')).not.toHaveProperty('mtu');
  });

  it('lists no devices of a bus that this host does not have', async () => {
    rmSync(tmp.path('sys/bus/usb'), { recursive: true });
    const devices = new NodeDevices({ root: fx.root });
    const rows = await devices.list();
    expect(rows.some((r) => r.cap === 'usb')).toBe(false);
    expect(rows.length).toBeGreaterThan(10);
    expect(await devices.list({ cap: 'usb' })).toEqual([]);
  });

  it('reports a failure that is not sysfs behaviour as OPERATION_FAILED naming the path', async () => {
    const devices = new NodeDevices({ root: fx.root, io: failingIo({ 'eth0/operstate': 'EMFILE' }) });
    const err = await devices.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VirtqError);
    expect(err).toMatchObject({ code: 'OPERATION_FAILED' });
    expect((err as Error).message).toMatch(/eth0\/operstate/);
  });
});
