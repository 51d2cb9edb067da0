// The temp-then-commit logic: a new volume is linked into place (never over a file), an upload
// is renamed over the old one, and a failed build leaves neither a temp nor a final file.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtqError } from '../../../../protocol/errors.js';
import { buildVolumeFile, commitTemp, fsError, tempName } from '../../../../drivers/storage/volume-files.js';
import { directFs, threadPoolFs, type PoolFs } from '../../../../drivers/storage/pool-fs.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const ref = (name: string) => ({ pool: 'p', name });

describe('commitTemp', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => { root.remove(); });

  it('links a new file into place and removes the temp name', async () => {
    const tmp = tempName();
    writeFileSync(root.path(tmp), 'new');
    await commitTemp(root.dir, tmp, 'vol', 'new');
    expect(readdirSync(root.dir)).toEqual(['vol']);
    expect(readFileSync(root.path('vol'), 'utf8')).toBe('new');
  });

  it('refuses to put a new file over an existing one (EEXIST) and keeps both untouched', async () => {
    const tmp = tempName();
    writeFileSync(root.path(tmp), 'new');
    writeFileSync(root.path('vol'), 'old');
    await expect(commitTemp(root.dir, tmp, 'vol', 'new')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(root.path('vol'), 'utf8')).toBe('old');
  });

  it('a file without data (metadataOnly) on a local filesystem: nothing fsynced before the link, then the file by its new name, not the directory', async () => {
    for (const [base, expected] of [[directFs, ['vol']], [threadPoolFs, ['.']]] as const) {
      const synced: string[] = [];
      const fs: PoolFs = { ...base, fsyncPath: async (p) => { synced.push(p === root.dir ? '.' : p.slice(root.dir.length + 1)); await base.fsyncPath(p); } };
      const tmp = tempName();
      await fs.sparseFile(root.path(tmp), 1 << 20, 0o600);
      await commitTemp(root.dir, tmp, 'vol', 'new', true, fs);
      expect(synced).toEqual(expected);
      expect(readdirSync(root.dir)).toEqual(['vol']);
      await fs.unlink(root.path('vol'));
    }
  });

  it('replaces the old file in one rename', async () => {
    const tmp = tempName();
    writeFileSync(root.path('vol'), 'old');
    writeFileSync(root.path(tmp), 'new');
    await commitTemp(root.dir, tmp, 'vol', 'replace');
    expect(readdirSync(root.dir)).toEqual(['vol']);
    expect(readFileSync(root.path('vol'), 'utf8')).toBe('new');
  });
});

describe('buildVolumeFile', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => { root.remove(); });

  it('builds under a dot temp name, then commits it', async () => {
    let seenTmp = '';
    await buildVolumeFile(root.dir, ref('vol'), 'new', 'making', async (tmp) => {
      seenTmp = tmp;
      await writeFile(tmp, 'data');
      expect(readdirSync(root.dir)).toEqual([tmp.slice(root.dir.length + 1)]);
    });
    expect(seenTmp.startsWith(join(root.dir, '.vq-'))).toBe(true);
    expect(readdirSync(root.dir)).toEqual(['vol']);
  });

  it('removes the temp file and leaves the final name alone when the build fails', async () => {
    writeFileSync(root.path('vol'), 'old');
    const boom = new VirtqError('OPERATION_ABORTED', 'cancelled');
    await expect(buildVolumeFile(root.dir, ref('vol'), 'replace', 'making', async (tmp) => {
      await writeFile(tmp, 'half');
      throw boom;
    })).rejects.toBe(boom);
    expect(readdirSync(root.dir)).toEqual(['vol']);
    expect(readFileSync(root.path('vol'), 'utf8')).toBe('old');
  });

  it('maps a lost race for the name to ALREADY_EXISTS and removes its temp file', async () => {
    const err = await buildVolumeFile(root.dir, ref('vol'), 'new', 'making', async (tmp) => {
      await writeFile(tmp, 'mine');
      writeFileSync(root.path('vol'), 'theirs'); // another create won meanwhile
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringContaining('volume "vol" in pool "p"') });
    expect(readdirSync(root.dir)).toEqual(['vol']);
    expect(readFileSync(root.path('vol'), 'utf8')).toBe('theirs');
  });
});

describe('fsError', () => {
  const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

  it('maps errno codes to catalogue codes and passes VirtqErrors through', () => {
    expect(fsError(errno('ENOSPC'), ref('v'), 'writing').code).toBe('NO_SPACE');
    expect(fsError(errno('EDQUOT'), ref('v'), 'writing').code).toBe('NO_SPACE');
    expect(fsError(errno('EEXIST'), ref('v'), 'writing').code).toBe('ALREADY_EXISTS');
    expect(fsError(errno('ENOENT'), ref('v'), 'reading').code).toBe('NO_STORAGE_VOL');
    expect(fsError(errno('EACCES'), ref('v'), 'reading').code).toBe('PERMISSION_DENIED');
    expect(fsError(errno('EIO'), ref('v'), 'reading').code).toBe('OPERATION_FAILED');
    const own = new VirtqError('IN_USE', 'busy');
    expect(fsError(own, ref('v'), 'x')).toBe(own);
  });
});
