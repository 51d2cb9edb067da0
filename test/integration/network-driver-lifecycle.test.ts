// The network driver against real ip, nft and dnsmasq, each test inside its own network namespace:
// start/stop of nat, isolated and bridge networks, DHCP answered on the bridge, refusals at start.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/clock.js';
import { NetworkDriver } from '../../drivers/network/network-driver.js';
import { nftTableName } from '../../drivers/network/nft.js';
import { processMatches } from '../../drivers/network/dnsmasq.js';
import type { NetworkConfig } from '../../drivers/network/types.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { busybox, createNetns, netnsExists, type TestNetns } from './network-driver-harness.js';

const NAT: NetworkConfig = {
  name: 'default', uuid: '8f6c2a7e-3b1d-4c5e-9a0f-1b2c3d4e5f60', type: 'nat', bridge: 'vqbr0',
  ipv4: { address: '10.77.0.1', prefix: 24, dhcp: { start: '10.77.0.10', end: '10.77.0.50' } }, domain: 'vm.test',
};
const ISOLATED: NetworkConfig = {
  name: 'iso', uuid: '0d8e1c2b-4a5f-4e6d-8b7a-9c0d1e2f3a4b', type: 'isolated', bridge: 'vqbr1',
  ipv4: { address: '10.78.0.1', prefix: 24, dhcp: { start: '10.78.0.10', end: '10.78.0.20' } },
};

let root: TmpRoot;
let spaces: TestNetns[];
let drivers: NetworkDriver[];

beforeEach(() => {
  root = tmpRoot('vq-net-');
  spaces = [];
  drivers = [];
});

afterEach(async () => {
  for (const d of drivers) d.detach();
  for (const ns of spaces) await ns.remove();
  for (const ns of spaces) expect(netnsExists(ns.name)).toBe(false);
  root.remove();
});

function netns(env?: NodeJS.ProcessEnv): TestNetns {
  const ns = createNetns(env);
  spaces.push(ns);
  return ns;
}

async function open(ns: TestNetns, stateDir = root.path('state')): Promise<NetworkDriver> {
  const d = await NetworkDriver.open({ stateDir, runner: ns.runner, clock: systemClock(), adoptedPollMs: 50, dnsmasqBackoff: { initialMs: 50, maxMs: 400, stableMs: 5_000 } });
  drivers.push(d);
  return d;
}

async function linkJson(ns: TestNetns, dev: string): Promise<{ ifalias?: string; flags: string[]; master?: string; linkinfo?: { info_kind?: string } } | undefined> {
  const res = await ns.runner.run('ip', ['-j', '-d', 'link', 'show', 'dev', dev]);
  return res.code === 0 ? (JSON.parse(res.stdout) as Array<{ ifalias?: string; flags: string[]; master?: string }>)[0] : undefined;
}

/** The pids of the dnsmasq processes running in the namespace. */
function dnsmasqsIn(ns: TestNetns): number[] {
  const pids = execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).split('\n').filter((l) => l !== '').map(Number);
  return pids.filter((pid) => processMatches(pid, 'dnsmasq'));
}

async function tables(ns: TestNetns): Promise<string> {
  return ns.sh('nft', ['list', 'tables']);
}

/** Puts a veth from the bridge into a second namespace and runs busybox udhcpc there; returns the leased IP. */
async function dhcpFrom(ns: TestNetns, bridge: string, mac: string): Promise<string> {
  const client = netns();
  execFileSync('ip', ['-n', ns.name, 'link', 'add', 'vqc0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client.name]);
  await ns.sh('ip', ['link', 'set', 'dev', 'vqc0', 'master', bridge, 'up']);
  await client.sh('ip', ['link', 'set', 'dev', 'eth0', 'address', mac, 'up']);
  const res = await client.runner.run(busybox(), ['udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-t', '5', '-T', '1', '-s', '/bin/true'], { timeoutMs: 20_000 });
  const m = /lease of (\d+\.\d+\.\d+\.\d+) obtained/.exec(res.stdout + res.stderr);
  if (m?.[1] === undefined) throw new Error(`udhcpc got no lease (${String(res.code)}): ${res.stdout}${res.stderr}`);
  return m[1];
}

describe('NetworkDriver (nat network in a namespace)', () => {
  it('creates the bridge, dnsmasq and the nft table, answers DHCP, and removes all of it on stop', async () => {
    const ns = netns();
    const driver = await open(ns);
    const status = await driver.startNetwork(NAT);

    const br = await linkJson(ns, 'vqbr0');
    expect(br?.linkinfo?.info_kind).toBe('bridge');
    expect(br?.flags).toContain('UP');
    expect(br?.ifalias).toMatch(/^virtq:[0-9a-f]{8}:net:8f6c2a7e-/);
    expect(await ns.sh('ip', ['-4', '-o', 'addr', 'show', 'dev', 'vqbr0'])).toContain('10.77.0.1/24');
    expect(status.dnsmasqPid).toBeGreaterThan(0);
    const pid = status.dnsmasqPid ?? 0;
    expect(processMatches(pid, `--conf-file=${root.path('state', 'networks', 'default', 'dnsmasq.conf')}`)).toBe(true);
    expect(await tables(ns)).toContain(`table ip ${nftTableName(NAT)}`);
    expect((await ns.sh('cat', ['/proc/sys/net/ipv4/ip_forward'])).trim()).toBe('1');

    const ip = await dhcpFrom(ns, 'vqbr0', '52:54:00:aa:bb:01');
    expect(ip).toMatch(/^10\.77\.0\.(1\d|[2-4]\d|50)$/);
    const leases = await driver.leases('default');
    expect(leases).toEqual([expect.objectContaining({ mac: '52:54:00:aa:bb:01', ip })]);
    expect(leases[0]?.expiresAt).toBeGreaterThan(Date.now());

    await driver.stopNetwork(NAT);
    expect(await linkJson(ns, 'vqbr0')).toBeUndefined();
    expect(await tables(ns)).not.toContain('virtq_');
    expect(processMatches(pid, 'dnsmasq')).toBe(false);
    expect(existsSync(root.path('state', 'networks', 'default'))).toBe(false);
    await driver.stopNetwork(NAT); // idempotent
  });

  it('adopts its own running network when started twice, and keeps one dnsmasq', async () => {
    const ns = netns();
    const driver = await open(ns);
    const first = await driver.startNetwork(NAT);
    const second = await driver.startNetwork(NAT);
    expect(second.dnsmasqPid).toBe(first.dnsmasqPid);
    expect(dnsmasqsIn(ns)).toEqual([first.dnsmasqPid]);
    await expect(driver.startNetwork({ ...NAT, bridge: 'vqbr9' })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    await driver.stopNetwork(NAT);
  });
});

describe('NetworkDriver (isolated and bridge networks)', () => {
  it('runs an isolated network with dnsmasq and a table that forwards nothing in or out', async () => {
    const ns = netns();
    const driver = await open(ns);
    const status = await driver.startNetwork(ISOLATED);
    expect(status.dnsmasqPid).toBeGreaterThan(0);
    expect(await tables(ns)).toContain(nftTableName(ISOLATED));
    const conf = readFileSync(root.path('state', 'networks', 'iso', 'dnsmasq.conf'), 'utf8');
    expect(conf).toContain('no-resolv');
    expect(conf).toContain('dhcp-option=option:router');
    expect(await dhcpFrom(ns, 'vqbr1', '52:54:00:aa:bb:02')).toMatch(/^10\.78\.0\./);
    await driver.stopNetwork(ISOLATED);
    expect(await linkJson(ns, 'vqbr1')).toBeUndefined();
    expect(await tables(ns)).not.toContain('virtq_');
  });

  it('attaches taps to an existing host bridge and leaves the bridge on stop', async () => {
    const ns = netns();
    await ns.sh('ip', ['link', 'add', 'name', 'hostbr', 'type', 'bridge']);
    const driver = await open(ns);
    const cfg: NetworkConfig = { name: 'lan', uuid: '5b1e0c9d-2f3a-4b4c-8d5e-6f7a8b9c0d1e', type: 'bridge', bridge: 'hostbr' };
    expect((await driver.startNetwork(cfg)).dnsmasqPid).toBeUndefined();
    const port = await driver.createPort('lan', { vmUuid: '11111111-2222-4333-8444-555555555555', mac: '52:54:00:00:00:07' });
    expect((await linkJson(ns, port.tap))?.master).toBe('hostbr');
    await expect(driver.stopNetwork(cfg)).rejects.toMatchObject({ code: 'IN_USE' });
    await driver.stopNetwork(cfg, { force: true });
    expect(await linkJson(ns, port.tap)).toBeUndefined();
    expect(await linkJson(ns, 'hostbr')).toBeDefined();
  });

  it('refuses a bridge network whose bridge does not exist or is not a bridge', async () => {
    const ns = netns();
    await ns.sh('ip', ['link', 'add', 'name', 'dum0', 'type', 'veth', 'peer', 'name', 'dum1']);
    const driver = await open(ns);
    const cfg: NetworkConfig = { name: 'lan', uuid: '5b1e0c9d-2f3a-4b4c-8d5e-6f7a8b9c0d1e', type: 'bridge', bridge: 'nosuchbr' };
    await expect(driver.startNetwork(cfg)).rejects.toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringContaining('nosuchbr') });
    await expect(driver.startNetwork({ ...cfg, bridge: 'dum0' })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('veth') });
  });
});

describe('NetworkDriver (refusals at start)', () => {
  it('refuses a bridge name a host interface already has, naming it, and creates nothing', async () => {
    const ns = netns();
    await ns.sh('ip', ['link', 'add', 'name', 'vqbr0', 'type', 'bridge']);
    const driver = await open(ns);
    await expect(driver.startNetwork(NAT)).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('vqbr0') });
    expect(await tables(ns)).not.toContain('virtq_');
    expect((await linkJson(ns, 'vqbr0'))?.ifalias).toBeUndefined();
  });

  it('refuses a subnet that overlaps a running network or a host route', async () => {
    const ns = netns();
    const driver = await open(ns);
    await driver.startNetwork(NAT);
    const overlapping: NetworkConfig = { ...ISOLATED, ipv4: { address: '10.77.0.129', prefix: 25 } };
    await expect(driver.startNetwork(overlapping)).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('"default"') });
    await ns.sh('ip', ['link', 'add', 'name', 'dum0', 'type', 'veth', 'peer', 'name', 'dum1']);
    await ns.sh('ip', ['addr', 'add', '10.78.0.200/16', 'dev', 'dum0']);
    await ns.sh('ip', ['link', 'set', 'dum0', 'up']);
    await expect(driver.startNetwork(ISOLATED)).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('dum0') });
    expect(await linkJson(ns, 'vqbr1')).toBeUndefined();
    await driver.stopNetwork(NAT);
  });

  it('names nft and its Debian package when nft is missing, before creating anything', async () => {
    const bin = root.path('bin');
    mkdirSync(bin);
    for (const tool of ['ip', 'dnsmasq', 'tee']) symlinkSync(execFileSync('which', [tool], { encoding: 'utf8' }).trim(), `${bin}/${tool}`);
    const ns = netns({ ...process.env, PATH: bin });
    const driver = await open(ns);
    const err = await driver.startNetwork(NAT).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_SUPPORTED', details: { missing: [{ binary: 'nft', package: 'nftables' }] } });
    expect((err as Error).message).toMatch(/nft \(Debian package nftables\)/);
    expect(await linkJson(ns, 'vqbr0')).toBeUndefined();
    // An isolated network is isolated by nft rules: it needs nft too.
    await expect(driver.startNetwork(ISOLATED)).rejects.toMatchObject({ code: 'NOT_SUPPORTED', details: { missing: [{ binary: 'nft', package: 'nftables' }] } });
    expect(await linkJson(ns, 'vqbr1')).toBeUndefined();
  });

  it('reports a dnsmasq that exits at start with its message, and rolls the fresh start back', async () => {
    const bin = root.path('bin');
    mkdirSync(bin);
    for (const tool of ['ip', 'nft', 'tee']) symlinkSync(execFileSync('which', [tool], { encoding: 'utf8' }).trim(), `${bin}/${tool}`);
    writeFileSync(`${bin}/dnsmasq`, '#!/bin/sh\necho "dnsmasq: failed to create listening socket for 10.77.0.1: Address in use" >&2\nexit 2\n', { mode: 0o755 });
    const ns = netns({ ...process.env, PATH: bin });
    const driver = await open(ns);
    await expect(driver.startNetwork(NAT)).rejects.toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringContaining('Address in use') });
    expect(await linkJson(ns, 'vqbr0')).toBeUndefined();
    expect(await tables(ns)).not.toContain('virtq_');
    expect(existsSync(root.path('state', 'networks', 'default'))).toBe(false);
  });
});
