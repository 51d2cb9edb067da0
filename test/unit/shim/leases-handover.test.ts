// A migrated source's QEMU exits after its leases were handed over (issue 16, session 17): the
// exit's releaseAll then has nothing of this QEMU's to give back and asks the lock manager nothing
// (no path lookups, no second `lease-released`). Once a lease is taken again (a rollback), the
// exit's release does its work as before.
import { describe, expect, it } from 'vitest';
import { silentLogger, type ResolvedDefinition } from '../../../protocol/index.js';
import type { LockManager } from '../../../drivers/lock/types.js';
import { VmLeases } from '../../../shim/vm/leases.js';

const def = {
  name: 'm1', uuid: '11111111-2222-3333-4444-555555555555', disks: [{ path: '/images/m1.raw', format: 'raw', target: 'vda', readonly: false }], interfaces: [],
} as unknown as ResolvedDefinition;

function setUp() {
  const calls: string[] = [];
  const events: string[] = [];
  const manager = {
    resourceKey: (path: string) => { calls.push('resourceKey'); return Promise.resolve(path); },
    handOver: () => { calls.push('handOver'); return Promise.resolve(); },
    releaseAll: () => { calls.push('releaseAll'); return Promise.resolve(); },
    acquireForRunning: () => { calls.push('acquireForRunning'); return Promise.resolve(); },
  } as unknown as LockManager;
  const leases = new VmLeases({ manager, status: { plugin: 'test', ok: true } }, { vm: def.name, uuid: def.uuid, shimPid: 1 }, silentLogger());
  leases.onChange = (c) => { events.push(c.kind); };
  return { leases, calls, events };
}

describe('the leases of a migrated source', () => {
  it('are not released again when its QEMU exits after the handover', async () => {
    const { leases, calls, events } = setUp();
    await leases.handOver(def);
    expect(events).toEqual(['lease-released']);
    calls.length = 0;
    await leases.releaseAll(def, 4242);
    expect(calls).toEqual([]);
    expect(events).toEqual(['lease-released']);
  });

  it('are released on exit again once taken back (a rolled-back migration)', async () => {
    const { leases, calls, events } = setUp();
    await leases.handOver(def);
    await leases.acquireAllForRunning(def, 4242);
    calls.length = 0;
    await leases.releaseAll(def, 4242);
    expect(calls).toContain('releaseAll');
    expect(events).toEqual(['lease-released', 'lease-acquired', 'lease-released']);
  });

  it('are released on exit when no handover happened', async () => {
    const { leases, calls } = setUp();
    await leases.releaseAll(def, 4242);
    expect(calls).toContain('releaseAll');
  });
});
