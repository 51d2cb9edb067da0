// A pool's metadata calls: direct system calls on a local filesystem, the thread pool elsewhere;
// both forms fail with Node's errno codes, as the pool's error mapping expects.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { directFs, poolFsFor, threadPoolFs } from '../../../../drivers/storage/pool-fs.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('pool-fs', () => {
  it('chooses direct calls for a local filesystem and the thread pool for another (procfs) or a missing path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vq-poolfs-'));
    dirs.push(dir);
    expect((await poolFsFor(dir)).direct).toBe(true);
    expect((await poolFsFor('/proc')).direct).toBe(false);
    expect((await poolFsFor(join(dir, 'missing'))).direct).toBe(false);
  });

  for (const fs of [directFs, threadPoolFs]) {
    it(`${fs.direct ? 'direct' : 'thread-pool'} form: makes a sparse file, links, renames, unlinks, and rejects with errno codes`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'vq-poolfs-'));
      dirs.push(dir);
      const a = join(dir, 'a');
      await fs.sparseFile(a, 1 << 20, 0o600);
      expect(statSync(a).size).toBe(1 << 20);
      expect(statSync(a).mode & 0o777).toBe(0o600);
      await expect(fs.sparseFile(a, 1, 0o600)).rejects.toMatchObject({ code: 'EEXIST' });
      await fs.link(a, join(dir, 'b'));
      await expect(fs.link(a, join(dir, 'b'))).rejects.toMatchObject({ code: 'EEXIST' });
      await fs.rename(join(dir, 'b'), join(dir, 'c'));
      expect((await fs.readdir(dir)).sort()).toEqual(['a', 'c']);
      expect((await fs.lstat(join(dir, 'c'))).ino).toBe(BigInt(statSync(a).ino));
      expect(await fs.realpath(join(dir, 'c'))).toBe(join(dir, 'c'));
      await fs.fsyncPath(dir);
      await fs.unlink(join(dir, 'c'));
      await expect(fs.lstat(join(dir, 'c'))).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(fs.unlink(join(dir, 'c'))).rejects.toMatchObject({ code: 'ENOENT' });
      // lstatIfAny: undefined for a missing name, the stat otherwise, other errors still reject.
      expect(await fs.lstatIfAny(join(dir, 'c'))).toBeUndefined();
      expect((await fs.lstatIfAny(a))?.ino).toBe(BigInt(statSync(a).ino));
      await expect(fs.lstatIfAny(join(a, 'below-a-file'))).rejects.toMatchObject({ code: 'ENOTDIR' });
      writeFileSync(join(dir, 'f'), 'x');
      await expect(fs.stat(join(dir, 'f', 'g'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    });
  }
});
