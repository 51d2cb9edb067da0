// The metadata calls a dir pool makes (lstat, realpath, readdir, link, rename, unlink, a sparse
// file's open + ftruncate + close), in two forms. Through libuv's thread pool each call is a hop:
// the request handed to a pool thread, the loop woken by an eventfd when it is done. On a local
// filesystem such a call takes microseconds, and the hop costs far more than the call: a delete
// of a thin overlay made ~15 of them in turn, and `--cpu-prof` of the daemon showed the loop's
// time in the submitting natives (lstat alone ~0.5 ms per operation at load 9: the loop thread
// descheduled by the woken pool thread). So a pool on a local filesystem makes them as plain
// system calls on the loop's thread; fsync, which waits for a journal commit, stays in the
// thread pool. On any other filesystem (NFS, CIFS, FUSE...) a call can block for as long as a
// server takes, which would stall every client of the daemon: there every call keeps its hop.
import { fsync as fsyncCb, linkSync, lstatSync, openSync, closeSync, ftruncateSync, readdirSync, realpathSync, renameSync, statSync, unlinkSync, type BigIntStats } from 'node:fs';
import { link, lstat, open, readdir, realpath, rename, stat, statfs, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';

/** The metadata calls of one pool. Errors are Node's errno errors (`code`), whichever the form. */
export interface PoolFs {
  /** True for the plain (loop-thread) form. */
  readonly direct: boolean;
  lstat(path: string): Promise<BigIntStats>;
  /** lstat, or undefined when nothing has the name (ENOENT); other errors reject. */
  lstatIfAny(path: string): Promise<BigIntStats | undefined>;
  stat(path: string): Promise<BigIntStats>;
  realpath(path: string): Promise<string>;
  readdir(path: string): Promise<string[]>;
  link(from: string, to: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Creates `path` (it must not exist) with `mode` as a sparse file of `bytes`. */
  sparseFile(path: string, bytes: number, mode: number): Promise<void>;
  /** fsyncs a file or a directory by path; resolves once the fsync has (the close is not waited for). */
  fsyncPath(path: string): Promise<void>;
}

/** Every call through libuv's thread pool: the form for filesystems that may block. */
export const threadPoolFs: PoolFs = {
  direct: false,
  lstat: (p) => lstat(p, { bigint: true }),
  lstatIfAny: (p) => lstat(p, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  }),
  stat: (p) => stat(p, { bigint: true }),
  realpath: (p) => realpath(p),
  readdir: (p) => readdir(p),
  link: (a, b) => link(a, b),
  rename: (a, b) => rename(a, b),
  unlink: (p) => unlink(p),
  async sparseFile(path, bytes, mode) {
    const fh = await open(path, 'wx', mode);
    try {
      await fh.truncate(bytes);
    } finally {
      await fh.close();
    }
  },
  async fsyncPath(path) {
    const fh = await open(path, 'r');
    try {
      await fh.sync();
    } finally {
      // The close makes nothing more durable: not waited for (one hop of every create and delete).
      void fh.close().catch(() => undefined);
    }
  },
};

const fsyncFd = promisify(fsyncCb);

// Plain system calls; `async` so a failure is a rejection, as in the thread-pool form.
/** Metadata calls on the loop's thread, fsync in the thread pool: the form for local filesystems. */
export const directFs: PoolFs = {
  direct: true,
  lstat: async (p) => lstatSync(p, { bigint: true }),
  // No Error for a missing name (a create's check that its name is free): building one, with its
  // stack, was most of that lstat's time on a cold loop (perf, session 14).
  lstatIfAny: async (p) => lstatSync(p, { bigint: true, throwIfNoEntry: false }),
  stat: async (p) => statSync(p, { bigint: true }),
  realpath: async (p) => realpathSync.native(p),
  readdir: async (p) => readdirSync(p),
  link: async (a, b) => linkSync(a, b),
  rename: async (a, b) => renameSync(a, b),
  unlink: async (p) => unlinkSync(p),
  async sparseFile(path, bytes, mode) {
    const fd = openSync(path, 'wx', mode);
    try {
      ftruncateSync(fd, bytes);
    } finally {
      closeSync(fd);
    }
  },
  async fsyncPath(path) {
    const fd = openSync(path, 'r');
    try {
      await fsyncFd(fd);
    } finally {
      closeSoon(fd);
    }
  },
};

/**
 * Closes `fd` once this turn of the loop is done: a close after an fsync makes nothing more
 * durable, and the reply waiting on that fsync goes out first (one system call fewer before it).
 */
export function closeSoon(fd: number): void {
  setImmediate(() => {
    try {
      closeSync(fd);
    } catch {
      // EBADF cannot happen (only this closes it); EIO on a close after a successful fsync loses nothing
    }
  });
}

/**
 * Filesystems (statfs f_type) whose metadata calls never wait on another machine: ext2/3/4, xfs,
 * btrfs, tmpfs. The same set drivers/lock/proc-locks.ts trusts.
 */
const LOCAL_FS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994]);

/** The form for the filesystem `dir` is on: direct when it is local, the thread pool otherwise (or when statfs fails). */
export async function poolFsFor(dir: string): Promise<PoolFs> {
  try {
    return LOCAL_FS.has((await statfs(dir)).type) ? directFs : threadPoolFs;
  } catch {
    return threadPoolFs;
  }
}
