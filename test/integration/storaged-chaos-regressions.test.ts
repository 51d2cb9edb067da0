// virtstoraged's behaviours the chaos suite (test/chaos, issue #13) found wrong, each pinned by a
// deterministic test: two changes of one volume at once, and a delete on a full disk.
import { spawnSync } from 'node:child_process';
import { readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { connectStorage } from '../../client/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';

const MiB = 1024 * 1024;

/** A temp root on its own small tmpfs, so that its disk can be filled. */
function tmpfsRoot(): TmpRoot {
  const root = tmpRoot();
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', root.dir], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mount -t tmpfs (needs root): ${m.stderr}`);
  return {
    ...root,
    remove: () => {
      if (spawnSync('umount', [root.dir]).status !== 0) spawnSync('umount', ['-l', root.dir]);
      root.remove();
    },
  };
}

describe('virtstoraged (chaos regressions)', () => {
  let h: ServiceHarness;
  afterEach(() => h.cleanup());

  // Chaos seed 208: two resizes of one volume at once; the second was told a VM used the volume.
  it('refuses a second change of a volume under way with IN_USE naming it, not LOCK_CONFLICT blaming a VM', async () => {
    h = new ServiceHarness(tmpRoot());
    await h.start('virtstoraged');
    const storage = await connectStorage(h.uri('storage'));
    try {
      await storage.api.createVolume({ pool: 'default', name: 'v.raw', capacity: 2 * MiB });
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => { release = resolve; });
      let sent = false;
      const upload = storage.upload('default', 'v.raw', (async function* () {
        yield Buffer.alloc(MiB, 1);
        sent = true;
        await gate;
        yield Buffer.alloc(MiB, 2);
      })(), 2 * MiB);
      await expect.poll(async () => sent && (await storage.api.listJobs({})).jobs.length === 1).toBe(true);
      for (const call of [storage.api.deleteVolume({ pool: 'default', name: 'v.raw' }), storage.api.resizeVolume({ pool: 'default', name: 'v.raw', capacity: 4 * MiB })]) {
        const err = await call.then(() => undefined, (e: unknown) => e);
        expect(err).toMatchObject({ code: 'IN_USE', message: expect.stringContaining('upload into volume default/v.raw') });
        expect((err as Error).message).not.toContain('VM');
      }
      release();
      await upload;
      await storage.api.deleteVolume({ pool: 'default', name: 'v.raw' });
    } finally {
      storage.close();
    }
  });

  // Chaos seed 208: on a full disk a delete removed the volume, then failed writing the (unchanged)
  // volume → secret map, and answered OPERATION_FAILED for a volume that was gone.
  it('deletes a volume on a full disk and answers ok', async () => {
    h = new ServiceHarness(tmpfsRoot());
    await h.start('virtstoraged');
    const storage = await connectStorage(h.uri('storage'));
    try {
      // A sparse file without a single block (qemu-img would allocate one): deleting it frees no
      // space for what the delete writes next.
      writeFileSync(h.root.path('lib', 'images', 'v.raw'), '');
      truncateSync(h.root.path('lib', 'images', 'v.raw'), MiB);
      expect((await storage.api.listVolumes({ pool: 'default' })).volumes.map((v) => v.name)).toEqual(['v.raw']);
      spawnSync('sh', ['-c', `cat /dev/zero > ${h.root.path('filler')}`]);
      await storage.api.deleteVolume({ pool: 'default', name: 'v.raw' });
      expect(readdirSync(h.root.path('lib', 'images'))).toEqual([]);
      expect((await storage.api.listVolumes({ pool: 'default' })).volumes).toEqual([]);
    } finally {
      storage.close();
    }
  });
});
