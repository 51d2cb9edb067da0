// A local file's bytes as an upload's source, read the cheap way: 1 MiB chunks into two buffers
// used in turn, one read ahead. A fresh 1 MiB buffer per chunk (what `fs.createReadStream` gives)
// costs a page fault per 4 KiB and GC work: the client's CPU of a 1 GiB upload from one was ~3x
// that of these reads (bench/RESULTS.md, issue #13 sessions 13 and 15). StorageClient.upload
// recognises a plain `fs.createReadStream(path)` and reads its file this way instead; the CLI's
// vol-upload reads this way too.
import nodeFs, { ReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

/** Bytes of one chunk: one upload frame. */
export const FILE_CHUNK_BYTES = 1024 * 1024;

/** The part of a file to read: bytes start..end, both inclusive (fs.createReadStream's meaning). */
export interface FileRange {
  start?: number;
  end?: number;
}

/** Memory for a chunk of `n` bytes inside the frame that will send it (TransferStream.chunkBuffer), or undefined. */
export type ChunkMemory = (n: number) => Uint8Array | undefined;

/**
 * The bytes of `path` (from `range.start`, through `range.end`) in chunks of at most
 * FILE_CHUNK_BYTES, one read ahead. Each chunk is read into the memory `bufferFor` gives (the
 * frame that sends it: no copy), or else lent: chunk k is in buffer k % 2 and is read into again
 * for chunk k + 2, which is read once the consumer has asked for chunk k + 1, so a consumer must
 * be done with a chunk (sendUpload frames it at once) before asking for the next. `onError`
 * maps a failed open or read (the CLI names the file in its own words).
 */
export async function* fileChunks(path: string, range: FileRange = {}, onError: (err: unknown) => unknown = (e) => e, bufferFor?: ChunkMemory): AsyncGenerator<Uint8Array> {
  const fh = await open(path, 'r').catch((err: unknown) => { throw onError(err); });
  try {
    const ring = [Buffer.allocUnsafeSlow(FILE_CHUNK_BYTES), Buffer.allocUnsafeSlow(FILE_CHUNK_BYTES)];
    const last = range.end ?? Infinity;
    let position = range.start ?? 0;
    const read = async (k: number): Promise<Uint8Array> => {
      const want = Math.min(FILE_CHUNK_BYTES, last + 1 - position);
      const buf: Uint8Array = (want > 0 ? bufferFor?.(want) : undefined) ?? (ring[k % 2] as Buffer).subarray(0, Math.max(0, want));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      position += got;
      return buf.subarray(0, got);
    };
    let k = 0;
    let next = read(k);
    for (;;) {
      const chunk = await next.catch((err: unknown) => { throw onError(err); });
      if (chunk.length === 0) return;
      next = read(++k);
      next.catch(() => undefined); // awaited on the next turn; the consumer may stop first
      yield chunk;
    }
  } finally {
    await fh.close();
  }
}

/** What a ReadStream made by a plain `fs.createReadStream(path[, {start, end, highWaterMark}])` shows. */
interface PlainReadStream {
  path: string | Buffer;
  start?: number;
  end?: number;
  bytesRead: number;
  readableEncoding: string | null;
  readableDidRead?: boolean;
  destroyed: boolean;
  destroy(): void;
}

/**
 * When `source` is an untouched `fs.ReadStream` of a path (no encoding, nothing read from it yet),
 * the same bytes read by fileChunks() (an UploadSource), and the stream is destroyed (its descriptor closed);
 * otherwise undefined. A stream made from a descriptor, with a custom `fs`, or already read from
 * is left alone: its bytes may not be the file's from `start` on.
 */
export function fileChunksOfReadStream(source: unknown): ((bufferFor: ChunkMemory) => AsyncIterable<Uint8Array>) | undefined {
  if (!(source instanceof ReadStream)) return undefined;
  const s = source as unknown as PlainReadStream & { flags?: unknown };
  const plain = typeof s.path === 'string' && s.bytesRead === 0 && s.readableDidRead !== true && !s.destroyed && s.readableEncoding === null;
  if (!plain || (s.flags !== undefined && s.flags !== 'r') || !usesNodeFs(source)) return undefined;
  const range: FileRange = {};
  if (typeof s.start === 'number') range.start = s.start;
  if (typeof s.end === 'number' && Number.isFinite(s.end)) range.end = s.end;
  const path = s.path as string;
  source.destroy();
  return (bufferFor) => fileChunks(path, range, undefined, bufferFor);
}

/** False when the stream was given its own `fs` (createReadStream's `fs` option: its bytes may be anything). */
function usesNodeFs(stream: ReadStream): boolean {
  // Node keeps it under a symbol of its own (kFs); a runtime without it is not trusted.
  const key = Object.getOwnPropertySymbols(stream).find((k) => k.description === 'kFs');
  return key !== undefined && (stream as unknown as Record<symbol, unknown>)[key] === nodeFs;
}
