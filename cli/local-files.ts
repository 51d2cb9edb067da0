// The CLI's local files, for the commands that move volume bytes: sizes, chunked reads, and
// writes that appear under their final name only once complete (a temp file renamed into place).
import { createReadStream } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileChunks } from '../client/file-source.js';
import { VirtqError } from '../protocol/errors.js';
import type { CliFiles } from './io.js';

const CHUNK = 1024 * 1024;
/** Bytes gathered before one writev: a download arrives in chunks of at most 1 MiB. */
const WRITE_BATCH = 8 * CHUNK;

/** Chunks from this size on are written as they come (a unix socket's download chunks, 1 MiB). */
const DIRECT_BYTES = 256 * 1024;

/**
 * Bytes written between two background fdatasyncs. The page cache holds a whole volume's worth
 * of dirty pages (the kernel's background writeback starts at 10% of memory), so without them
 * the commit's fsync wrote it all after the last byte arrived (0.6-0.8 s for 1 GiB); with them
 * the disk writes while the socket reads, and the commit's fsync waits for the tail only.
 * 4, 8, 16, 32 and 256 MiB were not told apart from 64 (interleaved, session 18).
 */
const SYNC_EVERY = 64 * CHUNK;

/**
 * Appends chunks to a file. A chunk is reused by its producer once write() settles (the
 * download's frame memory, recycled): large ones are written before it settles, while the
 * socket goes on reading into the next; small ones (pieces of a TLS or ssh stream) are copied
 * and gathered into writev batches of WRITE_BATCH bytes, one in flight while the next fills.
 */
class BatchedFile {
  private batch: Uint8Array[] = [];
  private bytes = 0;
  private position = 0;
  private inFlight: Promise<void> = Promise.resolve();
  /** The background fdatasync, at most one; its failure fails the next write or flush. */
  private syncing: Promise<void> | undefined;
  private syncError: unknown;
  private syncedUpTo = 0;

  constructor(private readonly fh: FileHandle) {}

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.length >= DIRECT_BYTES) {
      await this.start();
      await this.inFlight;
      const position = this.position;
      this.position += chunk.length;
      await writeAll(this.fh, [chunk], position);
      this.syncBehind();
      return;
    }
    this.batch.push(Buffer.from(chunk));
    this.bytes += chunk.length;
    if (this.bytes >= WRITE_BATCH) await this.start();
  }

  /** Writes what is gathered and waits for every write and the background sync. */
  async flush(): Promise<void> {
    await this.start();
    await this.inFlight;
    await this.syncing;
    if (this.syncError !== undefined) throw this.syncError;
  }

  /** Waits for a write or sync in flight, ignoring its error (the download is failing anyway). */
  async settle(): Promise<void> {
    await this.inFlight.catch(() => undefined);
    await this.syncing;
  }

  /**
   * Starts an fdatasync once SYNC_EVERY more bytes are written, unless one still runs. Not a
   * durability step (commit's fsync is): it only makes the disk write while the download goes on.
   */
  private syncBehind(): void {
    if (this.syncError !== undefined) throw this.syncError;
    if (this.syncing !== undefined || this.position - this.syncedUpTo < SYNC_EVERY) return;
    this.syncedUpTo = this.position;
    this.syncing = this.fh.datasync().then(
      () => { this.syncing = undefined; },
      (err: unknown) => { this.syncError = err; this.syncing = undefined; },
    );
  }

  private async start(): Promise<void> {
    await this.inFlight;
    if (this.batch.length === 0) return;
    const buffers = this.batch;
    const position = this.position;
    this.position += this.bytes;
    this.batch = [];
    this.bytes = 0;
    this.inFlight = writeAll(this.fh, buffers, position).then(() => this.syncBehind());
    this.inFlight.catch(() => undefined); // met again by the next write, flush or settle
  }
}

/** Writes `buffers` at `position`, finishing a short writev. */
async function writeAll(fh: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  const total = buffers.reduce((n, b) => n + b.length, 0);
  let done = (await fh.writev(buffers, position)).bytesWritten;
  if (done === total) return;
  const rest = Buffer.concat(buffers);
  while (done < total) done += (await fh.write(rest, done, total - done, position + done)).bytesWritten;
}

/** fsyncs a directory, so a rename in it is durable. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function fsError(err: unknown, path: string): VirtqError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return new VirtqError('INVALID_ARG', `${path}: no such file`);
  if (e.code === 'EACCES') return new VirtqError('PERMISSION_DENIED', `${path}: permission denied`);
  if (e.code === 'ENOSPC') return new VirtqError('NO_SPACE', `${path}: no space left on the device`);
  return new VirtqError('OPERATION_FAILED', `${path}: ${e.message}`, { cause: err });
}

/** The real local files. */
export function localFiles(cwd: string): CliFiles {
  const abs = (p: string): string => (p.startsWith('/') ? p : join(cwd, p));
  return {
    async size(path) {
      const st = await stat(abs(path)).catch((err: unknown) => { throw fsError(err, path); });
      if (!st.isFile()) throw new VirtqError('INVALID_ARG', `${path} is not a regular file`);
      return st.size;
    },
    // Lent chunks: read into the frames that send them, or two 1 MiB buffers in turn; one read ahead (client/file-source.ts).
    read: (path, opts) => (opts?.lent === true ? fileChunks(abs(path), {}, (err) => fsError(err, path), opts.bufferFor) : createReadStream(abs(path), { highWaterMark: CHUNK })),
    async create(path) {
      const final = abs(path);
      const temp = join(dirname(final), `.${basename(final)}.part-${process.pid}`);
      const fh = await open(temp, 'wx', 0o644).catch((err: unknown) => { throw fsError(err, path); });
      const out = new BatchedFile(fh);
      let closed = false;
      const close = async (): Promise<void> => { if (!closed) { closed = true; await fh.close(); } };
      return {
        write: (chunk) => out.write(chunk).catch((err: unknown) => { throw fsError(err, path); }),
        // One fsync of the file at the end, the rename, then the directory's: durable, once.
        commit: async () => {
          try {
            await out.flush();
            await fh.sync();
            await close();
            await rename(temp, final);
            await syncDir(dirname(final));
          } catch (err) {
            throw fsError(err, path);
          }
        },
        abort: async () => {
          await out.settle();
          await close().catch(() => undefined);
          await unlink(temp).catch(() => undefined);
        },
      };
    },
  };
}
