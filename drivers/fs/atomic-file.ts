// Atomic replacement of small persistent files (definitions, state files, caches): write a
// temp file in the same directory, fsync it, rename it over the target, fsync the directory.
// A crash at any point leaves either the old file or the new one, never a mix.
import { closeSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { tempSuffix } from '../../protocol/node-crypto.js';

/** Temp files are named `.NAME.RANDOM.tmp`; readers skip names starting with a dot. */
export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}

/**
 * Replaces `file` with `data` atomically and durably. Throws OPERATION_FAILED naming the file.
 * With `durable: false` nothing is fsync'd: still atomic for readers and across a crash of the
 * process, but a host crash may lose it (or leave it empty) — for records that describe only what
 * a host crash removes anyway.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600, opts: { durable?: boolean } = {}): Promise<void> {
  const durable = opts.durable ?? true;
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${tempSuffix()}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    if (!durable) return;
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC') throw new VirtqError('NO_SPACE', `cannot write ${file}: no space left on device; free space on its filesystem and retry`, { cause: err });
    throw new VirtqError('OPERATION_FAILED', `cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Replaces `file` with `data` atomically but not durably (as `durable: false` above), with
 * synchronous calls on the caller's thread: for a small record written on a latency-critical
 * path. The asynchronous form costs a thread-pool round trip per call (mkdir, open, write,
 * close, rename: five), and on a loaded host each round trip waits for two threads to be
 * scheduled; these calls on a local file take microseconds. The directory is made only if the
 * file cannot be created for want of it. Throws as writeFileAtomic does.
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${tempSuffix()}.tmp`);
  try {
    let fd: number;
    try {
      fd = openSync(tmp, 'wx', mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      fd = openSync(tmp, 'wx', mode);
    }
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    try { unlinkSync(tmp); } catch { /* never made, or already renamed */ }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC') throw new VirtqError('NO_SPACE', `cannot write ${file}: no space left on device; free space on its filesystem and retry`, { cause: err });
    throw new VirtqError('OPERATION_FAILED', `cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}
