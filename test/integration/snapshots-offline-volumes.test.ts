// Disk-only external snapshots of a shut-off VM whose disks are volumes, with real QEMU,
// virtqemud and virtstoraged: virtqemud has virtstoraged make each overlay volume (named as for a
// running VM, qcow2 on the current volume), the definition moves onto it, the VM boots on it and
// the guest's writes land in it; deleting the snapshot merges them into the base volume (qemu-img
// commit), the definition returns to the base volume, virtstoraged deletes the overlay volume and
// the next boot sees the write. A snapshot whose second overlay cannot be made (its name is
// taken) leaves nothing: the first overlay volume is deleted, definition and metadata unchanged.
// Reverting a shut-off VM to such a snapshot is refused, as libvirt 9.0 refuses it.
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../client/index.js';
import { MiB, SnapshotWorld, diskHead, guestDef, imageInfo as info, writeHead as write } from '../helpers/snapshot-world.js';

describe('disk-only snapshots of a shut-off VM on volumes', () => {
  let w: SnapshotWorld;
  let vq: Connection;
  beforeEach(() => { w = new SnapshotWorld(); });
  afterEach(() => w.close());
  const boot = (name: string) => w.boot(name);
  const up = async () => {
    vq = await w.up({ storage: true });
    return w.storage();
  };

  it('makes the overlay volume through virtstoraged, boots on it, merges it back on delete and the next boot sees the write', async () => {
    const storage = await up();
    try {
      const base = await storage.api.createVolume({ pool: 'default', name: 'vol1.raw', format: 'raw', capacity: 16 * MiB });
      await vq.virtq.define({ definition: guestDef('ov1', [{ source: { pool: 'default', volume: 'vol1.raw' }, format: 'raw', target: 'vda' }]) });
      let con = await boot('ov1');
      await write(con, 'AAAA');
      await vq.virtq.destroy({ name: 'ov1' });
      con.close();

      const s1 = await vq.virtq.snapshotCreate({ name: 'ov1', snapshot: 's1', diskOnly: true });
      const overlay = (await storage.api.getVolume({ pool: 'default', name: 'vol1.s1' })).path;
      expect(s1).toMatchObject({ kind: 'external', state: 'shutoff', current: true, disks: [{ target: 'vda', path: base.path, overlay, source: { pool: 'default', volume: 'vol1.raw' }, overlaySource: { pool: 'default', volume: 'vol1.s1' } }] });
      expect(info(overlay)).toMatchObject({ format: 'qcow2', 'backing-filename': base.path, 'backing-filename-format': 'raw' });
      expect((await vq.virtq.getDefinition({ name: 'ov1' })).disks?.[0]).toMatchObject({ source: { pool: 'default', volume: 'vol1.s1' }, format: 'qcow2' });
      // Reverting a shut-off VM to it is refused, saying how to go back by hand.
      await expect(vq.virtq.snapshotRevert({ name: 'ov1', snapshot: 's1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('define it with its disks on the snapshot') });

      con = await boot('ov1');
      expect(await diskHead(con)).toBe('AAAA');
      await write(con, 'BBBB');
      await vq.virtq.destroy({ name: 'ov1' });
      con.close();
      expect(execFileSync('head', ['-c', '4', base.path]).toString()).toBe('AAAA');

      await vq.virtq.snapshotDelete({ name: 'ov1', snapshot: 's1' });
      expect((await vq.virtq.snapshotList({ name: 'ov1' })).snapshots).toEqual([]);
      const disk = (await vq.virtq.getDefinition({ name: 'ov1' })).disks?.[0];
      expect(disk).toMatchObject({ source: { pool: 'default', volume: 'vol1.raw' }, format: 'raw' });
      expect(disk).not.toHaveProperty('path');
      expect((await storage.api.listVolumes({ pool: 'default' })).volumes.map((v) => v.name)).toEqual(['vol1.raw']);
      expect(execFileSync('head', ['-c', '4', base.path]).toString()).toBe('BBBB');
      con = await boot('ov1');
      expect(await diskHead(con)).toBe('BBBB');
      await vq.virtq.destroy({ name: 'ov1' });
    } finally {
      storage.close();
    }
  }, 300_000);

  it('leaves nothing behind when an overlay volume cannot be made (its name is taken)', async () => {
    const storage = await up();
    try {
      await storage.api.createVolume({ pool: 'default', name: 'a.raw', format: 'raw', capacity: 4 * MiB });
      await storage.api.createVolume({ pool: 'default', name: 'b.raw', format: 'raw', capacity: 4 * MiB });
      // The name vdb's overlay would get is someone else's volume.
      await storage.api.createVolume({ pool: 'default', name: 'b.s1', format: 'raw', capacity: MiB });
      await vq.virtq.define({ definition: guestDef('ov2', [{ source: { pool: 'default', volume: 'a.raw' }, format: 'raw', target: 'vda' }, { source: { pool: 'default', volume: 'b.raw' }, format: 'raw', target: 'vdb' }]) });
      const before = await vq.virtq.getDefinition({ name: 'ov2' });

      await expect(vq.virtq.snapshotCreate({ name: 'ov2', snapshot: 's1', diskOnly: true })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      expect((await storage.api.listVolumes({ pool: 'default' })).volumes.map((v) => v.name).sort()).toEqual(['a.raw', 'b.raw', 'b.s1']);
      expect((await storage.api.getVolume({ pool: 'default', name: 'b.s1' })).format).toBe('raw');
      expect(await vq.virtq.getDefinition({ name: 'ov2' })).toEqual(before);
      expect((await vq.virtq.snapshotList({ name: 'ov2' })).snapshots).toEqual([]);

      // With the name free again the same snapshot succeeds, and the VM still boots on it.
      await storage.api.deleteVolume({ pool: 'default', name: 'b.s1' });
      await vq.virtq.snapshotCreate({ name: 'ov2', snapshot: 's1', diskOnly: true });
      expect((await vq.virtq.getDefinition({ name: 'ov2' })).disks?.map((d) => d.source?.volume)).toEqual(['a.s1', 'b.s1']);
      const con = await boot('ov2');
      expect(await diskHead(con)).not.toBe('?');
      await vq.virtq.destroy({ name: 'ov2' });
    } finally {
      storage.close();
    }
  }, 300_000);
});
