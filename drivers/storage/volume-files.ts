// How a volume file comes to be under its final name: built under a temp name in the pool's
// directory (`.vq-<random>.tmp`, never listed), fsynced, then linked (new volume: never over
// an existing file) or renamed (upload: over the old bytes) into place, and the directory
// fsynced. A crash at any point leaves the old state plus at most a temp file recover() removes.
import { randomBytes, randomFillSync } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { threadPoolFs, type PoolFs } from './pool-fs.js';

const TEMP_RE = /^\.vq-[0-9a-f]{16}\.tmp$/;

/** A fresh temp file name for the pool directory (a DRBG call per name; a pool draws from TempNames). */
export function tempName(): string {
  return `.vq-${randomBytes(8).toString('hex')}.tmp`;
}

/**
 * Temp names drawn 8 random bytes at a time from a buffer refilled every 64 names. One
 * randomBytes(8) per name was an OpenSSL DRBG call (its locks, a getpid, an AES-CTR block) on
 * every create and delete: ~0.1 ms of a cold daemon loop's time per operation (perf, session 14).
 * The names stay as random as tempName()'s. One per pool (no module state).
 */
export class TempNames {
  private readonly bytes = Buffer.alloc(512);
  private at = this.bytes.length;

  /** A fresh temp file name, like tempName(). */
  readonly next = (): string => {
    if (this.at + 8 > this.bytes.length) {
      randomFillSync(this.bytes);
      this.at = 0;
    }
    const hex = this.bytes.toString('hex', this.at, this.at + 8);
    this.at += 8;
    return `.vq-${hex}.tmp`;
  };
}

/** True for the names `tempName()` makes: the files `recover()` removes. */
export function isTempName(name: string): boolean {
  return TEMP_RE.test(name);
}

/** The volume an operation is about, for messages. */
export interface VolumeRef {
  pool: string;
  name: string;
}

/** `volume "v" in pool "p"`. */
export function describe(ref: VolumeRef): string {
  return `volume ${JSON.stringify(ref.name)} in pool ${JSON.stringify(ref.pool)}`;
}

/** Maps a filesystem error met while working on `ref` to a typed error; VirtqErrors pass through. */
export function fsError(err: unknown, ref: VolumeRef, what: string): VirtqError {
  if (err instanceof VirtqError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const message = err instanceof Error ? err.message : String(err);
  const vol = describe(ref);
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new VirtqError('NO_SPACE', `${what}: no space left on the filesystem of pool ${JSON.stringify(ref.pool)}; free space or use another pool`, { cause: err });
    case 'EEXIST':
      return new VirtqError('ALREADY_EXISTS', `${vol} already exists; delete it first or choose another name`, { cause: err });
    case 'ENOENT':
      return new VirtqError('NO_STORAGE_VOL', `${vol} does not exist`, { cause: err });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new VirtqError('PERMISSION_DENIED', `${what}: ${message}`, { cause: err });
    default:
      return new VirtqError('OPERATION_FAILED', `${what}: ${message}`, { cause: err });
  }
}

/** fsyncs a file or a directory by path (pool-fs.ts: the close that follows is not waited for). */
export function fsyncPath(path: string, fs: PoolFs = threadPoolFs): Promise<void> {
  return fs.fsyncPath(path);
}

/** How a finished temp file takes its final name. */
export type CommitMode = 'new' | 'replace';

/**
 * Puts the finished temp file `tmp` (in `dir`) under `name`: `new` links it, failing with
 * ALREADY_EXISTS when anything holds the name (a race lost to another create), `replace`
 * renames over the old file. The file and the directory are fsynced first and after.
 *
 * `metadataOnly`: the file has no data blocks (made by ftruncate alone), so nothing is fsynced
 * before the link, and after it the *file* is fsynced by its new name instead of the directory
 * (on a local filesystem, `fs.direct`). One fsync either way, but only the file's carries both
 * halves of the new volume on every local filesystem: on ext4 without a journal (this project's
 * hosts: `/sys/fs/ext4/DEV/journal_task` is `<none>`) fsync of a directory writes the directory's
 * blocks and inode, never the new file's inode, while fsync of a file that was just given a name
 * writes its inode and then its parent's blocks and inode (ext4_sync_parent, for an inode marked
 * as a new entry by the link); with a journal (ext4, xfs) it commits the transaction of the
 * file's last change, the temp name's unlink, which holds or follows the link's. Elsewhere (NFS,
 * FUSE...) the directory is fsynced as before.
 */
export async function commitTemp(dir: string, tmp: string, name: string, mode: CommitMode, metadataOnly = false, fs: PoolFs = threadPoolFs): Promise<void> {
  const tmpPath = join(dir, tmp);
  const finalPath = join(dir, name);
  if (!metadataOnly) await fs.fsyncPath(tmpPath);
  if (mode === 'replace') {
    await fs.rename(tmpPath, finalPath);
  } else {
    try {
      await fs.link(tmpPath, finalPath);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      // A filesystem without hard links: check, then rename (a narrow race, as with any create).
      if (await exists(finalPath, fs)) throw Object.assign(new Error(`${finalPath} exists`), { code: 'EEXIST' });
      await fs.rename(tmpPath, finalPath);
      await fs.fsyncPath(dir);
      return;
    }
    // The temp name goes while the directory (or the file) is fsynced: the new name is durable
    // either way, and a temp name a crash kept is removed by recover(). One round trip fewer than
    // in turn (with direct calls the unlink is done before the fsync starts, and is in the same
    // commit, or the same write of the directory's block).
    await Promise.all([fs.unlink(tmpPath).catch(() => undefined), fs.fsyncPath(metadataOnly && fs.direct ? finalPath : dir)]);
    return;
  }
  await fs.fsyncPath(dir);
}

/** True when anything (file, dir, dangling symlink) is at `path`. */
export async function exists(path: string, fs: PoolFs = threadPoolFs): Promise<boolean> {
  return (await fs.lstatIfAny(path)) !== undefined;
}

/**
 * Runs `build(tmpPath)` to make a file under a fresh temp name in `dir`, then commits it as
 * `ref.name` (`metadataOnly`: see commitTemp). On any failure (abort, ENOSPC, a lost race) the temp file is removed and the
 * error, mapped, is thrown: the final name never holds a partial file.
 */
export async function buildVolumeFile(dir: string, ref: VolumeRef, mode: CommitMode, what: string, build: (tmpPath: string) => Promise<void>, metadataOnly = false, fs: PoolFs = threadPoolFs, newTemp: () => string = tempName): Promise<void> {
  const tmp = newTemp();
  const tmpPath = join(dir, tmp);
  try {
    await build(tmpPath);
    await commitTemp(dir, tmp, ref.name, mode, metadataOnly, fs);
  } catch (err) {
    await rm(tmpPath, { force: true }).catch(() => undefined);
    throw fsError(err, ref, what);
  }
}

/**
 * Moves `path` to a temp name in `dir` (a kill from now on leaves a temp file recover() removes:
 * the delete completes) and runs `confirm`; when `confirm` throws, links it back (never over a
 * file that took the name meanwhile) and rethrows. Returns the temp path: the caller unlinks it.
 */
export async function moveAsideConfirmed(dir: string, path: string, confirm: () => Promise<void>, fs: PoolFs = threadPoolFs, newTemp: () => string = tempName): Promise<string> {
  const aside = join(dir, newTemp());
  await fs.rename(path, aside);
  try {
    await confirm();
  } catch (err) {
    await fs.link(aside, path);
    await fs.unlink(aside);
    throw err;
  }
  return aside;
}
