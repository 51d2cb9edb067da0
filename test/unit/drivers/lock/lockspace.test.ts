// Lock-file naming: one lock file per resource, named by the SHA-256 of the canonical path, so
// symlinked and un-normalised paths to one image meet on the same lock; and holder records.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalPath, canonicalPathSync, lockFileName, Lockspace, resourceKey, type HolderRecord } from '../../../../drivers/lock/lockspace.js';

let dir = '';
beforeEach(() => { dir = realpathSync(mkdtempSync(join(tmpdir(), 'virtq-lockspace-'))); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

describe('lock file naming', () => {
  it('names the lock file by the hex SHA-256 of the canonical path', () => {
    const expected = createHash('sha256').update('/var/lib/images/a.qcow2').digest('hex');
    expect(resourceKey('/var/lib/images/a.qcow2')).toBe(expected);
    expect(lockFileName('/var/lib/images/a.qcow2')).toBe(`${expected}.lock`);
    expect(lockFileName('/var/lib/images/b.qcow2')).not.toBe(lockFileName('/var/lib/images/a.qcow2'));
  });

  it('gives symlinked and un-normalised paths to one image the same lock file', async () => {
    const img = join(dir, 'images', 'disk.raw');
    mkdirSync(join(dir, 'images', 'sub'), { recursive: true });
    writeFileSync(img, '');
    symlinkSync(img, join(dir, 'link.raw'));
    symlinkSync(join(dir, 'images'), join(dir, 'dirlink'));
    const names = await Promise.all([
      img, join(dir, 'link.raw'), join(dir, 'images', 'sub', '..', 'disk.raw'), join(dir, 'dirlink', './disk.raw'),
    ].map(async (p) => lockFileName(await canonicalPath(p))));
    expect(new Set(names).size).toBe(1);
    expect(names[0]).toBe(lockFileName(img));
  });

  it('normalises a path that does not exist instead of failing', async () => {
    await expect(canonicalPath('/nonexistent/x/../y.img')).resolves.toBe('/nonexistent/y.img');
    expect(canonicalPathSync('/nonexistent/x/../y.img')).toBe('/nonexistent/y.img');
  });

  it('canonicalises synchronously as it does asynchronously', async () => {
    const img = join(dir, 'images', 'disk.raw');
    mkdirSync(join(dir, 'images'), { recursive: true });
    writeFileSync(img, '');
    symlinkSync(img, join(dir, 'link.raw'));
    expect(canonicalPathSync(join(dir, 'link.raw'))).toBe(img);
    expect(canonicalPathSync(join(dir, 'link.raw'))).toBe(await canonicalPath(join(dir, 'link.raw')));
  });
});

describe('Lockspace', () => {
  const record = (uuid: string, key: string): HolderRecord => ({
    format: 1, resource: `/img/${key}`, mode: 'shared', host: 'h1', vm: `vm-${uuid}`, uuid, shimPid: 1, holderPid: 2, holderStart: 3, since: 4,
  });

  it('keeps one record per holder beside the lock file and lists only the resource\'s own', async () => {
    const space = new Lockspace(dir);
    const [k1, k2] = [resourceKey('/img/1'), resourceKey('/img/2')];
    await space.writeRecord(k1, record('u1', k1));
    await space.writeRecord(k1, record('u2', k1));
    await space.writeRecord(k2, record('u3', k2));
    expect(space.lockFile(k1)).toBe(join(dir, `${k1}.lock`));
    expect(space.recordFile(k1, 'u1')).toBe(join(dir, `${k1}.u1.holder`));
    expect((await space.records(k1)).map((r) => r.uuid).sort()).toEqual(['u1', 'u2']);
    await expect(space.readRecord(k2, 'u3')).resolves.toEqual(record('u3', k2));
    await space.removeRecord(k1, 'u1');
    await space.removeRecord(k1, 'u1');
    expect((await space.records(k1)).map((r) => r.uuid)).toEqual(['u2']);
  });

  it('reads, lists and removes records with synchronous calls as it does with awaited ones', async () => {
    const space = new Lockspace(dir);
    const [k1, k2] = [resourceKey('/img/1'), resourceKey('/img/2')];
    space.writeRecordSync(k1, record('u1', k1));
    await space.writeRecord(k1, record('u2', k1));
    space.writeRecordSync(k2, record('u3', k2));
    writeFileSync(space.recordFile(k1, 'bad'), '{not json');
    expect(space.recordsSync(k1).map((r) => r.uuid).sort()).toEqual(['u1', 'u2']);
    expect((await space.records(k1)).map((r) => r.uuid).sort()).toEqual(['u1', 'u2']);
    expect(space.readRecordSync(k2, 'u3')).toEqual(record('u3', k2));
    expect(space.readRecordSync(k1, 'bad')).toBeUndefined();
    expect(space.readRecordSync(k1, 'absent')).toBeUndefined();
    space.removeRecordSync(k1, 'u1');
    space.removeRecordSync(k1, 'u1');
    expect(space.recordsSync(k1).map((r) => r.uuid)).toEqual(['u2']);
    expect(new Lockspace(join(dir, 'none')).recordsSync(k1)).toEqual([]);
  });

  it('skips unreadable records', async () => {
    const space = new Lockspace(dir);
    const k = resourceKey('/img/x');
    writeFileSync(space.recordFile(k, 'bad'), '{not json');
    await expect(space.records(k)).resolves.toEqual([]);
    await expect(space.readRecord(k, 'bad')).resolves.toBeUndefined();
  });
});
