// External disk-only snapshots with real QEMU and virtqemud: the running VM moves onto a qcow2
// overlay per writable disk (chain overlay → base, checked with qemu-img), the guest's writes after
// the snapshot land in the overlay and the base does not change (checksum), a second snapshot
// stacks on the first, a restart boots from the newest overlay (the persistent definition
// followed), a hot-plugged disk is covered and unplugs cleanly, a shut-off VM gets overlays too; the same for a raw volume disk through virtstoraged (the overlay is a new volume,
// listed by listVolumes; a read-only disk is skipped); leases (the overlay exclusive, the base
// shared); refusals: revert (running and shut off),
// delete of a snapshot under another, an existing overlay file, a duplicate name. Deleting by
// merging is snapshots-external-delete.test.ts.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../client/index.js';
import type { ServiceHarness } from '../helpers/service-harness.js';
import { MiB, SnapshotWorld, diskHead, guestDef, imageInfo as info, writeHead as write } from '../helpers/snapshot-world.js';

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('external disk-only snapshots', () => {
  let w: SnapshotWorld;
  let h: ServiceHarness;
  let vq: Connection;
  beforeEach(() => { w = new SnapshotWorld(); h = w.h; });
  afterEach(() => w.close());
  const boot = (name: string) => w.boot(name);
  /** Pausing makes QEMU flush its qcow2 metadata, so qemu-img sees what the guest wrote. */
  const flushed = async (name: string): Promise<void> => {
    await vq.virtq.suspend({ name });
    await vq.virtq.resume({ name });
  };
  const headOf = (file: string) => w.headOf(file);

  it('moves a running VM onto overlays, keeps the base unchanged, stacks snapshots and restarts from the newest overlay', async () => {
    vq = await w.up();
    const base = h.root.path('ex1.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
    await vq.virtq.define({ definition: guestDef('ex1', [{ path: base, format: 'qcow2', target: 'vda' }]) });
    let con = await boot('ex1');
    await write(con, 'AAAA');

    const s1 = await vq.virtq.snapshotCreate({ name: 'ex1', snapshot: 's1', diskOnly: true });
    const ov1 = h.root.path('ex1.s1');
    expect(s1).toMatchObject({ name: 's1', kind: 'external', state: 'disk-snapshot', memory: false, current: true, disks: [{ target: 'vda', path: base, overlay: ov1 }] });
    expect(info(ov1)).toMatchObject({ format: 'qcow2', 'backing-filename': base, 'backing-filename-format': 'qcow2' });
    const baseSum = sha(base);
    // The live definition follows, and the VM keeps running.
    expect((await vq.virtq.getDefinition({ name: 'ex1' })).disks).toEqual([expect.objectContaining({ path: ov1, format: 'qcow2' })]);
    await write(con, 'BBBB');
    expect(await diskHead(con)).toBe('BBBB');
    await flushed('ex1');
    expect(sha(base)).toBe(baseSum);
    expect(headOf(base)).toBe('AAAA');
    expect(headOf(ov1)).toBe('BBBB');

    // Refusals, each leaving the VM running on its overlay.
    await expect(vq.virtq.snapshotRevert({ name: 'ex1', snapshot: 's1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('disk-only snapshot "s1"') });
    await expect(vq.virtq.snapshotCreate({ name: 'ex1', snapshot: 's1', diskOnly: true })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    writeFileSync(h.root.path('ex1.s2'), 'in the way');
    await expect(vq.virtq.snapshotCreate({ name: 'ex1', snapshot: 's2', diskOnly: true })).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringContaining('ex1.s2') });
    expect(readFileSync(h.root.path('ex1.s2'), 'utf8')).toBe('in the way');
    expect(await vq.virtq.getState({ name: 'ex1' })).toMatchObject({ state: 'running' });

    // Leases: the overlay is held exclusively, the base (read-only in the chain now) shared.
    await expect(vq.virtq.create({ definition: guestDef('other1', [{ path: ov1, format: 'qcow2', target: 'vda' }]) })).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    await vq.virtq.create({ definition: guestDef('reader1', [{ path: base, format: 'qcow2', target: 'vda', readonly: true }]) });
    await vq.virtq.destroy({ name: 'reader1' });

    // A second snapshot stacks on the first: ov3 → ov1 → base; its parent is s1.
    const s3 = await vq.virtq.snapshotCreate({ name: 'ex1', snapshot: 's3', diskOnly: true });
    const ov3 = h.root.path('ex1.s3');
    expect(s3).toMatchObject({ parent: 's1', disks: [{ target: 'vda', path: ov1, overlay: ov3 }] });
    expect(info(ov3)).toMatchObject({ 'backing-filename': ov1 });
    // s1 is under s3 now: deleting it would merge an overlay that is not the top of the chain.
    await expect(vq.virtq.snapshotDelete({ name: 'ex1', snapshot: 's1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('delete "s3" first') });
    const ov1Sum = sha(ov1);
    await write(con, 'CCCC');
    await flushed('ex1');
    expect(sha(ov1)).toBe(ov1Sum);
    expect(sha(base)).toBe(baseSum);
    expect((await vq.virtq.snapshotList({ name: 'ex1' })).snapshots.map((s) => [s.name, s.parent, s.current])).toEqual([['s1', undefined, false], ['s3', 's1', true]]);

    // A restart boots from the newest overlay: the persistent definition followed.
    await vq.virtq.destroy({ name: 'ex1' });
    con.close();
    expect((await vq.virtq.getDefinition({ name: 'ex1' })).disks).toEqual([expect.objectContaining({ path: ov3, format: 'qcow2' })]);
    await expect(vq.virtq.snapshotRevert({ name: 'ex1', snapshot: 's1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('define it with its disks') });
    con = await boot('ex1');
    const pid = (await vq.virtq.getInfo({ name: 'ex1' })).qemuPid ?? 0;
    expect(readFileSync(`/proc/${pid}/cmdline`, 'latin1')).toContain(ov3);
    expect(readlinkSync(`/proc/${pid}/exe`)).toContain('qemu');
    expect(await diskHead(con)).toBe('CCCC');
    await write(con, 'DDDD');
    await flushed('ex1');
    expect(sha(base)).toBe(baseSum);
    expect(headOf(ov3)).toBe('DDDD');

    // A hot-plugged disk gets its overlay too; unplugged, its overlay nodes go, so the target can be plugged again.
    const extra = h.root.path('extra.raw');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', extra, '4M']);
    await vq.virtq.attachDisk({ name: 'ex1', disk: { path: extra, target: 'vdb', format: 'raw' } });
    const s4 = await vq.virtq.snapshotCreate({ name: 'ex1', snapshot: 's4', diskOnly: true });
    expect(s4.disks.map((d) => [d.target, d.overlay])).toEqual([['vda', h.root.path('ex1.s4')], ['vdb', h.root.path('extra.s4')]]);
    await vq.virtq.detachDisk({ name: 'ex1', target: 'vdb' });
    await vq.virtq.attachDisk({ name: 'ex1', disk: { path: h.root.path('extra.s4'), target: 'vdb', format: 'qcow2' } });
    await vq.virtq.detachDisk({ name: 'ex1', target: 'vdb' });

    // --metadata forgets a snapshot (its child takes its parent); the images stay.
    await vq.virtq.snapshotDelete({ name: 'ex1', snapshot: 's1', metadata: true });
    expect((await vq.virtq.snapshotList({ name: 'ex1' })).snapshots.map((s) => [s.name, s.parent])).toEqual([['s3', undefined], ['s4', 's3']]);
    expect(info(ov1).format).toBe('qcow2');
    await vq.virtq.destroy({ name: 'ex1' });
    for (const s of ['s3', 's4']) await vq.virtq.snapshotDelete({ name: 'ex1', snapshot: s, metadata: true });
    expect((await vq.virtq.snapshotList({ name: 'ex1' })).snapshots).toEqual([]);

    // Shut off: only files and the definition change; the next start boots from the new overlay.
    const ov4 = h.root.path('ex1.s4');
    const s5 = await vq.virtq.snapshotCreate({ name: 'ex1', snapshot: 's5', diskOnly: true });
    const ov5 = h.root.path('ex1.s5');
    expect(s5).toMatchObject({ kind: 'external', state: 'shutoff', current: true, disks: [{ target: 'vda', path: ov4, overlay: ov5 }] });
    expect(info(ov5)).toMatchObject({ format: 'qcow2', 'backing-filename': ov4, 'backing-filename-format': 'qcow2' });
    expect((await vq.virtq.getDefinition({ name: 'ex1' })).disks).toEqual([expect.objectContaining({ path: ov5, format: 'qcow2' })]);
    await expect(vq.virtq.snapshotCreate({ name: 'ex1', snapshot: 's5', diskOnly: true })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(vq.virtq.snapshotCreate({ name: 'ex1', snapshot: 's6' })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    const ov4Sum = sha(ov4);
    con.close();
    con = await boot('ex1');
    const pid2 = (await vq.virtq.getInfo({ name: 'ex1' })).qemuPid ?? 0;
    expect(readFileSync(`/proc/${pid2}/cmdline`, 'latin1')).toContain(ov5);
    expect(await diskHead(con)).toBe('DDDD');
    await write(con, 'EEEE');
    await vq.virtq.destroy({ name: 'ex1' });
    expect(sha(ov4)).toBe(ov4Sum);
    expect(headOf(ov5)).toBe('EEEE');
  }, 300_000);

  it('puts a raw volume disk on a new qcow2 volume through virtstoraged, skips a read-only disk, and restarts from it', async () => {
    vq = await w.up({ storage: true });
    const storage = await w.storage();
    try {
      const base = await storage.api.createVolume({ pool: 'default', name: 'vol1.raw', format: 'raw', capacity: 16 * MiB });
      const cd = h.root.path('ro.raw');
      execFileSync('qemu-img', ['create', '-q', '-f', 'raw', cd, '1M']);
      await vq.virtq.define({ definition: guestDef('ex2', [{ source: { pool: 'default', volume: 'vol1.raw' }, format: 'raw', target: 'vda' }, { path: cd, format: 'raw', target: 'vdb', readonly: true }]) });
      let con = await boot('ex2');
      await write(con, 'AAAA');

      const s1 = await vq.virtq.snapshotCreate({ name: 'ex2', snapshot: 's1', diskOnly: true });
      const overlay = (await storage.api.getVolume({ pool: 'default', name: 'vol1.s1' })).path;
      expect(s1).toMatchObject({ kind: 'external', disks: [{ target: 'vda', path: base.path, overlay, overlaySource: { pool: 'default', volume: 'vol1.s1' } }] });
      expect((await storage.api.listVolumes({ pool: 'default' })).volumes).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'vol1.s1', format: 'qcow2' })]));
      expect(info(overlay)).toMatchObject({ format: 'qcow2', 'backing-filename': base.path, 'backing-filename-format': 'raw' });
      const baseSum = sha(base.path);
      await write(con, 'BBBB');
      await flushed('ex2');
      expect(sha(base.path)).toBe(baseSum);
      expect(headOf(base.path)).toBe('AAAA');
      expect(headOf(overlay)).toBe('BBBB');
      // The overlay is leased like the disk: virtstoraged will not delete it under the VM.
      await expect(storage.api.deleteVolume({ pool: 'default', name: 'vol1.s1' })).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });

      await vq.virtq.destroy({ name: 'ex2' });
      con.close();
      const disks = (await vq.virtq.getDefinition({ name: 'ex2' })).disks ?? [];
      expect(disks[0]).toMatchObject({ source: { pool: 'default', volume: 'vol1.s1' }, format: 'qcow2' });
      expect(disks[0]).not.toHaveProperty('path');
      expect(disks[1]).toMatchObject({ path: cd, readonly: true, format: 'raw' });
      con = await boot('ex2');
      expect(await diskHead(con)).toBe('BBBB');
      await vq.virtq.destroy({ name: 'ex2' });
    } finally {
      storage.close();
    }
  }, 300_000);
});
