// Moving a volume's bytes over a stream procedure, for the client library and the CLI alike:
// the uploader writes with flow control, half-closes, and waits for virtstoraged to end the
// stream (the volume renamed into place) or fail it; the downloader counts what arrives against
// the announced length. Either can be cancelled.
import { VirtqError } from '../protocol/errors.js';

/** What a transfer needs of a byte stream (the protocol's ByteStream, or the CLI's view of it). */
export interface TransferStream extends AsyncIterable<Uint8Array> {
  readonly opened: unknown;
  /**
   * Sends `data`, copied into its frame before this returns (FramedConnection.send): an upload's
   * source may read into a chunk's memory again once asked for the next (the CLI's lent reads).
   */
  write(data: Uint8Array): void;
  /** Memory for an outgoing chunk of `n` bytes inside its frame (ByteStream.chunkBuffer). */
  chunkBuffer?(n: number): Uint8Array | undefined;
  /** Gives a received chunk's memory back once the sink is done with it (ByteStream.recycle). */
  recycle?(chunk: Uint8Array): void;
  drain(): Promise<void>;
  endWrite(): void;
  end(): void;
  fail(err: VirtqError): void;
  readonly ended: boolean;
  readonly error: { code: string; message: string } | undefined;
}

/** Progress and cancellation of one transfer. */
export interface TransferControl {
  onProgress?(doneBytes: number, totalBytes: number): void;
  signal?: AbortSignal;
}

const REPORT_MS = 100;
/** The largest piece of an upload sent in one frame. */
const CHUNK_BYTES = 1024 * 1024;

function reporter(ctl: TransferControl, total: number): (done: number, last: boolean) => void {
  let at = -Infinity;
  return (done, last) => {
    const now = performance.now();
    if (!last && now - at < REPORT_MS) return;
    at = now;
    ctl.onProgress?.(done, total);
  };
}

const aborted = (what: string, done: number, total: number): VirtqError =>
  new VirtqError('OPERATION_ABORTED', `${what} cancelled after ${done} of ${total} bytes`);

/**
 * An upload's bytes: an iterable, or a function making one given where each chunk of `n` bytes
 * should be read to (the frame that sends it, when the stream can say: no copy of it; a file's
 * reads, client/file-source.ts).
 */
export type UploadSource = AsyncIterable<Uint8Array> | ((bufferFor: (n: number) => Uint8Array | undefined) => AsyncIterable<Uint8Array>);

/** Sends `length` bytes of `source` on `stream` (opened by uploadVolume); resolves once the server has them all in place. */
export async function sendUpload(stream: TransferStream, from: UploadSource, length: number, what: string, ctl: TransferControl = {}): Promise<void> {
  const source = typeof from === 'function' ? from((n) => stream.chunkBuffer?.(n)) : from;
  let sent = 0;
  const report = reporter(ctl, length);
  const abort = (): void => stream.fail(aborted(what, sent, length));
  ctl.signal?.addEventListener('abort', abort, { once: true });
  try {
    for await (const given of source) {
      // One frame carries at most 16 MiB: big chunks go as 1 MiB pieces.
      for (let off = 0; off < given.length && !stream.ended; off += CHUNK_BYTES) {
        const chunk = given.subarray(off, off + CHUNK_BYTES);
        stream.write(chunk);
        sent += chunk.length;
        report(sent, false);
        await stream.drain();
      }
      if (stream.ended) break;
    }
    if (ctl.signal?.aborted === true) throw aborted(what, sent, length);
    stream.endWrite();
    // Nothing comes back but the end, once the server has renamed the volume into place.
    for await (const _ of stream) { /* drain */ }
    if (stream.error !== undefined) throw VirtqError.fromWire(stream.error);
    report(sent, true);
  } catch (err) {
    if (!stream.ended) stream.fail(VirtqError.from(err));
    throw err;
  } finally {
    ctl.signal?.removeEventListener('abort', abort);
  }
}

/**
 * Reads a download's bytes (the stream's reply announced `length`), handing each chunk to
 * `sink`. A chunk is the sink's only until its promise settles: its memory is then read into
 * again (a fresh 1 MiB buffer per chunk cost ~1 s of page faults and GC per GiB), so a sink
 * that keeps a chunk longer copies it.
 */
export async function receiveDownload(stream: TransferStream, sink: (chunk: Uint8Array) => Promise<void>, what: string, ctl: TransferControl = {}): Promise<number> {
  const length = (stream.opened as { length?: unknown } | undefined)?.length;
  if (typeof length !== 'number') throw new VirtqError('INTERNAL', `${what}: the server announced no length`);
  const report = reporter(ctl, length);
  let received = 0;
  const abort = (): void => stream.end();
  ctl.signal?.addEventListener('abort', abort, { once: true });
  try {
    for await (const chunk of stream) {
      await sink(chunk);
      received += chunk.length;
      stream.recycle?.(chunk);
      report(received, false);
    }
    if (ctl.signal?.aborted === true) throw aborted(what, received, length);
    if (stream.error !== undefined) throw VirtqError.fromWire(stream.error);
    if (received !== length) throw new VirtqError('OPERATION_FAILED', `${what} ended after ${received} of ${length} bytes`);
    report(received, true);
    return received;
  } finally {
    ctl.signal?.removeEventListener('abort', abort);
    stream.end();
  }
}
