// A real kill -9 of a process running the network driver: dnsmasq (its own session) keeps serving
// DHCP while nobody supervises it, and a new driver over the same state dir adopts it and the port.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { build, stop as stopEsbuild } from 'esbuild';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/clock.js';
import { processMatches } from '../../drivers/network/dnsmasq.js';
import { NetworkDriver } from '../../drivers/network/network-driver.js';
import type { NetworkConfig, NetworkPort } from '../../drivers/network/types.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { busybox, createNetns, type TestNetns } from './network-driver-harness.js';

const NAT: NetworkConfig = {
  name: 'default', uuid: '8f6c2a7e-3b1d-4c5e-9a0f-1b2c3d4e5f60', type: 'nat', bridge: 'vqbr0',
  ipv4: { address: '10.77.0.1', prefix: 24, dhcp: { start: '10.77.0.10', end: '10.77.0.250' } },
};

let root: TmpRoot;
let spaces: TestNetns[];
let driver: NetworkDriver | undefined;
let daemon: ChildProcess | undefined;

beforeEach(() => {
  root = tmpRoot('vq-net9-');
  spaces = [createNetns()];
});

afterEach(async () => {
  if (daemon?.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  driver?.detach();
  for (const ns of spaces) await ns.remove();
  root.remove();
});

// esbuild's build() leaves its service process running for the next call.
afterAll(() => stopEsbuild());

/** The session id of `pid` (field 6 of /proc/PID/stat). */
function sessionOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

describe('NetworkDriver after kill -9 of its process', () => {
  it('leaves dnsmasq serving, and a new driver adopts it and the port', async () => {
    const ns = spaces[0] ?? createNetns();
    const bundle = root.path('daemon.mjs');
    await build({ entryPoints: ['test/integration/network-driver-daemon-fixture.ts'], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: bundle, logLevel: 'silent' });
    daemon = spawn(process.execPath, [bundle, root.path('state'), ns.name, JSON.stringify(NAT)], { stdio: ['ignore', 'pipe', 'inherit'] });
    if (daemon.stdout === null) throw new Error('no stdout');
    const [line] = (await once(createInterface({ input: daemon.stdout }), 'line')) as [string];
    const { dnsmasqPid, port } = JSON.parse(line) as { dnsmasqPid: number; port: NetworkPort };
    expect(sessionOf(dnsmasqPid)).not.toBe(sessionOf(daemon.pid ?? 0));

    daemon.kill('SIGKILL');
    await once(daemon, 'exit');
    expect(processMatches(dnsmasqPid, 'dnsmasq')).toBe(true);

    // DHCP still answered with no driver alive.
    const client = createNetns();
    spaces.push(client);
    execFileSync('ip', ['-n', ns.name, 'link', 'add', 'vqc0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client.name]);
    await ns.sh('ip', ['link', 'set', 'dev', 'vqc0', 'master', 'vqbr0', 'up']);
    await client.sh('ip', ['link', 'set', 'dev', 'eth0', 'address', '52:54:00:aa:bb:09', 'up']);
    const dhcp = await client.runner.run(busybox(), ['udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-t', '5', '-T', '1', '-s', '/bin/true'], { timeoutMs: 20_000 });
    expect(dhcp.stdout + dhcp.stderr).toMatch(/lease of 10\.77\.0\.\d+ obtained/);

    driver = await NetworkDriver.open({ stateDir: root.path('state'), runner: ns.runner, clock: systemClock() });
    expect(await driver.recover()).toEqual([{ name: 'default' }]);
    expect(driver.networkStatus('default').dnsmasqPid).toBe(dnsmasqPid);
    expect(driver.listPorts('default')).toEqual([port]);
    expect(await driver.leases('default')).toEqual([expect.objectContaining({ mac: '52:54:00:aa:bb:09' })]);
    const taps = (JSON.parse(await ns.sh('ip', ['-j', '-d', 'link', 'show'])) as Array<{ ifname: string; linkinfo?: { info_kind?: string } }>)
      .filter((l) => l.linkinfo?.info_kind === 'tun').map((l) => l.ifname);
    expect(taps).toEqual([port.tap]);
  });
});
