// From a volume name to the file a VM may use: the name is checked, a symlink is followed only
// when it lands inside the pool's directory, and only a regular file is a volume.
import type { BigIntStats } from 'node:fs';
import { join, sep } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { fileKind } from '../fs/file-kind.js';
import { checkVolumeName } from './volume-name.js';
import { threadPoolFs, type PoolFs } from './pool-fs.js';
import { describe, fsError, type VolumeRef } from './volume-files.js';

/** A volume found on disk. */
export interface ResolvedVolume {
  ref: VolumeRef;
  /** The pool directory's entry: `<pool dir>/<name>`. */
  entryPath: string;
  /** The regular file it is (the entry itself, or the in-pool file its symlink points to). */
  path: string;
  /** stat of that file, with ns times (for the info cache). */
  st: BigIntStats;
  symlink: boolean;
}

/** True when `path` is `dir` or below it (both resolved). */
export function isInside(dir: string, path: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/**
 * Resolves `name` in the pool at `dir` (whose resolved path is `realDir`). Throws INVALID_ARG for
 * a bad name, a symlink out of the pool or something not a regular file, NO_STORAGE_VOL when
 * nothing (or a dangling symlink) has the name.
 */
export async function resolveVolume(pool: string, dir: string, realDir: string, name: string, fs: PoolFs = threadPoolFs): Promise<ResolvedVolume> {
  checkVolumeName(name);
  const ref = { pool, name };
  const entryPath = join(dir, name);
  try {
    const entry = await fs.lstat(entryPath);
    if (entry.isFile()) return { ref, entryPath, path: join(realDir, name), st: entry, symlink: false };
    if (!entry.isSymbolicLink()) {
      throw new VirtqError('INVALID_ARG', `${describe(ref)} is not a regular file (${fileKind(entry)}); a dir pool's volumes are files`);
    }
    const target = await fs.realpath(entryPath);
    if (!isInside(realDir, target) || target === realDir) {
      throw new VirtqError('INVALID_ARG', `${describe(ref)} is a symlink to ${target}, outside the pool's directory ${realDir}; a volume must live in its pool`, { details: { target } });
    }
    const st = await fs.stat(target);
    if (!st.isFile()) throw new VirtqError('INVALID_ARG', `${describe(ref)} is a symlink to ${target}, which is not a regular file (${fileKind(st)})`);
    return { ref, entryPath, path: target, st, symlink: true };
  } catch (err) {
    throw fsError(err, ref, `looking up ${describe(ref)}`);
  }
}

