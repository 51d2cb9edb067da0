// The device view on this machine's real /sys: only facts that must hold on any Linux host
// (names unique and well-formed, lo present, PCI names matching addresses, parents listed,
// one row per sysfs entry, every row's lookup agreeing with it).
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDeviceName, pciDeviceName } from '../../drivers/nodedev/names.js';
import { NodeDevices } from '../../drivers/nodedev/node-devices.js';
import type { NodeDeviceRow } from '../../drivers/nodedev/types.js';

const SOURCES: Record<string, string> = { pci: '/sys/bus/pci/devices', usb: '/sys/bus/usb/devices', net: '/sys/class/net', block: '/sys/class/block' };

function entries(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function sysfsEntries(): Record<string, string[]> {
  return {
    pci: entries(SOURCES['pci'] as string),
    usb: entries(SOURCES['usb'] as string).filter((e) => !e.includes(':')),
    net: entries(SOURCES['net'] as string).filter((e) => e !== 'bonding_masters'),
    block: entries(SOURCES['block'] as string),
  };
}

/** A listing taken while sysfs held still (other work on this host may plug loop devices). */
async function stableListing(devices: NodeDevices): Promise<{ rows: NodeDeviceRow[]; seen: Record<string, string[]> }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = sysfsEntries();
    const rows = await devices.list();
    if (JSON.stringify(before) === JSON.stringify(sysfsEntries())) return { rows, seen: before };
  }
  throw new Error('sysfs kept changing during five listings');
}

describe('NodeDevices on the real /sys', () => {
  const devices = new NodeDevices();

  it('lists every device under a unique, well-formed name, with one row per sysfs entry', async () => {
    const { rows, seen } = await stableListing(devices);
    const names = rows.map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
    for (const row of rows) expect(parseDeviceName(row.name).cap, row.name).toBe(row.cap);
    for (const [cap, found] of Object.entries(seen)) {
      expect(rows.filter((r) => r.cap === cap).length, cap).toBe(found.length);
    }
  });

  it('shows lo as a virtual network interface', async () => {
    const lo = (await devices.list({ cap: 'net' })).find((r) => r.cap === 'net' && r.interface === 'lo');
    expect(lo).toMatchObject({ cap: 'net', virtual: true, address: '00:00:00:00:00:00', name: 'net_lo_00_00_00_00_00_00' });
    expect(lo).not.toHaveProperty('parent');
    expect(await devices.get('net_lo_00_00_00_00_00_00')).toMatchObject({ interface: 'lo', mtu: expect.any(Number), linkType: 772 });
  });

  it('names every PCI function after its address', async () => {
    const pci = await devices.list({ cap: 'pci' });
    expect(pci.map((r) => (r.cap === 'pci' ? r.address : '')).sort()).toEqual(entries(SOURCES['pci'] as string));
    for (const row of pci) {
      if (row.cap !== 'pci') throw new Error(`${row.name} is not pci`);
      expect(row.name).toBe(pciDeviceName(row.address));
      expect(row.vendorId).toMatch(/^0x[0-9a-f]{4}$/);
    }
  });

  it('names only parents that are listed, and gives each partition a disk as parent', async () => {
    const { rows } = await stableListing(devices);
    const byName = new Map(rows.map((r) => [r.name, r]));
    for (const row of rows) {
      if (row.parent !== undefined) expect(byName.has(row.parent), `${row.name} → ${row.parent}`).toBe(true);
      if (row.cap === 'block' && row.partition !== undefined) expect(byName.get(row.parent ?? '')?.cap, row.name).toBe('block');
    }
  });

  it('looks up every listed device with the fields its row has', async () => {
    const { rows } = await stableListing(devices);
    for (const row of rows) {
      const device = await devices.get(row.name);
      expect(device).toMatchObject(row);
      expect(device.path.startsWith('/sys/devices/'), device.path).toBe(true);
    }
  });

  it('answers NO_NODE_DEVICE for a PCI address this host does not have', async () => {
    await expect(devices.get('pci_ffff_ff_1f_7')).rejects.toMatchObject({ code: 'NO_NODE_DEVICE' });
  });
});
