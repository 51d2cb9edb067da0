// A plain raw volume's make: the link is the name's check (ALREADY_EXISTS for anything there,
// which stays untouched), the caller's `meanwhile` runs once the name is the volume's, and a
// failure of it (or of the flush) removes the volume again; no temp file is ever left.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeSparseVolume, type SparseVolumeTarget } from '../../../../drivers/storage/sparse-volume.js';
import { directFs, threadPoolFs } from '../../../../drivers/storage/pool-fs.js';
import { tempName } from '../../../../drivers/storage/volume-files.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const GiB = 1 << 30;

describe.each([['on a local filesystem (direct calls)', directFs], ['through the thread pool (NFS and such)', threadPoolFs]] as const)('makeSparseVolume %s', (_, fs) => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => { root.remove(); });

  const target = (name: string): SparseVolumeTarget => ({ dir: root.dir, fs, tempName, ref: { pool: 'p', name }, bytes: GiB, mode: 0o600, what: `creating ${name}` });

  it('makes a sparse file of the length under the name, runs meanwhile with the name in place, and returns its value', async () => {
    let seen: boolean | undefined;
    const value = await makeSparseVolume(target('v.raw'), async () => {
      seen = existsSync(root.path('v.raw'));
      return 42;
    });
    expect(value).toBe(42);
    expect(seen).toBe(true);
    const st = statSync(root.path('v.raw'));
    expect(st.size).toBe(GiB);
    expect(st.blocks).toBe(0);
    expect(st.mode & 0o777).toBe(0o600 & ~process.umask());
    expect(readdirSync(root.dir)).toEqual(['v.raw']);
  });

  it('refuses a name anything holds (a file, a directory, a dangling symlink) with ALREADY_EXISTS, leaves it as it was, and never runs meanwhile', async () => {
    writeFileSync(root.path('file'), 'old');
    mkdirSync(root.path('dir'));
    symlinkSync(root.path('nowhere'), root.path('link'));
    for (const name of ['file', 'dir', 'link']) {
      let ran = false;
      await expect(makeSparseVolume(target(name), async () => { ran = true; })).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringContaining('already exists') });
      expect(ran).toBe(false);
    }
    expect(readFileSync(root.path('file'), 'utf8')).toBe('old');
    expect(lstatSync(root.path('dir')).isDirectory()).toBe(true);
    expect(lstatSync(root.path('link')).isSymbolicLink()).toBe(true);
    expect(readdirSync(root.dir).sort()).toEqual(['dir', 'file', 'link']);
  });

  it('removes the volume when meanwhile fails, and throws its error typed', async () => {
    await expect(makeSparseVolume(target('v.raw'), async () => { throw Object.assign(new Error('no space'), { code: 'ENOSPC' }); })).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(readdirSync(root.dir)).toEqual([]);
  });

  it('waits for the flush and removes the volume even when meanwhile throws before returning a promise', async () => {
    const meanwhile = (): Promise<never> => { throw Object.assign(new Error('denied'), { code: 'EACCES' }); };
    await expect(makeSparseVolume(target('v.raw'), meanwhile)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(readdirSync(root.dir)).toEqual([]);
  });
});
