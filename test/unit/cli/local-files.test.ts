// The CLI's local files: a download's writer gathers chunks into batched writes, shows nothing
// under the final name until commit (one fsync, rename, directory fsync), and abort leaves nothing.
// Long downloads fdatasync in the background as they go, so the commit's fsync is short.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { localFiles } from '../../../cli/local-files.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const MiB = 1024 * 1024;

/** FileHandle's prototype (Node does not export the class), to watch the writer's background fdatasyncs; leaves a file `probe`. */
async function fileHandleProto(root: TmpRoot): Promise<{ datasync: () => Promise<void> }> {
  const probe = await open(root.path('probe'), 'w');
  await probe.close();
  return Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
}

describe('localFiles().create', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot('vq-lf-'); });
  afterEach(() => root.remove());

  it('writes every chunk in order across batches and names the file only at commit', async () => {
    const data = randomBytes(19 * MiB + 12345);
    const out = await localFiles(root.dir).create('out.img');
    // Uneven chunks, each a fresh buffer as a socket gives them.
    for (let off = 0, n = 1; off < data.length; off += n, n = (n * 7919) % MiB + 1) await out.write(Buffer.from(data.subarray(off, off + n)));
    expect(readdirSync(root.dir)).not.toContain('out.img');
    await out.commit();
    expect(readdirSync(root.dir)).toEqual(['out.img']);
    expect(readFileSync(root.path('out.img')).equals(data)).toBe(true);
  });

  it('is done with each chunk once write() settles: the producer may reuse it (a download recycles its frames)', async () => {
    const data = randomBytes(5 * MiB + 4321);
    const out = await localFiles(root.dir).create('reused.img');
    const big = Buffer.allocUnsafe(MiB);
    const small = Buffer.allocUnsafe(1000);
    for (let off = 0, i = 0; off < data.length; i++) {
      const into = i % 3 === 2 ? small : big;
      const n = Math.min(into.length, data.length - off);
      data.copy(into, 0, off, off + n);
      await out.write(into.subarray(0, n));
      into.fill(0xee);
      off += n;
    }
    await out.commit();
    expect(readFileSync(root.path('reused.img')).equals(data)).toBe(true);
  });

  it('leaves nothing behind on abort, even with a batch in flight', async () => {
    const out = await localFiles(root.dir).create('gone.img');
    for (let i = 0; i < 9; i += 1) await out.write(randomBytes(MiB));
    await out.abort();
    expect(readdirSync(root.dir)).toEqual([]);
  });

  it('fdatasyncs behind a long download while it goes on, and still writes every byte', async () => {
    const synced: number[] = [];
    let written = 0;
    const proto = await fileHandleProto(root);
    const real = proto.datasync;
    const spy = vi.spyOn(proto, 'datasync').mockImplementation(function (this: unknown) { synced.push(written); return real.call(this); });
    try {
      const chunk = randomBytes(MiB);
      const out = await localFiles(root.dir).create('long.img');
      for (let i = 0; i < 140; i += 1) { await out.write(chunk); written += MiB; }
      // One after 64 MiB, a second after 128 MiB unless the first still runs: during the download, not at its end.
      expect(synced.length).toBeGreaterThanOrEqual(1);
      expect(synced.length).toBeLessThanOrEqual(2);
      expect(synced[0]).toBeGreaterThanOrEqual(63 * MiB);
      expect(synced[0]).toBeLessThan(70 * MiB);
      await out.commit();
      const got = readFileSync(root.path('long.img'));
      expect(got.length).toBe(140 * MiB);
      expect(got.subarray(139 * MiB).equals(chunk)).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });

  it('leaves nothing behind on abort with a background fdatasync in flight', async () => {
    let release = (): void => undefined;
    const spy = vi.spyOn(await fileHandleProto(root), 'datasync').mockImplementation(() => new Promise<void>((r) => { release = r; }));
    try {
      const out = await localFiles(root.dir).create('cut.img');
      const chunk = randomBytes(MiB);
      for (let i = 0; i < 65; i += 1) await out.write(chunk);
      expect(spy).toHaveBeenCalledTimes(1);
      const aborted = out.abort();
      setTimeout(() => release(), 20);
      await aborted;
      expect(readdirSync(root.dir)).toEqual(['probe']);
    } finally {
      spy.mockRestore();
    }
  });

  it('fails the download when a background fdatasync fails, and leaves nothing on abort', async () => {
    const spy = vi.spyOn(await fileHandleProto(root), 'datasync').mockRejectedValue(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
    try {
      const out = await localFiles(root.dir).create('bad.img');
      const chunk = randomBytes(MiB);
      const run = async (): Promise<void> => { for (let i = 0; i < 80; i += 1) await out.write(chunk); await out.commit(); };
      await expect(run()).rejects.toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringContaining('bad.img') });
      await out.abort();
      expect(readdirSync(root.dir)).toEqual(['probe']);
    } finally {
      spy.mockRestore();
    }
  });

  it('refuses to write into a directory that does not exist, with an error naming the path', async () => {
    await expect(localFiles(root.dir).create('no/such/dir.img')).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('no/such/dir.img') });
  });
});

describe('localFiles().read', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot('vq-lf-'); });
  afterEach(() => root.remove());

  it('lent: yields the file in 1 MiB chunks from two buffers in turn, each whole until the next is asked for', async () => {
    const data = randomBytes(5 * MiB + 77);
    writeFileSync(root.path('in.img'), data);
    const copies: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    for await (const c of localFiles(root.dir).read('in.img', { lent: true })) {
      // The read ahead runs meanwhile: it must not land in the chunk in hand.
      await new Promise((r) => setTimeout(r, 5));
      copies.push(Buffer.from(c));
      memory.add(c.buffer);
    }
    expect(copies.map((c) => c.length)).toEqual([MiB, MiB, MiB, MiB, MiB, 77]);
    expect(memory.size).toBe(2);
    expect(Buffer.concat(copies).equals(data)).toBe(true);
  });

  it('lent: a missing file is INVALID_ARG naming it', async () => {
    const read = async (): Promise<void> => { for await (const _ of localFiles(root.dir).read('nope.img', { lent: true })) { /* nothing */ } };
    await expect(read()).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('nope.img') });
  });
});
