// Streams into and out of files: the length bound, announced lengths, aborts while the
// producer is stuck, holes for all-zero chunks, and downloads in chunks with progress.
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAllZero, openDownload, writeStream } from '../../../../drivers/storage/transfer.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const MiB = 1024 * 1024;

async function* from(parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

describe('isAllZero', () => {
  it('finds a single non-zero byte anywhere, across its internal blocks', () => {
    expect(isAllZero(new Uint8Array(0))).toBe(true);
    expect(isAllZero(new Uint8Array(3 * MiB + 5))).toBe(true);
    const b = new Uint8Array(3 * MiB + 5);
    b[3 * MiB + 4] = 1;
    expect(isAllZero(b)).toBe(false);
  });
});

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
