// virtstoraged's behaviours the chaos suite (test/chaos, issue #13) found wrong, each pinned by a
// deterministic test: two changes of one volume at once, a delete and a create on a full disk,
// raw bytes uploaded into a qcow2 volume, with and without a kill -9 once they replaced the volume's,
// and a kill -9 in the middle of a full clone, whose copying helper must die with the daemon.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connectStorage } from '../../client/index.js';
import { processesNaming } from '../helpers/kill-under.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { tmpfsRoot, tmpRoot } from '../helpers/tmp-root.js';

const MiB = 1024 * 1024;

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
      for (const call of [() => storage.api.deleteVolume({ pool: 'default', name: 'v.raw' }), () => storage.api.resizeVolume({ pool: 'default', name: 'v.raw', capacity: 4 * MiB })]) {
        const err = await call().then(() => undefined, (e: unknown) => e);
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
    h = new ServiceHarness(tmpfsRoot('8m'));
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

  // Chaos seed 7: on a full disk a create made the (sparse) volume, then could not write its
  // record and failed; the volume stayed, unrecorded, so a restart would have probed its bytes.
  it('fails a create whose record cannot be written with NO_SPACE, and leaves no volume', async () => {
    h = new ServiceHarness(tmpfsRoot('8m'));
    await h.start('virtstoraged');
    const storage = await connectStorage(h.uri('storage'));
    try {
      spawnSync('sh', ['-c', `cat /dev/zero > ${h.root.path('filler')}`]);
      const err = await storage.api.createVolume({ pool: 'default', name: 'v.raw', capacity: MiB }).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'NO_SPACE', message: expect.stringContaining('no space left on device') });
      expect(readdirSync(h.root.path('lib', 'images'))).toEqual([]);
      expect((await storage.api.listVolumes({ pool: 'default' })).volumes).toEqual([]);
      unlinkSync(h.root.path('filler'));
      expect(await storage.api.createVolume({ pool: 'default', name: 'v.raw', capacity: MiB })).toMatchObject({ name: 'v.raw', format: 'raw' });
    } finally {
      storage.close();
    }
  });

  // Chaos seed 1: raw bytes uploaded into a qcow2 volume; virtstoraged went on listing it qcow2.
  it('lists a qcow2 volume given raw bytes by an upload as raw, as qemu-img reads it', async () => {
    h = new ServiceHarness(tmpRoot());
    const daemon = await h.start('virtstoraged');
    const storage = await connectStorage(h.uri('storage'));
    try {
      const v = await storage.api.createVolume({ pool: 'default', name: 'v.qcow2', format: 'qcow2', capacity: MiB });
      expect(v.format).toBe('qcow2');
      await storage.upload('default', 'v.qcow2', (async function* () { yield Buffer.alloc(64 * 1024, 7); })(), 64 * 1024);
      expect(await storage.api.getVolume({ pool: 'default', name: 'v.qcow2' })).toMatchObject({ format: 'raw', capacity: 64 * 1024 });
      const probe = spawnSync('qemu-img', ['info', '--output=json', v.path], { encoding: 'utf8' });
      expect(JSON.parse(probe.stdout)).toMatchObject({ format: 'raw' });
      // And it stays raw for good: what a guest writes into it now is never read as a header.
      await h.kill(daemon);
      await h.start('virtstoraged');
      const again = await connectStorage(h.uri('storage'));
      expect(await again.api.getVolume({ pool: 'default', name: 'v.qcow2' })).toMatchObject({ format: 'raw' });
      again.close();
    } finally {
      storage.close();
    }
  });
  // Chaos seed 27278: the same upload with virtstoraged killed -9 once the bytes had replaced the
  // volume's, before the record's change was written: raw bytes stayed recorded qcow2.
  it('keeps a qcow2 volume given raw bytes raw when virtstoraged is killed right after the bytes replaced it', async () => {
    const root = tmpRoot();
    h = new ServiceHarness(root);
    // qemu-img's first look at the volume's own name once armed (the one after the replacement)
    // waits to be released: the daemon is killed meanwhile.
    const gate = join(root.dir, 'gate');
    mkdirSync(gate);
    const wrapper = join(root.dir, 'qemu-img-gated');
    writeFileSync(wrapper, `#!/bin/bash
last="\${@: -1}"
if [ -e ${gate}/armed ] && [ "\${last##*/}" = v.qcow2 ] && mkdir ${gate}/hit 2>/dev/null; then
  for _ in $(seq 400); do [ -e ${gate}/release ] && break; sleep 0.05; done
fi
exec qemu-img "$@"
`, { mode: 0o755 });
    const daemon = await h.start('virtstoraged', ['--qemu-img', wrapper]);
    const storage = await connectStorage(h.uri('storage'));
    try {
      const v = await storage.api.createVolume({ pool: 'default', name: 'v.qcow2', format: 'qcow2', capacity: MiB });
      writeFileSync(join(gate, 'armed'), '');
      const upload = storage.upload('default', 'v.qcow2', (async function* () { yield Buffer.alloc(64 * 1024, 7); })(), 64 * 1024);
      upload.catch(() => undefined);
      await expect.poll(() => existsSync(join(gate, 'hit')), { timeout: 20_000 }).toBe(true);
      await h.kill(daemon);
      writeFileSync(join(gate, 'release'), '');
      await expect(upload).rejects.toThrow();
      expect(JSON.parse(spawnSync('qemu-img', ['info', '--output=json', v.path], { encoding: 'utf8' }).stdout)).toMatchObject({ format: 'raw' });
      await h.start('virtstoraged');
      const again = await connectStorage(h.uri('storage'));
      expect(await again.api.getVolume({ pool: 'default', name: 'v.qcow2' })).toMatchObject({ format: 'raw', capacity: 64 * 1024 });
      again.close();
    } finally {
      storage.close();
    }
  });
  // Session 29 (a chaos run left a probe QEMU behind; the same held for virtstoraged's helpers): a
  // kill -9 of virtstoraged in the middle of a full clone left its cp, or its qemu-img convert for
  // a chain, copying for nobody into a temp file the next start removes, holding the source's
  // image lock the while. Here the helper never ends by itself, so only its starter's death ends it.
  it.each([
    { helper: 'cp', source: 'src.raw' },
    { helper: 'qemu-img convert', source: 'top.qcow2' },
  ])('takes a full clone\'s $helper down with it when killed -9', async ({ helper, source }) => {
    const root = tmpRoot();
    h = new ServiceHarness(root);
    const hit = join(root.dir, 'hit');
    const hang = `touch ${hit}; while :; do sleep 0.05; done`;
    const cp = join(root.dir, 'cp-hangs');
    writeFileSync(cp, `#!/bin/sh\n${helper === 'cp' ? hang : 'exec cp "$@"'}\n`, { mode: 0o755 });
    const qemuImg = join(root.dir, 'qemu-img-hangs');
    writeFileSync(qemuImg, `#!/bin/sh\nif [ "$1" = convert ]; then ${helper === 'cp' ? 'exec qemu-img "$@"' : hang}; fi\nexec qemu-img "$@"\n`, { mode: 0o755 });
    const daemon = await h.start('virtstoraged', ['--cp', cp, '--qemu-img', qemuImg]);
    const storage = await connectStorage(h.uri('storage'));
    try {
      await storage.api.createVolume({ pool: 'default', name: 'src.raw', capacity: MiB });
      await storage.cloneVolume({ pool: 'default', source: 'src.raw', name: 'top.qcow2', thin: true });
      const clone = storage.cloneVolume({ pool: 'default', source, name: 'copy' });
      clone.catch(() => undefined);
      await expect.poll(() => existsSync(hit), { timeout: 20_000 }).toBe(true);
      // The daemon's own command line names the wrapper too (--cp, --qemu-img).
      const wrapper = helper === 'cp' ? cp : qemuImg;
      const helpers = (): number[] => processesNaming(wrapper).filter((pid) => pid !== daemon.pid);
      expect(helpers()).toHaveLength(1);
      await h.kill(daemon);
      await expect.poll(helpers, { timeout: 5000 }).toEqual([]);
      await h.start('virtstoraged');
      const again = await connectStorage(h.uri('storage'));
      expect((await again.api.listVolumes({ pool: 'default' })).volumes.map((v) => v.name).sort()).toEqual(['src.raw', 'top.qcow2']);
      expect(readdirSync(root.path('lib', 'images')).sort()).toEqual(['src.raw', 'top.qcow2']);
      again.close();
    } finally {
      storage.close();
    }
  });
});
