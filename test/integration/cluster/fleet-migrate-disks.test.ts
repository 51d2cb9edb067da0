// `virtq migrate NAME --to-host HOST` of a VM with a disk under the `etcd` lock plugin (the default
// under --cluster; each host its own local lockspace), with real parts: a three-member etcd, three
// virtqemud roots, the Linux test guest. At switchover the disk's etcd key is handed from the source
// host to the destination in one Txn (docs/decisions/0030): afterwards it names the destination and
// the VM, the source has no QEMU, claim or key, and a third VM is refused the disk on every other
// host. A migration that breaks at switchover leaves the VM running on the source with its key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { delay, systemClock, type JobInfo, type TypedClient, type VirtqProgram } from '../../../protocol/index.js';
import { connect } from '../../../client/index.js';
import { etcdClient, eventually, startFleet, type Fleet, type FleetHost } from '../../helpers/fleet.js';
import { guestConsole } from '../../helpers/guest-console.js';
import { idleGuest, testAccel, testGuest } from '../../helpers/test-guest.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';
import { startVirtq } from '../../e2e/virtq-cli.js';
import { startCutProxy, type CutProxy } from '../../helpers/cut-proxy.js';
import { builtinLockPlugins } from '../../../drivers/lock/builtin.js';
import { loadLockManager } from '../../../drivers/lock/loader.js';

const clock = systemClock();
/** Room for a renewal delayed on a loaded machine without a fence (fencing starts at about TTL × 3/4). */
const TTL = 6;

interface DiskKey { key: string; host: string; vm: string; uuid: string; mode: string; handover?: boolean }

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('virtq migrate --to-host of a VM with a disk under the etcd lock plugin', () => {
  let fleet: Fleet;
  let shared: TmpRoot;
  let etcd: Etcd3;
  // host1 reaches etcd through proxies a test can cut (its virtqemud and its shims' lock plugin alike).
  const proxies: CutProxy[] = [];
  beforeAll(async () => {
    shared = tmpRoot('vqfd-');
    // No lock.json: every root uses the etcd plugin with its own local lockspace (lib/lockspace).
    fleet = await startFleet(3, TTL, ['--reconcile-ms', '1000'], undefined, async (i, cluster, prefix) => {
      if (i !== 1) return cluster.uri(prefix);
      for (const m of cluster.members) proxies.push(await startCutProxy(m.client));
      return `etcd://${proxies.map((p) => p.address).join(',')}/${prefix}`;
    });
    etcd = etcdClient(fleet);
  }, 120_000);
  afterAll(async () => {
    etcd?.close();
    await fleet?.cleanup();
    for (const p of proxies) await p.close();
    shared?.remove();
  }, 120_000);

  const cluster = (): string => fleet.etcd.uri(fleet.prefix);
  const claimHolder = async (name: string): Promise<string | undefined> => {
    const v = await etcd.get(`${fleet.prefix}/names/${name}`).string();
    return v === null ? undefined : (JSON.parse(v) as { host: string }).host;
  };
  /** Every disk key of VM `vm` in etcd, with its value. */
  const diskKeys = async (vm: string): Promise<DiskKey[]> =>
    Object.entries(await etcd.getAll().prefix(`${fleet.prefix}/disks/`).strings()).map(([key, v]) => ({ key, ...(JSON.parse(v) as Omit<DiskKey, 'key'>) })).filter((k) => k.vm === vm);
  const thiefDef = (name: string, disk: string) => ({
    name, uuid: randomUUID(), memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel },
    disks: [{ path: disk, format: 'raw' as const, target: 'vda' }],
  });
  const refusal = (h: FleetHost, name: string, disk: string): Promise<{ code: string; message: string } | 'accepted'> =>
    h.api.create({ definition: thiefDef(name, disk) }).then(() => 'accepted' as const, (e: { code: string; message: string }) => ({ code: e.code, message: e.message }));

  /** Defines the test guest with a disk in the shared directory on `h`, starts it and waits until it has booted. */
  async function bootOn(h: FleetHost, name: string): Promise<{ uuid: string; qemuPid: number; disk: string }> {
    const disk = shared.path(`${name}.img`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', disk, '8M']);
    const g = testGuest();
    const uuid = randomUUID();
    await h.api.define({ definition: { name, uuid, memoryMiB: 128, vcpus: 1, accel: testAccel(), kernel: { path: g.kernel, initrd: g.initrd, cmdline: 'console=ttyS0 quiet panic=-1' }, disks: [{ path: disk, format: 'raw', target: 'vda' }] } });
    await h.api.start({ name });
    const conn = await connect(`qemu:///system?root=${h.harness.root.dir}`);
    try {
      const con = await guestConsole(conn, name);
      await con.serial.waitFor('GUEST-READY', 90_000);
      con.close();
    } finally {
      conn.close();
    }
    return { uuid, disk, qemuPid: (await h.api.lookupByName({ name })).qemuPid as number };
  }

  async function consoleAnswers(h: FleetHost, name: string): Promise<void> {
    const conn = await connect(`qemu:///system?root=${h.harness.root.dir}`);
    try {
      const con = await guestConsole(conn, name);
      await con.run('echo ALIVE-$((6*7))', 'ALIVE-42');
      con.close();
    } finally {
      conn.close();
    }
  }

  async function transferring(api: TypedClient<VirtqProgram>, name: string): Promise<JobInfo> {
    const end = clock.monotonic() + 60_000;
    for (;;) {
      const info = await api.getJobInfo({ name }).catch(() => undefined);
      if (info?.status === 'active' && info.transferredBytes > 0) return info;
      if (clock.monotonic() > end) throw new Error(`migration of ${name} never got under way: ${JSON.stringify(info)}`);
      await delay(clock, 50);
    }
  }

  type History = Array<{ op: string; host?: string; handover?: boolean }>;
  /** Records every write to VM `name`'s disk keys until `stop`. */
  async function watchKeys(name: string): Promise<{ history: History; stop(): Promise<void> }> {
    const history: History = [];
    const watcher = await etcd.watch().prefix(`${fleet.prefix}/disks/`).create();
    watcher.on('put', (kv) => {
      const v = JSON.parse(kv.value.toString()) as DiskKey;
      if (v.vm === name) history.push({ op: 'put', host: v.host, ...(v.handover === true ? { handover: true } : {}) });
    });
    watcher.on('delete', () => { history.push({ op: 'delete' }); });
    let stopped: Promise<void> | undefined;
    return { history, stop: () => (stopped ??= watcher.cancel()) };
  }

  /**
   * Migrates `name` to host `to` while watching every write to its disk keys: the history of the
   * switchover (`put` of the source's key marked for hand-over, `put` of the destination's, never a
   * `delete` — the disk is leased by one host at every instant).
   */
  async function migrate(name: string, to: string, sourceQemuPid: number): Promise<History> {
    const watch = await watchKeys(name);
    try {
      const done = await startVirtq(['migrate', name, '--to-host', to, '--cluster', cluster(), '--live'], { timeoutMs: 240_000 }).result;
      expect(done.stderr).toBe('');
      expect(done.code).toBe(0);
      // The source QEMU's exit (after the migration) must not touch the key the destination holds.
      await eventually(async () => !alive(sourceQemuPid), 15_000, 'the source QEMU to exit');
      await delay(clock, 500);
    } finally {
      await watch.stop();
    }
    return watch.history;
  }

  it('hands the disk key from host0 to host1 and back; the disk is refused to a third VM on every other host', async () => {
    const [a, b, c] = fleet.hosts as [FleetHost, FleetHost, FleetHost];
    const { uuid, qemuPid, disk } = await bootOn(a, 'dm1');
    expect(await diskKeys('dm1')).toEqual([expect.objectContaining({ host: 'host0', vm: 'dm1', uuid, mode: 'exclusive' })]);

    expect(await migrate('dm1', 'host1', qemuPid)).toEqual([{ op: 'put', host: 'host0', handover: true }, { op: 'put', host: 'host1' }]);
    // The key now names host1 and the same VM, with no hand-over pending; it is bound to host1's lease.
    const [key] = await diskKeys('dm1');
    expect(await diskKeys('dm1')).toHaveLength(1);
    expect(key).toMatchObject({ host: 'host1', vm: 'dm1', uuid, mode: 'exclusive' });
    expect(key?.handover).toBeUndefined();
    expect(await claimHolder('dm1')).toBe('host1');
    const onB = await b.api.lookupByName({ name: 'dm1' });
    expect(onB).toMatchObject({ state: 'running', uuid });
    // Nothing is left on host0: no QEMU (gone, above), no listing; its claim and key moved away.
    expect(alive(qemuPid)).toBe(false);
    await eventually(async () => !(await a.api.listDomains({})).domains.some((d) => d.name === 'dm1'), 15_000, 'host0 to forget dm1');
    await consoleAnswers(b, 'dm1');
    for (const h of [a, c]) {
      expect(await refusal(h, `thief-${h.id}`, disk)).toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringMatching(/VM "dm1".*on host host1/) });
    }

    // And back again, B → A.
    expect(await migrate('dm1', 'host0', onB.qemuPid as number)).toEqual([{ op: 'put', host: 'host1', handover: true }, { op: 'put', host: 'host0' }]);
    expect(await diskKeys('dm1')).toEqual([expect.objectContaining({ host: 'host0', vm: 'dm1', uuid, mode: 'exclusive' })]);
    expect((await diskKeys('dm1'))[0]?.handover).toBeUndefined();
    expect(await claimHolder('dm1')).toBe('host0');
    await consoleAnswers(a, 'dm1');
    for (const h of [b, c]) {
      expect(await refusal(h, `thief-${h.id}`, disk)).toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringMatching(/VM "dm1".*on host host0/) });
    }
    await a.api.destroy({ name: 'dm1' });
    await eventually(async () => (await diskKeys('dm1')).length === 0, 15_000, 'the key to be given back');
  }, 400_000);

  it('kill -9 of the destination shim before switchover: the guest runs on at host0 with its key, nothing on host1', async () => {
    const [a, b] = fleet.hosts as [FleetHost, FleetHost];
    const { uuid, qemuPid } = await bootOn(a, 'dm2');
    const run = startVirtq(['migrate', 'dm2', '--to-host', 'host1', '--cluster', cluster(), '--live', '--bandwidth', '8'], { timeoutMs: 240_000 });
    await transferring(a.api, 'dm2');
    const dst = await b.api.lookupByName({ name: 'dm2' });
    process.kill(dst.shimPid as number, 'SIGKILL');
    const failed = await run.result;
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^virtq: SHIM_UNAVAILABLE: /);
    // The source saw host1's shim gone while memory moved and cancelled before the switchover (had the
    // switchover come first: the key handed over, host1 unable to take it, host0 taking it back).
    expect(await diskKeys('dm2')).toEqual([expect.objectContaining({ host: 'host0', vm: 'dm2', uuid })]);
    expect((await diskKeys('dm2'))[0]?.handover).toBeUndefined();
    expect(await claimHolder('dm2')).toBe('host0');
    await eventually(async () => {
      const row = await a.api.lookupByName({ name: 'dm2' });
      return row.state === 'running' && row.qemuPid === qemuPid;
    }, 30_000, 'dm2 to run on at host0');
    await consoleAnswers(a, 'dm2');
    await eventually(async () => !alive(dst.qemuPid as number), 30_000, 'host1\'s incoming QEMU to exit');
    await eventually(async () => !(await b.api.listDomains({})).domains.some((d) => d.name === 'dm2'), 30_000, 'host1 to forget dm2');
    expect(await diskKeys('dm2')).toEqual([expect.objectContaining({ host: 'host0', vm: 'dm2' })]);
    await a.api.destroy({ name: 'dm2' });
  }, 400_000);

  it('the claim changed in etcd during the transfer: the switchover Txn fails after host1 took the key, and host0 takes it back and runs on', async () => {
    const [a, b] = fleet.hosts as [FleetHost, FleetHost];
    const { uuid, qemuPid } = await bootOn(a, 'dm3');
    const claimKey = `${fleet.prefix}/names/dm3`;
    const claim = await etcd.get(claimKey).string() as string;
    const watch = await watchKeys('dm3');
    let history: History;
    try {
      const run = startVirtq(['migrate', 'dm3', '--to-host', 'host1', '--cluster', cluster(), '--live', '--bandwidth', '8'], { timeoutMs: 240_000 });
      await transferring(a.api, 'dm3');
      const dst = await b.api.lookupByName({ name: 'dm3' });
      // The same value written again: a new mod revision, so the claim's switchover Txn fails its compare.
      await etcd.put(claimKey).value(claim);
      const failed = await run.result;
      expect(failed.code).toBe(1);
      expect(failed.stderr).toMatch(/^virtq: CLUSTER_UNAVAILABLE: .*claim of VM "dm3" changed/);
      await eventually(async () => {
        const row = await a.api.lookupByName({ name: 'dm3' });
        return row.state === 'running' && row.qemuPid === qemuPid;
      }, 30_000, 'dm3 to run on at host0');
      await eventually(async () => !alive(dst.qemuPid as number), 30_000, 'host1\'s incoming QEMU to exit');
    } finally {
      await watch.stop();
      history = watch.history;
    }
    // Handed over, taken by host1, given back by host1's aborted QEMU (both sides paused: no
    // writer), taken back by host0 before its guest resumed.
    expect(history).toEqual([{ op: 'put', host: 'host0', handover: true }, { op: 'put', host: 'host1' }, { op: 'delete' }, { op: 'put', host: 'host0' }]);
    expect(await diskKeys('dm3')).toEqual([expect.objectContaining({ host: 'host0', vm: 'dm3', uuid, qemuPid })]);
    expect(await claimHolder('dm3')).toBe('host0');
    await consoleAnswers(a, 'dm3');
    await eventually(async () => !(await b.api.listDomains({})).domains.some((d) => d.name === 'dm3'), 30_000, 'host1 to forget dm3');
    await a.api.destroy({ name: 'dm3' });
  }, 400_000);

  it('etcd unreachable from host1 at switchover: host1 cannot take the key, the guest runs on at host0 with it, host1 has nothing', async () => {
    const [a, b] = fleet.hosts as [FleetHost, FleetHost];
    const { uuid, qemuPid } = await bootOn(a, 'dm4');
    const watch = await watchKeys('dm4');
    const run = startVirtq(['migrate', 'dm4', '--to-host', 'host1', '--cluster', cluster(), '--live', '--bandwidth', '8'], { timeoutMs: 240_000 });
    await transferring(a.api, 'dm4');
    const dst = await b.api.lookupByName({ name: 'dm4' });
    try {
      for (const p of proxies) p.cut();
      const failed = await run.result;
      expect(failed.code).toBe(1);
      expect(failed.stderr).toMatch(/^virtq: CLUSTER_UNAVAILABLE: /);
      await watch.stop();
      // Handed over by host0, never taken by host1, taken back by host0: never deleted.
      expect(watch.history).toEqual([{ op: 'put', host: 'host0', handover: true }, { op: 'put', host: 'host0' }]);
      await eventually(async () => {
        const row = await a.api.lookupByName({ name: 'dm4' });
        return row.state === 'running' && row.qemuPid === qemuPid;
      }, 30_000, 'dm4 to run on at host0');
      expect(await diskKeys('dm4')).toEqual([expect.objectContaining({ host: 'host0', vm: 'dm4', uuid, qemuPid })]);
      expect((await diskKeys('dm4'))[0]?.handover).toBeUndefined();
      expect(await claimHolder('dm4')).toBe('host0');
      await consoleAnswers(a, 'dm4');
      await eventually(async () => !alive(dst.qemuPid as number), 30_000, 'host1\'s incoming QEMU to exit');
      await eventually(async () => !(await b.api.listDomains({})).domains.some((d) => d.name === 'dm4'), 30_000, 'host1 to forget dm4');
    } finally {
      await watch.stop();
      for (const p of proxies) p.restore();
    }
    // host1 back in the fleet: the disk is still refused to it, naming host0.
    const again = await eventually(async () => {
      const e = await refusal(b, 'thief-dm4', shared.path('dm4.img'));
      return e !== 'accepted' && e.code === 'CLUSTER_UNAVAILABLE' ? undefined : e;
    }, 60_000, 'host1 to have its lease back');
    expect(again).toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringMatching(/VM "dm4".*on host host0/) });
    expect(await diskKeys('dm4')).toEqual([expect.objectContaining({ host: 'host0' })]);
    await a.api.destroy({ name: 'dm4' });
  }, 400_000);

  it('a key in hand-over is a lease in transit: another VM on the source host (its local lease free) is refused, and only the same VM takes it over', async () => {
    const [a, b] = fleet.hosts as [FleetHost, FleetHost];
    const disk = shared.path('transit.img');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', disk, '1M']);
    // host0's plugin, as its shims load it; the key as a migration's source leaves it at switchover.
    const hostA = await loadLockManager(a.harness.layout, builtinLockPlugins(), { host: 'host0', clock });
    const hostB = await loadLockManager(b.harness.layout, builtinLockPlugins(), { host: 'host1', clock });
    const manager = hostA.manager;
    expect(hostA.status).toEqual({ plugin: 'etcd', ok: true });
    const moving = randomUUID();
    const key = `${fleet.prefix}/disks/${await manager?.resourceKey(disk)}/x/${moving}`;
    await etcd.put(key).value(JSON.stringify({ host: 'host0', vm: 'moving', uuid: moving, mode: 'exclusive', resource: disk, handover: true }));
    try {
      const probe = { vm: 'other', uuid: randomUUID(), shimPid: process.pid };
      const taken = await manager?.acquireForStart(probe, [{ path: disk, mode: 'exclusive' }]).catch((e: Error) => e);
      if (!(taken instanceof Error)) await taken?.abort();
      expect(taken).toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringMatching(/VM "moving".*on host host0.*being handed over/) });
      expect(await diskKeys('moving')).toEqual([expect.objectContaining({ host: 'host0', handover: true })]);
      // Not even a start of that very VM (on host1) takes it: only a running QEMU's acquireForRunning
      // does, a migration's destination (the tests above).
      const start = await hostB.manager?.acquireForStart({ vm: 'moving', uuid: moving, shimPid: process.pid }, [{ path: disk, mode: 'exclusive' }]).catch((e: Error) => e);
      if (!(start instanceof Error)) await start?.abort();
      expect(start).toMatchObject({ code: 'LOCK_CONFLICT' });
    } finally {
      await etcd.delete().key(key);
    }
  }, 60_000);
});
