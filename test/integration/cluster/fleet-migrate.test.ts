// `virtq migrate NAME --to-host HOST` in an etcd fleet, with real parts: a three-member etcd, three
// virtqemud roots sharing one lockspace and a disk, the Linux test guest. The VM's cluster-wide
// claim names the source host until the guest runs on the destination, then the destination; a
// define of the same name on a third host is refused before, during and after; a migration that
// breaks (kill -9 of the destination shim mid-transfer) leaves the claim and the guest on the source.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { delay, systemClock, type JobInfo, type TypedClient, type VirtqProgram } from '../../../protocol/index.js';
import { connect } from '../../../client/index.js';
import { etcdClient, eventually, startFleet, type Fleet, type FleetHost } from '../../helpers/fleet.js';
import { guestConsole } from '../../helpers/guest-console.js';
import { idleGuest, testAccel, testGuest } from '../../helpers/test-guest.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';
import { startVirtq, virtq } from '../../e2e/virtq-cli.js';
import type { FleetDomain } from '../../../client/fleet-view.js';

const clock = systemClock();
const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

describe('virtq migrate --to-host in an etcd fleet', () => {
  let fleet: Fleet;
  let shared: TmpRoot;
  let etcd: Etcd3;
  beforeAll(async () => {
    shared = tmpRoot('vqfl-');
    mkdirSync(shared.path('lockspace'));
    // Reconcile passes on: the destination must see a dead shim's QEMU gone to forget the VM.
    fleet = await startFleet(3, 3, ['--reconcile-ms', '1000'], (h) => {
      mkdirSync(h.layout.config, { recursive: true });
      writeFileSync(join(h.layout.config, 'lock.json'), JSON.stringify({ plugin: 'lockfile', lockspace: shared.path('lockspace') }));
    });
    etcd = etcdClient(fleet);
  }, 120_000);
  afterAll(async () => {
    etcd?.close();
    await fleet?.cleanup();
    shared?.remove();
  }, 120_000);

  const cluster = (): string => fleet.etcd.uri(fleet.prefix);
  const holder = async (name: string): Promise<string | undefined> => {
    const v = await etcd.get(`${fleet.prefix}/names/${name}`).string();
    return v === null ? undefined : (JSON.parse(v) as { host: string }).host;
  };
  const uuidHolder = async (uuid: string): Promise<string | undefined> => {
    const v = await etcd.get(`${fleet.prefix}/uuids/${uuid}`).string();
    return v === null ? undefined : (JSON.parse(v) as { host: string }).host;
  };
  const refusedOn = async (h: FleetHost, name: string): Promise<string | undefined> =>
    h.api.define({ definition: idleDef(name) }).then(() => 'accepted', (e: { code: string }) => e.code);

  /** Defines the test guest (with a disk in the shared directory) on `h`, starts it and waits until it has booted. */
  async function bootOn(h: FleetHost, name: string): Promise<{ uuid: string; qemuPid: number }> {
    const disk = shared.path(`${name}.img`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', disk, '8M']);
    const g = testGuest();
    const uuid = crypto.randomUUID();
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
    return { uuid, qemuPid: (await h.api.lookupByName({ name })).qemuPid as number };
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

  it('moves the VM and its claim from host0 to host1; host2 cannot take the name before, during or after', async () => {
    const [a, b, c] = fleet.hosts as [FleetHost, FleetHost, FleetHost];
    const { uuid } = await bootOn(a, 'mig1');
    expect(await holder('mig1')).toBe('host0');
    expect(await refusedOn(c, 'mig1')).toBe('NAME_IN_USE');

    const run = startVirtq(['migrate', 'mig1', '--to-host', 'host1', '--cluster', cluster(), '--live', '--bandwidth', '8'], { timeoutMs: 240_000 });
    await transferring(a.api, 'mig1');
    // Mid-transfer: the claim is still the source's, the destination holds the VM paused, the third host is refused.
    expect(await holder('mig1')).toBe('host0');
    expect(await uuidHolder(uuid)).toBe('host0');
    expect((await b.api.lookupByName({ name: 'mig1' })).state).toBe('paused');
    expect(await refusedOn(c, 'mig1')).toBe('NAME_IN_USE');
    expect(await c.api.create({ definition: idleDef('mig1') }).then(() => 'accepted', (e: { code: string }) => e.code)).toBe('NAME_IN_USE');

    const done = await run.result;
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/^Domain 'mig1' migrated to host host1 in /);
    expect(await holder('mig1')).toBe('host1');
    expect(await uuidHolder(uuid)).toBe('host1');
    const row = await b.api.lookupByName({ name: 'mig1' });
    expect(row).toMatchObject({ state: 'running', persistent: true, uuid });
    // The definition moved with the name: none is left on the source, which lists nothing.
    await eventually(async () => !(await a.api.listDomains({})).domains.some((d) => d.name === 'mig1'), 15_000, 'the source to forget mig1');
    expect(await refusedOn(c, 'mig1')).toBe('NAME_IN_USE');

    const listed = await virtq(['fleet', '--cluster', cluster(), '--json']);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as FleetDomain[]).find((d) => d.name === 'mig1')).toMatchObject({ host: 'host1', state: 'running', uuid });
    const hosts = await virtq(['hosts', '--cluster', cluster(), '--json']);
    expect((JSON.parse(hosts.stdout) as Array<{ host: string; vms: number }>).find((h) => h.host === 'host1')?.vms).toBeGreaterThanOrEqual(1);

    // The guest really runs on host1: its console answers there.
    const conn = await connect(`qemu:///system?root=${b.harness.root.dir}`);
    try {
      const con = await guestConsole(conn, 'mig1');
      await con.run('echo MIGRATED-$((6*7))', 'MIGRATED-42');
      con.close();
    } finally {
      conn.close();
    }
    await b.api.destroy({ name: 'mig1' });
  }, 300_000);

  it('kill -9 of the destination shim mid-transfer: the claim never leaves host0 and the guest runs on there', async () => {
    const [a, b, c] = fleet.hosts as [FleetHost, FleetHost, FleetHost];
    const { uuid, qemuPid } = await bootOn(a, 'mig2');
    const run = startVirtq(['-c', `cluster:///?etcd=${fleet.etcd.endpoints}&prefix=${fleet.prefix}`, 'migrate', 'mig2', '--to-host', 'host2', '--live', '--bandwidth', '4'], { timeoutMs: 240_000 });
    await transferring(a.api, 'mig2');
    const dst = await c.api.lookupByName({ name: 'mig2' });
    expect(await holder('mig2')).toBe('host0');
    process.kill(dst.shimPid as number, 'SIGKILL');
    const failed = await run.result;
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^virtq: SHIM_UNAVAILABLE: /);
    expect(await holder('mig2')).toBe('host0');
    expect(await uuidHolder(uuid)).toBe('host0');
    const row = await a.api.lookupByName({ name: 'mig2' });
    expect(row).toMatchObject({ state: 'running', qemuPid });
    process.kill(qemuPid, 0);
    // The destination forgets the VM; the claim stays with host0, so neither host1 nor host2 can take the name.
    await eventually(async () => !(await c.api.listDomains({})).domains.some((d) => d.name === 'mig2'), 30_000, 'host2 to forget mig2');
    expect(await holder('mig2')).toBe('host0');
    expect(await refusedOn(b, 'mig2')).toBe('NAME_IN_USE');
    expect(await refusedOn(c, 'mig2')).toBe('NAME_IN_USE');
    await a.api.destroy({ name: 'mig2' });
  }, 300_000);

  it('the claim changed in etcd during the transfer: the switchover Txn fails, the guest resumes on host0 and its claim stays there', async () => {
    const [a, b] = fleet.hosts as [FleetHost, FleetHost];
    const { uuid, qemuPid } = await bootOn(a, 'mig4');
    const key = `${fleet.prefix}/names/mig4`;
    const value = await etcd.get(key).string() as string;
    const run = startVirtq(['migrate', 'mig4', '--to-host', 'host1', '--cluster', cluster(), '--live', '--bandwidth', '8'], { timeoutMs: 240_000 });
    await transferring(a.api, 'mig4');
    // The same value written again: a new mod revision, as any change in between would make.
    await etcd.put(key).value(value);
    const failed = await run.result;
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^virtq: CLUSTER_UNAVAILABLE: .*claim of VM "mig4" changed/);
    expect(await holder('mig4')).toBe('host0');
    expect(await uuidHolder(uuid)).toBe('host0');
    await eventually(async () => {
      const row = await a.api.lookupByName({ name: 'mig4' });
      return row.state === 'running' && row.qemuPid === qemuPid;
    }, 30_000, 'mig4 to run on at host0');
    await eventually(async () => !(await b.api.listDomains({})).domains.some((d) => d.name === 'mig4'), 30_000, 'host1 to forget mig4');
    expect(await holder('mig4')).toBe('host0');
    expect(await refusedOn(b, 'mig4')).toBe('NAME_IN_USE');
    await a.api.destroy({ name: 'mig4' });
  }, 300_000);

  it('refuses --to-host for a host the fleet does not have, and DEST_URI together with --to-host', async () => {
    await fleet.hosts[0]?.api.define({ definition: idleDef('mig3') });
    const unknown = await virtq(['migrate', 'mig3', '--to-host', 'nohost', '--cluster', cluster()]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^virtq: INVALID_ARG: --to-host nohost/);
    const both = await virtq(['migrate', 'mig3', 'qemu:///system', '--to-host', 'host1', '--cluster', cluster()]);
    expect(both.stderr).toMatch(/^virtq: INVALID_ARG: give DEST_URI or --to-host/);
    const none = await virtq(['migrate', 'mig3']);
    expect(none.stderr).toMatch(/^virtq: INVALID_ARG: give the destination/);
    const self = await virtq(['migrate', 'mig3', '--to-host', 'host0', '--cluster', cluster()]);
    expect(self.stderr).toMatch(/^virtq: OPERATION_INVALID: /);
  }, 60_000);
});
