// The CLI's local files, for the commands that move volume bytes: sizes, chunked reads, and
// writes that appear under their final name only once complete (a temp file renamed into place).
import { createReadStream } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { VirtqError } from '../protocol/index.js';
import type { CliFiles } from './io.js';

const CHUNK = 1024 * 1024;

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
    read: (path) => createReadStream(abs(path), { highWaterMark: CHUNK }),
    async create(path) {
      const final = abs(path);
      const temp = join(dirname(final), `.${basename(final)}.part-${process.pid}`);
      const fh = await open(temp, 'wx', 0o644).catch((err: unknown) => { throw fsError(err, path); });
      let closed = false;
      const close = async (): Promise<void> => { if (!closed) { closed = true; await fh.close(); } };
      return {
        write: async (chunk) => { await fh.write(chunk).catch((err: unknown) => { throw fsError(err, path); }); },
        commit: async () => {
          await fh.sync();
          await close();
          await rename(temp, final).catch((err: unknown) => { throw fsError(err, path); });
        },
        abort: async () => {
          await close().catch(() => undefined);
          await unlink(temp).catch(() => undefined);
        },
      };
    },
  };
}
