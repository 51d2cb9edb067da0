// VMs on virtnetworkd's networks with real QEMU (TCG), everything inside a network namespace of
// the test's own: two test guests on the default nat network get DHCP leases that domifaddr
// reports and ping each other; a guest on an isolated network reaches neither; a NIC is
// hot-plugged and unplugged with its port; a shim killed with -9 is replaced and its successor
// keeps the port; virtnetworkd killed with -9 leaves the guests talking
// and comes back with the same ports and leases; a VM destroyed while it is down has its port
// released once it is back. Afterwards no bridge, tap, nft table or dnsmasq is left.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NetworkClient } from '../../client/network-client.js';
import { guestDefinition, type RunningShim } from '../helpers/shim-harness.js';
import { NetworkdWorld } from '../helpers/networkd-world.js';
import type { SerialReader } from '../helpers/serial-reader.js';
import { waitFor } from '../security/hostile-client.js';
import { virtqOk } from '../e2e/virtq-cli.js';

interface Guest { name: string; shim: RunningShim; serial: SerialReader; write(text: string): void; ip: string }

let w: NetworkdWorld;
beforeEach(() => { w = new NetworkdWorld('vq-ndg-'); });
afterEach(() => w.cleanup());

async function boot(name: string, network: string): Promise<Guest> {
  const shim = await w.shims.start(guestDefinition(name, { cmdline: 'tg_net=1', interfaces: [{ type: 'network', network }] }));
  const con = await w.shims.console(shim.rpc, name);
  await con.reader.waitFor('TG-NET-UP eth0', 120_000);
  // The marker may arrive before the rest of its line.
  const line = /TG-NET-UP eth0 (\d+\.\d+\.\d+\.\d+)\s/;
  await waitFor(() => line.test(con.reader.output), 5000);
  const ip = line.exec(con.reader.output)?.[1];
  if (ip === undefined) throw new Error(`${name}: no address in ${con.reader.output.slice(-300)}`);
  return { name, shim, serial: con.reader, write: con.write, ip };
}

/** Runs tg-ping on `from`'s console shell; resolves with the marker line it printed. */
async function ping(from: Guest, to: string, count = 1): Promise<'OK' | 'FAIL'> {
  const mark = from.serial.mark();
  from.write('\n');
  from.write(`tg-ping ${to} ${count}\n`);
  const ok = from.serial.waitFor(`TG-PING-OK ${to}`, 60_000, mark).then(() => 'OK' as const);
  const fail = from.serial.waitFor(`TG-PING-FAIL ${to}`, 60_000, mark).then(() => 'FAIL' as const);
  return Promise.race([ok, fail]);
}

const portsOf = async (c: NetworkClient, network: string) => (await c.api.listPorts({ network })).ports;
const leasesOf = async (c: NetworkClient) => (await c.api.listLeases({ network: 'default' })).leases.map((l) => `${l.mac} ${l.ip} ${l.vmName ?? '-'}`).sort();

describe('VMs on virtnetworkd networks', () => {
  it('get leases, reach each other on nat and not across networks, and keep both through kill -9 of virtnetworkd', async () => {
    await w.start();
    let c = await w.client();
    await c.api.startNetwork({ name: 'default' });
    await c.api.defineNetwork({ definition: { name: 'iso', type: 'isolated', ipv4: { address: '10.99.0.1', prefix: 24, dhcp: { start: '10.99.0.10', end: '10.99.0.50' } } } });
    await c.api.startNetwork({ name: 'iso' });
    const [a, b, iso] = await Promise.all([boot('ga', 'default'), boot('gb', 'default'), boot('gc', 'iso')]);

    // domifaddr (answered by the shim from virtnetworkd's leases) says what DHCP told the guest.
    for (const g of [a, b]) {
      const { interfaces } = await g.shim.api.interfaceAddresses({ name: g.name });
      expect(interfaces).toEqual([expect.objectContaining({ network: 'default', addresses: [{ type: 'ipv4', address: g.ip, prefix: 24 }] })]);
    }
    expect(iso.ip).toMatch(/^10\.99\.0\./);
    expect(await leasesOf(c)).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(` ${a.ip} ga$`)), expect.stringMatching(new RegExp(` ${b.ip} gb$`))]));

    const [ab, ca, ac] = await Promise.all([ping(b, a.ip, 2), ping(iso, a.ip), ping(a, iso.ip)]);
    expect([ab, ca, ac]).toEqual(['OK', 'FAIL', 'FAIL']);

    // A hot-plugged NIC gets a port of its own, given back when it is unplugged (here through the CLI).
    const shimUri = `shim:///ga?root=${w.root.dir}`;
    expect(await virtqOk(['-c', shimUri, 'domifaddr', 'ga'])).toMatch(new RegExp(`52:54:00(:[0-9a-f]{2}){3}\\s+ipv4\\s+${a.ip.replaceAll('.', '\\.')}/24`));
    const mac = /Interface (\S+) attached to 'ga' on network default/.exec(await virtqOk(['-c', shimUri, 'attach-interface', 'ga', '--network', 'default']))?.[1] ?? '';
    expect((await portsOf(c, 'default')).map((p) => p.mac)).toContain(mac);
    expect(await virtqOk(['-c', shimUri, 'detach-interface', 'ga', mac])).toBe(`Interface ${mac} detached from 'ga'\n`);
    expect((await portsOf(c, 'default')).map((p) => p.vmName).sort()).toEqual(['ga', 'gb']);

    // A shim killed with -9 and replaced: the successor re-attaches to QEMU and keeps the port.
    const portOfA = (await portsOf(c, 'default')).find((p) => p.vmName === 'ga');
    a.shim.proc.kill('SIGKILL');
    await a.shim.exited;
    const successor = await w.shims.run(['--attach', 'ga', '--no-register'], 'ga');
    expect(successor.reply).toMatchObject({ ok: true, qemuPid: a.shim.reply.qemuPid });
    a.shim = { ...a.shim, ...successor, ...(await w.shims.connect(successor.reply.socket as string)) };
    expect((await a.shim.api.interfaceAddresses({ name: 'ga' })).interfaces[0]?.name).toBe(portOfA?.tap);
    expect((await portsOf(c, 'default')).find((p) => p.vmName === 'ga')).toEqual(portOfA);

    // kill -9: the guests keep talking; the new daemon has the same ports and leases.
    const [ports, leases] = [await portsOf(c, 'default'), await leasesOf(c)];
    await w.kill9();
    expect(await ping(b, a.ip, 2)).toBe('OK');
    await w.start();
    c = await w.client();
    expect(await portsOf(c, 'default')).toEqual(ports);
    expect(await leasesOf(c)).toEqual(leases);

    // A VM destroyed while virtnetworkd is down: its port goes once the daemon is back.
    await w.kill9();
    await b.shim.api.destroy({ name: 'gb' });
    await b.shim.exited;
    await w.start();
    c = await w.client();
    expect(await waitFor(async () => (await portsOf(c, 'default')).length === 1, 15_000)).toBe(true);
    expect((await portsOf(c, 'default')).map((p) => p.vmName)).toEqual(['ga']);

    // Stopped VMs give their ports back; then the networks stop and nothing of them is left.
    await Promise.all([a, iso].map(async (g) => { await g.shim.api.destroy({ name: g.name }); await g.shim.exited; }));
    expect(await portsOf(c, 'default')).toEqual([]);
    expect(await portsOf(c, 'iso')).toEqual([]);
    await c.api.stopNetwork({ name: 'default' });
    await c.api.stopNetwork({ name: 'iso' });
    expect(w.taps()).toEqual([]);
    expect(w.leftovers()).toEqual({ links: [], nftTables: [], dnsmasq: [] });
  }, 240_000);
});
