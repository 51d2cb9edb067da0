// Golden-file tests of the QEMU command line: test/fixtures/argv/<case>.json (definition +
// options) → <case>.argv.golden (one argument per line). UPDATE_GOLDEN=1 rewrites the goldens.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { normalizeDefinition, pathsOnly, type ResolvedDefinition, type ResolvedDisk } from '../../../../../protocol/definition.js';
import { VirtqError } from '../../../../../protocol/errors.js';
import { buildQemuArgv, hotplugPortIds, macFor, rootPortsFor, type ArgvOptions } from '../../../../../drivers/hypervisor/qemu/argv.js';
import { blockdevNodesFor, deviceFor, targetIndex } from '../../../../../drivers/hypervisor/qemu/disk-devices.js';
import { findHostDevices } from '../../../../../drivers/hypervisor/qemu/host-devices.js';

const FIXTURES = join(import.meta.dirname, '../../../../fixtures/argv');
const UPDATE = process.env['UPDATE_GOLDEN'] === '1';

interface Fixture { def: ResolvedDefinition; options: ArgvOptions }

function noUuid(): string {
  throw new Error('fixtures carry their own uuid');
}

// `ports` (by interface index) are what virtnetworkd gave the network interfaces.
function loadFixture(name: string): Fixture {
  const raw = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as { definition: unknown; options: ArgvOptions; ports?: Record<string, { id: string; tap: string }> };
  const def = pathsOnly(normalizeDefinition(raw.definition, noUuid));
  const interfaces = def.interfaces.map((i, k) => (i.type === 'network' && raw.ports?.[k] !== undefined ? { ...i, port: raw.ports[k] } : i));
  return { def: { ...def, interfaces }, options: raw.options };
}

function goldenText(argv: readonly string[]): string {
  return `${argv.join('\n')}\n`;
}

function disk(over: Partial<ResolvedDisk>): ResolvedDisk {
  return { path: '/x/a.img', target: 'vda', format: 'raw', bus: 'virtio', readonly: false, shareable: false, ...over };
}

function minimalDef(over: Record<string, unknown> = {}): ResolvedDefinition {
  return pathsOnly(normalizeDefinition({ name: 'web1', uuid: '6f1c1f0e-3b0a-4d55-9d2e-0c4b8f6a7e21', memoryMiB: 128, ...over }, noUuid));
}

const OPTS: ArgvOptions = { monitorSocket: '/r/m.sock', consoleSocket: '/r/c.sock', accel: 'tcg', sandbox: false };

const cases = readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length)).sort();

describe('buildQemuArgv goldens', () => {
  it('has a golden for every fixture and a fixture for every golden', () => {
    const goldens = readdirSync(FIXTURES).filter((f) => f.endsWith('.argv.golden')).map((f) => f.slice(0, -'.argv.golden'.length)).sort();
    if (!UPDATE) expect(goldens).toEqual(cases);
    expect(cases.length).toBeGreaterThanOrEqual(15);
  });

  it.each(cases)('matches the golden argv for %s', (name) => {
    const { def, options } = loadFixture(name);
    const argv = buildQemuArgv(def, options);
    for (const arg of argv) expect(arg).not.toContain('\n');
    const goldenPath = join(FIXTURES, `${name}.argv.golden`);
    if (UPDATE) writeFileSync(goldenPath, goldenText(argv));
    expect(goldenText(argv)).toBe(readFileSync(goldenPath, 'utf8'));
  });

  it.each(cases)('cold-plugs %s disks with exactly the hot-plug objects', (name) => {
    const { def, options } = loadFixture(name);
    const argv = buildQemuArgv(def, options);
    const host = new Set(options.hostDevices ?? []);
    for (const d of def.disks) {
      for (const node of blockdevNodesFor(d, { hostDevice: host.has(d.path) })) {
        expect(argv[argv.indexOf(JSON.stringify(node)) - 1]).toBe('-blockdev');
      }
      expect(argv[argv.indexOf(JSON.stringify(deviceFor(d, def.machine))) - 1]).toBe('-device');
    }
  });

  it.each(cases)('always starts %s paused, kept alive on shutdown, without -machine accel=', (name) => {
    const { def, options } = loadFixture(name);
    const argv = buildQemuArgv(def, options);
    expect(argv).toContain('-S');
    expect(argv).toContain('-no-shutdown');
    expect(argv).toContain('-nodefaults');
    expect(argv[argv.indexOf('-accel') + 1]).toBe(options.accel);
    expect(argv[argv.indexOf('-machine') + 1]).not.toContain('accel=');
  });
});

describe('buildQemuArgv', () => {
  it('is pure: the same input gives the same argv and the definition is not mutated', () => {
    const { def, options } = loadFixture('q35');
    const before = JSON.stringify(def);
    expect(buildQemuArgv(def, options)).toEqual(buildQemuArgv(structuredClone(def), { ...options }));
    expect(JSON.stringify(def)).toBe(before);
  });

  it('adds -no-reboot unless onReboot is restart', () => {
    expect(buildQemuArgv(minimalDef(), OPTS)).not.toContain('-no-reboot');
    expect(buildQemuArgv(minimalDef({ onReboot: 'preserve' }), OPTS)).toContain('-no-reboot');
  });

  it('doubles commas in key=value options but not in JSON or plain arguments', () => {
    const argv = buildQemuArgv(minimalDef({ kernel: { path: '/k,1/vmlinuz' } }), { ...OPTS, monitorSocket: '/a,b/m.sock' });
    expect(argv).toContain('socket,id=mon0,path=/a,,b/m.sock,reconnect=1');
    expect(argv[argv.indexOf('-kernel') + 1]).toBe('/k,1/vmlinuz');
  });

  it('refuses a writable shareable qcow2 disk before QEMU would', () => {
    const def = minimalDef({ disks: [{ path: '/x/a.qcow2', format: 'qcow2', target: 'vda', shareable: true }] });
    expect(() => buildQemuArgv(def, OPTS)).toThrow(VirtqError);
    expect(() => buildQemuArgv(def, OPTS)).toThrow(/shareable writable disk must have format raw/);
  });

  it('refuses read-only IDE disks', () => {
    const def = minimalDef({ disks: [{ path: '/x/a.img', bus: 'ide', target: 'hda', readonly: true }] });
    expect(() => buildQemuArgv(def, OPTS)).toThrow(/read-only IDE disks are not supported/);
  });

  it('refuses IDE positions the machine does not have', () => {
    const hde = [{ path: '/x/a.img', bus: 'ide', target: 'hde' }];
    expect(() => buildQemuArgv(minimalDef({ disks: hde }), OPTS)).toThrow(/4 IDE positions/);
    expect(buildQemuArgv(minimalDef({ machine: 'q35', disks: hde }), OPTS)).toContain(
      '{"driver":"ide-hd","drive":"fmt-hde","id":"disk-hde","bus":"ide.4","unit":0}');
  });
});

describe('deviceFor', () => {
  it('places virtio disks on the default PCI bus on pc and on their own root port on q35', () => {
    expect(deviceFor(disk({}), 'pc')).toEqual({ driver: 'virtio-blk-pci', drive: 'fmt-vda', id: 'disk-vda' });
    expect(deviceFor(disk({}), 'pc-q35-7.2').bus).toBe('rp-vda');
  });

  it('takes the hot-plug port the caller chose', () => {
    expect(deviceFor(disk({ target: 'vdz' }), 'q35', { bus: 'rp2' }).bus).toBe('rp2');
  });

  it('maps IDE targets to PIIX bus/unit pairs', () => {
    const at = (target: string) => deviceFor(disk({ bus: 'ide', target }), 'pc');
    expect([at('hda'), at('hdb'), at('hdc'), at('hdd')].map((d) => [d.bus, d.unit])).toEqual([['ide.0', 0], ['ide.0', 1], ['ide.1', 0], ['ide.1', 1]]);
  });

  it('asks for shared write permission only on shareable disks', () => {
    expect(deviceFor(disk({ shareable: true }), 'pc')['share-rw']).toBe(true);
    expect(deviceFor(disk({}), 'pc')).not.toHaveProperty('share-rw');
  });
});

describe('blockdevNodesFor', () => {
  it('keeps image locking on and discards only on writable disks', () => {
    const [proto, fmt] = blockdevNodesFor(disk({ shareable: true }));
    expect(proto).not.toHaveProperty('locking');
    expect(proto.discard).toBe('unmap');
    expect(fmt).toEqual({ driver: 'raw', 'node-name': 'fmt-vda', file: 'proto-vda', 'read-only': false, discard: 'unmap' });
    const [roProto, roFmt] = blockdevNodesFor(disk({ readonly: true, format: 'qcow2' }));
    expect(roProto).toEqual({ driver: 'file', filename: '/x/a.img', 'node-name': 'proto-vda', 'read-only': true });
    expect(roFmt['read-only']).toBe(true);
  });

  it('uses host_device for block devices', () => {
    expect(blockdevNodesFor(disk({ path: '/dev/sdb' }), { hostDevice: true })[0].driver).toBe('host_device');
  });
});

describe('rootPortsFor', () => {
  it('packs eight root ports per pcie.0 slot, function 0 first', () => {
    const disks = Array.from({ length: 10 }, (_, i) => ({ path: `/x/${i}.img`, target: `vd${String.fromCharCode(97 + i)}` }));
    const ports = rootPortsFor(minimalDef({ machine: 'q35', disks }), 4);
    expect(ports).toHaveLength(14);
    expect(ports.map((p) => p.addr)).toEqual([
      '0x2.0', '0x2.1', '0x2.2', '0x2.3', '0x2.4', '0x2.5', '0x2.6', '0x2.7', '0x3.0', '0x3.1', '0x3.2', '0x3.3', '0x3.4', '0x3.5']);
    expect(new Set(ports.map((p) => p.chassis)).size).toBe(14);
  });

  it('lists the spare ports for hot-plug, only on q35', () => {
    expect(hotplugPortIds(minimalDef({ machine: 'q35', disks: [{ path: '/x/a.img', target: 'vda' }] }))).toEqual(['rp1', 'rp2', 'rp3', 'rp4']);
    expect(hotplugPortIds(minimalDef())).toEqual([]);
  });
});

describe('macFor and targetIndex', () => {
  it('derives a stable locally administered QEMU MAC from the UUID when none is given', () => {
    const def = minimalDef();
    const mac = macFor(def, { type: 'user' }, 0);
    expect(mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(macFor(def, { type: 'user' }, 0)).toBe(mac);
    expect(macFor(def, { type: 'user' }, 1)).not.toBe(mac);
    expect(macFor(def, { type: 'user', mac: '52:54:00:AB:CD:EF' }, 0)).toBe('52:54:00:ab:cd:ef');
  });

  it('reads drive indexes like the kernel names disks', () => {
    expect(['vda', 'vdb', 'vdz', 'vdaa', 'vdab'].map(targetIndex)).toEqual([0, 1, 25, 26, 27]);
  });
});

describe('findHostDevices', () => {
  it('picks the block devices out of a list of disk paths', async () => {
    const paths = ['/dev/null', import.meta.filename, '/no/such/disk', ...(existsSync('/dev/loop0') ? ['/dev/loop0'] : [])];
    expect(await findHostDevices(paths)).toEqual(paths.filter((p) => p === '/dev/loop0'));
  });
});

describe('buildQemuArgv with network interfaces', () => {
  it('refuses a network interface virtnetworkd has not given a port yet', () => {
    const def = minimalDef({ interfaces: [{ type: 'network', network: 'default' }] });
    expect(() => buildQemuArgv(def, OPTS)).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringContaining('network "default"') }));
  });
});
