// Whether a lease may be held on a disk, read from /proc/locks instead of trying the lease's flock
// with a flock(1) process (a spawn is most of a small volume delete's time). It only ever answers
// "free" or "maybe held": a /proc/locks line names MAJ:MIN:INODE, and matching on the inode alone
// (the device numbers /proc/locks prints are the superblock's, which stat(2) does not always give,
// e.g. on btrfs subvolumes) can only over-report. Callers treat "maybe held" as "ask the lock
// manager", so a false match costs a spawn, never a missed lease. /proc/locks lists only the locks
// of this host's kernel, so a lockspace on a network filesystem never gets a probe (remoteFs).
import { readFileSync, statSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { canonicalPath, lockFileName } from './lockspace.js';
import { nativeSha256Hex } from '../../protocol/node-crypto.js';
import { lockspaceDir } from './lockfile.js';
import { readLockConfig, type LockDirs, type LoadedLock } from './loader.js';
import { join } from 'node:path';

/** Reads the kernel's lock table (the text of /proc/locks). */
export type ReadLockTable = () => Promise<string>;

// Read on the loop's thread: procfs answers from memory, and a thread-pool hop costs more than
// the read (a delete probes twice).
const readProcLocks: ReadLockTable = async () => readFileSync('/proc/locks', 'utf8');

/** `MAJ:MIN:INODE` as /proc/locks prints it (hex device numbers, decimal inode). */
const FILE_ID = /\s[0-9a-f]+:[0-9a-f]+:(\d+)\s/;

/** The inode numbers (decimal strings) of every file with a lock, or a waiter, in `table`. */
export function lockedInodes(table: string): Set<string> {
  const inodes = new Set<string>();
  for (const line of table.split('\n')) {
    const m = FILE_ID.exec(line);
    if (m !== null) inodes.add(m[1] as string);
  }
  return inodes;
}

/**
 * Filesystems whose locks are all in this kernel (statfs f_type magics): ext2/3/4, xfs, btrfs,
 * tmpfs. Anything else (NFS, CIFS, GFS2, OCFS2, FUSE...) may carry another host's leases.
 */
const LOCAL_FS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994]);

/** True when `dir` is on a filesystem whose locks /proc/locks shows completely. */
export async function isLocalLockFs(dir: string): Promise<boolean> {
  try {
    return LOCAL_FS.has((await statfs(dir)).type);
  } catch {
    return false;
  }
}

/** Answers whether a disk's lease may be held, without a process. */
export class ProcLocksProbe {
  /** The last canonical path's lock file: a removal probes one path twice (before and in its confirm), and the name is a sha256. */
  private last: { path: string; file: string } | undefined;

  constructor(private readonly lockspace: string, private readonly readTable: ReadLockTable = readProcLocks) {}

  /** The lock file a lease on `diskPath` is a flock on (lockfile-manager.ts's naming). */
  async lockFileOf(diskPath: string): Promise<string> {
    return join(this.lockspace, lockFileName(await canonicalPath(diskPath)));
  }

  /** lockFileOf() of a path already canonical (resolved by its pool): no realpath. The probe runs in virtstoraged, which loads node:crypto anyway. */
  private lockFileOfCanonical(diskPath: string): string {
    if (this.last?.path !== diskPath) this.last = { path: diskPath, file: join(this.lockspace, lockFileName(diskPath, nativeSha256Hex)) };
    return this.last.file;
  }

  /**
   * False only when no process on this host holds or waits for a lock on `diskPath`'s lock file
   * at this moment (a missing lock file cannot be locked). True means "ask the lock manager".
   * `canonical`: `diskPath` is already what canonicalPath() would make of it (a pool's resolved
   * path), so its realpath is not taken again.
   */
  async mayBeHeld(diskPath: string, opts: { canonical?: boolean } = {}): Promise<boolean> {
    let inode: bigint;
    try {
      const file = opts.canonical === true ? this.lockFileOfCanonical(diskPath) : await this.lockFileOf(diskPath);
      // A plain stat: the lockspace is on a local filesystem (procLocksProbeFor), so the call
      // takes microseconds, less than a thread-pool hop. A missing lock file (the usual answer)
      // builds no Error: its stack was most of the call's time.
      const st = statSync(file, { bigint: true, throwIfNoEntry: false });
      if (st === undefined) return false;
      inode = st.ino;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code !== 'ENOENT';
    }
    try {
      return lockedInodes(await this.readTable()).has(inode.toString());
    } catch {
      return true;
    }
  }
}

/**
 * The probe for a root's lock manager: only for the `lockfile` plugin, loaded and working, with
 * its lockspace on a local filesystem; undefined otherwise (callers then always ask the manager).
 */
export async function procLocksProbeFor(lock: LoadedLock, dirs: LockDirs, readTable?: ReadLockTable): Promise<ProcLocksProbe | undefined> {
  if (!lock.status.ok || lock.status.plugin !== 'lockfile') return undefined;
  try {
    const space = lockspaceDir(await readLockConfig(dirs), { stateDir: dirs.state });
    if (!(await isLocalLockFs(space))) return undefined;
    return new ProcLocksProbe(space, readTable);
  } catch {
    return undefined;
  }
}
