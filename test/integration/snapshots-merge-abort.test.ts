// Cancelling the merge of an external disk-only snapshot of a running VM, end to end with real
// QEMU and virtqemud: snapshot-delete with a low bandwidth makes the block-commit slow enough to be
// watched and aborted. While it copies, domjobinfo shows its progress and the lockspace shows the
// image under the overlay leased exclusively beside the overlay (it is being written). domjobabort
// cancels it: the delete fails, the VM keeps running and writing on its overlay, the snapshot and
// its metadata stay, the base's lease is shared again; after shutdown qemu-img finds the chain
// consistent, and a later delete without a limit merges it all.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../client/index.js';
import type { JobInfo } from '../../protocol/index.js';
import { Lockspace, canonicalPath, resourceKey } from '../../drivers/lock/lockspace.js';
import { SnapshotWorld, diskHead, guestDef, imageInfo, writeHead } from '../helpers/snapshot-world.js';

/** Polls `get` until `ok` holds of its value; the value. */
async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`condition not met in time; last value ${JSON.stringify(v)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('domjobabort of an external snapshot\'s merge', () => {
  let w: SnapshotWorld;
  let vq: Connection;
  beforeEach(() => { w = new SnapshotWorld(); });
  afterEach(() => w.close());

  it('a rate-limited merge shows its progress, holds the base exclusively, and is cancelled leaving the VM on its overlay with the snapshot', async () => {
    vq = await w.up();
    const h = w.h;
    const base = h.root.path('ma1.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
    await vq.virtq.define({ definition: guestDef('ma1', [{ path: base, format: 'qcow2', target: 'vda' }]) });
    const con = await w.boot('ma1');
    await writeHead(con, 'AAAA');
    await vq.virtq.snapshotCreate({ name: 'ma1', snapshot: 's1', diskOnly: true });
    const ov1 = h.root.path('ma1.s1');
    // 16 MiB of data in the overlay, in 1 MiB pieces with holes between: QEMU's commit copies a run
    // of consecutive dirty clusters at once and then sleeps off the rate limit, so separate pieces
    // make it advance about 1 MiB a second at 1 MiB/s (one 16 MiB run would be copied at once).
    await con.run('for i in $(seq 1 2 31); do dd if=/dev/urandom of=/dev/vda bs=1M seek=$i count=1 conv=fsync 2>/dev/null; done; echo D-D\'\'ONE', 'D-DONE', 120_000);
    await writeHead(con, 'BBBB');

    const lockspace = new Lockspace(`${h.layout.state}/lockspace`);
    const leases = async (file: string) => (await lockspace.records(resourceKey(await canonicalPath(file)))).map((r) => [r.vm, r.mode]);
    expect(await leases(base)).toEqual([['ma1', 'shared']]);
    expect(await leases(ov1)).toEqual([['ma1', 'exclusive']]);

    const deleting = vq.virtq.snapshotDelete({ name: 'ma1', snapshot: 's1', bandwidth: 1 });
    const settled = deleting.then(() => 'resolved', (e: unknown) => e);
    // domjobinfo: the merge is under way, part copied.
    const info = await until(() => vq.virtq.getJobInfo({ name: 'ma1' }), (j: JobInfo) => j.type === 'block-commit' && j.transferredBytes > 0 && j.totalBytes > 0);
    expect(info).toMatchObject({ type: 'block-commit', status: 'running' });
    expect(info.totalBytes).toBeGreaterThan(info.transferredBytes);
    expect(info.remainingBytes).toBe(info.totalBytes - info.transferredBytes);
    // The image being written is leased exclusively, and the overlay the guest writes stays leased.
    expect(await leases(base)).toEqual([['ma1', 'exclusive']]);
    expect(await leases(ov1)).toEqual([['ma1', 'exclusive']]);
    // It advances, and is far from done when the abort is sent.
    const later = await until(() => vq.virtq.getJobInfo({ name: 'ma1' }), (j: JobInfo) => j.transferredBytes > info.transferredBytes || j.type !== 'block-commit');
    expect(later).toMatchObject({ type: 'block-commit', status: 'running' });
    expect(later.totalBytes).toBeGreaterThan(later.transferredBytes);

    await vq.virtq.abortJob({ name: 'ma1' });
    const err = await settled;
    expect(err).toMatchObject({ code: 'OPERATION_ABORTED', message: expect.stringContaining('keeps the snapshot') });
    expect(await vq.virtq.getJobInfo({ name: 'ma1' })).toMatchObject({ type: 'none' });

    // The VM runs on, on its overlay; the snapshot and its metadata stay; the base is shared again.
    expect(await vq.virtq.getState({ name: 'ma1' })).toMatchObject({ state: 'running' });
    expect((await vq.virtq.getDefinition({ name: 'ma1' })).disks?.[0]).toMatchObject({ path: ov1, format: 'qcow2' });
    expect((await vq.virtq.snapshotList({ name: 'ma1' })).snapshots.map((s) => [s.name, s.current, s.kind])).toEqual([['s1', true, 'external']]);
    expect(await vq.virtq.snapshotInfo({ name: 'ma1', snapshot: 's1' })).toMatchObject({ disks: [{ target: 'vda', path: base, overlay: ov1 }] });
    expect(existsSync(ov1)).toBe(true);
    expect(await leases(base)).toEqual([['ma1', 'shared']]);
    expect(await leases(ov1)).toEqual([['ma1', 'exclusive']]);
    expect(await diskHead(con)).toBe('BBBB');
    await writeHead(con, 'CCCC');
    expect(await diskHead(con)).toBe('CCCC');

    // After shutdown the chain is consistent: the overlay over the base, both images clean.
    await vq.virtq.destroy({ name: 'ma1' });
    con.close();
    expect(imageInfo(ov1)).toMatchObject({ format: 'qcow2', 'backing-filename': base });
    execFileSync('qemu-img', ['check', '-q', '-f', 'qcow2', ov1]);
    execFileSync('qemu-img', ['check', '-q', '-f', 'qcow2', base]);
    expect(w.headOf(ov1)).toBe('CCCC');

    // Started again, the merge without a limit completes: the VM is back on its base.
    const con2 = await w.boot('ma1');
    expect(await diskHead(con2)).toBe('CCCC');
    await vq.virtq.snapshotDelete({ name: 'ma1', snapshot: 's1' });
    expect(existsSync(ov1)).toBe(false);
    expect((await vq.virtq.snapshotList({ name: 'ma1' })).snapshots).toEqual([]);
    expect((await vq.virtq.getDefinition({ name: 'ma1' })).disks?.[0]).toMatchObject({ path: base, format: 'qcow2' });
    expect(await leases(base)).toEqual([['ma1', 'exclusive']]);
    await writeHead(con2, 'DDDD');
    await vq.virtq.destroy({ name: 'ma1' });
    con2.close();
    execFileSync('qemu-img', ['check', '-q', '-f', 'qcow2', base]);
    expect(imageInfo(base)).not.toHaveProperty('backing-filename');
    expect(w.headOf(base)).toBe('DDDD');
  }, 400_000);
});
