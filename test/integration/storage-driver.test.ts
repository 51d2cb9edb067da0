// The dir pool driver with real qemu-img under a temporary root: create (raw, qcow2, backing,
// LUKS), thin and full clones that show their source's data, resize, delete, upload/download,
// and every bad input the issue lists; each refusal leaves the pool as it was.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtqError } from '../../protocol/errors.js';
import { DirPool } from '../../drivers/storage/dir-pool.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';

const MiB = 1024 * 1024;

/** The error `p` rejects with (fails the test when it resolves). */
async function failure(p: Promise<unknown>): Promise<VirtqError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof VirtqError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

/** `bytes` as a stream of `chunk`-sized pieces. */
async function* chunks(bytes: Uint8Array, chunk = 256 * 1024): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < bytes.length; off += chunk) yield bytes.subarray(off, off + chunk);
}

/** Everything a download yields, concatenated. */
async function drain(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

/** qemu-img's verdict on two images having the same guest-visible content. */
const sameContent = (a: string, b: string): boolean => spawnSync('qemu-img', ['compare', '-q', a, b]).status === 0;

describe('DirPool (real qemu-img)', () => {
  let root: TmpRoot;
  let pool: DirPool;
  let secretDir: string;
  const files = (): string[] => readdirSync(pool.config.path).sort();
  /** What a pool with an empty info cache (qemu-img asked afresh) says of `name`. */
  const cold = (name: string): Promise<unknown> => new DirPool(pool.config, { secretDir }).volumeInfo(name);

  beforeEach(async () => {
    root = tmpRoot('vq-stor-');
    secretDir = root.path('secrets');
    pool = new DirPool({ name: 'default', type: 'dir', path: root.path('pool') }, { secretDir });
    await pool.build();
  });
  afterEach(() => { root.remove(); });

  it('builds the pool directory 0711 and reports its filesystem from statfs', async () => {
    expect(statSync(pool.config.path).mode & 0o777).toBe(0o711);
    const info = await pool.info();
    expect(info.capacity).toBeGreaterThan(0);
    expect(info.available).toBeLessThanOrEqual(info.capacity);
    expect(info.allocation).toBeLessThanOrEqual(info.capacity);
  });

  it('creates raw and qcow2 volumes, 0600, and lists them with format and capacity', async () => {
    const raw = await pool.create({ name: 'a.raw', format: 'raw', capacityBytes: 8 * MiB });
    const q = await pool.create({ name: 'b.qcow2', format: 'qcow2', capacityBytes: 16 * MiB });
    expect(raw).toMatchObject({ name: 'a.raw', format: 'raw', capacity: 8 * MiB, backingChain: [], encrypted: false, path: root.path('pool', 'a.raw') });
    expect(q).toMatchObject({ name: 'b.qcow2', format: 'qcow2', capacity: 16 * MiB, encrypted: false });
    expect(statSync(raw.path).mode & 0o777).toBe(0o600);
    expect(await cold('a.raw')).toEqual(raw);
    expect(await cold('b.qcow2')).toEqual(q);
    const odd = await pool.create({ name: 'odd.qcow2', format: 'qcow2', capacityBytes: 1000 });
    expect(odd.capacity).toBe(1024);
    expect(await cold('odd.qcow2')).toEqual(odd);
    await pool.delete('odd.qcow2');
    expect((await pool.list()).map((v) => v.name)).toEqual(['a.raw', 'b.qcow2']);
    expect(files()).toEqual(['a.raw', 'b.qcow2']);
  });

  it('refuses to create over an existing file (a volume or anything else), leaving it untouched', async () => {
    await pool.create({ name: 'a.raw', format: 'raw', capacityBytes: MiB });
    expect((await failure(pool.create({ name: 'a.raw', format: 'qcow2', capacityBytes: MiB }))).code).toBe('ALREADY_EXISTS');
    writeFileSync(root.path('pool', 'notes.txt'), 'keep me');
    expect((await failure(pool.create({ name: 'notes.txt', format: 'raw', capacityBytes: MiB }))).code).toBe('ALREADY_EXISTS');
    expect(readFileSync(root.path('pool', 'notes.txt'), 'utf8')).toBe('keep me');
    expect((await pool.volumeInfo('a.raw')).format).toBe('raw');
  });

  it('creates a qcow2 over a backing volume and reports the chain; a missing backing is NO_STORAGE_VOL', async () => {
    const base = await pool.create({ name: 'base.qcow2', format: 'qcow2', capacityBytes: 4 * MiB });
    const top = await pool.create({ name: 'top.qcow2', format: 'qcow2', capacityBytes: 8 * MiB, backing: { path: base.path, format: 'qcow2' } });
    expect(top.backingChain).toEqual([{ path: base.path, format: 'qcow2' }]);
    expect(top.capacity).toBe(8 * MiB);
    const err = await failure(pool.create({ name: 'x.qcow2', format: 'qcow2', capacityBytes: MiB, backing: { path: root.path('nope.qcow2'), format: 'qcow2' } }));
    expect(err.code).toBe('NO_STORAGE_VOL');
    expect((await failure(pool.create({ name: 'r.raw', format: 'raw', capacityBytes: MiB, backing: { path: base.path, format: 'qcow2' } }))).code).toBe('INVALID_ARG');
    expect(files()).toEqual(['base.qcow2', 'top.qcow2']);
  });

  it('clones thin and full; both show the source data, and a full clone of the overlay is standalone', async () => {
    const src = await pool.create({ name: 'src.raw', format: 'raw', capacityBytes: 4 * MiB });
    const data = randomBytes(3 * MiB);
    writeFileSync(src.path, data, { flag: 'r+' });
    const thin = await pool.clone('src.raw', 'thin.qcow2', { mode: 'thin' });
    expect(thin).toMatchObject({ format: 'qcow2', capacity: 4 * MiB, backingChain: [{ path: src.path, format: 'raw' }] });
    expect(sameContent(src.path, thin.path)).toBe(true);
    const thinner = await pool.clone('thin.qcow2', 'thinner.qcow2', { mode: 'thin' });
    expect(thinner.backingChain).toEqual([{ path: thin.path, format: 'qcow2' }, { path: src.path, format: 'raw' }]);
    expect(await cold('thin.qcow2')).toEqual(thin);
    expect(await cold('thinner.qcow2')).toEqual(thinner);
    const progress: Array<[number, number]> = [];
    const full = await pool.clone('src.raw', 'full.raw', { mode: 'full' }, { onProgress: (d, t) => progress.push([d, t]) });
    expect(full).toMatchObject({ format: 'raw', capacity: 4 * MiB, backingChain: [] });
    expect(readFileSync(full.path).subarray(0, data.length).equals(data)).toBe(true);
    expect(progress.at(-1)).toEqual([4 * MiB, 4 * MiB]);
    const flat = await pool.clone('thin.qcow2', 'flat.qcow2', { mode: 'full' });
    expect(flat).toMatchObject({ format: 'qcow2', backingChain: [] });
    expect(sameContent(src.path, flat.path)).toBe(true);
    expect((await failure(pool.clone('src.raw', 'thin.qcow2', { mode: 'thin' }))).code).toBe('ALREADY_EXISTS');
    expect((await failure(pool.clone('nope.raw', 'n2.raw', { mode: 'full' }))).code).toBe('NO_STORAGE_VOL');
  });

  it('keeps holes in a full clone: a mostly empty 1 GiB volume stays a few MiB allocated, raw and qcow2 alike', { timeout: 180_000 }, async () => {
    const GiB = 1024 * MiB;
    const src = await pool.create({ name: 'big.raw', format: 'raw', capacityBytes: GiB });
    const data = randomBytes(4 * MiB);
    writeFileSync(src.path, data, { flag: 'r+' });
    const fd = openSync(src.path, 'r+');
    try { writeSync(fd, data, 0, data.length, 700 * MiB); } finally { closeSync(fd); }
    const progress: Array<[number, number]> = [];
    const copy = await pool.clone('big.raw', 'copy.raw', { mode: 'full' }, { onProgress: (d, t) => progress.push([d, t]) });
    expect(statSync(copy.path).size).toBe(GiB);
    expect(statSync(copy.path).blocks * 512).toBeLessThanOrEqual(statSync(src.path).blocks * 512 + MiB);
    expect(copy.allocation).toBeLessThan(16 * MiB);
    expect(progress.at(-1)).toEqual([GiB, GiB]);
    expect(sameContent(src.path, copy.path)).toBe(true); // by block status: no 1 GiB reads
    // A self-contained qcow2 put in the pool by hand: copied byte for byte, still small.
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', src.path, `${pool.config.path}/q.qcow2`]);
    const q = await pool.clone('q.qcow2', 'qcopy.qcow2', { mode: 'full' });
    expect(q).toMatchObject({ format: 'qcow2', capacity: GiB, backingChain: [] });
    expect(q.allocation).toBeLessThan(16 * MiB);
    expect(sameContent(src.path, q.path)).toBe(true);
  });

  it('full-clones a self-contained qcow2 byte for byte (a valid independent image) and flattens anything else', async () => {
    const data = randomBytes(3 * MiB);
    const src = await pool.create({ name: 'd.raw', format: 'raw', capacityBytes: 4 * MiB });
    writeFileSync(src.path, data, { flag: 'r+' });
    const q = await pool.clone('d.raw', 'q.qcow2', { mode: 'thin' });
    const base = await pool.clone('q.qcow2', 'base.qcow2', { mode: 'full' }); // a chain: flattened by convert
    expect(base).toMatchObject({ format: 'qcow2', backingChain: [] });
    const copy = await pool.clone('base.qcow2', 'copy.qcow2', { mode: 'full' });
    expect(copy).toMatchObject({ format: 'qcow2', capacity: 4 * MiB, backingChain: [], encrypted: false });
    expect(readFileSync(copy.path).equals(readFileSync(base.path))).toBe(true);
    expect(spawnSync('qemu-img', ['check', '-q', copy.path]).status).toBe(0);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', copy.path], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(info['backing-filename']).toBeUndefined();
    expect(await cold('copy.qcow2')).toEqual(copy);
    // Independent: the source's data is gone and the copy still holds it.
    await pool.delete('base.qcow2');
    expect(sameContent(src.path, copy.path)).toBe(true);
    // An internal snapshot is something convert drops: such a source is converted, not copied.
    execFileSync('qemu-img', ['snapshot', '-c', 's1', copy.path]);
    const again = await pool.clone('copy.qcow2', 'again.qcow2', { mode: 'full' });
    expect(readFileSync(again.path).equals(readFileSync(copy.path))).toBe(false);
    expect(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', again.path], { encoding: 'utf8' })).snapshots).toBeUndefined();
    expect(sameContent(src.path, again.path)).toBe(true);
  });

  it('grows, refuses to shrink without shrink (naming both sizes), and shrinks when allowed', async () => {
    await pool.create({ name: 'v.qcow2', format: 'qcow2', capacityBytes: 8 * MiB });
    expect((await pool.resize('v.qcow2', 16 * MiB, { shrink: false })).capacity).toBe(16 * MiB);
    const err = await failure(pool.resize('v.qcow2', 4 * MiB, { shrink: false }));
    expect(err.code).toBe('INVALID_ARG');
    expect(err.details).toMatchObject({ capacityBytes: 4 * MiB, currentBytes: 16 * MiB });
    expect(err.message).toContain(String(16 * MiB));
    expect((await pool.volumeInfo('v.qcow2')).capacity).toBe(16 * MiB);
    expect((await pool.resize('v.qcow2', 4 * MiB, { shrink: true })).capacity).toBe(4 * MiB);
    await pool.create({ name: 'r.raw', format: 'raw', capacityBytes: 8 * MiB });
    expect((await pool.resize('r.raw', 2 * MiB, { shrink: true })).capacity).toBe(2 * MiB);
  });

  it('deletes a volume, refuses one another volume reads through, and says NO_STORAGE_VOL for a missing one', async () => {
    await pool.create({ name: 'base.raw', format: 'raw', capacityBytes: MiB });
    await pool.clone('base.raw', 'over.qcow2', { mode: 'thin' });
    const err = await failure(pool.delete('base.raw'));
    expect(err.code).toBe('IN_USE');
    expect(err.message).toContain('"over.qcow2"');
    await pool.delete('over.qcow2');
    await pool.delete('base.raw');
    expect(files()).toEqual([]);
    expect((await failure(pool.delete('base.raw'))).code).toBe('NO_STORAGE_VOL');
  });

  it('uploads and downloads the same bytes (zero chunks kept as holes), reporting progress', async () => {
    await pool.create({ name: 'u.raw', format: 'raw', capacityBytes: 8 * MiB });
    const data = Buffer.concat([randomBytes(MiB), Buffer.alloc(4 * MiB), randomBytes(MiB + 123)]);
    let up = 0;
    const info = await pool.upload('u.raw', chunks(data), { onProgress: (d) => { up = d; } }, { lengthBytes: data.length });
    expect(up).toBe(data.length);
    expect(info.allocation).toBeLessThan(3 * MiB);
    let down: [number, number] = [0, 0];
    const stream = await pool.download('u.raw', { onProgress: (d, t) => { down = [d, t]; } });
    expect(stream.totalBytes).toBe(data.length);
    expect((await drain(stream)).equals(data)).toBe(true);
    expect(down).toEqual([data.length, data.length]);
    expect(files()).toEqual(['u.raw']);
  });

  it('refuses an upload longer than the volume and leaves the volume and the directory unchanged', async () => {
    const vol = await pool.create({ name: 'u.raw', format: 'raw', capacityBytes: MiB });
    const before = randomBytes(MiB);
    writeFileSync(vol.path, before);
    const err = await failure(pool.upload('u.raw', chunks(randomBytes(2 * MiB))));
    expect(err.code).toBe('INVALID_ARG');
    expect(readFileSync(vol.path).equals(before)).toBe(true);
    expect(files()).toEqual(['u.raw']);
    expect((await failure(pool.upload('u.raw', chunks(Buffer.alloc(0)), {}, { lengthBytes: 2 * MiB }))).code).toBe('INVALID_ARG');
  });

  it('rolls back an upload aborted mid-way, one whose stream fails and one that ends short', async () => {
    const vol = await pool.create({ name: 'u.raw', format: 'raw', capacityBytes: 4 * MiB });
    const before = randomBytes(4 * MiB);
    writeFileSync(vol.path, before);
    const ac = new AbortController();
    let sent = 0;
    async function* stalls(): AsyncGenerator<Uint8Array> {
      yield randomBytes(MiB);
      sent += 1;
      yield randomBytes(MiB);
      sent += 1;
      await new Promise(() => undefined); // the peer went silent
    }
    const aborted = pool.upload('u.raw', stalls(), { signal: ac.signal, onProgress: (d) => { if (d >= 2 * MiB) ac.abort(); } });
    expect((await failure(aborted)).code).toBe('OPERATION_ABORTED');
    expect(sent).toBe(2); // the producer was stuck when the abort came
    async function* breaks(): AsyncGenerator<Uint8Array> {
      yield randomBytes(MiB);
      throw new Error('client hung up');
    }
    await expect(pool.upload('u.raw', breaks())).rejects.toThrow('client hung up');
    const short = await failure(pool.upload('u.raw', chunks(randomBytes(MiB)), {}, { lengthBytes: 3 * MiB }));
    expect(short.code).toBe('OPERATION_ABORTED');
    expect(readFileSync(vol.path).equals(before)).toBe(true);
    expect(files()).toEqual(['u.raw']);
  });

  it('refuses bad volume names with INVALID_ARG', async () => {
    for (const name of ['a/b', '..', '.', 'a\0b', '.hidden', '-x', '', 'x'.repeat(256), 'a b', '../escape']) {
      expect((await failure(pool.create({ name, format: 'raw', capacityBytes: MiB }))).code, JSON.stringify(name)).toBe('INVALID_ARG');
      expect((await failure(pool.volumeInfo(name))).code).toBe('INVALID_ARG');
    }
    expect((await pool.create({ name: 'x'.repeat(255), format: 'raw', capacityBytes: 0 })).capacity).toBe(0);
    expect(readdirSync(root.dir).sort()).toEqual(['pool']);
  });

  it('refuses a pool path that is a file, a device or a symlink, and a missing one', async () => {
    writeFileSync(root.path('file'), '');
    symlinkSync(pool.config.path, root.path('link'));
    const at = (path: string): DirPool => new DirPool({ name: 'p', type: 'dir', path });
    expect((await failure(at(root.path('file')).check())).code).toBe('INVALID_ARG');
    expect((await failure(at(root.path('link')).list())).code).toBe('INVALID_ARG');
    expect((await failure(at('/dev/null').check())).message).toContain('character device');
    expect((await failure(at(root.path('missing')).check())).code).toBe('NO_STORAGE_POOL');
    expect(() => at('relative/dir')).toThrow(VirtqError);
  });

  it('follows a volume symlink inside the pool and refuses one pointing outside', async () => {
    const vol = await pool.create({ name: 'real.raw', format: 'raw', capacityBytes: MiB });
    writeFileSync(root.path('outside.raw'), Buffer.alloc(MiB));
    symlinkSync(root.path('outside.raw'), root.path('pool', 'escape.raw'));
    symlinkSync('real.raw', root.path('pool', 'alias.raw'));
    mkdirSync(root.path('pool', 'subdir'));
    expect(await pool.path('alias.raw')).toBe(vol.path);
    const err = await failure(pool.path('escape.raw'));
    expect(err.code).toBe('INVALID_ARG');
    expect(err.message).toContain('outside');
    expect((await failure(pool.download('escape.raw'))).code).toBe('INVALID_ARG');
    expect((await pool.list()).map((v) => v.name)).toEqual(['alias.raw', 'real.raw']);
  });

  it('makes a LUKS qcow2 whose passphrase unlocks it (a wrong one does not) and leaves no secret file', async () => {
    const passphrase = new TextEncoder().encode('correct horse');
    const vol = await pool.create({ name: 'enc.qcow2', format: 'qcow2', capacityBytes: 8 * MiB, encryption: { passphrase, iterTimeMs: 10 } });
    expect(vol).toMatchObject({ format: 'qcow2', encrypted: true });
    expect(await cold('enc.qcow2')).toEqual(vol);
    expect((await pool.list())[0]?.encrypted).toBe(true);
    await pool.checkPassphrase('enc.qcow2', passphrase);
    expect((await failure(pool.checkPassphrase('enc.qcow2', new TextEncoder().encode('wrong')))).code).toBe('INVALID_ARG');
    expect((await failure(pool.resize('enc.qcow2', 16 * MiB, { shrink: false }))).code).toBe('INVALID_ARG');
    expect((await pool.resize('enc.qcow2', 16 * MiB, { shrink: false, encryption: { passphrase } })).capacity).toBe(16 * MiB);
    expect((await failure(pool.clone('enc.qcow2', 'clear.qcow2', { mode: 'thin' }))).code).toBe('OPERATION_INVALID');
    const copy = await pool.clone('enc.qcow2', 'copy.qcow2', { mode: 'full' });
    expect(copy.encrypted).toBe(true);
    await pool.checkPassphrase('copy.qcow2', passphrase);
    expect(readdirSync(secretDir)).toEqual([]);
    expect(execFileSync('qemu-img', ['info', vol.path], { encoding: 'utf8' })).toContain('encrypted: yes');
  });
});
