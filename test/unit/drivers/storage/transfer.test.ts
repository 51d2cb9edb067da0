// Streams into and out of files: the length bound, announced lengths, aborts while the
// producer is stuck, holes for all-zero runs, O_DIRECT writes and their fallback, and downloads in chunks with progress.
import { randomBytes } from 'node:crypto';
import { constants, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOLE_GRAIN, StagedWriter, WRITE_BATCH_BYTES } from '../../../../drivers/storage/staged-writer.js';
import { openDownload, writeStream } from '../../../../drivers/storage/transfer.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const MiB = 1024 * 1024;

async function* from(parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

describe('writeStream', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => { root.remove(); });

  const into = async (data: AsyncIterable<Uint8Array>, maxBytes: number, extra: { lengthBytes?: number; signal?: AbortSignal; progress?: number[] } = {}): Promise<number> => {
    const fh = await open(root.path('f'), 'w');
    try {
      return await writeStream(fh, data, { maxBytes, lengthBytes: extra.lengthBytes, what: 'uploading' }, { signal: extra.signal, onProgress: (d) => extra.progress?.push(d) });
    } finally {
      await fh.close();
    }
  };

  it('writes every byte in order, leaves zero chunks as holes and reports progress per chunk', async () => {
    const parts = [randomBytes(MiB), new Uint8Array(8 * MiB), randomBytes(100), new Uint8Array(2 * MiB)];
    const progress: number[] = [];
    const n = await into(from(parts), 20 * MiB, { progress });
    const all = Buffer.concat(parts);
    expect(n).toBe(all.length);
    expect(readFileSync(root.path('f')).equals(all)).toBe(true);
    expect(statSync(root.path('f')).blocks * 512).toBeLessThan(2 * MiB);
    expect(progress).toEqual([MiB, 9 * MiB, 9 * MiB + 100, all.length]);
  });

  it('takes chunks read straight into its staging buffers (claim) without copying them, in order with copied ones, the socket running ahead', async () => {
    // Plays a connection that reads up to `ahead` chunks before the consumer asks for them: each
    // large one into the memory the writer gives for its stream offset, when it gives any.
    const data = randomBytes(WRITE_BATCH_BYTES * 3 + 54_321);
    const sizes = [MiB, MiB, 70_000, MiB, 100, 3 * MiB + 5, MiB, 65_536];
    const parts: Buffer[] = [];
    for (let at = 0, i = 0; at < data.length; i++) { const n = sizes[i % sizes.length] as number; parts.push(data.subarray(at, at + n)); at += n; }
    for (const ahead of [1, 3, 12]) {
      const fh = await open(root.path('p'), 'w');
      const writer = new StagedWriter({ fh, direct: false });
      let offset = 0;
      let copiedBySocket = 0;
      try {
        for (let i = 0; i < parts.length; i += ahead) {
          const read = parts.slice(i, i + ahead).map((p) => {
            const mem = p.length >= 64 * 1024 ? writer.claim(offset, p.length) : undefined;
            offset += p.length;
            if (mem === undefined) { copiedBySocket += p.length; return Buffer.from(p); }
            mem.set(p);
            return mem;
          });
          for (const c of read) await writer.add(c);
        }
        await writer.finish();
      } finally {
        await fh.close();
      }
      expect(readFileSync(root.path('p')).equals(data)).toBe(true);
      // What the socket placed was not copied again; most large chunks were placed (not one
      // straddling two buffers, nor one past the buffer after the one filling).
      expect(writer.copied).toBe(copiedBySocket);
      expect(copiedBySocket).toBeLessThan(data.length / 2);
    }
  });

  it('hands its readInto sink to the stream source while writing, and takes it back after', async () => {
    const seen: Array<'set' | 'unset'> = [];
    let given: ((offset: number, n: number) => Uint8Array | undefined) | undefined;
    const fh = await open(root.path('q'), 'w');
    try {
      const n = await writeStream(fh, from([randomBytes(MiB)]), { maxBytes: 2 * MiB, what: 'uploading', readInto: (s) => { seen.push(s === undefined ? 'unset' : 'set'); given ??= s; } });
      expect(n).toBe(MiB);
    } finally {
      await fh.close();
    }
    expect(seen).toEqual(['set', 'unset']);
    // Nothing past the volume's size is placed.
    expect(given?.(MiB + 1, MiB)).toBeUndefined();
  });

  it('writes through O_DIRECT in odd-sized chunks across its staging buffers, ending unaligned', async () => {
    // /tmp is ext4 on the machines this runs on; a filesystem refusing O_DIRECT fails the open here.
    const path = root.path('d');
    const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT, 0o600);
    const data = randomBytes(WRITE_BATCH_BYTES * 3 + 12_345);
    const parts: Uint8Array[] = [];
    for (let at = 0, i = 0; at < data.length; i++) {
      const n = [1, 65_536, 999_999, 4096, 3 * MiB + 7][i % 5] as number;
      parts.push(data.subarray(at, at + n));
      at += n;
    }
    try {
      const n = await writeStream({ fh, direct: true }, from(parts), { maxBytes: 40 * MiB, lengthBytes: data.length, what: 'uploading' });
      expect(n).toBe(data.length);
    } finally {
      await fh.close();
    }
    expect(readFileSync(path).equals(data)).toBe(true);
  });

  it('leaves aligned zero runs inside chunks as holes, and writes the rest', async () => {
    const chunk = randomBytes(4 * MiB);
    chunk.fill(0, MiB, 3 * MiB); // 2 MiB of zeros inside one chunk
    const tail = Buffer.alloc(HOLE_GRAIN + 10);
    tail[5] = 7; // a grain with one byte set is written whole
    const n = await into(from([chunk, tail]), 8 * MiB);
    expect(n).toBe(chunk.length + tail.length);
    expect(readFileSync(root.path('f')).equals(Buffer.concat([chunk, tail]))).toBe(true);
    const allocated = statSync(root.path('f')).blocks * 512;
    expect(allocated).toBeGreaterThanOrEqual(2 * MiB + HOLE_GRAIN);
    expect(allocated).toBeLessThan(2 * MiB + 2 * HOLE_GRAIN + 64 * 1024);
  });

  it('goes on without O_DIRECT when a direct write is refused with EINVAL', async () => {
    const path = root.path('e');
    const real = await open(path, 'w');
    let refused = 0;
    // A handle standing for a direct one on a filesystem with a larger alignment: every write refused.
    const directFh = new Proxy(real, {
      get: (t, k) => (k === 'write' ? () => { refused++; return Promise.reject(Object.assign(new Error('EINVAL'), { code: 'EINVAL' })); } : Reflect.get(t, k, t) as unknown),
    });
    const data = randomBytes(WRITE_BATCH_BYTES * 2 + 100);
    try {
      const n = await writeStream({ fh: directFh, direct: true, reopenBuffered: () => open(path, 'r+') }, from([data]), { maxBytes: data.length, what: 'uploading' });
      expect(n).toBe(data.length);
    } finally {
      await real.close();
    }
    expect(refused).toBeGreaterThan(0);
    expect(readFileSync(path).equals(data)).toBe(true);
  });

  it('refuses a stream longer than the bound or than announced with INVALID_ARG', async () => {
    await expect(into(from([randomBytes(MiB), randomBytes(1)]), MiB)).rejects.toMatchObject({ code: 'INVALID_ARG', details: { maxBytes: MiB } });
    await expect(into(from([randomBytes(10)]), MiB, { lengthBytes: 5 })).rejects.toMatchObject({ code: 'INVALID_ARG' });
  });

  it('fails a stream that ends short of its announced length with OPERATION_ABORTED', async () => {
    await expect(into(from([randomBytes(10)]), MiB, { lengthBytes: 11 })).rejects.toMatchObject({ code: 'OPERATION_ABORTED', message: expect.stringContaining('10 of 11') });
  });

  it('aborts while the producer is stuck, and tells the producer to stop', async () => {
    const ac = new AbortController();
    let returned = false;
    const stuck: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        next: () => new Promise<IteratorResult<Uint8Array>>(() => { ac.abort(); }),
        return: () => { returned = true; return Promise.resolve({ done: true, value: undefined }); },
      }),
    };
    await expect(into(stuck, MiB, { signal: ac.signal })).rejects.toMatchObject({ code: 'OPERATION_ABORTED' });
    expect(returned).toBe(true);
  });

  it('passes a producer error through', async () => {
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield randomBytes(5);
      throw new Error('peer reset');
    }
    await expect(into(broken(), MiB)).rejects.toThrow('peer reset');
  });
});

describe('openDownload', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => { root.remove(); });

  it('yields the file in fresh chunks with progress, and the file as it was when opened', async () => {
    const data = randomBytes(2 * MiB + 7);
    writeFileSync(root.path('f'), data);
    const progress: Array<[number, number]> = [];
    const dl = await openDownload(root.path('f'), 'downloading', { onProgress: (d, t) => progress.push([d, t]) }, {}, MiB);
    writeFileSync(root.path('f.new'), 'other');
    renameSync(root.path('f.new'), root.path('f'));
    const chunks: Uint8Array[] = [];
    for await (const c of dl) chunks.push(c);
    expect(chunks.map((c) => c.length)).toEqual([MiB, MiB, 7]);
    expect(new Set(chunks.map((c) => c.buffer)).size).toBe(3);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(progress.at(-1)).toEqual([data.length, data.length]);
  });

  it('yields every byte from two buffers in turn with reuseBuffers, to a consumer that copies each chunk', async () => {
    const data = randomBytes(5 * MiB + 3);
    writeFileSync(root.path('f'), data);
    const dl = await openDownload(root.path('f'), 'downloading', {}, { reuseBuffers: true }, MiB);
    const copies: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    for await (const c of dl) {
      copies.push(Buffer.from(c));
      buffers.add(c.buffer);
    }
    expect(copies.map((c) => c.length)).toEqual([MiB, MiB, MiB, MiB, MiB, 3]);
    expect(buffers.size).toBeLessThanOrEqual(2);
    expect(Buffer.concat(copies).equals(data)).toBe(true);
  });

  it('stops with OPERATION_ABORTED when its signal aborts', async () => {
    writeFileSync(root.path('f'), randomBytes(3 * MiB));
    const ac = new AbortController();
    const dl = await openDownload(root.path('f'), 'downloading', { signal: ac.signal }, {}, MiB);
    const read = async (): Promise<number> => {
      let n = 0;
      for await (const c of dl) {
        n += c.length;
        ac.abort();
      }
      return n;
    };
    await expect(read()).rejects.toMatchObject({ code: 'OPERATION_ABORTED' });
  });

  it('yields nothing for an empty file', async () => {
    writeFileSync(root.path('f'), '');
    const dl = await openDownload(root.path('f'), 'downloading');
    const chunks: Uint8Array[] = [];
    for await (const c of dl) chunks.push(c);
    expect(chunks).toEqual([]);
    expect(dl.totalBytes).toBe(0);
  });
});
