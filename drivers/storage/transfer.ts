// Moves a volume's bytes between a file and an async byte stream: upload writes a stream into
// an open (temp) file, bounded, cancellable, all-zero runs left as holes (staged-writer.ts); download reads a
// file as a stream of chunks. Neither knows of temp names or pools: dir-pool.ts does.
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { VirtqError } from '../../protocol/errors.js';
import { abortedError } from './qemu-img.js';
import { StagedWriter, type StagedTarget } from './staged-writer.js';
import type { DownloadOptions, OpControl, VolumeDownload } from './types.js';

// The upload's writes (staged, aligned, O_DIRECT where the pool allows, zero runs as holes):
// staged-writer.ts. A datasync every 64 MiB while the stream flowed made a 1 GiB upload ~1.7x
// slower than one fsync at the end (16 journal commits and device flushes; bench/RESULTS.md,
// issue #13 session 9): direct writes reach the device without either. Their commit fsync still
// waits 0.1-0.6 s for the virtual disk to flush its cache; a background fdatasync every 64 MiB
// took that to 0.5-46 ms but the stream slowed by as much (the flush seems to hold up the writes
// behind it): no gain, not kept (bench/RESULTS.md, issue #13 session 18).
/** Size of the chunks a download yields. */
export const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;

/** Limits of one upload. */
export interface StreamLimits {
  /** The most bytes the stream may carry (the volume's current size). */
  maxBytes: number;
  /** The bytes the caller announced, when it did. */
  lengthBytes?: number;
  /** For messages: `uploading to volume "v" in pool "p"`. */
  what: string;
  /** Gives a chunk's memory back once its bytes are staged (UploadOptions.recycle). */
  recycle?(chunk: Uint8Array): void;
  /**
   * Lets the stream's source read large chunks straight into the staging buffers (memory for `n`
   * bytes at stream offset `offset`; ByteStream.readInto): no copy of them here. Undefined: no more.
   */
  readInto?(sink: ((offset: number, n: number) => Uint8Array | undefined) | undefined): void;
}

/**
 * Settles as `promise` does, or rejects with OPERATION_ABORTED when `signal` aborts first. The
 * listener is removed as soon as either happens: racing against one long-lived "aborted"
 * promise instead would make it retain every settled value (every chunk) until the end.
 */
function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortedError(what));
    if (signal.aborted) {
      promise.catch(() => undefined);
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

/**
 * Writes `data` into the file (`into`: a handle, or a StagedTarget for O_DIRECT) from offset 0
 * and returns the number of bytes written. Throws
 * INVALID_ARG when the stream carries more than `limits.maxBytes` (or than announced),
 * OPERATION_ABORTED when `ctl.signal` aborts or the stream ends short of the announced length,
 * and whatever the stream throws. The caller removes the file on any throw.
 */
export async function writeStream(into: FileHandle | StagedTarget, data: AsyncIterable<Uint8Array>, limits: StreamLimits, ctl: OpControl = {}): Promise<number> {
  const total = limits.lengthBytes ?? limits.maxBytes;
  const target: StagedTarget = 'fh' in into ? into : { fh: into, direct: false };
  // Direct writes inside the file's length are not extending ones, which ext4 makes wait for
  // the inode lock and an i_size update each; finish() sets the real length.
  if (target.direct) await target.fh.truncate(total);
  const writer = new StagedWriter(target);
  const it = data[Symbol.asyncIterator]();
  let finished = false;
  // Past the volume's size nothing is placed: such a chunk arrives as usual and is refused below.
  limits.readInto?.((offset, n) => (offset + n <= limits.maxBytes ? writer.claim(offset, n) : undefined));
  try {
    for (;;) {
      const r = await unlessAborted(it.next(), ctl.signal, limits.what);
      if (r.done === true) { finished = true; break; }
      const chunk = r.value;
      if (writer.end + chunk.length > limits.maxBytes) {
        throw new VirtqError('INVALID_ARG', `${limits.what}: the upload is longer than the volume (${limits.maxBytes} bytes); nothing was changed (resize the volume first)`, { details: { maxBytes: limits.maxBytes } });
      }
      if (limits.lengthBytes !== undefined && writer.end + chunk.length > limits.lengthBytes) {
        throw new VirtqError('INVALID_ARG', `${limits.what}: the stream carries more than the ${limits.lengthBytes} bytes announced; nothing was changed`);
      }
      await writer.add(chunk);
      limits.recycle?.(chunk);
      ctl.onProgress?.(writer.end, total);
    }
    if (limits.lengthBytes !== undefined && writer.end < limits.lengthBytes) {
      throw new VirtqError('OPERATION_ABORTED', `${limits.what}: the stream ended after ${writer.end} of ${limits.lengthBytes} bytes; nothing was changed`);
    }
    await unlessAborted(writer.finish(), ctl.signal, limits.what);
    return writer.end;
  } catch (err) {
    // Tell the producer to stop; never wait for it: it may be stuck on a peer that went away.
    if (!finished) void it.return?.()?.catch(() => undefined);
    await writer.settle();
    throw err;
  } finally {
    limits.readInto?.(undefined);
  }
}

/**
 * Opens `path` for reading as a download: yields its bytes in `chunkBytes` chunks (each a fresh
 * buffer the consumer owns, or with `reuseBuffers` one of two used in turn), reporting progress,
 * failing with OPERATION_ABORTED when `ctl.signal` aborts. The file is read through the
 * descriptor opened here, so a volume replaced meanwhile is read as it was when the download began.
 */
export async function openDownload(path: string, what: string, ctl: OpControl = {}, options: DownloadOptions = {}, chunkBytes = DOWNLOAD_CHUNK_BYTES): Promise<VolumeDownload> {
  const fh = await open(path, 'r');
  let totalBytes: number;
  try {
    totalBytes = (await fh.stat()).size;
  } catch (err) {
    await fh.close();
    throw err;
  }
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await fh.close();
  };
  // With reuseBuffers, chunk k is read into buffer k % 2: the read ahead (k + 1) never lands in
  // the chunk the consumer holds (k), and chunk k's buffer is read into again only once the
  // consumer has asked for k + 1, which it does only after it has copied chunk k.
  const ring = options.reuseBuffers === true ? [Buffer.allocUnsafe(Math.min(chunkBytes, totalBytes)), Buffer.allocUnsafe(Math.min(chunkBytes, totalBytes))] : undefined;
  const read = async (position: number): Promise<Buffer> => {
    const size = Math.min(chunkBytes, totalBytes - position);
    const buf = ring === undefined ? Buffer.allocUnsafe(size) : (ring[Math.floor(position / chunkBytes) % 2] as Buffer).subarray(0, size);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
      if (bytesRead === 0) throw new VirtqError('OPERATION_FAILED', `${what}: the file shrank while it was read (${position + got} of ${totalBytes} bytes)`);
      got += bytesRead;
    }
    return buf;
  };
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      let position = 0;
      // One read ahead: the next chunk is read while the consumer handles this one.
      let pending: Promise<Buffer> | undefined = totalBytes > 0 ? read(0) : undefined;
      while (pending !== undefined) {
        const buf = await pending;
        if (ctl.signal?.aborted === true) throw abortedError(what);
        position += buf.length;
        pending = position < totalBytes ? read(position) : undefined;
        pending?.catch(() => undefined);
        ctl.onProgress?.(position, totalBytes);
        yield buf;
      }
    } finally {
      await close();
    }
  }
  return { totalBytes, close, [Symbol.asyncIterator]: () => chunks() };
}
