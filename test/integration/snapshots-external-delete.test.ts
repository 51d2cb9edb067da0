// Deleting external disk-only snapshots by merging their overlays, with real QEMU and virtqemud:
// a running VM's top overlay is block-committed into the image under it and the VM (and its
// persistent definition) go back onto that image, which then holds what the guest wrote; the
// overlay file is gone and so is the snapshot. Also: a snapshot under another is refused naming
// the one to delete first; a base another VM reads cannot be leased exclusively, so the delete is
// refused and changes nothing; a commit job that fails leaves the VM on its overlay with the
// snapshot; a shut-off VM's overlay is merged with qemu-img commit; a VM
// started on an overlay (its base opened from the header) merges too; a volume overlay is
// deleted through virtstoraged and the disk goes back onto its volume.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../client/index.js';
import type { ServiceHarness } from '../helpers/service-harness.js';
import { MiB, SnapshotWorld, diskHead, guestDef, writeHead as write } from '../helpers/snapshot-world.js';

/** True once process `pid` has `file` open (qemu-io takes its image locks as it opens it). */
const hasOpen = (pid: number, file: string): boolean => {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`) === file; } catch { return false; } });
  } catch {
    return false;
  }
};

async function waitFor(cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('deleting external disk-only snapshots (block-commit)', () => {
  let w: SnapshotWorld;
  let h: ServiceHarness;
  let vq: Connection;
  beforeEach(() => { w = new SnapshotWorld(); h = w.h; });
  afterEach(() => w.close());
  const boot = (name: string) => w.boot(name);
  const headOf = (file: string) => w.headOf(file);
  const names = async (vm: string) => (await vq.virtq.snapshotList({ name: vm })).snapshots.map((s) => [s.name, s.parent, s.current]);
  const diskOf = async (vm: string) => (await vq.virtq.getDefinition({ name: vm })).disks?.[0];

  it('merges a running VM\'s top overlay into its base: the VM, its definition and the guest\'s writes go back onto the base', async () => {
    vq = await w.up();
    const base = h.root.path('dl1.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
    await vq.virtq.define({ definition: guestDef('dl1', [{ path: base, format: 'qcow2', target: 'vda' }]) });
    const con = await boot('dl1');
    await write(con, 'AAAA');
    await vq.virtq.snapshotCreate({ name: 'dl1', snapshot: 's1', diskOnly: true });
    const ov1 = h.root.path('dl1.s1');
    await write(con, 'BBBB');
    await vq.virtq.snapshotCreate({ name: 'dl1', snapshot: 's2', diskOnly: true });
    const ov2 = h.root.path('dl1.s2');
    await write(con, 'CCCC');

    // s1 is under s2: refused, naming s2; nothing changes.
    await expect(vq.virtq.snapshotDelete({ name: 'dl1', snapshot: 's1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('delete "s2" first') });
    expect(await diskOf('dl1')).toMatchObject({ path: ov2 });

    // s2 is the top: its overlay merges into s1's; the VM runs on ov1, s1 is current again.
    await vq.virtq.snapshotDelete({ name: 'dl1', snapshot: 's2' });
    expect(existsSync(ov2)).toBe(false);
    expect(await names('dl1')).toEqual([['s1', undefined, true]]);
    expect(await diskOf('dl1')).toMatchObject({ path: ov1, format: 'qcow2' });
    expect(await vq.virtq.getJobInfo({ name: 'dl1' })).toMatchObject({ type: 'none' });
    expect(await diskHead(con)).toBe('CCCC');

    // Another VM reads the base (a shared lease): it cannot become exclusive, so the delete is
    // refused and changes nothing; the VM keeps writing its overlay.
    await vq.virtq.create({ definition: guestDef('reader1', [{ path: base, format: 'qcow2', target: 'vda', readonly: true }]) });
    await expect(vq.virtq.snapshotDelete({ name: 'dl1', snapshot: 's1' })).rejects.toMatchObject({ code: 'LOCK_CONFLICT', message: expect.stringContaining('nothing changed') });
    await vq.virtq.destroy({ name: 'reader1' });
    expect(await names('dl1')).toEqual([['s1', undefined, true]]);
    expect(await diskOf('dl1')).toMatchObject({ path: ov1 });
    await write(con, 'DDDD');

    // The commit job fails (a qemu-io reading the base forbids QEMU the write lock): the VM keeps
    // running on its overlay, the snapshot stays, the base's lease is shared again.
    const io = spawn('qemu-io', ['-r', '-f', 'qcow2', base], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await waitFor(() => Promise.resolve(hasOpen(io.pid ?? 0, base)));
      await expect(vq.virtq.snapshotDelete({ name: 'dl1', snapshot: 's1' })).rejects.toMatchObject({
        code: 'QMP_ERROR', message: expect.stringMatching(/write" lock.*the VM runs on its overlays \(vda on .*dl1\.s1\) and keeps the snapshot/),
      });
    } finally {
      io.kill('SIGKILL');
      await new Promise((resolve) => io.once('exit', resolve));
    }
    expect(await names('dl1')).toEqual([['s1', undefined, true]]);
    expect(await diskOf('dl1')).toMatchObject({ path: ov1 });
    expect(await vq.virtq.getJobInfo({ name: 'dl1' })).toMatchObject({ type: 'none' });
    await vq.virtq.create({ definition: guestDef('reader3', [{ path: base, format: 'qcow2', target: 'vda', readonly: true }]) });
    await vq.virtq.destroy({ name: 'reader3' });
    expect(await diskHead(con)).toBe('DDDD');

    // Now it merges: the VM runs on the base, which the guest keeps writing.
    await vq.virtq.snapshotDelete({ name: 'dl1', snapshot: 's1' });
    expect(existsSync(ov1)).toBe(false);
    expect(await names('dl1')).toEqual([]);
    expect(await diskOf('dl1')).toMatchObject({ path: base, format: 'qcow2' });
    expect(await diskHead(con)).toBe('DDDD');
    // The base is written again, so it is leased exclusively: a reader is refused.
    await expect(vq.virtq.create({ definition: guestDef('reader2', [{ path: base, format: 'qcow2', target: 'vda', readonly: true }]) })).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    await write(con, 'EEEE');
    expect(await vq.virtq.getState({ name: 'dl1' })).toMatchObject({ state: 'running' });
    await vq.virtq.destroy({ name: 'dl1' });
    con.close();
    expect(headOf(base)).toBe('EEEE');
    expect(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', base]).toString())).not.toHaveProperty('backing-filename');
    // The persistent definition names the base again.
    expect(await diskOf('dl1')).toMatchObject({ path: base, format: 'qcow2' });
  }, 300_000);

  it('merges a shut-off VM\'s overlay with qemu-img commit, and a VM started on an overlay merges into the base opened from its header', async () => {
    vq = await w.up();
    const base = h.root.path('dl2.raw');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', base, '16M']);
    await vq.virtq.define({ definition: guestDef('dl2', [{ path: base, format: 'raw', target: 'vda' }]) });
    await vq.virtq.snapshotCreate({ name: 'dl2', snapshot: 's1', diskOnly: true });
    const ov1 = h.root.path('dl2.s1');
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x47 0 4', ov1]); // GGGG, into the overlay
    await vq.virtq.snapshotCreate({ name: 'dl2', snapshot: 's2', diskOnly: true });
    const ov2 = h.root.path('dl2.s2');
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x48 0 4', ov2]); // HHHH
    expect(headOf(base)).toBe('\0\0\0\0');

    await expect(vq.virtq.snapshotDelete({ name: 'dl2', snapshot: 's1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('delete "s2" first') });
    await vq.virtq.snapshotDelete({ name: 'dl2', snapshot: 's2' });
    expect(existsSync(ov2)).toBe(false);
    expect(headOf(ov1)).toBe('HHHH');
    expect(headOf(base)).toBe('\0\0\0\0');
    expect(await diskOf('dl2')).toMatchObject({ path: ov1, format: 'qcow2' });
    expect(await names('dl2')).toEqual([['s1', undefined, true]]);

    // Started on ov1, QEMU opens the raw base from ov1's header (no node name of virtq's).
    const con = await boot('dl2');
    expect(await diskHead(con)).toBe('HHHH');
    await write(con, 'IIII');
    await vq.virtq.snapshotDelete({ name: 'dl2', snapshot: 's1' });
    expect(existsSync(ov1)).toBe(false);
    expect(await diskOf('dl2')).toMatchObject({ path: base, format: 'raw' });
    expect(await diskHead(con)).toBe('IIII');
    await write(con, 'JJJJ');
    await vq.virtq.destroy({ name: 'dl2' });
    con.close();
    expect(headOf(base)).toBe('JJJJ');
    expect(await names('dl2')).toEqual([]);
  }, 300_000);

  it('merges a volume disk\'s overlay volume and deletes it through virtstoraged; the disk goes back onto its volume', async () => {
    vq = await w.up({ storage: true });
    const storage = await w.storage();
    try {
      const base = await storage.api.createVolume({ pool: 'default', name: 'vol1.raw', format: 'raw', capacity: 16 * MiB });
      await vq.virtq.define({ definition: guestDef('dl3', [{ source: { pool: 'default', volume: 'vol1.raw' }, format: 'raw', target: 'vda' }]) });
      const con = await boot('dl3');
      await vq.virtq.snapshotCreate({ name: 'dl3', snapshot: 's1', diskOnly: true });
      expect(await diskOf('dl3')).toMatchObject({ source: { pool: 'default', volume: 'vol1.s1' } });
      await write(con, 'KKKK');
      await vq.virtq.snapshotDelete({ name: 'dl3', snapshot: 's1' });
      expect((await storage.api.listVolumes({ pool: 'default' })).volumes.map((v) => v.name)).not.toContain('vol1.s1');
      expect(await names('dl3')).toEqual([]);
      expect(await diskHead(con)).toBe('KKKK');
      await vq.virtq.destroy({ name: 'dl3' });
      con.close();
      expect(headOf(base.path)).toBe('KKKK');
      const disk = await diskOf('dl3');
      expect(disk).toMatchObject({ source: { pool: 'default', volume: 'vol1.raw' }, format: 'raw' });
      expect(disk).not.toHaveProperty('path');
    } finally {
      storage.close();
    }
  }, 300_000);
});
