// The byte copier of full clones against scripted processes and lock tables: which /proc/locks
// lines stop it (QEMU's writer bytes), stderr texts mapped to codes, aborts that kill cp, and a
// lock taken while cp runs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyError, FileCopier, writerLocked } from '../../../../drivers/storage/file-copy.js';
import { fakeQemuImg } from './fake-qemu-img.js';

const INO = 1499313n;
const line = (ino: bigint, start: string, end: string, kind = 'OFDLCK ADVISORY  READ -1'): string => `46: ${kind} fe:00:${ino} ${start} ${end}`;

describe('writerLocked', () => {
  it('sees QEMU writer bytes (101, 103) and a forbidden consistent read (200) on the inode', () => {
    expect(writerLocked(line(INO, '100', '101'), INO)).toBe(true); // qemu-io / a VM's writable disk
    expect(writerLocked(line(INO, '103', '103'), INO)).toBe(true);
    expect(writerLocked(line(INO, '200', '200'), INO)).toBe(true);
    expect(writerLocked(`1: POSIX  ADVISORY  WRITE 77 08:01:${INO} 0 EOF`, INO)).toBe(true); // a whole-file lock
    expect(writerLocked(`2: -> FLOCK  ADVISORY  WRITE 78 08:01:${INO} 0 EOF`, INO)).toBe(true); // a waiter
  });

  it('lets a reader (bytes 100 and 201: a VM reading a backing image) and other inodes pass', () => {
    expect(writerLocked([line(INO, '100', '100'), line(INO, '201', '201')].join('\n'), INO)).toBe(false);
    expect(writerLocked(line(INO + 1n, '100', '101'), INO)).toBe(false);
    expect(writerLocked(line(14993130n, '100', '101'), INO)).toBe(false);
    expect(writerLocked('', INO)).toBe(false);
  });
});

describe('copyError', () => {
  it('maps ENOSPC to NO_SPACE, EACCES to PERMISSION_DENIED, anything else to OPERATION_FAILED', () => {
    const exit = { code: 1, signal: null };
    expect(copyError('w', exit, "cp: error writing '/p/.vq-1.tmp': No space left on device\n").code).toBe('NO_SPACE');
    expect(copyError('w', exit, "cp: cannot open '/p/a' for reading: Permission denied\n").code).toBe('PERMISSION_DENIED');
    const other = copyError('cloning v', exit, 'cp: something odd\n');
    expect(other.code).toBe('OPERATION_FAILED');
    expect(other.message).toBe('cloning v: cp failed (exit 1): something odd');
  });
});

describe('FileCopier.copy', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vq-fc-')); writeFileSync(join(dir, 'src'), 'x'); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs cp with in-kernel, hole-keeping options and reports the whole size at the end', async () => {
    const fake = fakeQemuImg(() => ({}));
    const seen: Array<[number, number]> = [];
    const out = await new FileCopier({ spawn: fake.spawn, lockTable: async () => '' }).copy(join(dir, 'src'), join(dir, 'dst'), { what: 'w', totalBytes: 10, onProgress: (d, t) => seen.push([d, t]) });
    expect(out).toBe('copied');
    expect(fake.calls.map((c) => c.args)).toEqual([['--reflink=auto', '--sparse=auto', '-T', '--', join(dir, 'src'), join(dir, 'dst')]]);
    expect(seen.at(-1)).toEqual([10, 10]);
  });

  it('does not start cp on a locked source, nor on an unreadable lock table', async () => {
    const fake = fakeQemuImg(() => ({}));
    const { stat } = await import('node:fs/promises');
    const ino = (await stat(join(dir, 'src'), { bigint: true })).ino;
    expect(await new FileCopier({ spawn: fake.spawn, lockTable: async () => line(ino, '100', '101') }).copy(join(dir, 'src'), join(dir, 'dst'), { what: 'w', totalBytes: 1 })).toBe('locked');
    expect(await new FileCopier({ spawn: fake.spawn, lockTable: async () => { throw new Error('EACCES'); } }).copy(join(dir, 'src'), join(dir, 'dst'), { what: 'w', totalBytes: 1 })).toBe('locked');
    expect(fake.calls).toEqual([]);
  });

  it('kills cp when a writer locks the source meanwhile, and when the signal aborts', async () => {
    const { stat } = await import('node:fs/promises');
    const ino = (await stat(join(dir, 'src'), { bigint: true })).ino;
    let table = '';
    const fake = fakeQemuImg(() => ({ hang: true }));
    const copier = new FileCopier({ spawn: fake.spawn, lockTable: async () => table });
    const copying = copier.copy(join(dir, 'src'), join(dir, 'dst'), { what: 'w', totalBytes: 1 });
    setTimeout(() => { table = line(ino, '100', '101'); }, 50);
    expect(await copying).toBe('locked');
    expect(fake.calls[0]?.killed).toBe(true);
    table = '';
    const ac = new AbortController();
    const aborted = copier.copy(join(dir, 'src'), join(dir, 'dst'), { what: 'cloning v', totalBytes: 1, signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await expect(aborted).rejects.toMatchObject({ code: 'OPERATION_ABORTED', message: expect.stringContaining('cloning v') });
    expect(fake.calls[1]?.killed).toBe(true);
  });

  it('maps a failed cp through its stderr', async () => {
    const fake = fakeQemuImg(() => ({ stderr: "cp: error writing 'x': No space left on device\n", code: 1 }));
    await expect(new FileCopier({ spawn: fake.spawn, lockTable: async () => '' }).copy(join(dir, 'src'), join(dir, 'dst'), { what: 'w', totalBytes: 1 })).rejects.toMatchObject({ code: 'NO_SPACE' });
  });
});
