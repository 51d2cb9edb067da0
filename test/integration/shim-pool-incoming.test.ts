// A warm pool shim serves every kind of start (docs/decisions/0026-warm-shim-pool.md): a restore,
// a paused start and a migration's destination each take the idle shim virtqemud listed, and the
// VM then behaves as a cold shim's would: a restored guest's uptime continues, a paused one
// waits for resume, a migrated one runs on the destination with its memory and its lease.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../client/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { guestConsole } from '../helpers/guest-console.js';
import { guestUptime } from '../helpers/guest-uptime.js';
import { MigrationWorld } from '../helpers/migration-world.js';
import { idleShim, listedPool, stateShape } from '../helpers/shim-pool-probe.js';
import { idleGuest, testAccel, testGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const guestDef = (name: string) => {
  const g = testGuest();
  return { name, memoryMiB: 128, accel: testAccel(), kernel: { path: g.kernel, initrd: g.initrd, cmdline: 'console=ttyS0 quiet panic=-1' } };
};
const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');

describe('warm shim pool: paused starts, restores and migrations', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('a restore (running and --paused) and a paused start each take the idle shim, and a warm restore is the same as a cold one', async () => {
    const h = new DaemonHarness(tmpRoot());
    cleanups.push(() => h.cleanup());
    const daemon = await h.startDaemon();
    const { api } = await h.client();
    const uri = `qemu:///system?root=${h.root.dir}`;
    let conn: Connection = await connect(uri);
    cleanups.push(() => conn.close());
    const uptime = async () => { const c = await guestConsole(conn, 'rs1'); try { return await guestUptime(c); } finally { c.close(); } };

    await api.create({ definition: guestDef('rs1') });
    const boot = await guestConsole(conn, 'rs1');
    await boot.serial.waitFor('GUEST-READY', 60_000);
    boot.close();
    const before = await uptime();
    const file = h.root.path('rs1.save');
    expect(await api.save({ name: 'rs1', file })).toEqual({ state: 'shutoff', reason: 'saved' });

    // A restore takes the listed idle shim, which leaves the list.
    const warm = await idleShim(h);
    expect(await api.restore({ file })).toMatchObject({ name: 'rs1', state: 'running', reason: 'restored' });
    expect((await api.lookupByName({ name: 'rs1' })).shimPid).toBe(warm);
    expect((await listedPool(h)).idle).not.toContain(warm);
    const restored = await uptime();
    expect(restored).toBeGreaterThan(before);
    const warmShape = stateShape(h, 'rs1');
    const warmCmd = cmdline(warm);

    // Paused: the vCPUs wait for resume, and the guest's clock goes on from the image.
    await api.destroy({ name: 'rs1' });
    const warmPaused = await idleShim(h);
    expect(await api.restore({ file, paused: true })).toMatchObject({ state: 'paused', reason: 'restored' });
    expect((await api.lookupByName({ name: 'rs1' })).shimPid).toBe(warmPaused);
    await api.resume({ name: 'rs1' });
    expect(await uptime()).toBeGreaterThan(before);
    await api.destroy({ name: 'rs1' });

    // A paused start (create --paused) likewise.
    const warmStart = await idleShim(h);
    expect(await api.create({ definition: idleDef('ps1'), paused: true })).toMatchObject({ state: 'paused' });
    expect(await api.getInfo({ name: 'ps1' })).toMatchObject({ state: 'paused', shimPid: warmStart });
    await api.resume({ name: 'ps1' });
    expect(await api.getInfo({ name: 'ps1' })).toMatchObject({ state: 'running', shimPid: warmStart });
    await api.destroy({ name: 'ps1' });

    // The reference: the same restore in a cold shim (no pool) has the same state file and command line.
    daemon.proc.kill('SIGTERM');
    await daemon.exited;
    await h.startDaemon(['--shim-pool', '0']);
    conn.close();
    conn = await connect(uri);
    const cold = await h.client();
    expect(await cold.api.restore({ file })).toMatchObject({ name: 'rs1', state: 'running', reason: 'restored' });
    const coldPid = (await cold.api.lookupByName({ name: 'rs1' })).shimPid as number;
    expect([warm, warmPaused, warmStart]).not.toContain(coldPid);
    expect(stateShape(h, 'rs1')).toEqual(warmShape);
    expect(cmdline(coldPid)).toEqual(warmCmd);
    expect(await uptime()).toBeGreaterThan(before);
    await cold.api.destroy({ name: 'rs1' });
  }, 300_000);

  it('a migration destination takes the idle shim on each side, over TCP and back over a unix socket', async () => {
    const w = new MigrationWorld();
    cleanups.push(() => w.cleanup());
    await w.src.startDaemon();
    await w.dst.startDaemon();
    const src = await w.src.client();
    const dst = await w.dst.client();
    const def = w.guest('mg1', w.disk());
    await src.api.create({ definition: def });
    const con = await guestConsole(await w.connection(w.srcUri), 'mg1');
    await con.serial.waitFor('GUEST-READY', 60_000);
    await con.run('echo warm-$((6*7)) > /tmp/m; echo WROTE', 'WROTE');
    con.close();

    const dstIdle = await idleShim(w.dst);
    expect(await src.api.migrate({ name: 'mg1', destUri: w.dstUri, live: true, transport: 'tcp' })).toMatchObject({ state: 'shutoff', reason: 'migrated' });
    const there = await dst.api.lookupByName({ name: 'mg1' });
    expect(there).toMatchObject({ state: 'running', reason: 'migrated', shimPid: dstIdle });
    expect(w.liveQemus(def.uuid)).toEqual([there.qemuPid]);
    expect(w.leases()).toEqual([expect.objectContaining({ uuid: def.uuid, qemuPid: there.qemuPid, mode: 'exclusive' })]);
    // Left short while the memory moved, the destination's pool refills at the switchover, well
    // before the spawner's 60 s fallback.
    expect(await idleShim(w.dst, 20_000)).not.toBe(dstIdle);
    const after = await guestConsole(await w.connection(w.dstUri), 'mg1');
    await after.run('cat /tmp/m; echo READ', 'warm-42');
    after.close();

    const srcIdle = await idleShim(w.src);
    expect(await dst.api.migrate({ name: 'mg1', destUri: w.srcUri, live: true })).toMatchObject({ state: 'shutoff', reason: 'migrated' });
    const home = await src.api.lookupByName({ name: 'mg1' });
    expect(home).toMatchObject({ state: 'running', reason: 'migrated', shimPid: srcIdle });
    expect(w.liveQemus(def.uuid)).toEqual([home.qemuPid]);
    await src.api.destroy({ name: 'mg1' });
  }, 300_000);
});
