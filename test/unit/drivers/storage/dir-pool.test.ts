// DirPool's own logic with a scripted qemu-img: the info cache (a pool of 200 volumes is
// inspected once, then again only for files that changed), busy volumes, and passphrases that
// reach qemu-img only through a private file removed after the call.
import { appendFileSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirPool } from '../../../../drivers/storage/dir-pool.js';
import { LUKS_CREATE_TRIES } from '../../../../drivers/storage/volume-ops.js';
import { VirtqError } from '../../../../protocol/errors.js';
import { FileCopier } from '../../../../drivers/storage/file-copy.js';
import { QemuImg } from '../../../../drivers/storage/qemu-img.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';
import { fakeQemuImg, type FakeAnswer } from './fake-qemu-img.js';

/** A qemu-img that says every file is raw of its own size, and makes files it is asked to create. */
function rawWorld(onCreate: (args: readonly string[]) => void = () => undefined) {
  return fakeQemuImg((args): FakeAnswer => {
    if (args[0] === 'info') {
      const path = args[args.length - 1] as string;
      if (path.endsWith('.bad')) return { stderr: 'qemu-img: Could not open: Unsupported qcow2 version 9', code: 1 };
      return { stdout: JSON.stringify([{ format: 'raw', 'virtual-size': readFileSync(path).length, filename: path }]) };
    }
    if (args[0] === 'create') {
      onCreate(args);
      writeFileSync(args[args.length - 2] as string, '');
      return {};
    }
    return { code: 1, stderr: 'unexpected' };
  });
}

describe('DirPool', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => { root.remove(); });

  const poolWith = async (spawn: ReturnType<typeof rawWorld>['spawn']): Promise<DirPool> => {
    const pool = new DirPool({ name: 'p', type: 'dir', path: root.path('pool') }, { qemuImg: new QemuImg({ spawn }), secretDir: root.path('secrets') });
    await pool.build();
    return pool;
  };

  it('inspects each of 200 volumes once, then only the files that changed', async () => {
    const fake = rawWorld();
    const pool = await poolWith(fake.spawn);
    for (let i = 0; i < 200; i += 1) writeFileSync(root.path('pool', `v${String(i).padStart(3, '0')}.raw`), 'x'.repeat(i));
    writeFileSync(root.path('pool', '.vq-0123456789abcdef.tmp'), 'half a volume');
    const first = await pool.list();
    expect(first).toHaveLength(200);
    expect(first[5]).toMatchObject({ name: 'v005.raw', format: 'raw', capacity: 5 });
    expect(fake.calls).toHaveLength(200);
    await pool.list();
    expect(fake.calls).toHaveLength(200);
    appendFileSync(root.path('pool', 'v007.raw'), 'more');
    rmSync(root.path('pool', 'v008.raw'));
    const third = await pool.list();
    expect(fake.calls).toHaveLength(201);
    expect(third.find((v) => v.name === 'v007.raw')?.capacity).toBe(11);
    expect(third).toHaveLength(199);
  });

  it('lists a file qemu-img cannot read, saying why, instead of failing the listing', async () => {
    const pool = await poolWith(rawWorld().spawn);
    writeFileSync(root.path('pool', 'broken.bad'), 'QFI');
    writeFileSync(root.path('pool', 'good.raw'), 'x');
    const list = await pool.list();
    expect(list.map((v) => [v.name, v.format])).toEqual([['broken.bad', 'unknown'], ['good.raw', 'raw']]);
    expect(list[0]?.problem).toContain('Unsupported qcow2 version 9');
  });

  it('refuses a second change of a volume while one is under way', async () => {
    const pool = await poolWith(rawWorld().spawn);
    writeFileSync(root.path('pool', 'v.raw'), Buffer.alloc(1024));
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array([1]);
      await gate;
    }
    const upload = pool.upload('v.raw', slow());
    await new Promise((r) => setImmediate(r));
    await expect(pool.delete('v.raw')).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('upload') });
    release();
    await upload;
    await pool.delete('v.raw');
  });

  // Found by the chaos suite (seed 202): an upload that had passed its "is it a backing file?"
  // check renamed a new file over a volume a thin clone, made meanwhile, read through.
  it('refuses to upload into, resize or delete a volume while a clone reads it, and to clone one while an upload replaces it', async () => {
    // A full clone holds the source for as long as its byte copy (cp) runs (hung here); a
    // thin clone is written without qemu-img (qcow2-create.ts), too quick to catch midway.
    const fake = fakeQemuImg((args): FakeAnswer => {
      if (args[0] === 'info') {
        const path = args[args.length - 1] as string;
        return { stdout: JSON.stringify([{ format: 'raw', 'virtual-size': readFileSync(path).length, filename: path }]) };
      }
      if (args[0] === '--reflink=auto') return { hang: true };
      return {};
    });
    const copier = new FileCopier({ spawn: fake.spawn, lockTable: async () => '' });
    const pool = new DirPool({ name: 'p', type: 'dir', path: root.path('pool') }, { qemuImg: new QemuImg({ spawn: fake.spawn }), copier, secretDir: root.path('secrets') });
    await pool.build();
    writeFileSync(root.path('pool', 'base.raw'), Buffer.alloc(1024));
    const abort = new AbortController();
    const clone = pool.clone('base.raw', 'full.raw', { mode: 'full' }, { signal: abort.signal }).then(() => undefined, (e: unknown) => e);
    await expect.poll(() => fake.calls.some((c) => c.args[0] === '--reflink=auto')).toBe(true);
    const busy = { code: 'IN_USE', message: expect.stringContaining('a clone of it to "full.raw" is under way') };
    await expect(pool.upload('base.raw', (async function* () { yield new Uint8Array(1024); })())).rejects.toMatchObject(busy);
    await expect(pool.delete('base.raw')).rejects.toMatchObject(busy);
    await expect(pool.resize('base.raw', 2048, { shrink: false })).rejects.toMatchObject(busy);
    abort.abort();
    expect(await clone).toMatchObject({ code: 'OPERATION_ABORTED' });
    expect(readdirSync(root.path('pool'))).toEqual(['base.raw']);

    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const upload = pool.upload('base.raw', (async function* () { yield new Uint8Array([1]); await gate; })());
    await new Promise((r) => setImmediate(r));
    await expect(pool.clone('base.raw', 'thin.qcow2', { mode: 'thin' })).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('upload') });
    release();
    await upload;
    // Once nothing runs, the clone is made; two clones of one source may run at once.
    await Promise.all([pool.clone('base.raw', 'a.qcow2', { mode: 'thin' }), pool.clone('base.raw', 'b.qcow2', { mode: 'thin' })]);
    expect(fake.calls.filter((c) => c.args[0] === 'create')).toEqual([]);
    expect(readFileSync(root.path('pool', 'a.qcow2')).subarray(0, 4).toString('latin1')).toBe('QFI\xfb');
  });

  it('gives qemu-img the passphrase only as a 0600 file that is gone after the call', async () => {
    const seen: Array<{ args: string; key: string; mode: number }> = [];
    const fake = rawWorld((args) => {
      const object = args[args.indexOf('--object') + 1] as string;
      const file = /file=([^,]+)/.exec(object)?.[1] as string;
      seen.push({ args: args.join(' '), key: readFileSync(file, 'utf8'), mode: statSync(file).mode & 0o777 });
    });
    const pool = await poolWith(fake.spawn);
    await pool.create({ name: 'e.qcow2', format: 'qcow2', capacityBytes: 1024, encryption: { passphrase: new TextEncoder().encode('s3cret-pass') } });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ key: 's3cret-pass', mode: 0o600 });
    expect(seen[0]?.args).not.toContain('s3cret-pass');
    expect(readdirSync(root.path('secrets'))).toEqual([]);
  });

  it(`retries a LUKS create that QEMU's PBKDF benchmark failed to time, up to ${LUKS_CREATE_TRIES} tries`, async () => {
    let failures = 1;
    const flaky = fakeQemuImg((args): FakeAnswer => {
      if (args[0] === 'create' && failures > 0) {
        failures -= 1;
        return { stderr: `qemu-img: ${args[args.length - 2] as string}: Unable to get accurate CPU usage\n`, code: 1 };
      }
      if (args[0] === 'create') writeFileSync(args[args.length - 2] as string, '');
      return { stdout: JSON.stringify({ format: 'qcow2', 'virtual-size': 1024, encrypted: true }) };
    });
    const pool = await poolWith(flaky.spawn);
    const enc = { passphrase: new Uint8Array([7]) };
    expect(await pool.create({ name: 'a.qcow2', format: 'qcow2', capacityBytes: 1024, encryption: enc })).toMatchObject({ encrypted: true });
    expect(flaky.calls.filter((c) => c.args[0] === 'create')).toHaveLength(2);
    failures = LUKS_CREATE_TRIES;
    await expect(pool.create({ name: 'b.qcow2', format: 'qcow2', capacityBytes: 1024, encryption: enc })).rejects.toMatchObject({
      code: 'OPERATION_FAILED', message: expect.stringContaining(`${LUKS_CREATE_TRIES} tries in a row`), details: expect.objectContaining({ tries: LUKS_CREATE_TRIES }),
    });
    expect(flaky.calls.filter((c) => c.args[0] === 'create')).toHaveLength(2 + LUKS_CREATE_TRIES);
    expect(readdirSync(root.path('pool'))).toEqual(['a.qcow2']);
  });

  it('a delete is durable before it returns and frees the file after it; info() waits for the free', async () => {
    const pool = await poolWith(rawWorld().spawn);
    writeFileSync(root.path('pool', 'data.raw'), Buffer.alloc(20 << 20, 7));
    // Files this process has open that are deleted: the held volume, until its close.
    const heldDeleted = (): string[] => readdirSync('/proc/self/fd').flatMap((fd) => {
      try { return [readlinkSync(`/proc/self/fd/${fd}`)]; } catch { return []; }
    }).filter((t) => t.endsWith('(deleted)') && t.includes(root.path('pool')));
    await pool.delete('data.raw');
    expect(readdirSync(root.path('pool'))).not.toContain('data.raw');
    await pool.info();
    expect(heldDeleted()).toEqual([]);
    await expect(pool.volumeInfo('data.raw')).rejects.toMatchObject({ code: 'NO_STORAGE_VOL' });
  });

  it('a plain raw create calls onClaimed once its name is taken, a delete onGone once the name is gone; neither for a refused one', async () => {
    const pool = await poolWith(rawWorld().spawn);
    const at: string[] = [];
    const onClaimed = (): void => { at.push(`claimed, file there: ${String(readdirSync(root.path('pool')).includes('v.raw'))}`); };
    await pool.create({ name: 'v.raw', format: 'raw', capacityBytes: 1 << 20 }, { onClaimed });
    await expect(pool.create({ name: 'v.raw', format: 'raw', capacityBytes: 1 << 20 }, { onClaimed })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    const onGone = (): void => { at.push(`gone, file there: ${String(readdirSync(root.path('pool')).includes('v.raw'))}`); };
    await pool.delete('v.raw', undefined, undefined, onGone);
    await expect(pool.delete('v.raw', undefined, undefined, onGone)).rejects.toMatchObject({ code: 'NO_STORAGE_VOL' });
    expect(at).toEqual(['claimed, file there: true', 'gone, file there: false']);
  });

  it('holds the new name until onClaimed\'s write settles: a clone of it is refused meanwhile, and a failed write removes the volume', async () => {
    const pool = await poolWith(rawWorld().spawn);
    let fail: (err: Error) => void = () => undefined;
    const write = new Promise<void>((_, reject) => { fail = reject; });
    const creating = pool.create({ name: 'v.raw', format: 'raw', capacityBytes: 1 << 20 }, { onClaimed: () => write }).then(() => undefined, (e: unknown) => e);
    await expect.poll(() => readdirSync(root.path('pool')).includes('v.raw')).toBe(true);
    await expect(pool.clone('v.raw', 'copy.raw', { mode: 'full' })).rejects.toMatchObject({ code: 'IN_USE', message: expect.stringContaining('create') });
    fail(new VirtqError('NO_SPACE', 'cannot write the record: no space left'));
    expect(await creating).toMatchObject({ code: 'NO_SPACE' });
    expect(readdirSync(root.path('pool'))).toEqual([]);
    // The same for a volume made by the general path (a qcow2), and for a clone.
    await expect(pool.create({ name: 'q.qcow2', format: 'qcow2', capacityBytes: 1 << 20 }, { onClaimed: () => Promise.reject(new Error('no record')) })).rejects.toThrow('no record');
    writeFileSync(root.path('pool', 'base.raw'), Buffer.alloc(4096));
    await expect(pool.clone('base.raw', 'c.raw', { mode: 'full' }, { onClaimed: () => Promise.reject(new Error('no record')) })).rejects.toThrow('no record');
    expect(readdirSync(root.path('pool'))).toEqual(['base.raw']);
  });

  it('refuses to delete a backing image its qcow2 users name, but never takes a volume recorded raw for a user, whatever its bytes say', async () => {
    const base = root.path('pool', 'base.raw');
    const fake = fakeQemuImg((args): FakeAnswer => {
      const path = args[args.length - 1] as string;
      if (args[0] !== 'info') return { code: 1, stderr: 'unexpected' };
      // Both files "say" they are overlays of base.raw: a raw volume's guest can write such a header.
      return { stdout: JSON.stringify([{ format: 'qcow2', 'virtual-size': 1024, filename: path, 'full-backing-filename': base, 'backing-filename-format': 'raw' }]) };
    });
    const recorded = new Map([['base.raw', 'raw'], ['guest.raw', 'raw']] as const);
    const pool = new DirPool({ name: 'p', type: 'dir', path: root.path('pool') }, { qemuImg: new QemuImg({ spawn: fake.spawn }), secretDir: root.path('secrets'), recordedFormat: (n) => recorded.get(n as 'base.raw') });
    await pool.build();
    for (const f of ['base.raw', 'guest.raw', 'over.qcow2']) writeFileSync(root.path('pool', f), '');
    await expect(pool.delete('base.raw')).rejects.toMatchObject({ code: 'IN_USE', details: { users: ['over.qcow2'] } });
    expect(fake.calls.map((c) => basename(c.args[c.args.length - 1] as string))).toEqual(['over.qcow2']);
    await pool.delete('over.qcow2');
    await pool.delete('base.raw');
    expect(readdirSync(root.path('pool'))).toEqual(['guest.raw']);
  });

  it('recover() removes temp files and stale secret dirs of this pool only', async () => {
    let secretDirOfCall = '';
    const pool = await poolWith(rawWorld((args) => {
      secretDirOfCall = dirname(/file=([^,]+)/.exec(args[args.indexOf('--object') + 1] as string)?.[1] as string);
    }).spawn);
    await pool.create({ name: 'e.qcow2', format: 'qcow2', capacityBytes: 1, encryption: { passphrase: new Uint8Array([1]) } });
    // What a kill -9 during that call would have left:
    mkdirSync(secretDirOfCall);
    writeFileSync(`${secretDirOfCall}/key`, 'x');
    mkdirSync(root.path('secrets', 'someone-else'));
    writeFileSync(root.path('pool', '.vq-0123456789abcdef.tmp'), 'half');
    writeFileSync(root.path('pool', '.keep-me'), 'not ours');
    const report = await pool.recover();
    expect(report.removed.sort()).toEqual(['.vq-0123456789abcdef.tmp', basename(secretDirOfCall)].sort());
    expect(readdirSync(root.path('pool')).sort()).toEqual(['.keep-me', 'e.qcow2']);
    expect(readdirSync(root.path('secrets'))).toEqual(['someone-else']);
  });
});
