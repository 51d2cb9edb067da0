// End to end without virtq's shim: the test guest under QEMU (TCG) on a port of a nat network gets
// a DHCP lease from the network's dnsmasq, pings the gateway, and a second guest pings the first.
// QEMU runs inside the test's network namespace with `-netdev tap,ifname=<the port's tap>`.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/clock.js';
import { NetworkDriver } from '../../drivers/network/network-driver.js';
import type { NetworkConfig, NetworkPort } from '../../drivers/network/types.js';
import { SerialReader } from '../helpers/serial-reader.js';
import { testAccel, testGuest, testGuestDir } from '../helpers/test-guest.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { createNetns, type TestNetns } from './network-driver-harness.js';

const NAT: NetworkConfig = {
  name: 'default', uuid: '8f6c2a7e-3b1d-4c5e-9a0f-1b2c3d4e5f60', type: 'nat', bridge: 'vqbr0',
  ipv4: { address: '10.77.0.1', prefix: 24, dhcp: { start: '10.77.0.10', end: '10.77.0.250' } },
};

let root: TmpRoot;
let ns: TestNetns;
let driver: NetworkDriver | undefined;
let guests: ChildProcessWithoutNullStreams[];

beforeEach(() => {
  root = tmpRoot('vq-netq-');
  ns = createNetns();
  guests = [];
});

afterEach(async () => {
  for (const g of guests) g.kill('SIGKILL');
  driver?.detach();
  await ns.remove();
  root.remove();
});

/** The test guest must have been built with virtio_net (scripts/build-test-guest.sh does since the network driver). */
function netGuest(): { kernel: string; initrd: string } {
  const guest = testGuest();
  const manifest = JSON.parse(readFileSync(join(testGuestDir(), 'manifest.json'), 'utf8')) as { modules?: string };
  if (!(manifest.modules ?? '').split(' ').includes('virtio_net')) {
    throw new Error(`the test guest in ${testGuestDir()} has no virtio_net; rebuild it with bash scripts/build-test-guest.sh`);
  }
  return guest;
}

function boot(port: NetworkPort, extra: string): { proc: ChildProcessWithoutNullStreams; serial: SerialReader } {
  const { kernel, initrd } = netGuest();
  const proc = spawn('ip', ['netns', 'exec', ns.name, 'qemu-system-x86_64',
    '-machine', 'pc', '-accel', testAccel(), '-m', '128', '-nodefaults', '-no-user-config', '-display', 'none',
    '-serial', 'stdio', '-kernel', kernel, '-initrd', initrd,
    '-append', `console=ttyS0 quiet panic=-1 tg_noacpi=1 tg_net=1 ${extra}`,
    '-netdev', `tap,id=n0,ifname=${port.tap},script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=n0,mac=${port.mac}`,
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  guests.push(proc);
  return { proc, serial: new SerialReader(proc.stdout) };
}

function ipAfter(serial: SerialReader, marker: string): string {
  const m = new RegExp(`${marker} (\\d+\\.\\d+\\.\\d+\\.\\d+)`).exec(serial.output);
  if (m?.[1] === undefined) throw new Error(`no address after ${marker} in: ${serial.output.slice(-500)}`);
  return m[1];
}

describe('NetworkDriver with QEMU guests', () => {
  it('gives guests on its ports DHCP leases, routes them to the gateway and to each other', async () => {
    driver = await NetworkDriver.open({ stateDir: root.path('state'), runner: ns.runner, clock: systemClock() });
    await driver.startNetwork(NAT);
    const t0 = performance.now();
    const p1 = await driver.createPort('default', { vmUuid: '11111111-2222-4333-8444-555555555555', mac: '52:54:00:00:aa:01' });
    const p2 = await driver.createPort('default', { vmUuid: '66666666-7777-4888-9999-aaaaaaaaaaaa', mac: '52:54:00:00:aa:02' });
    const a = boot(p1, 'tg_ping=10.77.0.1');
    const b = boot(p2, '');

    const dnsmasqLog = (): string => readFileSync(root.path('state', 'networks', 'default', 'dnsmasq.log'), 'utf8').slice(-3000);
    const wait = (g: { serial: SerialReader }, marker: string, ms: number, from?: number): Promise<number> =>
      g.serial.waitFor(marker, ms, from).catch((err: Error) => { throw new Error(`${err.message}\n--- dnsmasq log ---\n${dnsmasqLog()}`); });
    await a.serial.waitFor('GUEST-READY', 120_000);
    const readyMs = performance.now() - t0;
    await wait(a, 'TG-NET-UP eth0', 120_000);
    const netUpMs = performance.now() - t0;
    await wait(a, 'TG-PING-OK 10.77.0.1', 60_000);
    const ipA = ipAfter(a.serial, 'TG-NET-UP eth0');
    await wait(b, 'TG-NET-UP eth0', 120_000);
    const ipB = ipAfter(b.serial, 'TG-NET-UP eth0');
    expect(ipA).not.toBe(ipB);

    const leases = await driver.leases('default');
    expect(leases).toEqual(expect.arrayContaining([
      expect.objectContaining({ mac: p1.mac, ip: ipA }),
      expect.objectContaining({ mac: p2.mac, ip: ipB }),
    ]));
    // Both guests call themselves "tg"; dnsmasq gives a name to one lease only.
    expect(leases.filter((l) => l.hostname === 'tg')).toHaveLength(1);

    // Guest B's console shell: one line wakes it, then a ping of guest A.
    const mark = b.serial.mark();
    b.proc.stdin.write('\n');
    b.proc.stdin.write(`tg-ping ${ipA}\n`);
    await wait(b, `TG-PING-OK ${ipA}`, 60_000, mark);
    console.log(`qemu guest on a port: GUEST-READY after ${(readyMs / 1000).toFixed(1)} s, TG-NET-UP after ${(netUpMs / 1000).toFixed(1)} s (TCG, from port creation)`);
  }, 300_000);
});
