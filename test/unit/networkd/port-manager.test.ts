// virtnetworkd's ports over a fake driver and store: a MAC a VM already holds is handed back to it
// (a shim retrying), never to another VM; the liveness check releases the ports of VMs that are
// gone once their grace is over, looking again under the lock; a network with ports is not
// stopped unless forced, and forcing deletes each port with an event.
import { describe, expect, it } from 'vitest';
import { VirtqError, silentLogger, type NetworkEvent } from '../../../protocol/index.js';
import type { NetworkDriver } from '../../../drivers/network/network-driver.js';
import type { NetworkPort } from '../../../drivers/network/types.js';
import type { NetworkStore } from '../../../networkd/network-store.js';
import { PortManager } from '../../../networkd/port-manager.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const VM_A = '11111111-2222-4333-8444-555555555555';
const VM_B = '66666666-7777-4888-9999-aaaaaaaaaaaa';

function world(opts: { graceMs?: number } = {}) {
  const clock = new FakeClock();
  const ports = new Map<string, NetworkPort>();
  let n = 0;
  const driver = {
    activeNetworks: () => [{ name: 'default' }],
    listPorts: () => [...ports.values()],
    createPort: async (_net: string, req: { vmUuid: string; vmName?: string; mac?: string }) => {
      const mac = req.mac ?? `52:54:00:00:00:${String(++n).padStart(2, '0')}`;
      const holder = [...ports.values()].find((p) => p.mac === mac);
      if (holder !== undefined) throw new VirtqError('ALREADY_EXISTS', `MAC ${mac} is already used`);
      const id = `0000000${++n}-0000-4000-8000-000000000000`.slice(-36);
      const port: NetworkPort = { id, network: 'default', vmUuid: req.vmUuid, mac, tap: `vq-${n}`, createdAt: clock.now(), ...(req.vmName === undefined ? {} : { vmName: req.vmName }) };
      ports.set(id, port);
      return port;
    },
    deletePort: async (_net: string, id: string) => { ports.delete(id); },
  } as unknown as NetworkDriver;
  let active = true;
  const stopped: string[] = [];
  const store = {
    isActive: () => active,
    active: () => {
      if (!active) throw new VirtqError('NO_NETWORK', 'not active', { details: { state: 'inactive' } });
      return {};
    },
    stop: async (name: string) => { stopped.push(name); active = false; },
  } as unknown as NetworkStore;
  const dead = new Set<string>();
  const events: Array<Omit<NetworkEvent, 'timestamp'>> = [];
  const released: string[] = [];
  const checks: string[] = [];
  const mgr = new PortManager({
    driver, store, clock, log: silentLogger(), graceMs: opts.graceMs ?? 10_000,
    alive: async (p) => { checks.push(p.id); return !dead.has(p.vmUuid); },
    events: { emit: (e) => events.push(e), created: () => undefined, released: (_n, r) => released.push(r) },
  });
  return { clock, ports, mgr, dead, events, released, stopped, checks };
}

describe('PortManager', () => {
  it('hands a MAC back to the VM that holds it, and refuses it to another', async () => {
    const w = world();
    const a = await w.mgr.create('default', { vmUuid: VM_A, vmName: 'a', mac: '52:54:00:AA:00:01' });
    expect(a).toMatchObject({ mac: '52:54:00:aa:00:01', vmName: 'a', reused: false });
    const again = await w.mgr.create('default', { vmUuid: VM_A.toUpperCase(), vmName: 'a', mac: '52:54:00:aa:00:01' });
    expect(again).toMatchObject({ id: a.id, tap: a.tap, reused: true });
    await expect(w.mgr.create('default', { vmUuid: VM_B, vmName: 'b', mac: '52:54:00:aa:00:01' })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(w.mgr.create('default', { vmUuid: VM_B, vmName: 'b', mac: '01:00:5e:00:00:01' })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('multicast') });
    expect(w.ports.size).toBe(1);
    expect(w.events.map((e) => e.kind)).toEqual(['port-created']);
  });

  it('releases the port of a gone VM only after its grace, and a handed-back port counts from then', async () => {
    const w = world({ graceMs: 10_000 });
    const a = await w.mgr.create('default', { vmUuid: VM_A, vmName: 'a', mac: '52:54:00:aa:00:01' });
    await w.mgr.create('default', { vmUuid: VM_B, vmName: 'b' });
    w.dead.add(VM_A);
    expect(await w.mgr.reap()).toBe(0);
    expect(w.checks).toEqual([]);
    await w.clock.advance(8000);
    await w.mgr.create('default', { vmUuid: VM_A, vmName: 'a', mac: '52:54:00:aa:00:01' });
    await w.clock.advance(4000);
    expect(await w.mgr.reap()).toBe(0); // claimed again 4 s ago
    await w.clock.advance(7000);
    expect(await w.mgr.reap()).toBe(1);
    expect([...w.ports.values()].map((p) => p.vmUuid)).toEqual([VM_B]);
    expect(w.events.at(-1)).toMatchObject({ kind: 'port-deleted', port: a.id, vmName: 'a', reason: 'vm-gone' });
    expect(w.released).toEqual(['vm-gone']);
  });

  it('leaves a port whose VM came back between the check and the lock', async () => {
    const w = world({ graceMs: 0 });
    await w.mgr.create('default', { vmUuid: VM_A, vmName: 'a' });
    let calls = 0;
    const mgr = new PortManager({
      driver: { activeNetworks: () => [{ name: 'default' }], listPorts: () => [...w.ports.values()], deletePort: async () => { throw new Error('must not delete'); } } as unknown as NetworkDriver,
      store: { isActive: () => true, active: () => ({}) } as unknown as NetworkStore,
      clock: w.clock, log: silentLogger(), graceMs: 0, alive: async () => ++calls > 1,
      events: { emit: () => undefined, created: () => undefined, released: () => undefined },
    });
    expect(await mgr.reap()).toBe(0);
    expect(calls).toBe(2);
  });

  it('refuses to stop a network with ports, naming the VMs, unless forced; forcing deletes each port with an event', async () => {
    const w = world();
    await w.mgr.create('default', { vmUuid: VM_A, vmName: 'web1' });
    await w.mgr.create('default', { vmUuid: VM_B, vmName: 'db1' });
    await expect(w.mgr.stopNetwork('default', false)).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringMatching(/"web1", "db1"/), details: { vms: ['web1', 'db1'] } });
    expect(w.stopped).toEqual([]);
    await w.mgr.stopNetwork('default', true);
    expect(w.ports.size).toBe(0);
    expect(w.stopped).toEqual(['default']);
    expect(w.events.filter((e) => e.kind === 'port-deleted').map((e) => [e.vmName, e.reason])).toEqual([['web1', 'network-stopped'], ['db1', 'network-stopped']]);
    await expect(w.mgr.stopNetwork('default', false)).rejects.toMatchObject({ code: 'NO_NETWORK', details: { state: 'inactive' } });
    await expect(w.mgr.create('default', { vmUuid: VM_A, vmName: 'web1' })).rejects.toMatchObject({ code: 'NO_NETWORK' });
  });
});
