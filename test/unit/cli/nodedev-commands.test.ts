// The nodedev-* commands against a fake virtnodedevd: the listing as a table (one description per
// kind) or JSON, --cap passed through and checked, the full record as JSON, typed errors, and
// nodedev-event printing device events (only those) until the first, or until --timeout.
import { describe, expect, it } from 'vitest';
import { EventQueue, VirtqError, type NodeDeviceEvent, type NodeDeviceRow } from '../../../protocol/index.js';
import { fake } from './fake-io.js';

const ROWS: NodeDeviceRow[] = [
  { name: 'block_vda', cap: 'block', parent: 'pci_0000_00_04_0', device: 'vda', sizeBytes: 10 * 1024 ** 3, virtual: false },
  { name: 'block_vda1', cap: 'block', parent: 'block_vda', device: 'vda1', sizeBytes: 1024 ** 2, partition: 1, virtual: false },
  { name: 'net_lo_00_00_00_00_00_00', cap: 'net', interface: 'lo', address: '00:00:00:00:00:00', operstate: 'unknown', virtual: true },
  { name: 'pci_0000_01_00_0', cap: 'pci', parent: 'pci_0000_00_1c_0', address: '0000:01:00.0', vendorId: '0x8086', productId: '0x10fb', class: '0x020000', driver: 'ixgbe', iommuGroup: 4 },
  { name: 'usb_1_1', cap: 'usb', parent: 'usb_usb1', busnum: 1, devnum: 2, vendorId: '0b95', productId: '1790', product: 'AX88179' },
];
const URI = 'nodedev:///system?root=/r';
const device = (event: 'added' | 'removed', name: string, cap: NodeDeviceEvent['cap']) => ({ prog: 'nodedev', name: 'device', body: { event, name, cap, timestamp: 1_700_000_000_000 } });
const settle = async (): Promise<void> => { for (let i = 0; i < 20; i++) await Promise.resolve(); };

describe('virtq nodedev-list', () => {
  it('prints a table with each kind described by its own facts, asking virtnodedevd on the host -c names', async () => {
    const f = fake({ service: { listDevices: { devices: ROWS } } });
    expect(await f.run('-c', 'qemu:///system?root=/r', 'nodedev-list')).toBe(0);
    expect(f.uris).toEqual([`nodedev:${URI}`]);
    expect(f.calls).toEqual([{ proc: 'listDevices', args: {}, timeoutMs: undefined }]);
    const lines = f.stdout.text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ NAME\s+CAP\s+PARENT\s+DESCRIPTION$/);
    expect(lines.slice(2)).toEqual([
      expect.stringMatching(/^ block_vda\s+block\s+pci_0000_00_04_0\s+\/dev\/vda 10\.00 GiB$/),
      expect.stringMatching(/^ block_vda1\s+block\s+block_vda\s+\/dev\/vda1 1\.00 MiB partition 1$/),
      expect.stringMatching(/^ net_lo_00_00_00_00_00_00\s+net\s+-\s+lo 00:00:00:00:00:00 unknown \(virtual\)$/),
      expect.stringMatching(/^ pci_0000_01_00_0\s+pci\s+pci_0000_00_1c_0\s+0000:01:00\.0 0x8086:0x10fb class 0x020000 driver ixgbe iommu 4$/),
      expect.stringMatching(/^ usb_1_1\s+usb\s+usb_usb1\s+0b95:1790 AX88179$/),
    ]);
  });

  it('passes --cap and prints the result as JSON with --json', async () => {
    const f = fake({ service: { listDevices: (a: Record<string, unknown>) => ({ devices: ROWS.filter((r) => r.cap === a['cap']) }) } });
    expect(await f.run('-c', URI, 'nodedev-list', '--cap', 'usb', '--json')).toBe(0);
    expect(f.calls).toEqual([{ proc: 'listDevices', args: { cap: 'usb' }, timeoutMs: undefined }]);
    expect(JSON.parse(f.stdout.text)).toEqual({ devices: [ROWS[4]] });
  });

  it('says so when there are no devices, and refuses an unknown kind as a usage error', async () => {
    const f = fake({ service: { listDevices: { devices: [] } } });
    expect(await f.run('-c', URI, 'nodedev-list')).toBe(0);
    expect(f.stdout.text).toBe('No devices\n');
    const bad = fake({ service: { listDevices: { devices: [] } } });
    expect(await bad.run('-c', URI, 'nodedev-list', '--cap', 'scsi')).toBe(2);
    expect(bad.stderr.text).toMatch(/Allowed choices are pci, usb, net, block/);
    expect(bad.calls).toEqual([]);
  });
});

describe('virtq nodedev-info', () => {
  it('prints the whole record as JSON, with or without --json', async () => {
    const record = { ...ROWS[3], path: '/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0', domain: 0, bus: 1, slot: 0, function: 0 };
    for (const json of [[], ['--json']]) {
      const f = fake({ service: { getDevice: record } });
      expect(await f.run('-c', URI, 'nodedev-info', 'pci_0000_01_00_0', ...json)).toBe(0);
      expect(f.calls).toEqual([{ proc: 'getDevice', args: { name: 'pci_0000_01_00_0' }, timeoutMs: undefined }]);
      expect(JSON.parse(f.stdout.text)).toEqual(record);
    }
  });

  it('prints the daemon\'s typed error on one line', async () => {
    const f = fake({ service: { getDevice: () => { throw new VirtqError('NO_NODE_DEVICE', 'no host device named "block_vdz"; nodedev-list shows the present ones'); } } });
    expect(await f.run('-c', URI, 'nodedev-info', 'block_vdz')).toBe(1);
    expect(f.stderr.text).toBe('virtq: NO_NODE_DEVICE: no host device named "block_vdz"; nodedev-list shows the present ones\n');
  });
});

describe('virtq nodedev-event', () => {
  it('subscribes, skips other events, prints the first device event and exits', async () => {
    const serviceEvents = new EventQueue<{ prog: string; name: string; body: unknown }>(10);
    serviceEvents.push({ prog: 'storage', name: 'progress', body: {} });
    serviceEvents.push({ prog: 'nodedev', name: 'device', body: { event: 'exploded' } });
    serviceEvents.push(device('added', 'net_tap0', 'net'));
    serviceEvents.push(device('removed', 'net_tap0', 'net'));
    const f = fake({ service: { subscribeEvents: {} }, serviceEvents });
    expect(await f.run('-c', URI, 'nodedev-event')).toBe(0);
    expect(f.calls).toEqual([{ proc: 'subscribeEvents', args: {}, timeoutMs: undefined }]);
    expect(f.stdout.text).toBe("event 'device' for node device 'net_tap0': added (net)\n");
  });

  it('prints one JSON line per event with --loop --json until the timeout, then exits 0', async () => {
    const serviceEvents = new EventQueue<{ prog: string; name: string; body: unknown }>(10);
    const f = fake({ service: { subscribeEvents: {} }, serviceEvents });
    const done = f.run('-c', URI, 'nodedev-event', '--loop', '--json', '--timeout', '5');
    await settle();
    serviceEvents.push(device('added', 'usb_1_2', 'usb'));
    serviceEvents.push(device('removed', 'block_sdb', 'block'));
    await f.clock.advance(4999);
    expect(f.stdout.text.trimEnd().split('\n')).toHaveLength(2);
    await f.clock.advance(1);
    expect(await done).toBe(0);
    expect(f.stdout.text.trimEnd().split('\n').map((l) => JSON.parse(l) as NodeDeviceEvent)).toEqual([device('added', 'usb_1_2', 'usb').body, device('removed', 'block_sdb', 'block').body]);
  });

  it('counts what it received with --loop, and fails with CONNECTION_CLOSED when nothing came before the connection ended', async () => {
    const quiet = fake({ service: { subscribeEvents: {} } });
    const done = quiet.run('-c', URI, 'nodedev-event', '--loop', '--timeout', '1');
    await settle();
    await quiet.clock.advance(1000);
    expect(await done).toBe(0);
    expect(quiet.stdout.text).toBe('events received: 0\n');
    const ended = new EventQueue<{ prog: string; name: string; body: unknown }>(10);
    ended.end();
    const f = fake({ service: { subscribeEvents: {} }, serviceEvents: ended });
    expect(await f.run('-c', URI, 'nodedev-event')).toBe(1);
    expect(f.stderr.text).toMatch(/^virtq: CONNECTION_CLOSED: /);
  });
});
