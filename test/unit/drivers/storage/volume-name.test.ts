// Volume names: one safe path component, never a dot-name (the driver's temp files), never a
// name that could leave the pool's directory.
import { describe, expect, it } from 'vitest';
import { VirtqError } from '../../../../protocol/errors.js';
import { checkVolumeName, MAX_VOLUME_NAME_BYTES, volumeNameProblem } from '../../../../drivers/storage/volume-name.js';
import { isTempName, tempName, TempNames } from '../../../../drivers/storage/volume-files.js';

describe('volumeNameProblem', () => {
  it('accepts names of letters, digits, dot, underscore, plus and dash', () => {
    for (const name of ['a', 'web1.qcow2', 'A_b+c-d.e', '0', 'x'.repeat(MAX_VOLUME_NAME_BYTES), 'a..b', 'a-']) {
      expect(volumeNameProblem(name), name).toBeUndefined();
    }
  });

  it('refuses each way out of the pool and each reserved form, saying why', () => {
    const cases: Array<[unknown, RegExp]> = [
      ['', /empty/], ['a/b', /"\/"/], ['/abs', /"\/"/], ['..', /starts with "\."/], ['.', /starts with "\."/],
      ['.hidden', /temp files/], ['-rf', /starts with "-"/], ['a\0b', /NUL/], ['x'.repeat(256), /256 bytes/],
      ['a b', /only letters/], ['é', /only letters/], ['a\nb', /only letters/], [42, /not a string/], [undefined, /not a string/],
    ];
    for (const [name, why] of cases) expect(volumeNameProblem(name), JSON.stringify(name)).toMatch(why);
  });

  it('counts bytes, not characters, against the limit', () => {
    expect(volumeNameProblem('é'.repeat(128))).toMatch(/256 bytes/);
  });
});

describe('checkVolumeName', () => {
  it('throws INVALID_ARG naming the field and quoting the name', () => {
    let caught: unknown;
    try {
      checkVolumeName('a/b');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(VirtqError);
    expect(caught).toMatchObject({ code: 'INVALID_ARG', details: { field: 'name' }, message: expect.stringContaining('"a/b"') });
  });

  it('never lets a volume name look like a temp file, and every temp name is one', () => {
    for (let i = 0; i < 50; i += 1) {
      const t = tempName();
      expect(isTempName(t)).toBe(true);
      expect(volumeNameProblem(t)).toBeDefined();
    }
    // A pool's pooled names: valid temp names, all different across several refills of its buffer.
    const names = new TempNames();
    const seen = new Set<string>();
    for (let i = 0; i < 300; i += 1) {
      const t = names.next();
      expect(isTempName(t)).toBe(true);
      expect(volumeNameProblem(t)).toBeDefined();
      seen.add(t);
    }
    expect(seen.size).toBe(300);
    expect(isTempName('.vq-0123.tmp')).toBe(false);
    expect(isTempName('vq-0123456789abcdef.tmp')).toBe(false);
  });
});
