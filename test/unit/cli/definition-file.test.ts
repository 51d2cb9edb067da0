// Definition files for define/create: relative paths resolve against the file's directory, and
// unreadable files, bad JSON and invalid definitions fail with INVALID_ARG saying which and where.
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readDefinitionFile, resolveDefinitionPaths } from '../../../cli/definition-file.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

describe('definition files', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); mkdirSync(root.path('vms')); });
  afterEach(() => root.remove());

  it('resolves relative kernel, initrd and disk paths against the file\'s directory', async () => {
    writeFileSync(root.path('vms', 'a.json'), JSON.stringify({
      name: 'a', memoryMiB: 128,
      kernel: { path: 'boot/vmlinuz', initrd: '../initrd.gz', cmdline: 'console=ttyS0' },
      disks: [{ path: 'disk.img', target: 'vda' }, { path: '/abs/b.img', target: 'vdb' }],
    }));
    const def = await readDefinitionFile('vms/a.json', root.dir);
    expect(def.kernel).toEqual({ path: root.path('vms', 'boot', 'vmlinuz'), initrd: root.path('initrd.gz'), cmdline: 'console=ttyS0' });
    expect(def.disks?.map((d) => d.path)).toEqual([root.path('vms', 'disk.img'), '/abs/b.img']);
  });

  it('leaves other fields alone', () => {
    expect(resolveDefinitionPaths({ name: 'x', disks: ['junk'] }, '/b')).toEqual({ name: 'x', disks: ['junk'] });
  });

  it('names the file and the JSON error', async () => {
    writeFileSync(root.path('bad.json'), '{ "name": "a", ');
    await expect(readDefinitionFile('bad.json', root.dir)).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringMatching(/^bad\.json is not valid JSON: /) });
  });

  it('names the file that cannot be read', async () => {
    await expect(readDefinitionFile('missing.json', root.dir)).rejects.toMatchObject({ code: 'INVALID_ARG', message: 'cannot read definition file missing.json: no such file' });
  });

  it('names the offending field of an invalid definition', async () => {
    writeFileSync(root.path('inv.json'), JSON.stringify({ name: 'a', memoryMiB: 'lots' }));
    await expect(readDefinitionFile('inv.json', root.dir)).rejects.toMatchObject({
      code: 'INVALID_ARG', message: expect.stringMatching(/^inv\.json: invalid definition: \/memoryMiB: /), details: expect.objectContaining({ path: '/memoryMiB' }),
    });
    writeFileSync(root.path('arr.json'), '[]');
    await expect(readDefinitionFile('arr.json', root.dir)).rejects.toMatchObject({ message: 'arr.json: invalid definition: /: expected a JSON object' });
  });
});
