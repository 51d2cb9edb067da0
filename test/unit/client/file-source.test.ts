// An upload's file source (client/file-source.ts): the bytes of a file (or a range of it) in
// chunks, read into the memory a stream gives when it gives any, and a plain createReadStream
// recognised and read that way, anything else left to be iterated as it is.
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FILE_CHUNK_BYTES, fileChunks, fileChunksOfReadStream } from '../../../client/file-source.js';

const dir = mkdtempSync(join(tmpdir(), 'vq-filesrc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const data = randomBytes(3 * FILE_CHUNK_BYTES + 12_345);
const path = join(dir, 'f');
writeFileSync(path, data);

async function all(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(Buffer.from(c)); // copied: lent chunks are read into again
  return Buffer.concat(out);
}

describe('fileChunks', () => {
  it('reads the file, or a range of it, into the memory given when given, else into its own', async () => {
    expect((await all(fileChunks(path))).equals(data)).toBe(true);
    expect((await all(fileChunks(path, { start: 10, end: FILE_CHUNK_BYTES + 20 }))).equals(data.subarray(10, FILE_CHUNK_BYTES + 21))).toBe(true);
    const given: Uint8Array[] = [];
    const chunks: Uint8Array[] = [];
    for await (const c of fileChunks(path, { end: data.length - 1 }, undefined, (n) => { if (n < 64 * 1024) return undefined; const m = new Uint8Array(n); given.push(m); return m; })) chunks.push(c);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    // Every whole chunk is the very memory handed out; the short tail (under 64 KiB) its own.
    expect(given).toHaveLength(3);
    chunks.slice(0, 3).forEach((c, i) => { expect(c.buffer).toBe(given[i]?.buffer); expect(c.length).toBe(given[i]?.length); });
  });

  it('maps a failed open through onError', async () => {
    await expect(all(fileChunks(join(dir, 'none'), {}, () => new Error('mapped')))).rejects.toThrow('mapped');
  });
});

describe('fileChunksOfReadStream', () => {
  it('reads an untouched createReadStream(path) itself, range included, and destroys the stream', async () => {
    const plain = createReadStream(path, { highWaterMark: FILE_CHUNK_BYTES });
    const src = fileChunksOfReadStream(plain);
    expect(src).toBeDefined();
    expect(plain.destroyed).toBe(true);
    expect((await all((src as NonNullable<typeof src>)(() => undefined))).equals(data)).toBe(true);
    const ranged = fileChunksOfReadStream(createReadStream(path, { start: 5, end: 99 }));
    expect((await all((ranged as NonNullable<typeof ranged>)(() => undefined))).equals(data.subarray(5, 100))).toBe(true);
  });

  it('leaves alone what may not be the file\'s bytes: an encoding, a descriptor, a custom fs, a stream read from, or no ReadStream', async () => {
    expect(fileChunksOfReadStream(createReadStream(path, { encoding: 'latin1' }))).toBeUndefined();
    const { openSync } = await import('node:fs');
    expect(fileChunksOfReadStream(createReadStream('', { fd: openSync(path, 'r') }))).toBeUndefined();
    const fs = await import('node:fs');
    expect(fileChunksOfReadStream(createReadStream(path, { fs: { open: fs.open, read: fs.read, close: fs.close } }))).toBeUndefined();
    const used = createReadStream(path, { highWaterMark: 1024 });
    await new Promise<void>((resolve) => used.once('data', () => { used.pause(); resolve(); }));
    expect(fileChunksOfReadStream(used)).toBeUndefined();
    used.destroy();
    expect(fileChunksOfReadStream((async function* () { yield data; })())).toBeUndefined();
  });
});
