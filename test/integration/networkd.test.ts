// virtnetworkd as a user meets it, in a network namespace of the test's own: the default network
// defined on first run; bad input (overlapping subnets, a bridge the host uses, 16-byte
// interface names, bad, multicast and duplicate MACs, a stop while ports are in use, nft missing)
// answered with typed errors while it keeps serving; ports of VMs that are gone released, also
// after its own kill -9, which it survives adopting its networks and ports. No QEMU here: a "VM"
// is a process with the VM's UUID in its command line and a runtime state file naming it; a shim
// whose start fails after it got its port gives it back.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcClient, networkProgram, rootLayout, shimStateFile, systemClock, type NetworkEvent } from '../../protocol/index.js';
import { expectFailure, virtq, virtqJson } from '../e2e/virtq-cli.js';
import { NetworkdWorld } from '../helpers/networkd-world.js';
import { waitFor } from '../security/hostile-client.js';

const VM = (n: number): string => `${String(n).repeat(8)}-2222-4333-8444-555555555555`;

let w: NetworkdWorld;
const fakes: ChildProcess[] = [];

beforeEach(() => { w = new NetworkdWorld(); });
afterEach(async () => {
  for (const f of fakes.splice(0)) f.kill('SIGKILL');
  await w.cleanup();
});

/** A stand-in for a VM's QEMU: a process whose command line holds the UUID, and the state file a shim would write. */
function fakeVm(name: string, uuid: string): ChildProcess {
  const proc = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', '--', `-uuid`, uuid], { stdio: 'ignore' });
  fakes.push(proc);
  const layout = rootLayout(w.root.dir);
  mkdirSync(join(layout.runtime, 'shims'), { recursive: true });
  writeFileSync(shimStateFile(layout, name), JSON.stringify({
    format: 1, name, uuid, shimPid: 2 ** 22 + 1, qemuPid: proc.pid, accel: 'tcg', state: 'running', reason: 'booted', tainted: false, private: false,
    sockets: { rw: '/nonexistent/rw', ro: '/nonexistent/ro', admin: '/nonexistent/admin', monitor: '/x', console: '/y' }, definition: { name, uuid }, updatedAt: Date.now(),
  }));
  return proc;
}

describe('virtnetworkd', () => {
  it('defines the default network on first run and answers bad input with typed errors while it keeps serving', async () => {
    await w.start();
    const c = await w.client();
    const events: NetworkEvent[] = [];
    const watcher = await w.client();
    void (async () => { for await (const e of watcher.events()) events.push(e); })();

    expect((await c.api.listNetworks({})).networks).toEqual([expect.objectContaining({
      name: 'default', type: 'nat', state: 'inactive', autostart: false, bridge: 'virtqbr0', ports: 0,
      ipv4: { address: '192.168.122.1', prefix: 24, dhcp: { start: '192.168.122.2', end: '192.168.122.254' } },
    })]);
    const started = await c.api.startNetwork({ name: 'default' });
    expect(started).toMatchObject({ state: 'active', dnsmasqPid: expect.any(Number), dnsmasqRestarts: 0 });

    // dnsmasq dying: restarted, counted, told.
    process.kill(started.dnsmasqPid as number, 'SIGKILL');
    expect(await waitFor(() => events.some((e) => e.kind === 'dnsmasq-restarted'), 10_000)).toBe(true);
    const after = await c.api.getNetwork({ name: 'default' });
    expect(after.dnsmasqRestarts).toBe(1);
    expect(after.dnsmasqPid).not.toBe(started.dnsmasqPid);
    const admin = await RpcClient.connect(w.services.sockets('virtnetworkd').admin, { clock: systemClock() });
    const families = ((await admin.call('admin', 'getMetrics', {})) as { families: Array<{ name: string; values: Array<{ labels: object; value: number }> }> }).families;
    admin.close();
    expect(families.find((f) => f.name === 'virtq_network_dnsmasq_restarts_total')?.values).toEqual([{ labels: { network: 'default', daemon: 'virtnetworkd' }, value: 1 }]);

    const iso = (name: string, extra: object) => c.api.defineNetwork({ definition: { name, type: 'isolated', ipv4: { address: '10.9.0.1', prefix: 24 }, ...extra } });
    await expect(iso('lab', { ipv4: { address: '192.168.122.129', prefix: 25 } })).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('overlaps subnet 192.168.122.0/24 of network "default"') });
    await expect(iso('lab', { bridge: 'virtqbr0' })).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('bridge virtqbr0 is already used by network "default"') });
    await expect(iso('lab', { bridge: 'b234567890123456' })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('is 16 bytes; Linux allows 1 to 15') });
    await expect(iso('lab', { ipv4: { address: '10.9.0.0', prefix: 24 } })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('network address') });
    // A bridge the host has that virtq did not make: defined, but refused at start, and left alone.
    w.sh('ip', ['link', 'add', 'hostbr0', 'type', 'bridge']);
    await iso('taken', { bridge: 'hostbr0' });
    await expect(c.api.startNetwork({ name: 'taken' })).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('hostbr0') });
    expect(await c.api.getNetwork({ name: 'taken' })).toMatchObject({ state: 'inactive' });
    await c.api.undefineNetwork({ name: 'taken' });

    // A VM whose start fails after it got its port (no such kernel) leaves no port; an unknown network is refused at once.
    const startShim = async (name: string, network: string) => {
      writeFileSync(w.root.path(`${name}.json`), JSON.stringify({ name, memoryMiB: 32, kernel: { path: '/nonexistent/vmlinuz' }, interfaces: [{ type: 'network', network }] }));
      return (await w.shims.run(['--definition', w.root.path(`${name}.json`), '--no-register'], name)).reply;
    };
    expect(await startShim('bad1', 'default')).toMatchObject({ ok: false, error: { code: 'INVALID_ARG', message: expect.stringContaining('/kernel/path') } });
    expect(await startShim('bad2', 'nowhere')).toMatchObject({ ok: false, error: { code: 'NO_NETWORK', message: expect.stringContaining('network "nowhere"') } });
    expect((await c.api.listPorts({ network: 'default' })).ports).toEqual([]);
    expect(await waitFor(() => events.some((e) => e.kind === 'port-deleted'), 5000)).toBe(true);
    expect(events.map((e) => [e.kind, e.network, e.vmName])).toEqual([
      ['started', 'default', undefined], ['dnsmasq-restarted', 'default', undefined], ['defined', 'taken', undefined], ['undefined', 'taken', undefined],
      ['port-created', 'default', 'bad1'], ['port-deleted', 'default', 'bad1'],
    ]);
    events.length = 0;

    const port = (vm: number, mac?: string) => c.api.createPort({ network: 'default', vmUuid: VM(vm), vmName: `vm${vm}`, ...(mac === undefined ? {} : { mac }) });
    await expect(port(1, '52:54:00:zz:00:01')).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('not a MAC address') });
    await expect(port(1, '01:00:5e:00:00:01')).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('multicast') });
    const p1 = await port(1, '52:54:00:00:00:01');
    expect(p1).toMatchObject({ vmName: 'vm1', mac: '52:54:00:00:00:01', tap: expect.stringMatching(/^vq-[0-9a-f]{12}$/), reused: false });
    await expect(port(2, '52:54:00:00:00:01')).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringContaining(VM(1)) });
    expect(await port(1, '52:54:00:00:00:01')).toMatchObject({ id: p1.id, reused: true });
    const p2 = await port(2);
    expect(w.taps()).toEqual([p1.tap, p2.tap].sort());

    await expect(c.api.stopNetwork({ name: 'default' })).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringMatching(/"vm1", "vm2"/) });
    // The same through the CLI: net-port-list as JSON, net-destroy refused (exit 1, the code on stderr).
    const ports = await virtqJson<{ ports: Array<{ vmName: string }> }>(['-c', w.uri(), 'net-port-list', 'default', '--json'], networkProgram.procs.listPorts.ret);
    expect(ports.ports.map((p) => p.vmName)).toEqual(['vm1', 'vm2']);
    expectFailure(await virtq(['-c', w.uri(), 'net-destroy', 'default']), 'IN_USE', /vm1/);
    await expect(c.api.stopNetwork({ name: 'default', force: true })).resolves.toMatchObject({ state: 'inactive', ports: 0 });
    expect(await waitFor(() => events.some((e) => e.kind === 'stopped'), 5000)).toBe(true);
    expect(events.map((e) => [e.kind, e.vmName, e.reason])).toEqual([
      ['port-created', 'vm1', undefined], ['port-created', 'vm2', undefined],
      ['port-deleted', 'vm1', 'network-stopped'], ['port-deleted', 'vm2', 'network-stopped'], ['stopped', undefined, undefined],
    ]);
    await expect(c.api.createPort({ network: 'default', vmUuid: VM(1), vmName: 'vm1' })).rejects.toMatchObject({ code: 'NO_NETWORK', details: { state: 'inactive' } });
    await expect(c.api.getNetwork({ name: 'nope' })).rejects.toMatchObject({ code: 'NO_NETWORK' });
    const ro = await w.client(true);
    await expect(ro.api.startNetwork({ name: 'default' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect((await ro.api.listNetworks({})).networks.map((n) => n.name)).toEqual(['default']);
    expect(w.leftovers(['hostbr0'])).toEqual({ links: [], nftTables: [], dnsmasq: [] });
  });

  it('refuses to start a nat network when nft is missing, naming the package, and keeps serving', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'vq-nonft-'));
    try {
      for (const tool of ['ip', 'dnsmasq', 'tee']) symlinkSync(execPath(tool), join(bin, tool));
      await w.start(undefined, { ...process.env, PATH: bin });
      const c = await w.client();
      await expect(c.api.startNetwork({ name: 'default' })).rejects.toMatchObject({ code: 'NOT_SUPPORTED', message: expect.stringMatching(/nft \(Debian package nftables\).*apt-get install nftables/) });
      expect(await c.api.getNetwork({ name: 'default' })).toMatchObject({ state: 'inactive' });
      await c.api.defineNetwork({ definition: { name: 'iso', type: 'isolated', ipv4: { address: '10.9.0.1', prefix: 24, dhcp: { start: '10.9.0.10', end: '10.9.0.20' } } } });
      await expect(c.api.startNetwork({ name: 'iso' })).rejects.toMatchObject({ code: 'NOT_SUPPORTED', message: expect.stringContaining('nftables') });
      expect((await c.api.listNetworks({})).networks.map((n) => [n.name, n.state])).toEqual([['default', 'inactive'], ['iso', 'inactive']]);
      expect(w.leftovers()).toEqual({ links: [], nftTables: [], dnsmasq: [] });
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('releases the ports of VMs that are gone, and after its own kill -9 adopts networks and ports and releases those of VMs that went meanwhile', async () => {
    const quick = ['--port-check-ms', '100', '--port-grace-ms', '1000'];
    await w.start(quick);
    const c = await w.client();
    const net = await c.api.startNetwork({ name: 'default' });
    const [a, b] = [fakeVm('vm1', VM(1)), fakeVm('vm2', VM(2))];
    const port = (n: number) => c.api.createPort({ network: 'default', vmUuid: VM(n), vmName: `vm${n}` });
    const [p1, p2, p3] = [await port(1), await port(2), await port(3)];
    // vm3 never ran: its port goes once its grace is over; those of running VMs stay.
    const ids = async () => (await c.api.listPorts({ network: 'default' })).ports.map((p) => p.id).sort();
    expect(await waitFor(async () => !(await ids()).includes(p3.id), 10_000)).toBe(true);
    expect(await ids()).toEqual([p1.id, p2.id].sort());

    await w.kill9();
    b.kill('SIGKILL');
    await w.start(quick);
    const again = await w.client();
    expect(await again.api.getNetwork({ name: 'default' })).toMatchObject({ state: 'active', dnsmasqPid: net.dnsmasqPid });
    const left = async () => (await again.api.listPorts({ network: 'default' })).ports;
    expect(await waitFor(async () => (await left()).length === 1, 10_000)).toBe(true);
    expect(await left()).toEqual([{ id: p1.id, network: 'default', vmUuid: VM(1), vmName: 'vm1', mac: p1.mac, tap: p1.tap, createdAt: p1.createdAt }]);
    expect(w.taps()).toEqual([p1.tap]);

    a.kill('SIGKILL');
    expect(await waitFor(async () => (await left()).length === 0, 10_000)).toBe(true);
    await again.api.stopNetwork({ name: 'default' });
    expect(w.taps()).toEqual([]);
    expect(w.leftovers()).toEqual({ links: [], nftTables: [], dnsmasq: [] });
  });
});

function execPath(tool: string): string {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    try {
      const p = join(dir, tool);
      accessSync(p, constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  throw new Error(`${tool} not found`);
}
