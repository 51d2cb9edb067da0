// One network chaos iteration: virtnetworkd in a network namespace of its own, a seeded schedule
// of VM starts and destroys (real shims and QEMU running the idle guest with a NIC on the default
// network, some with MACs from a small shared pool so two VMs want the same one), port create and
// delete races through the API, VMs killed with -9 (QEMU and shim), and kill -9 of virtnetworkd
// while all that goes on; after each step and at the end the invariants:
//   1. no two ports of a network share a MAC, and no two VMs share a port (or a tap);
//   2. the namespace holds exactly the taps of the listed ports (no leaked tap, none missing);
//   3. every running VM's NIC is on a port of that VM;
//   4. once every VM is destroyed, no port and no tap is left, and the network stops clean.
import { readFileSync, writeFileSync } from 'node:fs';
import type { NetworkClient } from '../../client/network-client.js';
import { VirtqError, type PortRow } from '../../protocol/index.js';
import { NetworkdWorld } from '../helpers/networkd-world.js';
import { idleGuest } from '../helpers/test-guest.js';
import { waitFor } from '../security/hostile-client.js';
import { Rng } from './rng.js';

/** What an iteration did and found. */
export interface NetChaosReport {
  seed: number;
  steps: number;
  ops: Record<string, number>;
  violations: string[];
  trace: string[];
  ms: number;
}

interface Vm { name: string; uuid: string; shimPid: number; qemuPid: number; portId: string }

const NAMES = ['n0', 'n1', 'n2', 'n3'];
const MACS = ['52:54:00:c0:00:01', '52:54:00:c0:00:02', '52:54:00:c0:00:03'];
const STEPS = { start: 5, destroy: 3, crash: 2, portRace: 3, deleteRace: 2, killDaemon: 2 } as const;
const FAKE = (n: number): string => `fa4e0000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/** Runs one seeded iteration of `steps` steps. */
export async function runNetworkIteration(seed: number, steps: number): Promise<NetChaosReport> {
  const t0 = Date.now();
  const rng = new Rng(seed);
  const report: NetChaosReport = { seed, steps, ops: {}, violations: [], trace: [], ms: 0 };
  const w = new NetworkdWorld('vq-nchaos-');
  const vms = new Map<string, Vm>();
  let c: NetworkClient | undefined;
  const note = (line: string): void => { report.trace.push(`${((Date.now() - t0) / 1000).toFixed(2)} ${line}`); };
  const api = async (): Promise<NetworkClient> => (c ??= await w.client());
  try {
    // A short grace: ports of fake VMs (no process at all) and of killed VMs go within a second.
    const flags = ['--port-check-ms', '100', '--port-grace-ms', '800'];
    await w.start(flags);
    await (await api()).api.startNetwork({ name: 'default' });
    for (let step = 0; step < steps; step++) {
      const kind = rng.weighted(STEPS);
      report.ops[kind] = (report.ops[kind] ?? 0) + 1;
      note(`step ${step}: ${kind}`);
      if (kind === 'killDaemon') {
        await w.kill9();
        c?.close();
        c = undefined;
        // Meanwhile a VM starts or stops: its shim waits for (or gives up on) the daemon.
        const during = rng.chance(0.5) ? startVm(w, vms, rng, note) : destroyVm(w, vms, rng, note);
        await new Promise((r) => setTimeout(r, rng.int(0, 300)));
        await w.start(flags);
        note('  virtnetworkd back');
        await during;
      } else if (kind === 'start') {
        await Promise.all(Array.from({ length: rng.int(1, 2) }, () => startVm(w, vms, rng, note)));
      } else if (kind === 'destroy') {
        await destroyVm(w, vms, rng, note);
      } else if (kind === 'crash') {
        const vm = rng.pick([...vms.values()]);
        if (vm !== undefined) {
          for (const pid of [vm.qemuPid, vm.shimPid]) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
          vms.delete(vm.name);
          note(`  killed ${vm.name} (qemu ${vm.qemuPid}, shim ${vm.shimPid})`);
        }
      } else if (kind === 'portRace') {
        // Two VMs ask for one MAC at once: exactly one of them gets it.
        const mac = rng.pick(MACS);
        const [x, y] = [rng.int(0, 9), rng.int(10, 19)];
        const got = await Promise.allSettled([x, y].map((n) => api().then((k) => k.api.createPort({ network: 'default', vmUuid: FAKE(n), vmName: `fake${n}`, mac }))));
        note(`  race for ${mac}: ${got.map((g) => (g.status === 'fulfilled' ? 'ok' : VirtqError.from(g.reason).code)).join(' ')}`);
      } else {
        // A port deleted twice at once and created again: one delete wins, the other is NO_NETWORK_PORT.
        const ports = (await (await api()).api.listPorts({ network: 'default' })).ports.filter((p) => p.vmName?.startsWith('fake') === true);
        const p = rng.pick(ports);
        if (p !== undefined) {
          const k = await api();
          const got = await Promise.allSettled([k.api.deletePort({ network: 'default', id: p.id }), k.api.deletePort({ network: 'default', id: p.id }), k.api.createPort({ network: 'default', vmUuid: p.vmUuid, vmName: p.vmName ?? 'x', mac: p.mac })]);
          note(`  delete race on ${p.id}: ${got.map((g) => (g.status === 'fulfilled' ? 'ok' : VirtqError.from(g.reason).code)).join(' ')}`);
        }
      }
      await checkInvariants(w, await api(), vms, report, `after step ${step} (${kind})`);
    }
    for (const name of [...vms.keys()]) await destroyVm(w, vms, rng, note, name);
    const k = await api();
    const drained = await waitFor(async () => (await k.api.listPorts({ network: 'default' })).ports.length === 0, 15_000);
    if (!drained) report.violations.push(`ports left after every VM was destroyed: ${JSON.stringify((await k.api.listPorts({ network: 'default' })).ports)}`);
    await k.api.stopNetwork({ name: 'default', force: true });
    const left = w.leftovers();
    if (left.links.length + left.nftTables.length + left.dnsmasq.length > 0) report.violations.push(`left in the namespace after stop: ${JSON.stringify(left)}`);
  } catch (err) {
    report.violations.push(`iteration failed: ${String(err)}`);
  } finally {
    c?.close();
    await w.cleanup().catch((err: unknown) => report.violations.push(`cleanup: ${String(err)}`));
    report.ms = Date.now() - t0;
  }
  return report;
}

async function startVm(w: NetworkdWorld, vms: Map<string, Vm>, rng: Rng, note: (l: string) => void): Promise<void> {
  const free = NAMES.filter((n) => !vms.has(n));
  const name = rng.pick(free);
  if (name === undefined) return;
  vms.set(name, { name, uuid: '', shimPid: 0, qemuPid: 0, portId: '' }); // reserved while it starts
  const mac = rng.chance(0.5) ? rng.pick(MACS) : undefined;
  const def = { name, memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel }, interfaces: [{ type: 'network', network: 'default', ...(mac === undefined ? {} : { mac }) }] };
  const file = w.root.path(`${name}.def.json`);
  writeFileSync(file, JSON.stringify(def));
  const run = await w.shims.run(['--definition', file, '--no-register', '--daemon-wait', '10'], name);
  if (!run.reply.ok) {
    vms.delete(name);
    note(`  start ${name} (${mac ?? 'generated MAC'}): ${run.reply.error?.code ?? '?'}`);
    return;
  }
  const shim = await w.shims.connect(run.reply.socket as string);
  const iface = (await shim.api.getDefinition({ name })).interfaces?.[0];
  const state = JSON.parse(readState(w, name)) as { definition: { interfaces: Array<{ port?: { id: string } }> } };
  shim.rpc.close();
  vms.set(name, { name, uuid: run.reply.uuid as string, shimPid: run.reply.shimPid as number, qemuPid: run.reply.qemuPid as number, portId: state.definition.interfaces[0]?.port?.id ?? '' });
  note(`  started ${name} with ${iface?.mac ?? '?'} on port ${vms.get(name)?.portId ?? '?'}`);
}

async function destroyVm(w: NetworkdWorld, vms: Map<string, Vm>, rng: Rng, note: (l: string) => void, which?: string): Promise<void> {
  const vm = which === undefined ? rng.pick([...vms.values()].filter((v) => v.shimPid !== 0)) : vms.get(which);
  if (vm === undefined || vm.shimPid === 0) return;
  vms.delete(vm.name);
  const shim = await w.shims.connect(w.shims.layout.runtime + `/shims/${vm.name}.sock`).catch(() => undefined);
  if (shim === undefined) return;
  await shim.api.destroy({ name: vm.name }).catch(() => undefined);
  shim.rpc.close();
  await waitFor(() => !processAlive(vm.shimPid), 10_000);
  note(`  destroyed ${vm.name}`);
}

async function checkInvariants(w: NetworkdWorld, c: NetworkClient, vms: Map<string, Vm>, report: NetChaosReport, when: string): Promise<void> {
  let ports: PortRow[] = [];
  let taps: string[] = [];
  let listed: string[] = [];
  // The liveness check may be deleting a port right now (tap gone, record not yet): wait for a quiet moment.
  await waitFor(async () => {
    ports = (await c.api.listPorts({ network: 'default' })).ports;
    taps = w.taps();
    listed = ports.map((p) => p.tap).sort();
    return JSON.stringify(taps) === JSON.stringify(listed);
  }, 3000);
  const dup = <T>(xs: T[]): T[] => xs.filter((x, i) => xs.indexOf(x) !== i);
  for (const mac of dup(ports.map((p) => p.mac))) report.violations.push(`${when}: MAC ${mac} on two ports`);
  for (const tap of dup(ports.map((p) => p.tap))) report.violations.push(`${when}: tap ${tap} on two ports`);
  if (JSON.stringify(taps) !== JSON.stringify(listed)) report.violations.push(`${when}: taps ${taps.join(',')} but ports ${listed.join(',')}`);
  for (const vm of vms.values()) {
    if (vm.shimPid === 0 || !processAlive(vm.qemuPid)) continue;
    const port = ports.find((p) => p.id === vm.portId);
    if (port?.vmUuid !== vm.uuid) report.violations.push(`${when}: running VM ${vm.name}'s port ${vm.portId} is ${JSON.stringify(port)}`);
  }
}

function readState(w: NetworkdWorld, name: string): string {
  return readFileSync(`${w.shims.layout.runtime}/shims/${name}.json`, 'utf8');
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
