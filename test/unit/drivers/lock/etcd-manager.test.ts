// The etcd lock manager's fencing state machine with a fake host lease, fake etcd keys and a
// fake clock: pause when the host lease nears its end, re-bind keys to a new lease, re-assert and
// resume when a lease is back, and stay paused (reported) when another host took a disk meanwhile.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { VirtqError } from '../../../../protocol/errors.js';
import { EtcdLockManager, fenceTiming } from '../../../../drivers/lock/etcd-manager.js';
import type { EtcdDiskKeys } from '../../../../drivers/lock/etcd-disk-keys.js';
import type { HostLeaseFile } from '../../../../drivers/lock/etcd-host-lease.js';
import { nopLockPlugin } from '../../../../drivers/lock/nop.js';
import { FakeClock } from '../../../helpers/fake-clock.js';
import { tmpRoot } from '../../../helpers/tmp-root.js';

const owner = { vm: 'web1', uuid: 'u1', shimPid: 1 };
const TTL = 2;
const { periodMs, marginMs } = fenceTiming(TTL);

async function world() {
  const clock = new FakeClock();
  const root = tmpRoot('vq-etcdmgr-');
  const disk = root.path('d.raw');
  writeFileSync(disk, '');
  const lease: { file: HostLeaseFile } = { file: { format: 1, endpoints: ['x:1'], prefix: 'p', host: 'h0', ttlSec: TTL, lease: 'L1', aliveUntil: clock.monotonic() + 10_000, pid: 1 } };
  const calls: string[] = [];
  let refuse: string | undefined;
  let failHandOver = false;
  const keys = {
    acquire: async (_o: unknown, _r: unknown, l: string, _pid?: number, takeOver?: boolean) => {
      calls.push(`acquire ${l}${takeOver === true ? ' take-over' : ''}`);
      if (refuse !== undefined) throw new VirtqError('LOCK_CONFLICT', refuse);
    },
    release: async () => { calls.push('release'); },
    handOver: async () => {
      calls.push('hand-over');
      if (failHandOver) throw new VirtqError('CLUSTER_UNAVAILABLE', 'etcd unreachable');
    },
  } as unknown as EtcdDiskKeys;
  const mgr = new EtcdLockManager({
    local: await nopLockPlugin.create({}, { stateDir: '', runtimeDir: '', host: 'h0', clock }),
    keys, host: 'h0', clock, readLease: () => lease.file, hostNow: () => clock.monotonic(),
  });
  const told: string[] = [];
  mgr.watchLeases(owner, {
    lost: async (r) => { told.push(`lost ${r}`); },
    regained: async () => { told.push('regained'); },
    takenOver: (m) => { told.push(`taken ${m}`); },
  });
  const start = await mgr.acquireForStart(owner, [{ path: disk, mode: 'exclusive' }]);
  await start.spawned(42);
  return { clock, lease, calls, told, mgr, disk, root, refuse: (m: string | undefined) => { refuse = m; }, failHandOver: () => { failHandOver = true; } };
}

describe('EtcdLockManager fencing', () => {
  it('pauses before the host lease can end, then re-asserts and resumes under the next lease', async () => {
    const w = await world();
    await w.clock.advance(10_000 - marginMs - 2 * periodMs);
    expect(w.told).toEqual([]);
    await w.clock.advance(3 * periodMs);
    expect(w.told).toEqual(['lost lease-lost']);
    // New starts are refused while fenced.
    await expect(w.mgr.acquireForRunning(owner, 42, { path: w.disk, mode: 'shared' })).rejects.toMatchObject({ code: 'CLUSTER_UNAVAILABLE' });
    w.lease.file = { ...w.lease.file, lease: 'L2', aliveUntil: w.clock.monotonic() + TTL * 1000 };
    await w.clock.advance(periodMs);
    expect(w.told).toEqual(['lost lease-lost', 'regained']);
    expect(w.calls.at(-1)).toBe('acquire L2');
    w.root.remove();
  });

  it('re-binds keys to a new lease without pausing while the old one is alive', async () => {
    const w = await world();
    w.lease.file = { ...w.lease.file, lease: 'L2', aliveUntil: w.clock.monotonic() + 20_000 };
    await w.clock.advance(periodMs);
    expect(w.calls.at(-1)).toBe('acquire L2');
    expect(w.told).toEqual([]);
    w.root.remove();
  });

  it('keeps the VM paused and reports it when another host took a disk meanwhile', async () => {
    const w = await world();
    await w.clock.advance(10_000);
    w.refuse('cannot lease disk: it is in use by VM "x" (on host h1)');
    w.lease.file = { ...w.lease.file, lease: 'L2', aliveUntil: w.clock.monotonic() + TTL * 1000 };
    await w.clock.advance(periodMs);
    expect(w.told).toEqual(['lost lease-lost', expect.stringMatching(/^taken .*host h1/)]);
    // It is never tried again behind the operator's back.
    const n = w.calls.length;
    await w.clock.advance(5 * periodMs);
    expect(w.calls.length).toBe(n);
    w.root.remove();
  });

  it('gives its keys back when QEMU exits, and then has nothing to fence', async () => {
    const w = await world();
    await w.mgr.releaseAll(owner, [w.disk], 42);
    expect(w.calls.at(-1)).toBe('release');
    await w.clock.advance(20_000);
    expect(w.told).toEqual([]);
    w.root.remove();
  });
});

describe('EtcdLockManager migration hand-over', () => {
  it('marks the keys for the destination instead of giving them back, and no longer fences for them', async () => {
    const w = await world();
    await w.mgr.handOver(owner, [w.disk]);
    expect(w.calls.slice(-1)).toEqual(['hand-over']);
    // The source's QEMU is paused and hands its keys on: a lease ending now pauses nothing more.
    await w.clock.advance(20_000);
    expect(w.told).toEqual([]);
    w.root.remove();
  });

  it('re-asserts the keys as this VM\'s and fails when a key cannot be handed over', async () => {
    const w = await world();
    w.failHandOver();
    await expect(w.mgr.handOver(owner, [w.disk])).rejects.toMatchObject({ code: 'CLUSTER_UNAVAILABLE' });
    expect(w.calls.slice(-2)).toEqual(['hand-over', 'acquire L1']);
    // Still held here, so still fenced for when the host lease ends.
    await w.clock.advance(10_000);
    expect(w.told).toEqual(['lost lease-lost']);
    w.root.remove();
  });

  it('lets a running QEMU of the VM take over a handed-over key (switchover, or the source taking it back)', async () => {
    const w = await world();
    await w.mgr.acquireForRunning(owner, 43, { path: w.disk, mode: 'exclusive' });
    expect(w.calls.at(-1)).toBe('acquire L1 take-over');
    w.root.remove();
  });
});
