// Internal snapshots with real QEMU and virtqemud: with and without memory, the tree with its
// parents, revert of a running and of a paused VM to a memory snapshot (the disk and the guest's
// clock go back), refusals (no-memory revert of a running VM, a raw disk, no disk, a duplicate
// name, an unknown snapshot), delete re-parenting, and undefine guarded by --snapshots-metadata.
// External --disk-only snapshots: snapshots-external.test.ts.
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../client/index.js';
import type { Definition } from '../../protocol/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { guestConsole, type GuestConsole } from '../helpers/guest-console.js';
import { guestUptime } from '../helpers/guest-uptime.js';
import { testAccel, testGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

function guestDef(name: string, disk?: { path: string; format: 'qcow2' | 'raw' }): Definition {
  const g = testGuest();
  return {
    name, memoryMiB: 128, accel: testAccel(), kernel: { path: g.kernel, initrd: g.initrd, cmdline: 'console=ttyS0 quiet panic=-1' },
    ...(disk === undefined ? {} : { disks: [{ path: disk.path, format: disk.format, target: 'vda' }] }),
  };
}

async function diskHead(con: GuestConsole): Promise<string> {
  const from = con.serial.mark();
  await con.run('echo HEAD=$(head -c 4 /dev/vda)=E\'\'ND', '=END');
  return /HEAD=([A-Z]*)=END/.exec(con.serial.output.slice(from))?.[1] ?? '?';
}

describe('snapshots', () => {
  let h: ServiceHarness;
  let vq: Connection;
  let cons: GuestConsole[];
  beforeEach(async () => {
    h = new ServiceHarness(tmpRoot());
    cons = [];
    await h.start('virtqemud');
    vq = await connect(h.uri('qemu'));
  });
  afterEach(async () => {
    for (const c of cons) c.close();
    vq.close();
    await h.cleanup();
  });

  it('takes memory and disk-only internal snapshots, lists the tree, reverts, deletes, and guards undefine', async () => {
    const disk = h.root.path('sn1.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
    await vq.virtq.define({ definition: guestDef('sn1', { path: disk, format: 'qcow2' }) });
    await vq.virtq.start({ name: 'sn1' });
    const con = await guestConsole(vq, 'sn1');
    cons.push(con);
    await con.serial.waitFor('GUEST-READY', 60_000);
    await con.run('printf AAAA > /dev/vda; sync; echo W-O\'\'K', 'W-OK');
    const s1 = await vq.virtq.snapshotCreate({ name: 'sn1', snapshot: 's1' });
    expect(s1).toMatchObject({ name: 's1', vm: 'sn1', state: 'running', memory: true, kind: 'internal', current: true, disks: [{ target: 'vda', path: disk }] });
    expect(s1).not.toHaveProperty('parent');
    const u1 = await guestUptime(con);

    await con.run('printf BBBB > /dev/vda; sync; echo W-O\'\'K', 'W-OK');
    expect(await vq.virtq.snapshotCreate({ name: 'sn1', snapshot: 's2', noMemory: true })).toMatchObject({ parent: 's1', memory: false, current: true });
    const list = (await vq.virtq.snapshotList({ name: 'sn1' })).snapshots;
    expect(list.map((s) => [s.name, s.parent, s.current])).toEqual([['s1', undefined, false], ['s2', 's1', true]]);

    // Refusals, each leaving the VM running.
    await expect(vq.virtq.snapshotCreate({ name: 'sn1', snapshot: 's1' })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(vq.virtq.snapshotRevert({ name: 'sn1', snapshot: 's2' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('no memory state') });
    await expect(vq.virtq.snapshotRevert({ name: 'sn1', snapshot: 'nope' })).rejects.toMatchObject({ code: 'NO_DOMAIN_SNAPSHOT' });
    await expect(vq.virtq.snapshotInfo({ name: 'sn1', snapshot: 'nope' })).rejects.toMatchObject({ code: 'NO_DOMAIN_SNAPSHOT' });
    expect(await vq.virtq.getState({ name: 'sn1' })).toMatchObject({ state: 'running' });

    // Revert while running: disk and memory go back to s1, and the VM runs on from there.
    expect(await vq.virtq.snapshotRevert({ name: 'sn1', snapshot: 's1' })).toMatchObject({ state: 'running' });
    expect(await diskHead(con)).toBe('AAAA');
    const u2 = await guestUptime(con);
    expect(u2).toBeLessThan(u1 + 3);
    expect((await vq.virtq.snapshotInfo({ name: 'sn1', snapshot: 's1' })).current).toBe(true);

    // Revert while paused to a snapshot taken running: it runs again.
    await con.run('printf CCCC > /dev/vda; sync; echo W-O\'\'K', 'W-OK');
    await vq.virtq.suspend({ name: 'sn1' });
    expect(await vq.virtq.snapshotRevert({ name: 'sn1', snapshot: 's1' })).toMatchObject({ state: 'running' });
    expect(await diskHead(con)).toBe('AAAA');

    // Delete: s2's parent becomes s1's (none); s1 leaves the disk.
    await vq.virtq.snapshotDelete({ name: 'sn1', snapshot: 's1' });
    expect((await vq.virtq.snapshotList({ name: 'sn1' })).snapshots.map((s) => [s.name, s.parent])).toEqual([['s2', undefined]]);
    await vq.virtq.destroy({ name: 'sn1' });
    const inDisk = execFileSync('qemu-img', ['snapshot', '-l', disk]).toString();
    expect(inDisk).toContain('s2');
    expect(inDisk).not.toMatch(/\bs1\b/);
    // Listed while the VM is shut off too.
    expect((await vq.virtq.snapshotList({ name: 'sn1' })).snapshots).toHaveLength(1);

    await expect(vq.virtq.undefine({ name: 'sn1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('--snapshots-metadata') });
    await vq.virtq.undefine({ name: 'sn1', snapshotsMetadata: true });
    await expect(vq.virtq.snapshotList({ name: 'sn1' })).rejects.toMatchObject({ code: 'NO_DOMAIN' });
  }, 240_000);

  it('refuses a snapshot of a VM with a raw writable disk, or with no disk, and of a VM that is not running', async () => {
    const raw = h.root.path('r.raw');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', raw, '16M']);
    await vq.virtq.create({ definition: guestDef('raw1', { path: raw, format: 'raw' }) });
    await expect(vq.virtq.snapshotCreate({ name: 'raw1', snapshot: 's' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('disk vda is raw') });
    await expect(vq.virtq.snapshotCreate({ name: 'raw1', snapshot: 's', noMemory: true })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    await vq.virtq.create({ definition: guestDef('nodisk1') });
    await expect(vq.virtq.snapshotCreate({ name: 'nodisk1', snapshot: 's' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('no writable qcow2 disk') });
    expect((await vq.virtq.snapshotList({ name: 'raw1' })).snapshots).toEqual([]);
    await vq.virtq.define({ definition: guestDef('off1') });
    await expect(vq.virtq.snapshotCreate({ name: 'off1', snapshot: 's' })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    await vq.virtq.destroy({ name: 'raw1' });
    await vq.virtq.destroy({ name: 'nodisk1' });
  }, 120_000);
});
