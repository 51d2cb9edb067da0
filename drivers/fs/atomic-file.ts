// Atomic replacement of small persistent files (definitions, state files, caches): write a
// temp file in the same directory, fsync it, rename it over the target, fsync the directory.
// A crash at any point leaves either the old file or the new one, never a mix.
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
