// Disk leases across an etcd fleet (the `etcd` lock plugin, docs/decisions/0030) with real parts:
// a three-member etcd, two virtqemud roots run with --cluster, QEMU booting the idle guest with a
// disk file both hosts can reach. A disk leased on one host is refused on the other naming host
// and VM; a host whose virtqemud is SIGSTOPped past its lease TTL pauses (fences) its VMs, and
// resumes them once its virtqemud has a lease again and their disk keys are re-asserted.
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { idleGuest } from '../../helpers/test-guest.js';
import { etcdClient, eventually, startFleet, type Fleet, type FleetHost } from '../../helpers/fleet.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';
import { randomUUID } from 'node:crypto';
import { shimSockets, systemClock, type VirtqError } from '../../../protocol/index.js';
import { builtinLockPlugins } from '../../../drivers/lock/builtin.js';
import { loadLockManager } from '../../../drivers/lock/loader.js';

/** Room for the checks made between SIGSTOP and the fence (at about TTL × 3/4), and no fence from a
 * renewal merely delayed on a loaded machine. */
const FENCE_TTL = 6;
const refusal = async (p: Promise<unknown>): Promise<VirtqError | 'accepted'> => p.then(() => 'accepted' as const, (e: VirtqError) => e);

function sharedDisk(dir: TmpRoot): string {
  const path = dir.path('shared.raw');
  writeFileSync(path, Buffer.alloc(1 << 20));
  return path;
}

const diskDef = (name: string, path: string) => ({
  name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel },
  disks: [{ path, format: 'raw' as const, target: 'vda' }],
});

function stateOf(h: FleetHost, name: string): { state: string; reason: string; qemuPid?: number } | undefined {
  return h.harness.states().find((s) => s.name === name);
}

describe('etcd fleet disk leases', () => {
  let fleet: Fleet | undefined;
  let dir: TmpRoot | undefined;
  let etcd: Etcd3 | undefined;
  afterEach(async () => {
    etcd?.close();
    etcd = undefined;
    await fleet?.cleanup();
    dir?.remove();
    fleet = undefined;
  }, 120_000);

  it('refuses a disk leased on another host with LOCK_CONFLICT naming host and VM, and grants it once that VM is gone', async () => {
    fleet = await startFleet(2, FENCE_TTL);
    dir = tmpRoot('vq-shared-');
    const [a, b] = fleet.hosts as [FleetHost, FleetHost];
    const disk = sharedDisk(dir);
    await a.api.create({ definition: diskDef('writer-a', disk) });
    expect(stateOf(a, 'writer-a')?.state).toBe('running');

    const err = await refusal(b.api.create({ definition: diskDef('writer-b', disk) }));
    expect(err).toMatchObject({ code: 'LOCK_CONFLICT' });
    expect((err as VirtqError).message).toMatch(/VM "writer-a".*on host host0/);
    expect((await b.api.listDomains({})).domains.map((d) => d.name)).toEqual([]);

    await a.api.destroy({ name: 'writer-a' });
    await b.api.create({ definition: diskDef('writer-b', disk) });
    expect(stateOf(b, 'writer-b')?.state).toBe('running');
    // And now the other way round.
    expect(await refusal(a.api.create({ definition: diskDef('writer-a', disk) }))).toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringMatching(/VM "writer-b".*on host host1/) });
  }, 180_000);

  it('fences: a virtqemud SIGSTOPped past its TTL has its VMs paused (lease-lost), its names and disks stay its own, and SIGCONT resumes them', async () => {
    fleet = await startFleet(2, FENCE_TTL);
    dir = tmpRoot('vq-shared-');
    const [a, b] = fleet.hosts as [FleetHost, FleetHost];
    const disk = sharedDisk(dir);
    await a.api.create({ definition: diskDef('fenced', disk) });
    const pid = stateOf(a, 'fenced')?.qemuPid;
    expect(pid).toBeTypeOf('number');

    etcd = etcdClient(fleet);
    const diskKeys = async (): Promise<string[]> => Object.values(await (etcd as Etcd3).getAll().prefix(`${fleet?.prefix}/disks/`).strings());
    expect(await diskKeys()).toEqual([expect.stringContaining('"host":"host0"')]);

    a.daemon.proc.kill('SIGSTOP');
    try {
      // While host0's QEMU may still write, host1 can take neither its disk nor its name. The disk
      // is asked for as host1's shims ask, through the etcd plugin on host1's root and lease (a
      // whole shim start can take longer than the fence on a loaded machine: the first test
      // covers that path).
      const hostB = await loadLockManager(b.harness.layout, builtinLockPlugins(), { host: 'host1', clock: systemClock() });
      expect(hostB.status).toEqual({ plugin: 'etcd', ok: true });
      const probe = { vm: 'other', uuid: randomUUID(), shimPid: process.pid };
      const taken = await hostB.manager?.acquireForStart(probe, [{ path: disk, mode: 'exclusive' }]).catch((e: VirtqError) => e);
      if (!(taken instanceof Error)) await taken?.abort();
      expect(taken).toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringMatching(/VM "fenced".*on host host0/) });
      expect(await refusal(b.api.define({ definition: diskDef('fenced', disk) }))).toMatchObject({ code: 'NAME_IN_USE' });
      // host0's shim pauses its VM by itself, before the host lease can expire in etcd.
      // The invariant: host0's disk key is gone (its lease expired) only once its VM is paused.
      await eventually(async () => {
        const paused = stateOf(a, 'fenced')?.state === 'paused';
        if ((await diskKeys()).length === 0) expect(paused, 'disk key gone while the VM was not paused').toBe(true);
        return paused;
      }, 30_000, 'the VM to be fenced');
      expect(stateOf(a, 'fenced')).toMatchObject({ state: 'paused', reason: 'lease-lost', qemuPid: pid });
      process.kill(pid as number, 0);
      // A user cannot resume it behind the fence (asked of its shim: its virtqemud is stopped).
      const shim = await a.harness.connect(shimSockets(a.harness.layout, 'fenced').rw);
      expect(await refusal(shim.api.resume({ name: 'fenced' }))).toMatchObject({ code: 'CLUSTER_UNAVAILABLE', message: expect.stringContaining('fenced') });
      expect(stateOf(a, 'fenced')?.state).toBe('paused');
      expect(await refusal(b.api.define({ definition: diskDef('fenced', disk) }))).toMatchObject({ code: 'NAME_IN_USE' });
    } finally {
      a.daemon.proc.kill('SIGCONT');
    }
    // Back: a new host lease, the disk key re-asserted under it, the VM resumed.
    await eventually(async () => stateOf(a, 'fenced')?.state === 'running', 60_000, 'the VM to be resumed');
    expect(stateOf(a, 'fenced')).toMatchObject({ reason: 'lease-regained', qemuPid: pid });
    const again = await eventually(async () => {
      const e = await refusal(b.api.create({ definition: diskDef('other', disk) }));
      return e !== 'accepted' && e.code === 'CLUSTER_UNAVAILABLE' ? undefined : e;
    }, 60_000, 'host1 to answer');
    expect(again).toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringContaining('host0') });
  }, 180_000);
});
