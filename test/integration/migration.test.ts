// Live migration between two virtqemud roots with the real test guest: the guest's memory (a
// file in its tmpfs, its shell) carries over, the disk lease moves to the destination's QEMU at
// switchover, both sides publish their events with reasons, and the source is left with nothing.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MigrationWorld, collectEvents } from '../helpers/migration-world.js';
import { guestConsole } from '../helpers/guest-console.js';
import { idleGuest } from '../helpers/test-guest.js';

describe('virtq migrate', () => {
  let w: MigrationWorld;
  beforeEach(() => { w = new MigrationWorld(); });
  afterEach(async () => { await w.cleanup(); });

  it('moves a running guest with its memory, hands its disk lease over and leaves the source empty', async () => {
    await w.src.startDaemon();
    await w.dst.startDaemon();
    const src = await w.src.client();
    const dst = await w.dst.client();
    const def = w.guest('mig1', w.disk());
    await src.api.create({ definition: def });
    const srcQemu = (await src.api.lookupByName({ name: 'mig1' })).qemuPid as number;
    const before = await guestConsole(await w.connection(w.srcUri), 'mig1');
    await before.serial.waitFor('GUEST-READY', 60_000);
    await before.run('echo carried-$((6*7)) > /tmp/m; echo WROTE', 'WROTE');
    before.close();
    expect(w.leases()).toEqual([expect.objectContaining({ uuid: def.uuid, qemuPid: srcQemu, mode: 'exclusive' })]);

    await src.rpc.call('virtq', 'subscribeEvents', {});
    await dst.rpc.call('virtq', 'subscribeEvents', {});
    const srcEvents = collectEvents(src.rpc.events());
    const dstEvents = collectEvents(dst.rpc.events());

    const result = await src.api.migrate({ name: 'mig1', destUri: w.dstUri, live: true });
    expect(result).toMatchObject({ state: 'shutoff', reason: 'migrated' });
    expect(result.transferredBytes).toBeGreaterThan(0);
    // QEMU's own downtime, read once QEMU has stored it (a poll that sees `completed` first reads 0).
    expect(result.downtimeMs).toBeGreaterThan(0);

    // The destination runs it; its QEMU is the only one and holds the lease.
    const row = await dst.api.lookupByName({ name: 'mig1' });
    expect(row).toMatchObject({ state: 'running', reason: 'migrated', uuid: def.uuid });
    expect(w.liveQemus(def.uuid)).toEqual([row.qemuPid]);
    expect(w.leases()).toEqual([expect.objectContaining({ uuid: def.uuid, qemuPid: row.qemuPid, mode: 'exclusive' })]);
    // The source forgot the transient VM once its shim ended.
    await expect.poll(async () => (await src.api.listDomains({})).domains.map((d) => d.name), { timeout: 10_000 }).toEqual([]);

    // The guest's memory came along: the file in its tmpfs and its shell.
    const after = await guestConsole(await w.connection(w.dstUri), 'mig1');
    await after.run('cat /tmp/m; echo READ', 'carried-42');
    after.close();

    await expect.poll(() => srcEvents.map((e) => `${e.event}:${e.reason}`), { timeout: 5000 }).toEqual(expect.arrayContaining(['suspended:migration', 'stopped:migrated']));
    await expect.poll(() => dstEvents.map((e) => `${e.event}:${e.reason}`), { timeout: 5000 }).toEqual(expect.arrayContaining(['resumed:migrated']));

    // And back, over a loopback TCP port the source (now the destination) chose.
    const back = await dst.api.migrate({ name: 'mig1', destUri: w.srcUri, live: true, transport: 'tcp' });
    expect(back).toMatchObject({ state: 'shutoff', reason: 'migrated' });
    expect(back.downtimeMs).toBeGreaterThan(0);
    const home = await src.api.lookupByName({ name: 'mig1' });
    expect(home).toMatchObject({ state: 'running', reason: 'migrated' });
    expect(w.liveQemus(def.uuid)).toEqual([home.qemuPid]);
    expect(w.leases()).toEqual([expect.objectContaining({ uuid: def.uuid, qemuPid: home.qemuPid, mode: 'exclusive' })]);
    await expect.poll(async () => (await dst.api.listDomains({})).domains.map((d) => d.name), { timeout: 10_000 }).toEqual([]);
    const again = await guestConsole(await w.connection(w.srcUri), 'mig1');
    await again.run('cat /tmp/m; echo READ', 'carried-42');
    again.close();
  });

  it('refuses bad migration requests with typed errors and loses nothing', async () => {
    await w.src.startDaemon();
    await w.dst.startDaemon();
    const src = await w.src.client();
    const dst = await w.dst.client();
    const def = { name: 'idle1', uuid: crypto.randomUUID(), memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } };
    await src.api.create({ definition: def });
    // Not a virtqemud read-write URI, an unreachable one, a read-only one.
    await expect(src.api.migrate({ name: 'idle1', destUri: `storage:///system?root=${w.dst.root.dir}` })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(src.api.migrate({ name: 'idle1', destUri: 'qemu:///system?root=/nonexistent-root' })).rejects.toMatchObject({ code: 'NO_CONNECT' });
    await expect(src.api.migrate({ name: 'idle1', destUri: `${w.dstUri}&mode=ro` })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(src.api.migrate({ name: 'idle1', destUri: w.dstUri, bandwidth: 0 })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(src.rpc.call('virtq', 'migrate', { name: 'idle1', destUri: w.dstUri, transport: 'rdma' })).rejects.toMatchObject({ code: 'INVALID_ARG', details: { path: '/transport' } });
    await expect(dst.rpc.call('virtq', 'migratePrepare', { definition: def, transport: 'tcp:0.0.0.0:1' })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    // Migrating to itself: the name is taken there (by this very VM).
    await expect(src.api.migrate({ name: 'idle1', destUri: w.srcUri })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    // The destination's steps on a VM that is not an incoming migration; prepare without a UUID.
    await expect(src.api.migrateIncomingClaim({ name: 'idle1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    await expect(src.api.migrateIncomingAbort({ name: 'idle1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    await expect(dst.api.migratePrepare({ definition: { ...def, uuid: undefined } })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(src.api.abortJob({ name: 'idle1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    expect(await src.api.getJobInfo({ name: 'idle1' })).toMatchObject({ type: 'none' });
    // Nothing was lost: the VM runs on, the destination has nothing.
    expect(await src.api.getState({ name: 'idle1' })).toEqual({ state: 'running', reason: 'booted' });
    expect(w.liveQemus(def.uuid)).toHaveLength(1);
    expect((await dst.api.listDomains({})).domains).toEqual([]);
  });

  it('stops a destination QEMU no source connects to (its prepare answer lost), and frees the name', async () => {
    await w.dst.startDaemon();
    const dst = await w.dst.client();
    const def = { name: 'orphan1', uuid: crypto.randomUUID(), memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } };
    // What a source would call first; then it never sends the stream (as when the destination
    // virtqemud dies before its answer reaches the source).
    const { uri } = await dst.api.migratePrepare({ definition: def, transport: 'tcp' });
    expect(uri).toMatch(/^tcp:127\.0\.0\.1:\d+$/);
    expect((await dst.api.listDomains({})).domains).toEqual([expect.objectContaining({ name: 'orphan1', state: 'paused' })]);
    expect(w.liveQemus(def.uuid)).toHaveLength(1);
    await expect.poll(() => w.liveQemus(def.uuid), { timeout: 40_000, interval: 250 }).toEqual([]);
    await expect.poll(async () => (await dst.api.listDomains({})).domains, { timeout: 20_000 }).toEqual([]);
    expect(w.leases()).toEqual([]);
  }, 120_000);
});
